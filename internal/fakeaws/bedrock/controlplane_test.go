package bedrock_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsbedrock "github.com/aws/aws-sdk-go-v2/service/bedrock"
	bdtypes "github.com/aws/aws-sdk-go-v2/service/bedrock/types"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"

	"github.com/tenantgate/tenantgate/internal/fakeaws/bedrock"
)

// controlClient is the official control-plane SDK client signing for
// signRegion and sending to the control-plane host of hostRegion.
func (e *env) controlClient(signRegion, hostRegion string, cr aws.Credentials) *awsbedrock.Client {
	return awsbedrock.NewFromConfig(aws.Config{
		Region: signRegion, Credentials: credentials.StaticCredentialsProvider{Value: cr}, HTTPClient: e.brHTTP, RetryMaxAttempts: 1,
	}, func(o *awsbedrock.Options) {
		o.BaseEndpoint = aws.String("http://bedrock." + hostRegion + ".amazonaws.com")
	})
}

// TestControlPlaneWithSDK: the official Bedrock control-plane client parses
// the fake's answers to the four read-only calls, and the fake verifies
// SigV4 for service bedrock on the control-plane host.
func TestControlPlaneWithSDK(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	tenant := e.assumeRole(t)
	platform := aws.Credentials{AccessKeyID: platformKey, SecretAccessKey: platformSecret}
	c := e.controlClient("eu-west-1", "eu-west-1", tenant)

	models, err := c.ListFoundationModels(ctx, &awsbedrock.ListFoundationModelsInput{ByProvider: aws.String("anthropic")})
	if err != nil {
		t.Fatalf("ListFoundationModels: %v", err)
	}
	if len(models.ModelSummaries) != 2 || *models.ModelSummaries[0].ModelArn != "arn:aws:bedrock:eu-west-1::foundation-model/"+haiku {
		t.Fatalf("ListFoundationModels by provider: %+v", models.ModelSummaries)
	}
	fm, err := c.GetFoundationModel(ctx, &awsbedrock.GetFoundationModelInput{ModelIdentifier: aws.String(haiku)})
	if err != nil || *fm.ModelDetails.ModelId != haiku || *fm.ModelDetails.ProviderName != "Anthropic" {
		t.Fatalf("GetFoundationModel: %+v %v", fm, err)
	}
	if _, err := c.GetFoundationModel(ctx, &awsbedrock.GetFoundationModelInput{ModelIdentifier: aws.String("nope.model")}); apiCode(err) != "ResourceNotFoundException" {
		t.Fatalf("unknown model: %v", err)
	}

	all, err := c.ListInferenceProfiles(ctx, &awsbedrock.ListInferenceProfilesInput{})
	if err != nil {
		t.Fatalf("ListInferenceProfiles: %v", err)
	}
	var app, sys int
	for _, p := range all.InferenceProfileSummaries {
		switch p.Type {
		case bdtypes.InferenceProfileTypeApplication:
			app++
			if *p.InferenceProfileArn != bedrock.ApplicationProfileARN("eu-west-1", "111122223333") {
				t.Fatalf("application profile of another account: %s", *p.InferenceProfileArn)
			}
		case bdtypes.InferenceProfileTypeSystemDefined:
			sys++
		}
		if p.CreatedAt == nil || p.CreatedAt.IsZero() {
			t.Fatalf("createdAt not parsed: %+v", p)
		}
	}
	if app != 1 || sys < 2 {
		t.Fatalf("profiles: %d application, %d system", app, sys)
	}
	sysOnly, err := c.ListInferenceProfiles(ctx, &awsbedrock.ListInferenceProfilesInput{TypeEquals: bdtypes.InferenceProfileTypeSystemDefined})
	if err != nil || len(sysOnly.InferenceProfileSummaries) != sys {
		t.Fatalf("SYSTEM_DEFINED filter: %d profiles, %v", len(sysOnly.InferenceProfileSummaries), err)
	}
	// Paging through the SDK paginator returns every profile once.
	var paged int
	pg := awsbedrock.NewListInferenceProfilesPaginator(c, &awsbedrock.ListInferenceProfilesInput{MaxResults: aws.Int32(2)})
	for pg.HasMorePages() {
		page, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatalf("page: %v", err)
		}
		paged += len(page.InferenceProfileSummaries)
	}
	if paged != app+sys {
		t.Fatalf("paged %d profiles, want %d", paged, app+sys)
	}

	gp, err := c.GetInferenceProfile(ctx, &awsbedrock.GetInferenceProfileInput{InferenceProfileIdentifier: aws.String(bedrock.ApplicationProfileARN("eu-west-1", "111122223333"))})
	if err != nil || gp.Type != bdtypes.InferenceProfileTypeApplication || len(gp.Models) != 1 {
		t.Fatalf("GetInferenceProfile application ARN: %+v %v", gp, err)
	}
	if gp, err := c.GetInferenceProfile(ctx, &awsbedrock.GetInferenceProfileInput{InferenceProfileIdentifier: aws.String("eu." + haiku)}); err != nil || *gp.InferenceProfileId != "eu."+haiku {
		t.Fatalf("GetInferenceProfile system id: %+v %v", gp, err)
	}
	// The platform account does not see the tenant's application profile.
	pc := e.controlClient("eu-west-1", "eu-west-1", platform)
	if _, err := pc.GetInferenceProfile(ctx, &awsbedrock.GetInferenceProfileInput{InferenceProfileIdentifier: aws.String(bedrock.ApplicationProfileARN("eu-west-1", "111122223333"))}); apiCode(err) != "ResourceNotFoundException" {
		t.Fatalf("other account's profile: %v", err)
	}

	// SigV4 is verified: wrong region in the scope, unknown key.
	if _, err := e.controlClient("us-east-1", "eu-west-1", platform).ListFoundationModels(ctx, &awsbedrock.ListFoundationModelsInput{}); apiCode(err) != "InvalidSignatureException" {
		t.Fatalf("wrong signing region: %v", err)
	}
	if _, err := e.controlClient("eu-west-1", "eu-west-1", aws.Credentials{AccessKeyID: "AKIAUNKNOWN", SecretAccessKey: "x"}).ListFoundationModels(ctx, &awsbedrock.ListFoundationModelsInput{}); apiCode(err) != "UnrecognizedClientException" {
		t.Fatalf("unknown key: %v", err)
	}
}

