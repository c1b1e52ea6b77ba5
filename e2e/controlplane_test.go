package e2e_test

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsbedrock "github.com/aws/aws-sdk-go-v2/service/bedrock"
	bdtypes "github.com/aws/aws-sdk-go-v2/service/bedrock/types"
	"github.com/aws/smithy-go/auth/bearer"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/fakeaws/bedrock"
	"github.com/tenantgate/tenantgate/internal/stack"
)

// controlCaller is the official Bedrock control-plane SDK client pointed at
// the gateway like the runtime client (same endpoint URL, bearer token).
type controlCaller struct {
	*awsbedrock.Client
	cap *capture
}

func newControlCaller(t *testing.T, st *stack.Stack, token string, headers map[string]string) controlCaller {
	t.Helper()
	hc, err := st.HTTPClient("", "")
	if err != nil {
		t.Fatal(err)
	}
	cp := &capture{rt: hc.Transport}
	hc.Transport = cp
	opts := awsbedrock.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(st.EnvoyURL), HTTPClient: hc, RetryMaxAttempts: 1,
		BearerAuthTokenProvider: bearer.StaticTokenProvider{Token: bearer.Token{Value: token}},
		AuthSchemePreference:    []string{"httpBearerAuth"},
	}
	for k, v := range headers {
		opts.APIOptions = append(opts.APIOptions, smithyhttp.AddHeaderValue(k, v))
	}
	return controlCaller{Client: awsbedrock.New(opts), cap: cp}
}

func (c controlCaller) expectDenied(t *testing.T, err error, status int, code string) {
	t.Helper()
	expectDenied(t, caller{cap: c.cap}, err, status, code)
}

