package envoy_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tenantgate/tenantgate/envoy"
	"github.com/tenantgate/tenantgate/internal/apierror"
	"github.com/tenantgate/tenantgate/internal/stack"
)

func envoyBin(t *testing.T) string {
	t.Helper()
	return stack.RequireEnvoy(t)
}

// TestShippedBootstrapValidates runs `envoy --mode validate` on the shipped
// file with only its TLS file paths pointed at generated certificates, and
// on the loopback rewrite the local stack runs.
func TestShippedBootstrapValidates(t *testing.T) {
	bin := envoyBin(t)
	dir := t.TempDir()
	certs, err := stack.WriteCerts(dir, envoy.Regions)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	shipped := strings.NewReplacer(
		"/etc/envoy/tls/server.crt", certs.EnvoyCert,
		"/etc/envoy/tls/server.key", certs.EnvoyKey,
		"/etc/envoy/tls/mesh-ca.crt", certs.CA,
		"/etc/envoy/tls/tenantgate-client.crt", certs.EnvoyClientCert,
		"/etc/envoy/tls/tenantgate-client.key", certs.EnvoyClientKey,
		"/etc/envoy/tls/tenantgate-ca.crt", certs.LinkCA,
	).Replace(string(envoy.Bootstrap))
	p1 := filepath.Join(dir, "shipped.yaml")
	if err := os.WriteFile(p1, []byte(shipped), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := stack.ValidateEnvoyConfig(ctx, bin, p1); err != nil {
		t.Fatal(err)
	}

	local, err := stack.RewriteBootstrap(envoy.Bootstrap, stack.EnvoyPorts{
		Admin: 19901, Public: 19000, Mesh: 19001, Tenantgate: 19191, Bedrock: 19443,
		ServerCert: certs.EnvoyCert, ServerKey: certs.EnvoyKey, MeshCA: certs.CA, UpstreamCA: certs.CA,
		TenantgateClientCert: certs.EnvoyClientCert, TenantgateClientKey: certs.EnvoyClientKey, TenantgateCA: certs.LinkCA,
	})
	if err != nil {
		t.Fatal(err)
	}
	p2 := filepath.Join(dir, "local.yaml")
	if err := os.WriteFile(p2, local, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := stack.ValidateEnvoyConfig(ctx, bin, p2); err != nil {
		t.Fatal(err)
	}

	unix, err := stack.RewriteBootstrap(envoy.Bootstrap, stack.EnvoyPorts{
		Admin: 19901, Public: 19000, Mesh: 19001, Bedrock: 19443,
		ServerCert: certs.EnvoyCert, ServerKey: certs.EnvoyKey, MeshCA: certs.CA, UpstreamCA: certs.CA,
		TenantgateLink: stack.LinkUnix, TenantgateSocket: filepath.Join(dir, "tenantgate.sock"),
	})
	if err != nil {
		t.Fatal(err)
	}
	p3 := filepath.Join(dir, "unix.yaml")
	if err := os.WriteFile(p3, unix, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := stack.ValidateEnvoyConfig(ctx, bin, p3); err != nil {
		t.Fatal(err)
	}
}

// TestValidateRejectsBrokenConfig shows that validation can fail: a filter
// with an unknown field is refused.
func TestValidateRejectsBrokenConfig(t *testing.T) {
	bin := envoyBin(t)
	dir := t.TempDir()
	broken := strings.Replace(string(envoy.Bootstrap), "failure_mode_allow: false", "failure_mode_allowed: false", 1)
	p := filepath.Join(dir, "broken.yaml")
	if err := os.WriteFile(p, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := stack.ValidateEnvoyConfig(ctx, bin, p); err == nil {
		t.Fatal("envoy accepted a config with an unknown field")
	}
}

func get(t *testing.T, v any, path ...any) any {
	t.Helper()
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("at %v: not a map", path)
			}
			v = m[k]
		case int:
			s, ok := v.([]any)
			if !ok || k >= len(s) {
				t.Fatalf("at %v: not a list or too short", path)
			}
			v = s[k]
		}
	}
	return v
}

// TestShippedBootstrapSettings pins the security-relevant settings of the
// decided design, for both listeners.
func TestShippedBootstrapSettings(t *testing.T) {
	var doc map[string]any
	if err := yaml.Unmarshal(envoy.Bootstrap, &doc); err != nil {
		t.Fatal(err)
	}
	if got := get(t, doc, "admin", "address", "socket_address", "address"); got != "127.0.0.1" {
		t.Errorf("admin address = %v, want loopback", got)
	}
	listeners := get(t, doc, "static_resources", "listeners").([]any)
	if len(listeners) != 2 {
		t.Fatalf("listeners = %d, want 2", len(listeners))
	}
	for i, l := range listeners {
		if got := get(t, l, "per_connection_buffer_limit_bytes"); got.(int) <= 10<<20 {
			t.Errorf("listener %d buffer limit %v must exceed the 10 MiB body limit", i, got)
		}
		tls := get(t, l, "filter_chains", 0, "transport_socket", "typed_config")
		if i == 1 && get(t, tls, "require_client_certificate") != true {
			t.Errorf("mesh listener must require client certificates")
		}
		// ALPN: HTTP/2 clients that do not use prior knowledge (the AWS SDK
		// for JavaScript v3's default handler) need h2 offered in the TLS
		// handshake; HTTP/1.1 clients stay served.
		alpn, _ := get(t, tls, "common_tls_context", "alpn_protocols").([]any)
		if len(alpn) != 2 || alpn[0] != "h2" || alpn[1] != "http/1.1" {
			t.Errorf("listener %d: alpn_protocols = %v, want [h2 http/1.1]", i, alpn)
		}
		hcm := get(t, l, "filter_chains", 0, "filters", 0, "typed_config")
		if get(t, hcm, "path_with_escaped_slashes_action") != "KEEP_UNCHANGED" {
			t.Errorf("listener %d: escaped slashes must be kept (inference-profile ARNs)", i)
		}
		if get(t, hcm, "merge_slashes") != false {
			t.Errorf("listener %d: merge_slashes must be off", i)
		}
		logs, _ := get(t, hcm, "access_log").([]any)
		if len(logs) == 0 {
			t.Errorf("listener %d: no access log", i)
		}
		for _, l := range logs {
			format, _ := yaml.Marshal(get(t, l, "typed_config", "log_format"))
			up := strings.ToUpper(string(format))
			for _, secret := range []string{"AUTHORIZATION", "X-API-KEY", "X-SERVICE-KEY", "COOKIE", "REQ(:PATH)", "X-AMZ-SECURITY-TOKEN"} {
				if strings.Contains(up, secret) {
					t.Errorf("listener %d: access log may record a credential (%s)", i, secret)
				}
			}
		}
		filters := get(t, hcm, "http_filters").([]any)
		var names []string
		byName := map[string]any{}
		for _, f := range filters {
			name := get(t, f, "name").(string)
			names = append(names, name)
			byName[name] = f
		}
		if strings.Join(names, ",") != "envoy.filters.http.local_ratelimit,envoy.filters.http.ext_authz,envoy.filters.http.ext_proc,envoy.filters.http.ext_proc.usage,envoy.filters.http.router" {
			t.Fatalf("listener %d filter order = %v", i, names)
		}
		az := get(t, byName["envoy.filters.http.ext_authz"], "typed_config")
		if get(t, az, "failure_mode_allow") != false || get(t, az, "include_peer_certificate") != true ||
			get(t, az, "transport_api_version") != "V3" || get(t, az, "status_on_error", "code") != "ServiceUnavailable" {
			t.Errorf("ext_authz settings: %v", az)
		}
		ep := get(t, byName["envoy.filters.http.ext_proc"], "typed_config")
		pm := get(t, ep, "processing_mode")
		if get(t, ep, "failure_mode_allow") != false || get(t, ep, "allow_mode_override") != true ||
			get(t, ep, "message_timeout") != "10s" ||
			get(t, pm, "request_header_mode") != "SEND" || get(t, pm, "request_body_mode") != "NONE" ||
			get(t, pm, "response_header_mode") != "SKIP" || get(t, pm, "response_body_mode") != "NONE" ||
			get(t, pm, "request_trailer_mode") != "SEND" ||
			get(t, ep, "mutation_rules", "allow_all_routing") != true || get(t, ep, "mutation_rules", "disallow_is_error") != true {
			t.Errorf("ext_proc settings: %v", ep)
		}
		// tenantgate's mode overrides (buffered request body, response
		// headers, buffered error bodies) must not be narrowed by a list.
		if _, ok := ep.(map[string]any)["allowed_override_modes"]; ok {
			t.Errorf("ext_proc allowed_override_modes would block tenantgate's mode overrides")
		}
		ns := get(t, ep, "metadata_options", "forwarding_namespaces", "untyped").([]any)
		if len(ns) != 1 || ns[0] != "envoy.filters.http.ext_authz" {
			t.Errorf("ext_proc forwarding namespaces = %v", ns)
		}
		if rn := get(t, ep, "metadata_options", "receiving_namespaces", "untyped").([]any); len(rn) != 1 || rn[0] != "tenantgate.usage" {
			t.Errorf("ext_proc receiving namespaces = %v", rn)
		}
		// Metering observes without delaying: observability mode, streamed
		// response body, never failing a request.
		mp := get(t, byName["envoy.filters.http.ext_proc.usage"], "typed_config")
		mpm := get(t, mp, "processing_mode")
		if get(t, mp, "observability_mode") != true || get(t, mp, "failure_mode_allow") != true || get(t, mp, "stat_prefix") != "usage" ||
			get(t, mpm, "response_body_mode") != "STREAMED" || get(t, mpm, "request_body_mode") != "NONE" ||
			get(t, mpm, "request_header_mode") != "SEND" || get(t, mpm, "response_header_mode") != "SEND" {
			t.Errorf("metering ext_proc settings: %v", mp)
		}
		if mns := get(t, mp, "metadata_options", "forwarding_namespaces", "untyped").([]any); len(mns) != 2 || mns[0] != "envoy.filters.http.ext_authz" || mns[1] != "tenantgate.usage" {
			t.Errorf("metering forwarding namespaces = %v", mns)
		}
		vhosts := get(t, hcm, "route_config", "virtual_hosts").([]any)
		regions, controlRegions := map[string]bool{}, map[string]bool{}
		for _, vh := range vhosts {
			domains := get(t, vh, "domains").([]any)
			if len(domains) != 1 {
				t.Errorf("virtual host %v: want exactly one domain", get(t, vh, "name"))
				continue
			}
			d := domains[0].(string)
			if d == "*" {
				// Answered like every tenantgate refusal: the catalogue's
				// status, body and headers for not_routed.
				want := apierror.New(apierror.NotRouted)
				dr := get(t, vh, "routes", 0, "direct_response")
				if get(t, dr, "status") != want.Status || get(t, dr, "body", "inline_string") != string(want.Body()) {
					t.Errorf("catch-all must answer %d %s, got %v", want.Status, want.Body(), dr)
				}
				added := map[string]string{}
				for _, h := range get(t, vh, "response_headers_to_add").([]any) {
					if get(t, h, "append_action") != "OVERWRITE_IF_EXISTS_OR_ADD" {
						t.Errorf("catch-all header %v appends", h)
					}
					added[get(t, h, "header", "key").(string)] = get(t, h, "header", "value").(string)
				}
				for _, h := range want.Headers() {
					if added[h.Name] != h.Value {
						t.Errorf("catch-all header %s = %q, want %q", h.Name, added[h.Name], h.Value)
					}
				}
				if len(added) != len(want.Headers()) {
					t.Errorf("catch-all headers %v, want %v", added, want.Headers())
				}
				continue
			}
			prefix, cluster, seen := "bedrock-runtime.", "bedrock_", regions
			if strings.HasPrefix(d, "bedrock.") {
				prefix, cluster, seen = "bedrock.", "bedrock_control_", controlRegions
			}
			region := strings.TrimSuffix(strings.TrimPrefix(d, prefix), ".amazonaws.com")
			seen[region] = true
			rt := get(t, vh, "routes", 0, "route")
			if get(t, rt, "cluster") != cluster+strings.ReplaceAll(region, "-", "_") {
				t.Errorf("%s routes to %v", d, get(t, rt, "cluster"))
			}
			if get(t, rt, "retry_policy", "retry_on") != "5xx,reset,connect-failure,refused-stream" || get(t, rt, "retry_policy", "num_retries") != 2 {
				t.Errorf("%s retry policy %v", d, get(t, rt, "retry_policy"))
			}
			for _, k := range []string{"prefix_rewrite", "regex_rewrite", "host_rewrite_literal"} {
				if get(t, rt, k) != nil {
					t.Errorf("%s rewrites the signed request (%s)", d, k)
				}
			}
		}
		for _, r := range envoy.Regions {
			if !regions[r] || !controlRegions[r] {
				t.Errorf("listener %d: region %s lacks a runtime or control-plane virtual host", i, r)
			}
		}
	}
	for _, c := range get(t, doc, "static_resources", "clusters").([]any) {
		name := get(t, c, "name").(string)
		if name == "tenantgate" {
			// tenantgate signs for any tenant: Envoy reaches it over mutual
			// TLS, checking tenantgate's certificate and presenting its own.
			tls := get(t, c, "transport_socket", "typed_config")
			ctx := get(t, tls, "common_tls_context")
			if get(t, tls, "@type") != "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext" ||
				get(t, tls, "sni") != "tenantgate" ||
				get(t, ctx, "tls_certificates", 0, "certificate_chain", "filename") != "/etc/envoy/tls/tenantgate-client.crt" ||
				get(t, ctx, "validation_context", "trusted_ca", "filename") != "/etc/envoy/tls/tenantgate-ca.crt" ||
				get(t, ctx, "validation_context", "match_typed_subject_alt_names", 0, "matcher", "exact") != "tenantgate" ||
				get(t, ctx, "alpn_protocols", 0) != "h2" {
				t.Errorf("tenantgate cluster TLS: %v", tls)
			}
			continue
		}
		if !strings.HasPrefix(name, "bedrock_") {
			continue
		}
		host := "bedrock-runtime." + strings.ReplaceAll(strings.TrimPrefix(name, "bedrock_"), "_", "-") + ".amazonaws.com"
		if r, ok := strings.CutPrefix(name, "bedrock_control_"); ok {
			host = "bedrock." + strings.ReplaceAll(r, "_", "-") + ".amazonaws.com"
		}
		tls := get(t, c, "transport_socket", "typed_config")
		if get(t, tls, "sni") != host || get(t, get(t, tls, "common_tls_context", "validation_context", "match_typed_subject_alt_names").([]any)[0], "matcher", "exact") != host {
			t.Errorf("cluster %s: sni/SAN must be %s", name, host)
		}
	}
}

// TestLocalRepliesMatchCatalogue: every local reply mapper of every listener
// answers a catalogued tenantgate code (status, AWS type, message, headers),
// so Envoy's own refusals read like tenantgate's.
func TestLocalRepliesMatchCatalogue(t *testing.T) {
	codeOf := map[string]apierror.Code{
		"response.code_details == 'local_rate_limited'": apierror.RateLimited,
		"response.code_details == 'ext_authz_error' || response.code_details == 'overload' || response.code_details.startsWith('ext_proc_error_gRPC_error')": apierror.Unavailable,
	}
	var doc map[string]any
	if err := yaml.Unmarshal(envoy.Bootstrap, &doc); err != nil {
		t.Fatal(err)
	}
	listeners := get(t, doc, "static_resources", "listeners").([]any)
	for i, l := range listeners {
		hcm := get(t, l, "filter_chains", 0, "filters", 0, "typed_config")
		mappers, _ := get(t, hcm, "local_reply_config", "mappers").([]any)
		seen := map[apierror.Code]bool{}
		for _, m := range mappers {
			expr, _ := get(t, m, "filter", "extension_filter", "typed_config", "expression").(string)
			code, ok := codeOf[expr]
			if !ok {
				t.Errorf("listener %d: local reply mapper %q answers no catalogued code", i, expr)
				continue
			}
			seen[code] = true
			want := apierror.New(code)
			var wantBody map[string]any
			if err := json.Unmarshal(want.Body(), &wantBody); err != nil {
				t.Fatal(err)
			}
			if got := get(t, m, "body_format_override", "json_format"); !reflect.DeepEqual(got, wantBody) {
				t.Errorf("listener %d %s: body %v, want %v", i, code, got, wantBody)
			}
			if s := get(t, m, "status_code"); s != nil && s != want.Status {
				t.Errorf("listener %d %s: status %v, want %d", i, code, s, want.Status)
			}
			if code == apierror.RateLimited {
				continue // its headers come from the local_ratelimit filter (TestShippedLocalRateLimit)
			}
			added := map[string]string{}
			hs, _ := get(t, m, "headers_to_add").([]any)
			for _, h := range hs {
				added[get(t, h, "header", "key").(string)] = get(t, h, "header", "value").(string)
				if get(t, h, "append_action") != "OVERWRITE_IF_EXISTS_OR_ADD" {
					t.Errorf("listener %d %s: header %v appends", i, code, h)
				}
			}
			for _, h := range want.Headers() {
				if h.Name != apierror.HeaderContentType && added[h.Name] != h.Value {
					t.Errorf("listener %d %s: header %s = %q, want %q", i, code, h.Name, added[h.Name], h.Value)
				}
			}
		}
		for _, c := range codeOf {
			if !seen[c] {
				t.Errorf("listener %d: no local reply mapper answers %s", i, c)
			}
		}
	}
}
