package extproc

import (
	"context"
	"strings"
	"testing"

	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/identity"
)

// TestControlPlane: the read-only control-plane calls are signed for
// bedrock.<region>.amazonaws.com with the same identity choice as runtime
// calls; platform-signed calls never see application inference profiles.
func TestControlPlane(t *testing.T) {
	const (
		appARN   = "/inference-profiles/arn%3Aaws%3Abedrock%3Aeu-west-1%3A111111111111%3Aapplication-inference-profile%2Fabc123"
		usARN    = "/inference-profiles/arn%3Aaws%3Abedrock%3Aus-east-1%3A999999999999%3Aapplication-inference-profile%2Fabc123"
		usSysARN = "/inference-profiles/arn%3Aaws%3Abedrock%3Aus-east-1%3A999999999999%3Ainference-profile%2Fus.anthropic.claude-3-haiku-20240307-v1%3A0"
		usProf   = "/inference-profiles/us.anthropic.claude-3-haiku-20240307-v1%3A0"
		euProf   = "/inference-profiles/eu.anthropic.claude-3-haiku-20240307-v1%3A0"
	)
	rewrite := func(c *config.ExtProc) { c.Geography = config.GeographyRewrite }
	cases := []struct {
		name     string
		cfg      func(*config.ExtProc)
		id       *identity.Identity
		path     string
		wantCode string
		wantHost string
		wantPath string // "" = unchanged
	}{
		{name: "tenant list profiles unfiltered", id: entID, path: "/inference-profiles?maxResults=10", wantHost: "bedrock.eu-west-1.amazonaws.com"},
		{name: "tenant list application profiles", id: entID, path: "/inference-profiles?type=APPLICATION", wantHost: "bedrock.eu-west-1.amazonaws.com"},
		{name: "tenant get own application profile", id: entID, path: appARN, wantHost: "bedrock.eu-west-1.amazonaws.com"},
		{name: "tenant get profile of another account", id: entID, path: strings.Replace(appARN, "111111111111", "222222222222", 1), wantCode: "model_arn_mismatch"},
		{name: "tenant get foreign geography", id: entID, path: usProf, wantCode: "geography_mismatch"},
		{name: "tenant get foreign geography rewritten", cfg: rewrite, id: entID, path: usProf, wantHost: "bedrock.eu-west-1.amazonaws.com", wantPath: euProf},
		{name: "tenant list foundation models", id: entID, path: "/foundation-models?byProvider=Anthropic", wantHost: "bedrock.eu-west-1.amazonaws.com"},
		{name: "tenant get foundation model", id: entID, path: "/foundation-models/anthropic.claude-3-haiku-20240307-v1%3A0", wantHost: "bedrock.eu-west-1.amazonaws.com"},
		{name: "platform list narrowed", id: proID, path: "/inference-profiles", wantHost: "bedrock.us-east-1.amazonaws.com", wantPath: "/inference-profiles?type=SYSTEM_DEFINED"},
		{name: "platform list with query narrowed", id: proID, path: "/inference-profiles?maxResults=5&nextToken=a%2Fb", wantHost: "bedrock.us-east-1.amazonaws.com",
			wantPath: "/inference-profiles?maxResults=5&nextToken=a%2Fb&type=SYSTEM_DEFINED"},
		{name: "platform list system defined", id: proID, path: "/inference-profiles?type=SYSTEM_DEFINED", wantHost: "bedrock.us-east-1.amazonaws.com"},
		{name: "platform list application refused", id: proID, path: "/inference-profiles?type=APPLICATION", wantCode: "application_profile_denied"},
		{name: "platform list encoded type refused", id: proID, path: "/inference-profiles?typ%65=APPLICATION", wantCode: "application_profile_denied"},
		{name: "platform list second type refused", id: proID, path: "/inference-profiles?type=SYSTEM_DEFINED&type=APPLICATION", wantCode: "application_profile_denied"},
		{name: "platform list bad query", id: proID, path: "/inference-profiles?type=%zz", wantCode: "bad_request"},
		{name: "platform get application arn refused", id: proID, path: usARN, wantCode: "application_profile_denied"},
		{name: "platform get application id refused", id: proID, path: "/inference-profiles/abc123xyz789", wantCode: "application_profile_denied"},
		{name: "platform get system profile", id: proID, path: usProf, wantHost: "bedrock.us-east-1.amazonaws.com"},
		{name: "platform get system profile arn", id: proID, path: usSysARN, wantHost: "bedrock.us-east-1.amazonaws.com"},
		{name: "platform get foundation model", id: proID, path: "/foundation-models/amazon.nova-pro-v1%3A0", wantHost: "bedrock.us-east-1.amazonaws.com"},
		{name: "platform list foundation models", id: proID, path: "/foundation-models", wantHost: "bedrock.us-east-1.amazonaws.com"},
		{name: "control plane not configured", cfg: func(c *config.ExtProc) { c.ControlEndpointTemplate = "" }, id: proID, path: "/foundation-models", wantCode: "unsupported_operation"},
		{name: "no tenant", id: nil, path: "/foundation-models", wantCode: "no_tenant"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testExtProcConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			s := newTestServer(t, cfg, defaultRoutes(), &fakeCreds{})
			hs := clientHeaders("GET", tc.path)
			resp := s.handle(context.Background(), &streamState{}, headersMsg(tc.id, true, hs...))
			if tc.wantCode != "" {
				if got := immediateOf(t, resp); got.code != tc.wantCode {
					t.Fatalf("got %+v, want %s", got, tc.wantCode)
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
			if out[":path"][0] != want || out[":authority"][0] != tc.wantHost {
				t.Fatalf(":path %q :authority %q, want %q %q", out[":path"][0], out[":authority"][0], want, tc.wantHost)
			}
			if _, err := verifySigV4(out, "GET", want, nil, "bedrock"); err != nil {
				t.Fatalf("signature: %v", err)
			}
		})
	}
}