// TestControlPlaneAndGeography runs, through the shipped Envoy against the
// fake AWS, the control-plane calls of the official Bedrock SDK client and
// the runtime client's cross-region model ids with extproc.geography:
// rewrite.
func TestControlPlaneAndGeography(t *testing.T) {
	// The free tier: anthropic.* and application inference profile ARNs.
	cpModels := stack.DemoModels()
	cpModels["free"] = []string{"anthropic.*", "arn:aws:bedrock:*:*:application-inference-profile/*"}
	st := startStack(t, stack.Options{Models: cpModels, Geography: config.GeographyRewrite})
	ctx := context.Background()
	alice, bob := token(t, st, stack.AliceUserID), token(t, st, stack.BobUserID)
	acme := map[string]string{"x-account-id": stack.AcmeAccountID}
	const platformAccount = "999988887777"

	t.Run("PlatformListsOnlySystemProfiles", func(t *testing.T) {
		n := len(st.Records())
		c := newControlCaller(t, st, bob, nil)
		out, err := c.ListInferenceProfiles(ctx, &awsbedrock.ListInferenceProfilesInput{})
		if err != nil {
			t.Fatal(err)
		}
		var haiku bool
		for _, p := range out.InferenceProfileSummaries {
			if p.Type != bdtypes.InferenceProfileTypeSystemDefined {
				t.Errorf("platform-signed listing shows %s profile %s", p.Type, *p.InferenceProfileArn)
			}
			haiku = haiku || *p.InferenceProfileId == "us."+stack.DemoModel
		}
		if !haiku || len(out.InferenceProfileSummaries) == 0 {
			t.Errorf("system profiles missing: %+v", out.InferenceProfileSummaries)
		}
		r := oneRecord(t, st, n)
		if r.Host != "bedrock.us-east-1.amazonaws.com" || r.PrincipalARN != stack.PlatformPrincipal || r.Operation != "ListInferenceProfiles" {
			t.Errorf("upstream record %+v", r)
		}
		assertClean(t, r)
	})

	t.Run("PlatformApplicationProfilesDenied", func(t *testing.T) {
		n := len(st.Records())
		c := newControlCaller(t, st, bob, nil)
		_, err := c.ListInferenceProfiles(ctx, &awsbedrock.ListInferenceProfilesInput{TypeEquals: bdtypes.InferenceProfileTypeApplication})
		c.expectDenied(t, err, 403, "application_profile_denied")
		// The plan allows application profile ARNs (cpModels); ext_proc
		// refuses them on the platform identity.
		_, err = c.GetInferenceProfile(ctx, &awsbedrock.GetInferenceProfileInput{InferenceProfileIdentifier: aws.String(bedrock.ApplicationProfileARN("us-east-1", platformAccount))})
		c.expectDenied(t, err, 403, "application_profile_denied")
		// A bare application profile id is outside the plan's globs.
		_, err = c.GetInferenceProfile(ctx, &awsbedrock.GetInferenceProfileInput{InferenceProfileIdentifier: aws.String(bedrock.ApplicationProfileID(platformAccount))})
		c.expectDenied(t, err, 403, "model_not_allowed")
		if recs := newRecords(st, n); len(recs) != 0 {
			t.Errorf("denied calls left Envoy: %+v", recs)
		}
	})

	t.Run("PlatformFoundationModelsAndPlan", func(t *testing.T) {
		c := newControlCaller(t, st, bob, nil)
		if _, err := c.ListFoundationModels(ctx, &awsbedrock.ListFoundationModelsInput{}); err != nil {
			t.Fatal(err)
		}
		fm, err := c.GetFoundationModel(ctx, &awsbedrock.GetFoundationModelInput{ModelIdentifier: aws.String(stack.DemoModel)})
		if err != nil || *fm.ModelDetails.ModelId != stack.DemoModel {
			t.Fatalf("GetFoundationModel: %+v %v", fm, err)
		}
		// The free tier allows anthropic.* only.
		_, err = c.GetFoundationModel(ctx, &awsbedrock.GetFoundationModelInput{ModelIdentifier: aws.String("amazon.nova-pro-v1:0")})
		c.expectDenied(t, err, 403, "model_not_allowed")
		gp, err := c.GetInferenceProfile(ctx, &awsbedrock.GetInferenceProfileInput{InferenceProfileIdentifier: aws.String("us." + stack.DemoModel)})
		if err != nil || gp.Type != bdtypes.InferenceProfileTypeSystemDefined {
			t.Fatalf("GetInferenceProfile system profile: %+v %v", gp, err)
		}
	})

	t.Run("TenantSeesOwnApplicationProfile", func(t *testing.T) {
		n := len(st.Records())
		c := newControlCaller(t, st, alice, acme)
		out, err := c.ListInferenceProfiles(ctx, &awsbedrock.ListInferenceProfilesInput{TypeEquals: bdtypes.InferenceProfileTypeApplication})
		if err != nil {
			t.Fatal(err)
		}
		want := bedrock.ApplicationProfileARN(stack.AcmeRegion, "111122223333")
		if len(out.InferenceProfileSummaries) != 1 || *out.InferenceProfileSummaries[0].InferenceProfileArn != want {
			t.Fatalf("tenant application profiles: %+v", out.InferenceProfileSummaries)
		}
		r := oneRecord(t, st, n)
		if r.Host != "bedrock."+stack.AcmeRegion+".amazonaws.com" || !strings.HasPrefix(r.PrincipalARN, acmeAssumed) {
			t.Errorf("upstream record %+v", r)
		}
		gp, err := c.GetInferenceProfile(ctx, &awsbedrock.GetInferenceProfileInput{InferenceProfileIdentifier: aws.String(want)})
		if err != nil || *gp.InferenceProfileArn != want {
			t.Fatalf("GetInferenceProfile own application profile: %+v %v", gp, err)
		}
		// A foreign geography is rewritten for the control plane too.
		gp, err = c.GetInferenceProfile(ctx, &awsbedrock.GetInferenceProfileInput{InferenceProfileIdentifier: aws.String("us." + stack.DemoModel)})
		if err != nil || *gp.InferenceProfileId != "eu."+stack.DemoModel {
			t.Fatalf("GetInferenceProfile us. for an eu-west-1 tenant: %+v %v", gp, err)
		}
	})

	t.Run("GeographyRewrittenForTenant", func(t *testing.T) {
		n := len(st.Records())
		c := newCaller(t, st, callerOpts{token: alice, headers: acme})
		if _, err := c.converse(ctx, "us."+stack.DemoModel); err != nil {
			t.Fatal(err)
		}
		r := oneRecord(t, st, n)
		assertSignedBy(t, r, stack.AcmeRegion, acmeAssumed)
		if r.ModelID != "eu."+stack.DemoModel {
			t.Errorf("upstream model %q, want the eu. profile", r.ModelID)
		}
	})

	t.Run("GeographyRewrittenForPlatform", func(t *testing.T) {
		n := len(st.Records())
		c := newCaller(t, st, callerOpts{token: bob})
		if _, err := c.converse(ctx, "eu."+stack.DemoModel); err != nil {
			t.Fatal(err)
		}
		r := oneRecord(t, st, n)
		assertSignedBy(t, r, stack.DefaultRegion, stack.PlatformPrincipal)
		if r.ModelID != "us."+stack.DemoModel {
			t.Errorf("upstream model %q, want the us. profile", r.ModelID)
		}
	})

	t.Run("ModelARNOfAnotherRegion", func(t *testing.T) {
		n := len(st.Records())
		c := newCaller(t, st, callerOpts{token: alice, headers: acme})
		_, err := c.converse(ctx, bedrock.ApplicationProfileARN("us-east-1", "111122223333"))
		expectDenied(t, c, err, 400, "model_arn_mismatch")
		if recs := newRecords(st, n); len(recs) != 0 {
			t.Errorf("refused request left Envoy: %+v", recs)
		}
	})
}
