package extproc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/tenantgate/tenantgate/internal/apierror"
	"github.com/tenantgate/tenantgate/internal/awscreds"
	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/identity"
	"github.com/tenantgate/tenantgate/internal/tenant"
)

const (
	haikuPath   = "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
	profilePath = "/model/arn%3Aaws%3Abedrock%3Aeu-west-1%3A111111111111%3Ainference-profile%2Feu.anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream"
)

var (
	entID   = &identity.Identity{AccountID: "acct-ent", UserID: "u1", Tier: "enterprise", Role: "owner", Enterprise: true, Credential: "jwt"}
	proID   = &identity.Identity{AccountID: "acct-pro", UserID: "u2", Tier: "pro", Role: "member", Credential: "api_key"}
	entNoRt = &identity.Identity{AccountID: "acct-ent-noroute", UserID: "u3", Tier: "enterprise", Enterprise: true}
	entOff  = &identity.Identity{AccountID: "acct-ent-off", UserID: "u4", Tier: "enterprise", Enterprise: true}
)

func defaultRoutes() *fakeRoutes {
	return &fakeRoutes{routes: map[string]tenant.Route{
		"acct-ent":     {AccountID: "acct-ent", RoleARN: "arn:aws:iam::111111111111:role/b", ExternalID: "ext", Region: "eu-west-1", Enabled: true},
		"acct-ent-off": {AccountID: "acct-ent-off", RoleARN: "arn:aws:iam::222222222222:role/b", ExternalID: "ext", Enabled: false},
	}}
}

// clientHeaders is a typical client request including spoofed values.
func clientHeaders(method, path string, extra ...hdr) []hdr {
	h := []hdr{
		{":method", method}, {":path", path}, {":scheme", "https"}, {":authority", "gateway.example.com"},
		{"authorization", "Bearer user-jwt-token"}, {"x-api-key", "pk_a:sk_b"}, {"x-service-key", "svc-secret"},
		{"x-internal-key", "internal"}, {"cookie", "sb=1"},
		{"x-amz-security-token", "spoofed-token"}, {"x-amz-date", "20000101T000000Z"}, {"x-amz-target", "spoof"},
		{"x-tenantgate-debug", "1"}, {"x-account-id", "acct-spoofed"}, {"x-enterprise", "true"},
		{"content-type", "application/json"}, {"accept", "application/json"},
		{"user-agent", "ua"}, {"x-forwarded-for", "10.0.0.1"}, {"x-request-id", "rid"},
	}
	return append(h, extra...)
}

type outcome struct {
	status int
	code   string
}

func immediateOf(t *testing.T, r *extprocv3.ProcessingResponse) outcome {
	t.Helper()
	ir := r.GetImmediateResponse()
	if ir == nil {
		return outcome{}
	}
	var body map[string]string
	if err := json.Unmarshal(ir.GetBody(), &body); err != nil {
		t.Fatalf("immediate body %q: %v", ir.GetBody(), err)
	}
	hs := map[string]string{}
	for _, h := range ir.GetHeaders().GetSetHeaders() {
		if h.GetHeader().GetValue() != "" {
			t.Errorf("header %s uses value; ext_proc reads raw_value", h.GetHeader().GetKey())
		}
		hs[h.GetHeader().GetKey()] = string(h.GetHeader().GetRawValue())
	}
	if hs["content-type"] != "application/json" {
		t.Fatalf("immediate response content-type: %v", hs)
	}
	if body["message"] == "" {
		t.Fatalf("immediate response without message: %s", ir.GetBody())
	}
	// restJson1: the catalogued AWS type in x-amzn-errortype and __type,
	// the tenantgate code in x-tenantgate-error and "error".
	entry, ok := apierror.Lookup(apierror.Code(body["error"]))
	if !ok {
		t.Fatalf("code %q is not in the catalogue", body["error"])
	}
	if hs["x-amzn-errortype"] != string(entry.Type) || body["__type"] != string(entry.Type) {
		t.Errorf("x-amzn-errortype %q, __type %q, want %s", hs["x-amzn-errortype"], body["__type"], entry.Type)
	}
	if hs["x-tenantgate-error"] != body["error"] || int(ir.GetStatus().GetCode()) != entry.Status {
		t.Errorf("x-tenantgate-error %q, status %d; want %s, %d", hs["x-tenantgate-error"], ir.GetStatus().GetCode(), body["error"], entry.Status)
	}
	if (entry.RetryAfter != "") != (hs["retry-after"] != "") {
		t.Errorf("retry-after %q, want %q", hs["retry-after"], entry.RetryAfter)
	}
	return outcome{int(ir.GetStatus().GetCode()), body["error"]}
}

