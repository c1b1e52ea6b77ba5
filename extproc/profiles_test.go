package extproc

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/identity"
	"github.com/tenantgate/tenantgate/internal/plan"
	"github.com/tenantgate/tenantgate/internal/tenant"
)

// TestApplicationInferenceProfiles: a route's inference_profiles rewrite the
// mapped model id to the tenant's own profile ARN in the signed path; a
// profile bound to one tenant is refused for every other tenant (another
// tenant of the same AWS account, a tenant of another account, the platform
// identity); a bound profile called directly is held to the plan rules of
// the model it is bound to.
func TestApplicationInferenceProfiles(t *testing.T) {
	const (
		haiku = "anthropic.claude-3-haiku-20240307-v1:0"
		arnA  = "arn:aws:bedrock:eu-west-1:111111111111:application-inference-profile/aaaa1111"
		arnB  = "arn:aws:bedrock:eu-west-1:111111111111:application-inference-profile/bbbb2222"
		arnC  = "arn:aws:bedrock:eu-west-1:222222222222:application-inference-profile/cccc3333"
		// escA is arnA as the AWS SDKs put it in a path segment.
		escA = "arn%3Aaws%3Abedrock%3Aeu-west-1%3A111111111111%3Aapplication-inference-profile%2Faaaa1111"
	)
	arnPath := func(arn, action string) string { return "/model/" + escapeSegment(arn) + "/" + action }
	routes := &fakeRoutes{routes: map[string]tenant.Route{
		"acct-a": {AccountID: "acct-a", RoleARN: "arn:aws:iam::111111111111:role/a", ExternalID: "ext", Region: "eu-west-1", Enabled: true,
			InferenceProfiles: map[string]string{haiku: arnA}},
		"acct-b": {AccountID: "acct-b", RoleARN: "arn:aws:iam::111111111111:role/b", ExternalID: "ext", Region: "eu-west-1", Enabled: true,
			InferenceProfiles: map[string]string{haiku: arnB}},
		"acct-c": {AccountID: "acct-c", RoleARN: "arn:aws:iam::222222222222:role/c", ExternalID: "ext", Region: "eu-west-1", Enabled: true},
		"acct-l": {AccountID: "acct-l", RoleARN: "arn:aws:iam::111111111111:role/l", ExternalID: "ext", Region: "eu-west-1", Enabled: true,
			InferenceProfiles: map[string]string{haiku: "arn:aws:bedrock:eu-west-1:111111111111:application-inference-profile/llll4444"}},
	}}
	ent := func(acct, tier string) *identity.Identity {
		return &identity.Identity{AccountID: acct, Tier: tier, Enterprise: true}
	}
	cases := []struct {
		name     string
		id       *identity.Identity
		path     string
		wantPath string // signed path; "" = as sent
		status   int
		code     string
	}{
		{"mapped model id rewritten", ent("acct-a", "enterprise"), haikuPath, "/model/" + escA + "/converse", 0, ""},
		{"mapped model id rewritten on stream", ent("acct-a", "enterprise"), "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream", "/model/" + escA + "/converse-stream", 0, ""},
		{"unmapped model id unchanged", ent("acct-a", "enterprise"), "/model/amazon.nova-lite-v1%3A0/converse", "", 0, ""},
		{"own profile called directly", ent("acct-a", "enterprise"), arnPath(arnA, "invoke"), "", 0, ""},
		{"same AWS account, other tenant's profile", ent("acct-b", "enterprise"), arnPath(arnA, "converse"), "", 403, "inference_profile_not_allowed"},
		{"unbound profile while binding others", ent("acct-a", "enterprise"), arnPath("arn:aws:bedrock:eu-west-1:111111111111:application-inference-profile/zzzz", "converse"), "", 403, "inference_profile_not_allowed"},
		{"other AWS account's profile", ent("acct-c", "enterprise"), arnPath(arnA, "converse"), "", 400, "model_arn_mismatch"},
		{"own account profile without bindings", ent("acct-c", "enterprise"), arnPath(arnC, "converse"), "", 0, ""},
		{"platform identity, bound profile of a tenant", &identity.Identity{AccountID: "acct-p", Tier: "enterprise"}, strings.Replace(arnPath(arnA, "converse"), "eu-west-1", "us-east-1", 1), "", 403, "inference_profile_not_allowed"},
		{"control-plane read of another tenant's profile", ent("acct-b", "enterprise"), "/inference-profiles/" + escA, "", 403, "inference_profile_not_allowed"},
		{"bare id of another tenant's profile", ent("acct-b", "enterprise"), "/model/aaaa1111/converse", "", 403, "inference_profile_not_allowed"},
		{"bare id of own bound profile", ent("acct-a", "enterprise"), "/model/aaaa1111/converse", "", 0, ""},
		{"bare profile id on the platform identity", &identity.Identity{AccountID: "acct-p", Tier: "enterprise"}, "/model/app000000001/converse", "", 403, "inference_profile_not_allowed"},
		{"bare id without bindings, own account", ent("acct-c", "enterprise"), "/model/cccc3333/converse", "", 0, ""},
		{"bound profile, model outside the plan", ent("acct-l", "limited"), arnPath("arn:aws:bedrock:eu-west-1:111111111111:application-inference-profile/llll4444", "converse"), "", 403, "model_not_allowed"},
	}
	cat, err := plan.New(config.Plans{EnterpriseTiers: []string{"enterprise", "limited"}, Models: map[string][]string{"enterprise": {"*"}, "limited": {"amazon.*", "arn:*"}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(Options{Config: testExtProcConfig(), Models: cat, Platform: staticPlatform(), Now: func() time.Time { return testNow }}, routes, &fakeCreds{})
			if err != nil {
				t.Fatal(err)
			}
			method := "POST"
			if strings.HasPrefix(tc.path, "/inference-profiles/") {
				method = "GET"
			}
			hs := clientHeaders(method, tc.path)
			resp := s.handle(context.Background(), &streamState{}, headersMsg(tc.id, true, hs...))
			if tc.code != "" {
				if got := immediateOf(t, resp); got != (outcome{tc.status, tc.code}) {
					t.Fatalf("got %+v, want %d %s", got, tc.status, tc.code)
				}
				return
			}
			hr := resp.GetRequestHeaders()
			if hr == nil {
				t.Fatalf("not signed: %v", resp)
			}
			out := applyMutation(t, toMap(hs), hr.GetResponse().GetHeaderMutation())
			want := tc.wantPath
			if want == "" {
				want = tc.path
			}
			if out[":path"][0] != want {
				t.Fatalf(":path %q, want %q", out[":path"][0], want)
			}
			if _, err := verifySigV4(out, method, want, nil, "bedrock"); err != nil {
				t.Fatalf("signature over %s: %v", want, err)
			}
		})
	}
}

