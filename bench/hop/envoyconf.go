package main

import (
	"bytes"
	"errors"
	"fmt"

	"gopkg.in/yaml.v3"

	"github.com/tenantgate/tenantgate/envoy"
	"github.com/tenantgate/tenantgate/internal/stack"
)

// variant is one column of the side-by-side group: a listener of the bench
// Envoy.
type variant struct {
	Name string // "A".."D"
	Desc string
	Port int
}

// benchPorts are the ports of the bench Envoy.
type benchPorts struct {
	Admin          int
	A, B, C, D     int
	Upstream       int // the loopback upstream that discards the body
	TenantgateGRPC string
	Link           stack.Link
	Certs          stack.Certs
}

// signerRegion is the region the B and D signers sign for and the region
// tenantgate signs for (stack.DefaultRegion for the demo user).
const signerRegion = stack.DefaultRegion

// benchBootstrap builds one Envoy bootstrap with four plain-HTTP listeners
// from the shipped envoy/envoy.yaml:
//
//	C: the shipped public listener as it is (local_ratelimit, ext_authz,
//	   ext_proc, router, per-region routes), minus its TLS;
//	A: the same listener with only local_ratelimit and the router;
//	B: local_ratelimit, Envoy's aws_request_signing (static credentials,
//	   signed payload, so it buffers and hashes the body like C), router;
//	D: local_ratelimit, the shipped ext_authz, aws_request_signing, router.
//
// A, B and D route every request to the us-east-1 runtime cluster; C routes
// by the :authority tenantgate writes. Every bedrock_* cluster points at the
// plain-HTTP loopback upstream. The tenantgate cluster and the rate limit
// (a million tokens a second, so nothing is throttled) are rewritten by
// stack.RewriteBootstrap exactly as for the end-to-end tests.
func benchBootstrap(p benchPorts) ([]byte, error) {
	ep := stack.EnvoyPorts{
		Admin: p.Admin, Public: p.C, Mesh: p.C + 1, // the mesh listener is dropped below
		Bedrock:        p.Upstream,
		TenantgateLink: p.Link,
		ServerCert:     p.Certs.EnvoyCert, ServerKey: p.Certs.EnvoyKey,
		MeshCA: p.Certs.CA, UpstreamCA: p.Certs.CA,
		TenantgateClientCert: p.Certs.EnvoyClientCert, TenantgateClientKey: p.Certs.EnvoyClientKey,
		TenantgateCA: p.Certs.LinkCA,
		RateLimit:    &stack.TokenBucket{MaxTokens: 1_000_000, TokensPerFill: 1_000_000, FillInterval: 1e9},
	}
	if path, ok := cutPrefix(p.TenantgateGRPC, "unix:"); ok {
		ep.TenantgateSocket = path
	} else {
		port, err := portOf(p.TenantgateGRPC)
		if err != nil {
			return nil, err
		}
		ep.Tenantgate = port
	}
	rewritten, err := stack.RewriteBootstrap(envoy.Bootstrap, ep)
	if err != nil {
		return nil, fmt.Errorf("rewrite bootstrap: %w", err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(rewritten, &doc); err != nil {
		return nil, fmt.Errorf("parse rewritten bootstrap: %w", err)
	}
	sr := doc["static_resources"].(map[string]any)
	listeners := sr["listeners"].([]any)
	public, ok := listeners[0].(map[string]any)
	if !ok {
		return nil, errors.New("bootstrap: public listener malformed")
	}
	// Plain HTTP: the numbers are for a plain-HTTP listener, so TLS
	// termination does not hide the filters' cost.
	chains := public["filter_chains"].([]any)
	if len(chains) != 1 {
		return nil, fmt.Errorf("bootstrap: want 1 filter chain on the public listener, have %d", len(chains))
	}
	delete(chains[0].(map[string]any), "transport_socket")
	public["name"] = "C"

	var out []any
	for _, v := range []struct {
		name    string
		port    int
		filters func(ratelimit, authz, proc, router any) []any
	}{
		{"A", p.A, func(rl, _, _, r any) []any { return []any{rl, r} }},
		{"B", p.B, func(rl, _, _, r any) []any { return []any{rl, signer(), r} }},
		{"D", p.D, func(rl, az, _, r any) []any { return []any{rl, az, signer(), r} }},
	} {
		l, err := clone(public)
		if err != nil {
			return nil, err
		}
		l["name"] = v.name
		l["address"] = sockAddr(v.port)
		hcm, err := hcmOf(l)
		if err != nil {
			return nil, err
		}
		fs := hcm["http_filters"].([]any)
		// local_ratelimit, ext_authz, ext_proc, [ext_proc.usage,] router:
		// C keeps them all (metering included); the others take the first
		// three and the router.
		if len(fs) < 4 {
			return nil, fmt.Errorf("bootstrap: want at least 4 shipped HTTP filters, have %d", len(fs))
		}
		hcm["http_filters"] = v.filters(fs[0], fs[1], fs[2], fs[len(fs)-1])
		hcm["stat_prefix"] = "bench_" + v.name
		hcm["route_config"] = map[string]any{
			"name": "bench_" + v.name,
			"virtual_hosts": []any{map[string]any{
				"name": "all", "domains": []any{"*"},
				"routes": []any{map[string]any{
					"match": map[string]any{"prefix": "/"},
					"route": map[string]any{"cluster": "bedrock_us_east_1", "timeout": "0s"},
				}},
			}},
		}
		out = append(out, l)
	}
	sr["listeners"] = append([]any{public}, out...)

	for _, c := range sr["clusters"].([]any) {
		cm := c.(map[string]any)
		if name, _ := cm["name"].(string); name != "tenantgate" {
			delete(cm, "transport_socket") // plain HTTP/1.1 to the loopback upstream
		}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("encode bench bootstrap: %w", err)
	}
	return buf.Bytes(), nil
}

// signer is Envoy's built-in SigV4 signer with static credentials. The
// payload is signed (use_unsigned_payload false), so the filter buffers and
// hashes the body as tenantgate must.
func signer() any {
	return map[string]any{
		"name": "envoy.filters.http.aws_request_signing",
		"typed_config": map[string]any{
			"@type":                "type.googleapis.com/envoy.extensions.filters.http.aws_request_signing.v3.AwsRequestSigning",
			"service_name":         "bedrock",
			"region":               signerRegion,
			"host_rewrite":         "bedrock-runtime." + signerRegion + ".amazonaws.com",
			"use_unsigned_payload": false,
			"credential_provider": map[string]any{
				"inline_credential": map[string]any{
					"access_key_id":     stack.PlatformAccessKey,
					"secret_access_key": stack.PlatformSecretKey,
				},
			},
		},
	}
}

func hcmOf(l map[string]any) (map[string]any, error) {
	chains, _ := l["filter_chains"].([]any)
	for _, c := range chains {
		cm, _ := c.(map[string]any)
		filters, _ := cm["filters"].([]any)
		for _, f := range filters {
			fm, _ := f.(map[string]any)
			if fm["name"] == "envoy.filters.network.http_connection_manager" {
				if tc, ok := fm["typed_config"].(map[string]any); ok {
					return tc, nil
				}
			}
		}
	}
	return nil, errors.New("bootstrap: listener without http_connection_manager")
}

// clone deep-copies a YAML value through a round trip.
func clone(m map[string]any) (map[string]any, error) {
	b, err := yaml.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("clone: %w", err)
	}
	var out map[string]any
	if err := yaml.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("clone: %w", err)
	}
	return out, nil
}

func sockAddr(port int) map[string]any {
	return map[string]any{"socket_address": map[string]any{"address": "127.0.0.1", "port_value": port}}
}