func TestRejections(t *testing.T) {
	cases := []struct {
		name   string
		cfg    func(*config.ExtProc)
		routes func(*fakeRoutes)
		creds  error
		id     *identity.Identity
		hs     []hdr
		want   outcome
	}{
		{name: "no tenant", id: nil, hs: clientHeaders("POST", haikuPath), want: outcome{403, "no_tenant"}},
		{name: "empty account", id: &identity.Identity{}, hs: clientHeaders("POST", haikuPath), want: outcome{403, "no_tenant"}},
		{name: "headers source without header", cfg: func(c *config.ExtProc) { c.TenantSource = config.TenantFromHeaders },
			id: entID, hs: []hdr{{":method", "POST"}, {":path", haikuPath}}, want: outcome{403, "no_tenant"}},
		{name: "unsupported op", id: proID, hs: clientHeaders("POST", "/model/x/delete"), want: outcome{404, "unsupported_operation"}},
		{name: "admin api", id: proID, hs: clientHeaders("GET", "/custom-models"), want: outcome{404, "unsupported_operation"}},
		{name: "wrong method", id: proID, hs: clientHeaders("GET", haikuPath), want: outcome{404, "unsupported_operation"}},
		{name: "dot segment", id: proID, hs: clientHeaders("POST", "/model/../converse"), want: outcome{404, "unsupported_operation"}},
		{name: "bidi", id: proID, hs: clientHeaders("POST", "/model/amazon.nova-sonic-v1%3A0/invoke-with-bidirectional-stream"), want: outcome{400, "not_implemented"}},
		{name: "content-length too large", id: proID, hs: clientHeaders("POST", haikuPath, hdr{"content-length", "2000000"}), want: outcome{413, "body_too_large"}},
		{name: "bad content-length", id: proID, hs: clientHeaders("POST", haikuPath, hdr{"content-length", "abc"}), want: outcome{400, "bad_request"}},
		{name: "deny policy no route", cfg: func(c *config.ExtProc) { c.EnterpriseWithoutRoute = config.NoRouteDeny },
			id: entNoRt, hs: clientHeaders("POST", haikuPath), want: outcome{403, "no_tenant_route"}},
		{name: "deny policy disabled route", cfg: func(c *config.ExtProc) { c.EnterpriseWithoutRoute = config.NoRouteDeny },
			id: entOff, hs: clientHeaders("POST", haikuPath), want: outcome{403, "no_tenant_route"}},
		{name: "route store down", routes: func(r *fakeRoutes) { r.err = errors.New("pool closed") },
			id: entID, hs: clientHeaders("POST", haikuPath), want: outcome{503, "unavailable"}},
		{name: "sts denied", creds: fmt.Errorf("x: %w", awscreds.ErrRoleDenied), id: entID, hs: clientHeaders("POST", haikuPath), want: outcome{403, "tenant_role_denied"}},
		{name: "sts unavailable", creds: fmt.Errorf("x: %w", awscreds.ErrUnavailable), id: entID, hs: clientHeaders("POST", haikuPath), want: outcome{502, "tenant_credentials_unavailable"}},
		{name: "route with bad region", routes: func(r *fakeRoutes) {
			r.routes["acct-ent"] = tenant.Route{AccountID: "acct-ent", RoleARN: "arn:aws:iam::1:role/x", Region: "evil.com/x", Enabled: true}
		}, id: entID, hs: clientHeaders("POST", haikuPath), want: outcome{502, "tenant_credentials_unavailable"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testExtProcConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			routes := defaultRoutes()
			if tc.routes != nil {
				tc.routes(routes)
			}
			creds := &fakeCreds{err: tc.creds}
			s := newTestServer(t, cfg, routes, creds)
			for _, eos := range []bool{true, false} {
				st := &streamState{}
				resp := s.handle(context.Background(), st, headersMsg(tc.id, eos, tc.hs...))
				if got := immediateOf(t, resp); got != tc.want {
					t.Fatalf("eos=%v: got %+v, want %+v (resp %v)", eos, got, tc.want, resp)
				}
				if strings.Contains(resp.String(), "user-jwt-token") || strings.Contains(resp.String(), "AWS4-HMAC") {
					t.Fatal("rejection carries a token or signature")
				}
			}
		})
	}
}