// TestControlPlaneHostsSeparate: control-plane operations are answered only
// on the control-plane host and runtime operations only on the runtime host.
func TestControlPlaneHostsSeparate(t *testing.T) {
	e := newEnv(t)
	platform := aws.Credentials{AccessKeyID: platformKey, SecretAccessKey: platformSecret}
	c := awsbedrock.NewFromConfig(aws.Config{Region: "us-east-1", Credentials: credentials.StaticCredentialsProvider{Value: platform}, HTTPClient: e.brHTTP, RetryMaxAttempts: 1},
		func(o *awsbedrock.Options) {
			o.BaseEndpoint = aws.String("http://bedrock-runtime.us-east-1.amazonaws.com")
		})
	_, err := c.ListFoundationModels(context.Background(), &awsbedrock.ListFoundationModelsInput{})
	var re interface{ HTTPStatusCode() int }
	if apiCode(err) != "UnknownOperationException" || !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusNotFound {
		t.Fatalf("control-plane call on the runtime host: %v", err)
	}
	rt := bedrockruntime.NewFromConfig(aws.Config{Region: "us-east-1", Credentials: credentials.StaticCredentialsProvider{Value: platform}, HTTPClient: e.brHTTP, RetryMaxAttempts: 1},
		func(o *bedrockruntime.Options) { o.BaseEndpoint = aws.String("http://bedrock.us-east-1.amazonaws.com") })
	_, err = rt.Converse(context.Background(), &bedrockruntime.ConverseInput{ModelId: aws.String(haiku)})
	if apiCode(err) != "UnknownOperationException" {
		t.Fatalf("runtime call on the control-plane host: %v", err)
	}
}
