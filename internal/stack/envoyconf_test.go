package stack

import (
	"fmt"
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

// TestRewriteBootstrapReplicas: further tenantgate replicas become more
// endpoints of the one tenantgate cluster, whose health checks, outlier
// detection and TLS stay as shipped; a Unix socket link refuses them.
func TestRewriteBootstrapReplicas(t *testing.T) {
	p := EnvoyPorts{Admin: 1, Public: 2, Mesh: 3, Tenantgate: 4, MoreTenantgates: []int{6, 7}, Bedrock: 5,
		ServerCert: "a", ServerKey: "b", MeshCA: "c", UpstreamCA: "d",
		TenantgateClientCert: "e", TenantgateClientKey: "f", TenantgateCA: "g"}
	out, err := RewriteBootstrap(envoy.Bootstrap, p)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		StaticResources struct {
			Clusters []struct {
				Name             string         `yaml:"name"`
				HealthChecks     []any          `yaml:"health_checks"`
				OutlierDetection map[string]any `yaml:"outlier_detection"`
				TransportSocket  map[string]any `yaml:"transport_socket"`
				LoadAssignment   struct {
					Endpoints []struct {
						LBEndpoints []struct {
							Endpoint struct {
								Address struct {
									SocketAddress struct {
										Port int `yaml:"port_value"`
									} `yaml:"socket_address"`
								} `yaml:"address"`
							} `yaml:"endpoint"`
						} `yaml:"lb_endpoints"`
					} `yaml:"endpoints"`
				} `yaml:"load_assignment"`
			} `yaml:"clusters"`
		} `yaml:"static_resources"`
	}
	if err := yaml.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	for _, c := range doc.StaticResources.Clusters {
		var ports []int
		for _, e := range c.LoadAssignment.Endpoints[0].LBEndpoints {
			ports = append(ports, e.Endpoint.Address.SocketAddress.Port)
		}
		want := "[5]"
		if c.Name == "tenantgate" {
			want = "[4 6 7]"
			if len(c.HealthChecks) != 1 || c.OutlierDetection == nil || c.TransportSocket == nil {
				t.Errorf("tenantgate cluster lost its health check, outlier detection or TLS")
			}
		}
		if got := strings.Join(strings.Fields(fmt.Sprint(ports)), " "); got != want {
			t.Errorf("cluster %s endpoints = %s, want %s", c.Name, got, want)
		}
	}
	p.TenantgateLink, p.TenantgateSocket = LinkUnix, "/tmp/x.sock"
	if _, err := RewriteBootstrap(envoy.Bootstrap, p); err == nil || !strings.Contains(err.Error(), "several tenantgate replicas") {
		t.Errorf("unix link with several replicas: err = %v", err)
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
