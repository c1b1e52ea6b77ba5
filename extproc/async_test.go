package extproc

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/identity"
	"github.com/tenantgate/tenantgate/internal/plan"
)

// worldPlans are the model rules of the fake-AWS tests: enterprise tenants
// may call Nova and Claude models, pro Nova models, every other tier
// anything.
func worldPlans(t testing.TB) *plan.Catalog {
	t.Helper()
	c, err := plan.New(config.Plans{
		EnterpriseTiers: []string{"enterprise"},
		Models:          map[string][]string{"enterprise": {"amazon.nova-*", "anthropic.*"}, "pro": {"amazon.nova-*"}},
		DefaultModels:   []string{"*"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const (
	asyncOK     = `{"modelId":"amazon.nova-reel-v1:0","modelInput":{"taskType":"TEXT_VIDEO"},"outputDataConfig":{"s3OutputDataConfig":{"s3Uri":"s3://b/o"}}}`
	asyncDenied = `{"modelId":"meta.llama3-70b-instruct-v1:0","modelInput":{"modelId":"amazon.nova-reel-v1:0"},"outputDataConfig":{"s3OutputDataConfig":{"s3Uri":"s3://b/o"}}}`
)

// TestAsyncInvokePolicy covers extproc.async_invoke for every async
// operation and signer, and the plan check on StartAsyncInvoke's body.
func TestAsyncInvokePolicy(t *testing.T) {
	fallback := &identity.Identity{AccountID: "acct-noroute", Enterprise: true, Tier: "enterprise"}
	signed := outcome{0, ""}
	cases := []struct {
		mode   string
		id     *identity.Identity
		method string
		path   string
		body   string // "" sends no body
		want   outcome
		key    string
	}{
		// tenant_only (the default): never on the platform identity.
		{config.AsyncInvokeTenantOnly, proID, "GET", "/async-invoke", "", outcome{403, "async_invoke_not_allowed"}, ""},
		{config.AsyncInvokeTenantOnly, proID, "GET", "/async-invoke/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Aasync-invoke%2Fx", "", outcome{403, "async_invoke_not_allowed"}, ""},
		{config.AsyncInvokeTenantOnly, proID, "POST", "/async-invoke", asyncOK, outcome{403, "async_invoke_not_allowed"}, ""},
		{config.AsyncInvokeTenantOnly, fallback, "GET", "/async-invoke", "", outcome{403, "async_invoke_not_allowed"}, ""},
		{config.AsyncInvokeTenantOnly, entID, "GET", "/async-invoke", "", signed, "ASIAacct-ent"},
		{config.AsyncInvokeTenantOnly, entID, "GET", "/async-invoke/arn%3Aaws%3Abedrock%3Aeu-west-1%3A1%3Aasync-invoke%2Fx", "", signed, "ASIAacct-ent"},
		{config.AsyncInvokeTenantOnly, entID, "POST", "/async-invoke", asyncOK, signed, "ASIAacct-ent"},
		{config.AsyncInvokeTenantOnly, entID, "POST", "/async-invoke", asyncDenied, outcome{403, "model_not_allowed"}, ""},
		{config.AsyncInvokeTenantOnly, entID, "POST", "/async-invoke", `{"modelId":"amazon.nova-reel-v1:0","MODELID":"meta.llama3"}`, outcome{400, "bad_request"}, ""},
		{config.AsyncInvokeTenantOnly, entID, "POST", "/async-invoke", `{"modelInput":{}}`, outcome{400, "bad_request"}, ""},
		{config.AsyncInvokeTenantOnly, entID, "POST", "/async-invoke", "", outcome{400, "bad_request"}, ""},
		// deny: nobody.
		{config.AsyncInvokeDeny, entID, "GET", "/async-invoke", "", outcome{403, "async_invoke_not_allowed"}, ""},
		{config.AsyncInvokeDeny, entID, "POST", "/async-invoke", asyncOK, outcome{403, "async_invoke_not_allowed"}, ""},
		// allow: the platform too, still under the plan's model rules.
		{config.AsyncInvokeAllow, proID, "GET", "/async-invoke", "", signed, "AKIAPLATFORM"},
		{config.AsyncInvokeAllow, proID, "POST", "/async-invoke", asyncOK, signed, "AKIAPLATFORM"},
		{config.AsyncInvokeAllow, proID, "POST", "/async-invoke", asyncDenied, outcome{403, "model_not_allowed"}, ""},
		// Other operations are not affected.
		{config.AsyncInvokeDeny, proID, "POST", haikuPath, `{}`, signed, "AKIAPLATFORM"},
	}
	for i, tc := range cases {
		t.Run(fmt.Sprintf("%d %s %s %s %s", i, tc.mode, tc.id.AccountID, tc.method, tc.path), func(t *testing.T) {
			cfg := testExtProcConfig()
			cfg.AsyncInvoke = tc.mode
			s, err := New(Options{Config: cfg, Models: worldPlans(t), Platform: staticPlatform(), Now: func() time.Time { return testNow }}, defaultRoutes(), &fakeCreds{})
			if err != nil {
				t.Fatal(err)
			}
			st := &streamState{}
			hs := clientHeaders(tc.method, tc.path)
			r := s.handle(context.Background(), st, headersMsg(tc.id, tc.body == "", hs...))
			out := toMap(hs)
			if r.GetImmediateResponse() == nil {
				out = applyMutation(t, out, r.GetRequestHeaders().GetResponse().GetHeaderMutation())
				if tc.body != "" {
					r = s.handle(context.Background(), st, bodyMsg([]byte(tc.body), true))
					if r.GetImmediateResponse() == nil {
						out = applyMutation(t, out, r.GetRequestBody().GetResponse().GetHeaderMutation())
					}
				}
			}
			if tc.want != signed {
				if got := immediateOf(t, r); got != tc.want {
					t.Fatalf("got %+v, want %+v", got, tc.want)
				}
				return
			}
			if r.GetImmediateResponse() != nil {
				t.Fatalf("refused: %s", r.GetImmediateResponse().GetBody())
			}
			var body []byte
			if tc.body != "" {
				body = []byte(tc.body)
			}
			if key, err := verifySigV4(out, tc.method, tc.path, body, "bedrock"); err != nil || key != tc.key {
				t.Fatalf("key=%s err=%v, want %s", key, err, tc.key)
			}
		})
	}
}

// TestEnvoyAsyncInvoke: through a real Envoy with the default policy, a
// platform-signed StartAsyncInvoke (and listing) is refused, a tenant's
// StartAsyncInvoke naming a model outside its plan in the body is refused,
// and neither reaches the upstream; a tenant's allowed one is signed with
// its own role.
func TestEnvoyAsyncInvoke(t *testing.T) {
	w := newAWSWorld(t, 3)
	if w.srv.cfg.AsyncInvoke != config.AsyncInvokeTenantOnly {
		t.Fatalf("test config async_invoke %q, want the default", w.srv.cfg.AsyncInvoke)
	}
	listen := startEnvoyWith(t, w.srv, w.bedrock, true, false)
	cases := []struct {
		name, tenant, method, path string
		body                       []byte
		wantStatus                 int
		wantCode, wantPrincipal    string
	}{
		{"platform start", "pro", "POST", "/async-invoke", []byte(asyncOK), 403, "async_invoke_not_allowed", ""},
		{"platform list", "pro", "GET", "/async-invoke?maxResults=5", nil, 403, "async_invoke_not_allowed", ""},
		{"platform get", "pro", "GET", "/async-invoke/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Aasync-invoke%2Fx", nil, 403, "async_invoke_not_allowed", ""},
		{"tenant start model outside plan", "enterprise:acct-01", "POST", "/async-invoke", []byte(asyncDenied), 403, "model_not_allowed", ""},
		{"tenant start", "enterprise:acct-01", "POST", "/async-invoke", []byte(asyncOK), 200, "", "assumed-role/tenant-bedrock/tenantgate-acct-01"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w.bedrock.ResetRecords()
			status, rb, _ := sendThroughEnvoy(t, listen, tc.tenant, fmt.Sprintf("async-%d", i), tc.method, tc.path, tc.body)
			if status != tc.wantStatus {
				t.Fatalf("status %d (%s), want %d", status, rb, tc.wantStatus)
			}
			recs := w.bedrock.Records()
			if tc.wantStatus != http.StatusOK {
				if !bytes.Contains(rb, []byte(`"error":"`+tc.wantCode+`"`)) {
					t.Fatalf("body %s, want error %s", rb, tc.wantCode)
				}
				if len(recs) != 0 {
					t.Fatalf("upstream saw %d requests, want none", len(recs))
				}
				return
			}
			if len(recs) != 1 || !strings.Contains(recs[0].PrincipalARN, tc.wantPrincipal) || recs[0].Operation != "StartAsyncInvoke" {
				t.Fatalf("records %+v", recs)
			}
			checkRecord(t, recs[0])
		})
	}
}

func staticPlatform() aws.CredentialsProvider {
	return aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return platformCreds, nil })
}