func TestSignsWithoutBody(t *testing.T) {
	cfg := testExtProcConfig()
	cfg.AsyncInvoke = config.AsyncInvokeAllow // platform-signed async listing
	s := newTestServer(t, cfg, defaultRoutes(), &fakeCreds{})
	hs := clientHeaders("GET", "/async-invoke?maxResults=5&statusEquals=InProgress")
	resp := s.handle(context.Background(), &streamState{}, headersMsg(proID, true, hs...))
	hr := resp.GetRequestHeaders()
	// The only mode change asks for the response headers (see response.go).
	if mo := resp.GetModeOverride(); hr == nil || mo.GetRequestBodyMode() != filterv3.ProcessingMode_NONE || mo.GetResponseHeaderMode() != filterv3.ProcessingMode_SEND {
		t.Fatalf("want signed headers response asking only for the response headers, got %v", resp)
	}
	if !hr.GetResponse().GetClearRouteCache() {
		t.Fatal("clear_route_cache not set")
	}
	out := applyMutation(t, toMap(hs), hr.GetResponse().GetHeaderMutation())
	key, err := verifySigV4(out, "GET", "/async-invoke?maxResults=5&statusEquals=InProgress", nil, "bedrock")
	if err != nil || key != platformCreds.AccessKeyID {
		t.Fatalf("verify: key=%s err=%v", key, err)
	}
	if out[":authority"][0] != "bedrock-runtime.us-east-1.amazonaws.com" {
		t.Fatalf("authority %v", out[":authority"])
	}
	if _, ok := out["x-amz-security-token"]; ok {
		t.Fatal("spoofed x-amz-security-token forwarded with static platform credentials")
	}
}