// TestAsyncBodyProfileOfAnotherTenant: StartAsyncInvoke's body modelId is
// held to the same owner rule.
func TestAsyncBodyProfileOfAnotherTenant(t *testing.T) {
	routes := &fakeRoutes{routes: map[string]tenant.Route{
		"acct-b": {AccountID: "acct-b", RoleARN: "arn:aws:iam::111111111111:role/b", ExternalID: "ext", Region: "eu-west-1", Enabled: true,
			InferenceProfiles: map[string]string{"anthropic.claude-3-haiku-20240307-v1:0": "arn:aws:bedrock:eu-west-1:111111111111:application-inference-profile/bbbb2222"}},
	}}
	every, err := plan.New(config.Plans{EnterpriseTiers: []string{"enterprise"}, DefaultModels: []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Config: testExtProcConfig(), Models: every, Platform: staticPlatform(), Now: func() time.Time { return testNow }}, routes, &fakeCreds{})
	if err != nil {
		t.Fatal(err)
	}
	id := &identity.Identity{AccountID: "acct-b", Tier: "enterprise", Enterprise: true}
	st := &streamState{}
	if r := s.handle(context.Background(), st, headersMsg(id, false, clientHeaders("POST", "/async-invoke")...)); r.GetImmediateResponse() != nil {
		t.Fatalf("headers refused: %s", r.GetImmediateResponse().GetBody())
	}
	body := `{"modelId":"arn:aws:bedrock:eu-west-1:111111111111:application-inference-profile/aaaa1111","modelInput":{},"outputDataConfig":{"s3OutputDataConfig":{"s3Uri":"s3://b/o"}}}`
	if got := immediateOf(t, s.handle(context.Background(), st, bodyMsg([]byte(body), true))); got != (outcome{403, "inference_profile_not_allowed"}) {
		t.Fatalf("got %+v, want 403 inference_profile_not_allowed", got)
	}
}
