package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tenantgate/tenantgate/envoy"
	"github.com/tenantgate/tenantgate/internal/stack"
)

// TestBenchBootstrap: the bench Envoy keeps the shipped filter chain for C,
// builds A, B and D from it, and is a configuration Envoy 1.40 accepts.
func TestBenchBootstrap(t *testing.T) {
	dir := t.TempDir()
	certs, err := stack.WriteCerts(dir, envoy.Regions)
	if err != nil {
		t.Fatal(err)
	}
	for _, link := range []stack.Link{stack.LinkMTLS, stack.LinkPlaintext, stack.LinkUnix} {
		t.Run(string(link), func(t *testing.T) {
			grpcAddr := "127.0.0.1:19191"
			if link == stack.LinkUnix {
				grpcAddr = "unix:" + filepath.Join(dir, "tg.sock")
			}
			b, err := benchBootstrap(benchPorts{
				Admin: 19900, A: 19901, B: 19902, C: 19903, D: 19904, Upstream: 19905,
				TenantgateGRPC: grpcAddr, Link: link, Certs: certs,
			})
			if err != nil {
				t.Fatal(err)
			}
			var doc struct {
				StaticResources struct {
					Listeners []map[string]any `yaml:"listeners"`
				} `yaml:"static_resources"`
			}
			if err := yaml.Unmarshal(b, &doc); err != nil {
				t.Fatal(err)
			}
			want := map[string][]string{
				"C": {"envoy.filters.http.local_ratelimit", "envoy.filters.http.ext_authz", "envoy.filters.http.ext_proc", "envoy.filters.http.ext_proc.usage", "envoy.filters.http.router"},
				"A": {"envoy.filters.http.local_ratelimit", "envoy.filters.http.router"},
				"B": {"envoy.filters.http.local_ratelimit", "envoy.filters.http.aws_request_signing", "envoy.filters.http.router"},
				"D": {"envoy.filters.http.local_ratelimit", "envoy.filters.http.ext_authz", "envoy.filters.http.aws_request_signing", "envoy.filters.http.router"},
			}
			if len(doc.StaticResources.Listeners) != len(want) {
				t.Fatalf("%d listeners, want %d", len(doc.StaticResources.Listeners), len(want))
			}
			for _, l := range doc.StaticResources.Listeners {
				name, _ := l["name"].(string)
				if chains, _ := l["filter_chains"].([]any); len(chains) != 1 || chains[0].(map[string]any)["transport_socket"] != nil {
					t.Errorf("listener %s: want one plain-HTTP filter chain", name)
				}
				hcm, err := hcmOf(l)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, f := range hcm["http_filters"].([]any) {
					got = append(got, f.(map[string]any)["name"].(string))
				}
				if strings.Join(got, ",") != strings.Join(want[name], ",") {
					t.Errorf("listener %s filters %v, want %v", name, got, want[name])
				}
			}
			if strings.Contains(string(b), "max_tokens: 500") {
				t.Error("the shipped rate limit bucket is still in place; the bench must not be throttled")
			}
			bin := stack.RequireEnvoy(t)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			p := filepath.Join(dir, "bench-"+string(link)+".yaml")
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := stack.ValidateEnvoyConfig(ctx, bin, p); err != nil {
				t.Fatal(err)
			}
		})
	}
}
