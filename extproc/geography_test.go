package extproc

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/identity"
	"github.com/tenantgate/tenantgate/internal/plan"
)

// TestModelPlacement: the model id's geography prefix and ARN region and
// account are checked against the signer (tenant acct-ent: eu-west-1, role
// account 111111111111; platform: us-east-1, account 999999999999).
func TestModelPlacement(t *testing.T) {
	const (
		usHaiku     = "/model/us.anthropic.claude-3-haiku-20240307-v1%3A0/converse"
		euHaiku     = "/model/eu.anthropic.claude-3-haiku-20240307-v1%3A0/converse"
		apacHaiku   = "/model/apac.anthropic.claude-3-haiku-20240307-v1%3A0/converse"
		globalHaiku = "/model/global.anthropic.claude-sonnet-4-20250514-v1%3A0/converse"
		usGovHaiku  = "/model/us-gov.anthropic.claude-3-haiku-20240307-v1%3A0/converse"
		// An encoded prefix cannot be rewritten in place.
		encodedUS = "/model/%75s.anthropic.claude-3-haiku-20240307-v1%3A0/converse"
	)
	arnPath := func(region, account, res string) string {
		return "/model/arn%3Aaws%3Abedrock%3A" + region + "%3A" + account + "%3A" + strings.ReplaceAll(strings.ReplaceAll(res, ":", "%3A"), "/", "%2F") + "/converse"
	}
	reject := func(c *config.ExtProc) { c.Geography = config.GeographyReject }
	rewrite := func(c *config.ExtProc) { c.Geography = config.GeographyRewrite }
	cases := []struct {
		name     string
		cfg      func(*config.ExtProc)
		id       *identity.Identity
		path     string
		wantCode string // "" = signed
		wantPath string // signed path ("" = unchanged)
		wantMsg  string
	}{
		{name: "tenant eu prefix in eu", cfg: reject, id: entID, path: euHaiku},
		{name: "tenant plain id", cfg: reject, id: entID, path: haikuPath},
		{name: "tenant global always", cfg: reject, id: entID, path: globalHaiku},
		{name: "tenant us prefix rejected", cfg: reject, id: entID, path: usHaiku, wantCode: "geography_mismatch", wantMsg: "use eu.anthropic.claude-3-haiku-20240307-v1:0"},
		{name: "default mode is reject", id: entID, path: usHaiku, wantCode: "geography_mismatch"},
		{name: "tenant apac prefix rejected", cfg: reject, id: entID, path: apacHaiku, wantCode: "geography_mismatch"},
		{name: "tenant us prefix rewritten", cfg: rewrite, id: entID, path: usHaiku, wantPath: euHaiku},
		{name: "tenant us-gov prefix rewritten", cfg: rewrite, id: entID, path: usGovHaiku, wantPath: euHaiku},
		{name: "rewrite keeps query", cfg: rewrite, id: entID, path: usHaiku + "?x=1", wantPath: euHaiku + "?x=1"},
		{name: "encoded prefix not rewritten", cfg: rewrite, id: entID, path: encodedUS, wantCode: "geography_mismatch"},
		{name: "platform us prefix in us-east-1", cfg: reject, id: proID, path: usHaiku},
		{name: "platform eu prefix rejected", cfg: reject, id: proID, path: euHaiku, wantCode: "geography_mismatch", wantMsg: "use us.anthropic"},
		{name: "platform eu prefix rewritten", cfg: rewrite, id: proID, path: euHaiku, wantPath: usHaiku},
		{name: "tenant arn same region and account", cfg: reject, id: entID, path: arnPath("eu-west-1", "111111111111", "application-inference-profile/abc123")},
		{name: "tenant arn other region", cfg: rewrite, id: entID, path: arnPath("us-east-1", "111111111111", "application-inference-profile/abc123"), wantCode: "model_arn_mismatch", wantMsg: "use an ARN of eu-west-1"},
		{name: "tenant arn other account", cfg: rewrite, id: entID, path: arnPath("eu-west-1", "123456789012", "application-inference-profile/abc123"), wantCode: "model_arn_mismatch"},
		{name: "tenant foundation model arn without account", cfg: reject, id: entID, path: arnPath("eu-west-1", "", "foundation-model/anthropic.claude-3-haiku-20240307-v1:0")},
		{name: "tenant profile arn with foreign geography", cfg: rewrite, id: entID, path: arnPath("eu-west-1", "111111111111", "inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0"), wantCode: "geography_mismatch"},
		{name: "platform arn account unknown", cfg: reject, id: proID, path: arnPath("us-east-1", "123456789012", "inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0")},
		{name: "platform arn other account", cfg: func(c *config.ExtProc) { c.PlatformAccountID = "999999999999" }, id: proID,
			path: arnPath("us-east-1", "123456789012", "application-inference-profile/abc123"), wantCode: "model_arn_mismatch"},
		{name: "platform arn own account", cfg: func(c *config.ExtProc) { c.PlatformAccountID = "999999999999" }, id: proID,
			path: arnPath("us-east-1", "999999999999", "inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0")},
		{name: "platform arn other region", cfg: reject, id: proID, path: arnPath("eu-west-1", "", "foundation-model/x"), wantCode: "model_arn_mismatch"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testExtProcConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			s := newTestServer(t, cfg, defaultRoutes(), &fakeCreds{})
			hs := clientHeaders("POST", tc.path)
			resp := s.handle(context.Background(), &streamState{}, headersMsg(tc.id, true, hs...))
			if tc.wantCode != "" {
				got := immediateOf(t, resp)
				if got.status != 400 || got.code != tc.wantCode {
					t.Fatalf("got %+v, want 400 %s", got, tc.wantCode)
				}
				if !strings.Contains(string(resp.GetImmediateResponse().GetBody()), tc.wantMsg) {
					t.Fatalf("message %s lacks %q", resp.GetImmediateResponse().GetBody(), tc.wantMsg)
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
			if _, err := verifySigV4(out, "POST", want, nil, "bedrock"); err != nil {
				t.Fatalf("signature over %s: %v", want, err)
			}
		})
	}
}

// TestAsyncBodyModelPlacement: StartAsyncInvoke's modelId (in the body) is
// held to the same geography and ARN rules; it is signed as sent, so a
// foreign geography is refused even in rewrite mode.
func TestAsyncBodyModelPlacement(t *testing.T) {
	body := func(model string) string {
		return `{"modelId":"` + model + `","modelInput":{},"outputDataConfig":{"s3OutputDataConfig":{"s3Uri":"s3://b/o"}}}`
	}
	cases := []struct {
		name, mode, model, wantCode string
	}{
		{"own geography", config.GeographyReject, "eu.amazon.nova-reel-v1:0", ""},
		{"global", config.GeographyReject, "global.amazon.nova-reel-v1:0", ""},
		{"plain id", config.GeographyReject, "amazon.nova-reel-v1:0", ""},
		{"foreign geography rejected", config.GeographyReject, "us.amazon.nova-reel-v1:0", "geography_mismatch"},
		{"foreign geography not rewritten in the body", config.GeographyRewrite, "us.amazon.nova-reel-v1:0", "geography_mismatch"},
		{"arn of another region", config.GeographyRewrite, "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-reel-v1:0", "model_arn_mismatch"},
		{"arn of another account", config.GeographyReject, "arn:aws:bedrock:eu-west-1:222222222222:application-inference-profile/x", "model_arn_mismatch"},
		{"arn of own account", config.GeographyReject, "arn:aws:bedrock:eu-west-1:111111111111:application-inference-profile/x", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testExtProcConfig()
			cfg.Geography = tc.mode
			every, err := plan.New(config.Plans{EnterpriseTiers: []string{"enterprise"}, DefaultModels: []string{"*"}})
			if err != nil {
				t.Fatal(err)
			}
			s, err := New(Options{Config: cfg, Models: every, Platform: staticPlatform(), Now: func() time.Time { return testNow }}, defaultRoutes(), &fakeCreds{})
			if err != nil {
				t.Fatal(err)
			}
			st := &streamState{}
			hs := clientHeaders("POST", "/async-invoke")
			r := s.handle(context.Background(), st, headersMsg(entID, false, hs...))
			if r.GetImmediateResponse() != nil {
				t.Fatalf("headers refused: %s", r.GetImmediateResponse().GetBody())
			}
			out := applyMutation(t, toMap(hs), r.GetRequestHeaders().GetResponse().GetHeaderMutation())
			r = s.handle(context.Background(), st, bodyMsg([]byte(body(tc.model)), true))
			if tc.wantCode != "" {
				if got := immediateOf(t, r); got.status != 400 || got.code != tc.wantCode {
					t.Fatalf("got %+v, want 400 %s", got, tc.wantCode)
				}
				return
			}
			if r.GetImmediateResponse() != nil {
				t.Fatalf("refused: %s", r.GetImmediateResponse().GetBody())
			}
			out = applyMutation(t, out, r.GetRequestBody().GetResponse().GetHeaderMutation())
			if _, err := verifySigV4(out, "POST", "/async-invoke", []byte(body(tc.model)), "bedrock"); err != nil {
				t.Fatalf("signature: %v", err)
			}
		})
	}
}
