package extproc

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	dto "github.com/prometheus/client_model/go"

	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/identity"
	"github.com/tenantgate/tenantgate/internal/plan"
)

func newHeaderServer(t *testing.T, policy BedrockHeaderPolicy) *Server {
	t.Helper()
	s, err := New(Options{
		Config:         testExtProcConfig(),
		Platform:       aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return platformCreds, nil }),
		Now:            func() time.Time { return testNow },
		BedrockHeaders: policy,
	}, defaultRoutes(), &fakeCreds{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testCatalog(t *testing.T, unlisted string) *plan.Catalog {
	t.Helper()
	c, err := plan.New(config.Plans{
		BedrockHeaders:         map[string][]string{"priority": {"x-amzn-bedrock-service-tier", "x-amzn-bedrock-accept"}},
		DefaultBedrockHeaders:  config.DefaultBedrockHeaders,
		UnlistedBedrockHeaders: unlisted,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestBedrockHeaderScreening: per tier, x-amzn-bedrock-* headers that the
// plan does not allow are removed and left out of the signature (or the
// request is refused), allowed ones are signed, and each removal is counted
// by header name (unknown names as "other") and action.
func TestBedrockHeaderScreening(t *testing.T) {
	sent := []hdr{
		{"x-amzn-bedrock-service-tier", "priority"},
		{"x-amzn-bedrock-performanceconfig-latency", "optimized"},
		{"x-amzn-bedrock-trace", "ENABLED"},
		{"x-amzn-bedrock-made-up", "1"},
	}
	cases := []struct {
		name       string
		policy     BedrockHeaderPolicy
		tier       string
		wantSigned []string
		wantGone   []string
		wantCode   string
		metrics    map[[2]string]float64
	}{
		{"default tier strips costly", testCatalog(t, config.UnlistedBedrockHeadersStrip), "pro",
			[]string{"x-amzn-bedrock-trace"},
			[]string{"x-amzn-bedrock-made-up", "x-amzn-bedrock-performanceconfig-latency", "x-amzn-bedrock-service-tier"}, "",
			map[[2]string]float64{{"x-amzn-bedrock-service-tier", "stripped"}: 1, {"x-amzn-bedrock-performanceconfig-latency", "stripped"}: 1, {"other", "stripped"}: 1}},
		{"tier allows service tier", testCatalog(t, config.UnlistedBedrockHeadersStrip), "priority",
			[]string{"x-amzn-bedrock-service-tier"},
			[]string{"x-amzn-bedrock-made-up", "x-amzn-bedrock-performanceconfig-latency", "x-amzn-bedrock-trace"}, "",
			map[[2]string]float64{{"x-amzn-bedrock-trace", "stripped"}: 1, {"x-amzn-bedrock-service-tier", "stripped"}: 0}},
		{"reject", testCatalog(t, config.UnlistedBedrockHeadersReject), "pro", nil, nil, "bedrock_header_not_allowed",
			map[[2]string]float64{{"x-amzn-bedrock-service-tier", "rejected"}: 1}},
		{"no policy allows none", nil, "priority", nil,
			[]string{"x-amzn-bedrock-made-up", "x-amzn-bedrock-performanceconfig-latency", "x-amzn-bedrock-service-tier", "x-amzn-bedrock-trace"}, "", nil},
	}
	for _, tc := range cases {
		for _, eos := range []bool{true, false} {
			t.Run(tc.name+map[bool]string{true: " without body", false: " with body"}[eos], func(t *testing.T) {
				s := newHeaderServer(t, tc.policy)
				id := &identity.Identity{AccountID: "acct-pro", Tier: tc.tier}
				hs := clientHeaders("POST", haikuPath, sent...)
				if !eos {
					hs = append(hs, hdr{"content-length", "2"})
				}
				st := &streamState{}
				resp := s.handle(context.Background(), st, headersMsg(id, eos, hs...))
				if tc.wantCode != "" {
					if got := immediateOf(t, resp); got != (outcome{400, tc.wantCode}) {
						t.Fatalf("got %v", got)
					}
				} else {
					m := resp.GetRequestHeaders().GetResponse().GetHeaderMutation()
					out := applyMutation(t, toMap(hs), m)
					var body []byte
					if !eos {
						body = []byte("{}")
						r2 := s.handle(context.Background(), st, bodyMsg(body, true))
						out = applyMutation(t, out, r2.GetRequestBody().GetResponse().GetHeaderMutation())
					}
					if _, err := verifySigV4(out, "POST", haikuPath, body, "bedrock"); err != nil {
						t.Fatalf("signature: %v", err)
					}
					for _, h := range tc.wantGone {
						if _, ok := out[h]; ok {
							t.Errorf("%s forwarded", h)
						}
					}
					auth := out["authorization"][0]
					for _, h := range tc.wantSigned {
						if _, ok := out[h]; !ok || !strings.Contains(auth, h) {
							t.Errorf("%s not forwarded signed: %s", h, auth)
						}
					}
					for k := range out {
						if strings.HasPrefix(k, "x-amzn-bedrock-") && !slices.Contains(tc.wantSigned, k) {
							t.Errorf("%s forwarded", k)
						}
					}
				}
				for labels, want := range tc.metrics {
					var m dto.Metric
					if err := s.headerDrops.WithLabelValues(labels[0], labels[1]).Write(&m); err != nil || m.GetCounter().GetValue() != want {
						t.Errorf("metric %v = %v, want %v", labels, m.GetCounter().GetValue(), want)
					}
				}
			})
		}
	}
}