func TestBodyFlow(t *testing.T) {
	cases := []struct {
		name    string
		cfg     func(*config.ExtProc)
		id      *identity.Identity
		path    string
		wantKey string
		region  string
	}{
		{name: "enterprise tenant", id: entID, path: haikuPath, wantKey: "ASIAacct-ent", region: "eu-west-1"},
		{name: "enterprise inference profile", id: entID, path: profilePath, wantKey: "ASIAacct-ent", region: "eu-west-1"},
		{name: "non-enterprise platform", id: proID, path: haikuPath, wantKey: "AKIAPLATFORM", region: "us-east-1"},
		{name: "enterprise without route platform", id: entNoRt, path: haikuPath, wantKey: "AKIAPLATFORM", region: "us-east-1"},
		{name: "enterprise disabled route platform", id: entOff, path: haikuPath, wantKey: "AKIAPLATFORM", region: "us-east-1"},
		{name: "tenant from headers", cfg: func(c *config.ExtProc) { c.TenantSource = config.TenantFromHeaders }, path: haikuPath, wantKey: "AKIAPLATFORM", region: "us-east-1"},
	}
	body := []byte(`{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testExtProcConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			creds := &fakeCreds{}
			s := newTestServer(t, cfg, defaultRoutes(), creds)
			hs := clientHeaders("POST", tc.path, hdr{"content-length", fmt.Sprint(len(body))}, hdr{"x-amzn-bedrock-trace", "ENABLED"})
			st := &streamState{}
			r1 := s.handle(context.Background(), st, headersMsg(tc.id, false, hs...))
			mo := r1.GetModeOverride()
			if r1.GetRequestHeaders() == nil || mo == nil || mo.GetRequestBodyMode() != filterv3.ProcessingMode_BUFFERED ||
				mo.GetResponseHeaderMode() != filterv3.ProcessingMode_SEND || mo.GetRequestHeaderMode() != filterv3.ProcessingMode_SEND ||
				mo.GetResponseBodyMode() != filterv3.ProcessingMode_NONE {
				t.Fatalf("headers reply: %v", r1)
			}
			m1 := r1.GetRequestHeaders().GetResponse().GetHeaderMutation()
			if len(m1.GetSetHeaders()) != 0 || !slices.Contains(m1.GetRemoveHeaders(), "authorization") {
				t.Fatalf("headers reply must only strip caller credentials: %v", m1)
			}
			afterHeaders := applyMutation(t, toMap(hs), m1)
			r2 := s.handle(context.Background(), st, bodyMsg(body, true))
			br := r2.GetRequestBody()
			if br == nil || !br.GetResponse().GetClearRouteCache() {
				t.Fatalf("body reply: %v", r2)
			}
			out := applyMutation(t, afterHeaders, br.GetResponse().GetHeaderMutation())
			key, err := verifySigV4(out, "POST", tc.path, body, "bedrock")
			if err != nil || key != tc.wantKey {
				t.Fatalf("verify: key=%s err=%v", key, err)
			}
			if got := out[":authority"][0]; got != "bedrock-runtime."+tc.region+".amazonaws.com" {
				t.Fatalf("authority %s", got)
			}
			auth := out["authorization"][0]
			if !strings.Contains(auth, "SignedHeaders=accept;content-type;host;x-amz-date;") || strings.Contains(auth, "content-length") || !strings.Contains(auth, "x-amzn-bedrock-trace") {
				t.Fatalf("signed headers: %s", auth)
			}
			for _, gone := range []string{"x-api-key", "x-service-key", "x-internal-key", "cookie", "x-amz-target", "x-tenantgate-debug", "x-account-id", "x-enterprise"} {
				if _, ok := out[gone]; ok {
					t.Errorf("%s forwarded upstream", gone)
				}
			}
			for k, vs := range out {
				for _, v := range vs {
					if strings.Contains(v, "user-jwt-token") || v == "spoofed-token" || v == "20000101T000000Z" {
						t.Errorf("caller value of %s forwarded upstream", k)
					}
				}
			}
			if tc.wantKey == "ASIAacct-ent" && (len(creds.calls) != 1 || creds.calls[0] != tc.region) {
				t.Fatalf("tenant credentials calls %v", creds.calls)
			}
		})
	}
}

func TestKeepIdentityHeaders(t *testing.T) {
	for _, keep := range []bool{false, true} {
		cfg := testExtProcConfig()
		cfg.KeepIdentityHeaders = keep
		cfg.AsyncInvoke = config.AsyncInvokeAllow
		s := newTestServer(t, cfg, defaultRoutes(), &fakeCreds{})
		hs := clientHeaders("GET", "/async-invoke/abc")
		resp := s.handle(context.Background(), &streamState{}, headersMsg(proID, true, hs...))
		out := applyMutation(t, toMap(hs), resp.GetRequestHeaders().GetResponse().GetHeaderMutation())
		_, present := out["x-account-id"]
		if present != keep {
			t.Errorf("keep=%v: x-account-id present=%v", keep, present)
		}
		if _, err := verifySigV4(out, "GET", "/async-invoke/abc", nil, "bedrock"); err != nil {
			t.Errorf("keep=%v: %v", keep, err)
		}
	}
}

func TestBodyTooLarge(t *testing.T) {
	cfg := testExtProcConfig()
	cfg.MaxBodyBytes = 10
	s := newTestServer(t, cfg, defaultRoutes(), &fakeCreds{})
	st := &streamState{}
	s.handle(context.Background(), st, headersMsg(proID, false, clientHeaders("POST", haikuPath)...))
	r := s.handle(context.Background(), st, bodyMsg([]byte("12345678901"), true))
	if got := immediateOf(t, r); got != (outcome{413, "body_too_large"}) {
		t.Fatalf("got %+v", got)
	}
}

func TestBodyWithoutHeaders(t *testing.T) {
	s := newTestServer(t, testExtProcConfig(), defaultRoutes(), &fakeCreds{})
	r := s.handle(context.Background(), &streamState{}, bodyMsg([]byte("x"), true))
	if got := immediateOf(t, r); got.status != 500 {
		t.Fatalf("got %+v", got)
	}
}

func TestNew(t *testing.T) {
	cfg := testExtProcConfig()
	if _, err := New(Options{Config: cfg}, defaultRoutes(), &fakeCreds{}); err == nil {
		t.Error("missing platform provider accepted")
	}
	bad := cfg
	bad.DefaultRegion = "nowhere"
	if _, err := New(Options{Config: bad, Platform: newTestServer(t, cfg, defaultRoutes(), &fakeCreds{}).platform}, defaultRoutes(), &fakeCreds{}); err == nil {
		t.Error("invalid default region accepted")
	}
	if _, err := New(Options{Config: cfg, Platform: newTestServer(t, cfg, defaultRoutes(), &fakeCreds{}).platform}, nil, nil); err == nil {
		t.Error("nil dependencies accepted")
	}
}
