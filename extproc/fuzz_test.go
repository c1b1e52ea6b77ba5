package extproc

import (
	"context"
	"strings"
	"testing"

	"github.com/tenantgate/tenantgate/internal/bedrockpath"
	"github.com/tenantgate/tenantgate/internal/identity"
)

// FuzzRequestHeaders feeds arbitrary request lines and headers to the
// request-headers handler: it must never panic, never sign an unsupported
// operation, and whatever it signs must verify and carry no caller secret.
func FuzzRequestHeaders(f *testing.F) {
	f.Add("POST", haikuPath, "x-amz-security-token", "spoof", true, true)
	f.Add("POST", profilePath, "content-type", "application/json", false, true)
	f.Add("GET", "/async-invoke?maxResults=1&nextToken=a%2Fb", "accept", "*/*", false, false)
	f.Add("POST", "/model/x/invoke-with-bidirectional-stream", "x-amzn-bedrock-trace", "ENABLED", true, true)
	f.Add("GET", "/async-invoke/%ZZ", "host", "evil.example", false, true)
	f.Add("POST", "/guardrail/g1/version/1/apply?a=%", "content-length", "-1", false, true)
	f.Add("GET", "/async-invoke", "ACCept", "0\t0", false, true)
	f.Add("GET", "/inference-profiles?maxResults=2", "accept", "*/*", false, true)
	f.Add("GET", "/inference-profiles/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Aapplication-inference-profile%2Fa", "accept", "*/*", true, true)
	f.Add("GET", "/foundation-models/us.x", "accept", "*/*", false, true)
	f.Fuzz(func(t *testing.T, method, path, hk, hv string, enterprise, eos bool) {
		s := newTestServer(t, testExtProcConfig(), defaultRoutes(), &fakeCreds{})
		account := "acct-pro"
		if enterprise {
			account = "acct-ent"
		}
		id := &identity.Identity{AccountID: account, Enterprise: enterprise}
		hs := []hdr{{":method", method}, {":path", path}, {"authorization", "Bearer user-jwt-token"}, {strings.ToLower(hk), hv}}
		st := &streamState{}
		resp := s.handle(context.Background(), st, headersMsg(id, eos, hs...))
		if resp.GetImmediateResponse() != nil {
			return
		}
		op, err := bedrockpath.Parse(method, path)
		if err != nil || op.Op == bedrockpath.InvokeModelWithBidirectionalStream {
			t.Fatalf("accepted %s %q (parse err %v)", method, path, err)
		}
		m := resp.GetRequestHeaders().GetResponse().GetHeaderMutation()
		var body []byte
		if !eos {
			if resp.GetModeOverride() == nil {
				t.Fatal("body expected but no mode override")
			}
			for _, sh := range m.GetSetHeaders() {
				t.Fatalf("headers reply before body sets %s", sh.GetHeader().GetKey())
			}
			body = []byte(hv)
			resp = s.handle(context.Background(), st, bodyMsg(body, true))
			if resp.GetImmediateResponse() != nil {
				return
			}
			m = resp.GetRequestBody().GetResponse().GetHeaderMutation()
		}
		out := applyMutation(t, toMap(hs), m)
		// The signature covers the path forwarded (ext_proc may narrow a
		// platform-signed ListInferenceProfiles query).
		if _, err := verifySigV4(out, method, out[":path"][0], body, "bedrock"); err != nil {
			t.Fatalf("signed request does not verify: %v", err)
		}
		for k, vs := range out {
			for _, v := range vs {
				if strings.Contains(v, "user-jwt-token") {
					t.Fatalf("caller token forwarded in %s", k)
				}
			}
		}
	})
}
