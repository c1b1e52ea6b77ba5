package extauthz

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"

	"github.com/tenantgate/tenantgate/internal/apierror"
	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/stack"
)

const authzEnvoyConfig = `
static_resources:
  listeners:
  - address: {socket_address: {address: 127.0.0.1, port_value: %[1]d}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes: [{match: {prefix: "/"}, route: {cluster: upstream}}]
          http_filters:
          - name: envoy.filters.http.ext_authz
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
              transport_api_version: V3
              failure_mode_allow: false
              grpc_service: {envoy_grpc: {cluster_name: authz}, timeout: 2s}
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: upstream
    connect_timeout: 1s
    load_assignment:
      cluster_name: upstream
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: %[2]d}}}}]}]
  - name: authz
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
    load_assignment:
      cluster_name: authz
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: %[3]d}}}}]}]
admin:
  address: {socket_address: {address: 127.0.0.1, port_value: %[4]d}}
`

// TestThroughRealEnvoy checks, in Envoy itself, that spoofed identity
// headers are replaced (one value, the verified one), that the query token is
// removed before the upstream, and that denials reach the client with their
// status, headers and JSON body.
func TestThroughRealEnvoy(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode")
	}
	bin := stack.RequireEnvoy(t)
	type seen struct {
		header http.Header
		uri    string
	}
	var mu sync.Mutex
	got := map[string]seen{}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got[r.Header.Get("x-test-id")] = seen{header: r.Header.Clone(), uri: r.RequestURI}
		mu.Unlock()
		w.WriteHeader(200)
	}))
	defer up.Close()

	h := newHarness(t, func(c *config.Config) { c.Auth.QueryToken.Enabled = true }, nil)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	h.srv.Register(g)
	go func() { _ = g.Serve(lis) }()
	defer g.Stop()

	listen, admin := stack.FreePort(t), stack.FreePort(t)
	cfg := fmt.Sprintf(authzEnvoyConfig, listen, up.Listener.Addr().(*net.TCPAddr).Port, lis.Addr().(*net.TCPAddr).Port, admin)
	stack.RunEnvoy(t, bin, cfg, listen, admin)

	do := func(t *testing.T, id, method, path string, hdrs map[string]string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, fmt.Sprintf("http://127.0.0.1:%d", listen), strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		rawPath, rawQuery, _ := strings.Cut(path, "?")
		req.URL.Opaque, req.URL.RawQuery = rawPath, rawQuery
		req.Header.Set("x-test-id", id)
		for k, v := range hdrs {
			req.Header.Add(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, body
	}

	t.Run("spoofed identity headers replaced", func(t *testing.T) {
		resp, body := do(t, "spoof", "POST", pathHaiku, map[string]string{
			"authorization": "Bearer tok-a", "x-account-id": acctBroke,
			"x-account-tier": "tier_200_1000", "x-enterprise": "true", "x-user-id": userOwner, "x-account-role": "owner",
		})
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		mu.Lock()
		s := got["spoof"]
		mu.Unlock()
		want := map[string]string{
			"x-account-id": acctBroke, "x-account-tier": "tier_2_20", "x-enterprise": "false",
			"x-user-id": userA, "x-account-role": "member",
		}
		for k, v := range want {
			if vals := s.header.Values(k); len(vals) != 1 || vals[0] != v {
				t.Errorf("upstream %s = %q, want exactly [%q]", k, vals, v)
			}
		}
	})

	t.Run("query token removed upstream", func(t *testing.T) {
		resp, body := do(t, "query", "POST", pathHaiku+"?a=1&token=tok-a&b=2", nil)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		mu.Lock()
		s := got["query"]
		mu.Unlock()
		if strings.Contains(s.uri, "token") || !strings.Contains(s.uri, "a=1") || !strings.Contains(s.uri, "b=2") {
			t.Errorf("upstream request URI %q", s.uri)
		}
		if s.header.Get("x-user-id") != userA {
			t.Errorf("upstream x-user-id %q", s.header.Get("x-user-id"))
		}
	})

	// Envoy removes query parameters by their raw name: a token under an
	// encoded or re-cased name would travel upstream, so it is refused, and
	// the raw name is removed in every form.
	t.Run("encoded query token name refused, never upstream", func(t *testing.T) {
		for i, path := range []string{
			pathHaiku + "?%74oken=tok-a",
			pathHaiku + "?a=1&toke%6E=tok-a",
			pathHaiku + "?TOKEN=tok-a",
		} {
			id := fmt.Sprintf("encq%d", i)
			for _, hdrs := range []map[string]string{nil, {"authorization": "Bearer tok-b"}} {
				resp, body := do(t, id, "POST", path, hdrs)
				var b struct{ Error string }
				_ = json.Unmarshal(body, &b)
				if resp.StatusCode != 401 || b.Error != string(apierror.EncodedQueryToken) {
					t.Errorf("%s (bearer %v): status %d body %s, want 401 %s", path, hdrs != nil, resp.StatusCode, body, apierror.EncodedQueryToken)
				}
				mu.Lock()
				s, reached := got[id]
				mu.Unlock()
				if reached {
					t.Errorf("%s: reached the upstream as %q", path, s.uri)
				}
			}
		}
	})

	t.Run("raw query token name removed in every form", func(t *testing.T) {
		for i, tc := range []struct {
			path string
			hdrs map[string]string
		}{
			{pathHaiku + "?token=tok-a", nil},
			{pathHaiku + "?a=1&token=tok-b&b=2", map[string]string{"authorization": "Bearer tok-a"}},
			{pathHaiku + "?token&a=1", map[string]string{"authorization": "Bearer tok-a"}},
			{pathHaiku + "?token=%zz&a=1", map[string]string{"authorization": "Bearer tok-a"}},
		} {
			id := fmt.Sprintf("rawq%d", i)
			resp, body := do(t, id, "POST", tc.path, tc.hdrs)
			if resp.StatusCode != 200 {
				t.Errorf("%s: status %d: %s", tc.path, resp.StatusCode, body)
				continue
			}
			mu.Lock()
			s := got[id]
			mu.Unlock()
			if strings.Contains(strings.ToLower(s.uri), "token") || strings.Contains(s.uri, "tok-") {
				t.Errorf("%s: upstream request URI %q still carries the token", tc.path, s.uri)
			}
		}
	})

	// Denials reach the client as Bedrock's restJson1 errors: the AWS type
	// in x-amzn-errortype and __type (what the SDKs read), the tenantgate
	// code in x-tenantgate-error and "error".
	denials := []struct {
		name, id, path string
		hdrs           map[string]string
		status         int
		code           apierror.Code
		awsType        string
		www, retry     string
		message        string
	}{
		{"missing credential", "d1", pathHaiku, nil, 401, apierror.MissingCredential, "MissingAuthenticationTokenException", `Bearer realm="tenantgate"`, "", ""},
		{"invalid token", "d2", pathHaiku, map[string]string{"authorization": "Bearer tok-forged"}, 401, apierror.InvalidToken, "UnrecognizedClientException", `Bearer error="invalid_token"`, "", ""},
		{"expired token", "d7", pathHaiku, map[string]string{"authorization": "Bearer tok-expired"}, 401, apierror.TokenExpired, "ExpiredTokenException",
			`Bearer error="invalid_token", error_description="token expired"`, "", "token expired at 2026-03-01T11:00:00Z; get a new access token"},
		{"not a member", "d3", pathHaiku, map[string]string{"authorization": "Bearer tok-b", "x-account-id": acctTeam}, 403, apierror.NotAMember, "AccessDeniedException", "", "", ""},
		{"bad account id", "d4", pathHaiku, map[string]string{"authorization": "Bearer tok-a", "x-account-id": "x"}, 400, apierror.InvalidAccountID, "ValidationException", "", "", ""},
		{"model not allowed", "d5", pathSonnet, map[string]string{"authorization": "Bearer tok-a"}, 403, apierror.ModelNotAllowed, "AccessDeniedException", "", "", ""},
		{"unavailable", "d6", pathHaiku, map[string]string{"authorization": "Bearer tok-down"}, 503, apierror.Unavailable, "ServiceUnavailableException", "", "1", ""},
	}
	for _, d := range denials {
		t.Run(d.name, func(t *testing.T) {
			resp, body := do(t, d.id, "POST", d.path, d.hdrs)
			if resp.StatusCode != d.status {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, d.status)
			}
			var b struct {
				Type    string `json:"__type"`
				Error   string `json:"error"`
				Message string `json:"message"`
			}
			if err := json.Unmarshal(body, &b); err != nil || b.Error != string(d.code) || b.Type != d.awsType || b.Message == "" {
				t.Fatalf("body %s (err %v), want error %q, __type %q and a message", body, err, d.code, d.awsType)
			}
			if d.message != "" && b.Message != d.message {
				t.Errorf("message %q, want %q", b.Message, d.message)
			}
			for name, want := range map[string]string{
				"content-type":       "application/json",
				"x-amzn-errortype":   d.awsType,
				"x-tenantgate-error": string(d.code),
				"www-authenticate":   d.www,
				"retry-after":        d.retry,
			} {
				if got := resp.Header.Values(name); len(got) > 1 || resp.Header.Get(name) != want {
					t.Errorf("%s %q, want %q", name, got, want)
				}
			}
			mu.Lock()
			_, reached := got[d.id]
			mu.Unlock()
			if reached {
				t.Error("denied request reached the upstream")
			}
		})
	}
}
