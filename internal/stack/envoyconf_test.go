package stack

import (
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tenantgate/tenantgate/envoy"
)

// listenerHCM returns listener i's HTTP connection manager config.
func listenerHCM(t *testing.T, doc map[string]any, i int) map[string]any {
	t.Helper()
	l := doc["static_resources"].(map[string]any)["listeners"].([]any)[i].(map[string]any)
	f := l["filter_chains"].([]any)[0].(map[string]any)["filters"].([]any)[0].(map[string]any)
	return f["typed_config"].(map[string]any)
}

// withoutBucket returns hcm as YAML with the local_ratelimit token bucket
// removed, and that bucket.
func withoutBucket(t *testing.T, hcm map[string]any) (string, any) {
	t.Helper()
	var bucket any
	for _, f := range hcm["http_filters"].([]any) {
		fm := f.(map[string]any)
		if fm["name"] == localRateLimitFilter {
			tc := fm["typed_config"].(map[string]any)
			bucket = tc["token_bucket"]
			delete(tc, "token_bucket")
		}
	}
	b, err := yaml.Marshal(hcm)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), bucket
}

func TestRewriteBootstrapRateLimit(t *testing.T) {
	p := EnvoyPorts{Admin: 1, Public: 2, Mesh: 3, Tenantgate: 4, Bedrock: 5,
		ServerCert: "a", ServerKey: "b", MeshCA: "c", UpstreamCA: "d", TenantgateLink: LinkPlaintext,
		RateLimit: &TokenBucket{MaxTokens: 3, TokensPerFill: 2, FillInterval: 90 * time.Minute}}
	out, err := RewriteBootstrap(envoy.Bootstrap, p)
	if err != nil {
		t.Fatal(err)
	}
	var doc, orig map[string]any
	if err := yaml.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(envoy.Bootstrap, &orig); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"max_tokens": 3, "tokens_per_fill": 2, "fill_interval": "5400s"}
	for i := range 2 {
		got, bucket := withoutBucket(t, listenerHCM(t, doc, i))
		shipped, shippedBucket := withoutBucket(t, listenerHCM(t, orig, i))
		if shippedBucket == nil {
			t.Fatalf("listener %d: shipped bootstrap has no local_ratelimit bucket", i)
		}
		b1, _ := yaml.Marshal(bucket)
		b2, _ := yaml.Marshal(want)
		if string(b1) != string(b2) {
			t.Errorf("listener %d bucket = %s, want %s", i, b1, b2)
		}
		if got != shipped {
			t.Errorf("listener %d: the rewrite changed more than the token bucket", i)
		}
	}
}

func TestRewriteBootstrapRateLimitRejects(t *testing.T) {
	noFilter := strings.Replace(string(envoy.Bootstrap), "name: "+localRateLimitFilter, "name: envoy.filters.http.other", 1)
	tests := []struct {
		name      string
		bootstrap string
		bucket    TokenBucket
	}{
		{"no tokens", string(envoy.Bootstrap), TokenBucket{MaxTokens: 0, TokensPerFill: 1, FillInterval: time.Second}},
		{"no refill", string(envoy.Bootstrap), TokenBucket{MaxTokens: 1, TokensPerFill: 0, FillInterval: time.Second}},
		{"no interval", string(envoy.Bootstrap), TokenBucket{MaxTokens: 1, TokensPerFill: 1}},
		{"no rate limit filter", noFilter, TokenBucket{MaxTokens: 1, TokensPerFill: 1, FillInterval: time.Second}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.bucket
			_, err := RewriteBootstrap([]byte(tc.bootstrap), EnvoyPorts{ServerCert: "a", ServerKey: "b", MeshCA: "c", UpstreamCA: "d", TenantgateLink: LinkPlaintext, RateLimit: &b})
			if err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestRewriteBootstrapDropFilters(t *testing.T) {
	const metering = "envoy.filters.http.ext_proc.usage"
	for _, drop := range [][]string{nil, {metering}} {
		b, err := RewriteBootstrap(envoy.Bootstrap, EnvoyPorts{Admin: 1, Public: 2, Mesh: 3, Tenantgate: 4, Bedrock: 5,
			ServerCert: "a", ServerKey: "b", MeshCA: "c", UpstreamCA: "d", TenantgateLink: LinkPlaintext, DropFilters: drop})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := strings.Count(string(b), metering), 2*(1-len(drop)); got != want {
			t.Fatalf("drop %v: %d mentions of %s, want %d", drop, got, metering, want)
		}
		if n := strings.Count(string(b), "envoy.filters.http.router"); n != 2 {
			t.Fatalf("drop %v: %d routers", drop, n)
		}
	}
}
