package extproc

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/fakeaws/bedrock"
	"github.com/tenantgate/tenantgate/internal/plan"
)

// withPlans gives the world's tenantgate the bedrock header rules of plans
// (config defaults applied): tier "priority" may choose the service tier,
// every other tier gets the default list.
func withPlans(t *testing.T, unlisted string) worldOption {
	cat, err := plan.New(config.Plans{
		BedrockHeaders:         map[string][]string{"priority": {"x-amzn-bedrock-service-tier", "x-amzn-bedrock-trace"}},
		DefaultBedrockHeaders:  config.DefaultBedrockHeaders,
		UnlistedBedrockHeaders: unlisted,
	})
	if err != nil {
		t.Fatal(err)
	}
	return func(_ *bedrock.Config, o *Options) { o.BedrockHeaders = cat }
}

var costlyHeaders = [][2]string{
	{"X-Amzn-Bedrock-Service-Tier", "priority"},
	{"X-Amzn-Bedrock-PerformanceConfig-Latency", "optimized"},
	{"X-Amzn-Bedrock-Trace", "ENABLED"},
}

// TestEnvoyBedrockHeadersPerPlan: through the real Envoy, a client's
// x-amzn-bedrock-service-tier header reaches Bedrock (signed) only for a
// plan that allows it; for the others it is removed before signing and the
// request still verifies. Headers no plan here allows never arrive.
func TestEnvoyBedrockHeadersPerPlan(t *testing.T) {
	w := newAWSWorld(t, 1, withPlans(t, config.UnlistedBedrockHeadersStrip))
	listen := startEnvoyWith(t, w.srv, w.bedrock, true, false)
	body := []byte(`{"anthropic_version":"bedrock-2023-05-31","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`)
	const invoke = "/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke"
	cases := []struct {
		tier string
		want []string
	}{
		{"basic", []string{"x-amzn-bedrock-trace"}},
		{"priority", []string{"x-amzn-bedrock-service-tier", "x-amzn-bedrock-trace"}},
	}
	for i, tc := range cases {
		t.Run(tc.tier, func(t *testing.T) {
			w.bedrock.ResetRecords()
			status, rb, _ := sendThroughEnvoy(t, listen, "tier:"+tc.tier, fmt.Sprintf("hdr-%d", i), "POST", invoke, body, costlyHeaders...)
			if status != 200 {
				t.Fatalf("status %d: %s", status, rb)
			}
			recs := w.bedrock.Records()
			if len(recs) != 1 {
				t.Fatalf("%d records", len(recs))
			}
			checkRecord(t, recs[0])
			if !slices.Equal(recs[0].BedrockHeaders, tc.want) {
				t.Fatalf("bedrock saw %v, want %v", recs[0].BedrockHeaders, tc.want)
			}
			for _, h := range tc.want {
				if !slices.Contains(recs[0].SignedHeaders, h) {
					t.Fatalf("%s arrived unsigned (signed %v)", h, recs[0].SignedHeaders)
				}
			}
		})
	}
}

// TestEnvoyBedrockHeadersRejected: with unlisted_bedrock_headers: reject a
// request carrying a header its plan does not allow is refused with 400 and
// never reaches Bedrock; an allowed one goes through.
func TestEnvoyBedrockHeadersRejected(t *testing.T) {
	w := newAWSWorld(t, 1, withPlans(t, config.UnlistedBedrockHeadersReject))
	listen := startEnvoyWith(t, w.srv, w.bedrock, true, false)
	body := []byte(`{"messages":[{"role":"user","content":[{"text":"hello"}]}]}`)
	tier := [][2]string{{"X-Amzn-Bedrock-Service-Tier", "priority"}}
	status, rb, _ := sendThroughEnvoy(t, listen, "tier:basic", "rej-0", "POST", haikuPath, body, tier...)
	if status != 400 || !strings.Contains(string(rb), "bedrock_header_not_allowed") || !strings.Contains(string(rb), "x-amzn-bedrock-service-tier") {
		t.Fatalf("status %d: %s", status, rb)
	}
	if n := len(w.bedrock.Records()); n != 0 {
		t.Fatalf("%d requests reached Bedrock", n)
	}
	if status, rb, _ := sendThroughEnvoy(t, listen, "tier:priority", "rej-1", "POST", haikuPath, body, tier...); status != 200 {
		t.Fatalf("allowed header refused: %d %s", status, rb)
	}
}
