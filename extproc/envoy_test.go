package extproc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"

	"github.com/tenantgate/tenantgate/internal/identity"
	"github.com/tenantgate/tenantgate/internal/stack"
)

// testAuthz is a stand-in ext_authz that attaches the identity named by the
// x-test-tenant header as dynamic metadata.
type testAuthz struct{}

func (testAuthz) Check(_ context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	var id *identity.Identity
	switch v := req.GetAttributes().GetRequest().GetHttp().GetHeaders()["x-test-tenant"]; {
	case v == "ent":
		id = entID
	case v == "pro":
		id = proID
	case strings.HasPrefix(v, "enterprise:"):
		id = &identity.Identity{AccountID: strings.TrimPrefix(v, "enterprise:"), Enterprise: true, Tier: "enterprise"}
	case strings.HasPrefix(v, "tier:"):
		id = &identity.Identity{AccountID: "acct-pro", Tier: strings.TrimPrefix(v, "tier:")}
	}
	resp := &authv3.CheckResponse{Status: &status.Status{}, HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}}}
	if id != nil {
		resp.DynamicMetadata = id.Struct()
	}
	return resp, nil
}

const envoyConfig = `
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
            - name: eu-west-1
              domains: ["bedrock-runtime.eu-west-1.amazonaws.com"]
              routes: [{match: {prefix: "/"}, route: {cluster: bedrock}}]
            - name: us-east-1
              domains: ["bedrock-runtime.us-east-1.amazonaws.com"]
              routes: [{match: {prefix: "/"}, route: {cluster: bedrock}}]
            - name: gateway
              domains: ["*"]
              routes: [{match: {prefix: "/"}, %[7]s}]
          http_filters:
          - name: envoy.filters.http.ext_authz
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
              transport_api_version: V3
              failure_mode_allow: false
              grpc_service: {envoy_grpc: {cluster_name: authz}, timeout: 2s}
          - name: envoy.filters.http.ext_proc
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor
              grpc_service: {envoy_grpc: {cluster_name: extproc}}
              failure_mode_allow: false
              message_timeout: 10s
              allow_mode_override: %[6]v
              processing_mode:
                request_header_mode: SEND
                response_header_mode: SKIP
                request_body_mode: NONE
                response_body_mode: NONE
                request_trailer_mode: %[8]s
                response_trailer_mode: SKIP
              metadata_options:
                forwarding_namespaces: {untyped: ["envoy.filters.http.ext_authz"]}
              mutation_rules: {allow_all_routing: true}
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: bedrock
    connect_timeout: 1s
    load_assignment:
      cluster_name: bedrock
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
  - name: extproc
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
    load_assignment:
      cluster_name: extproc
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: %[4]d}}}}]}]
admin:
  address: {socket_address: {address: 127.0.0.1, port_value: %[5]d}}
`

// TestThroughRealEnvoy runs Envoy with ext_authz and this ext_proc in front
// of a SigV4-verifying upstream: metadata forwarding, raw_value headers,
// mode override to a buffered body, :authority rewrite with route cache
// clearing, and header stripping all happen in Envoy itself.
// startEnvoy starts the upstream, ext_authz + ext_proc and Envoy, and
// returns Envoy's listener port and the upstream.
func startEnvoy(t *testing.T, allowModeOverride, gatewayToUpstream bool) (int, *fakeBedrock) {
	t.Helper()
	fb := &fakeBedrock{t: t, signers: map[string]string{}}
	srv, err := New(Options{
		Config:   testExtProcConfig(),
		Platform: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return platformCreds, nil }),
	}, defaultRoutes(), &fakeCreds{})
	if err != nil {
		t.Fatal(err)
	}
	return startEnvoyWith(t, srv, fb, allowModeOverride, gatewayToUpstream), fb
}

// startEnvoyWith starts upstream, ext_authz + srv, and Envoy; it returns
// Envoy's listener port.
func startEnvoyWith(t *testing.T, srv *Server, upstream http.Handler, allowModeOverride, gatewayToUpstream bool) int {
	t.Helper()
	return startEnvoyTrailers(t, srv, upstream, allowModeOverride, gatewayToUpstream, "SEND")
}

// startEnvoyTrailers is startEnvoyWith with the filter's request_trailer_mode
// (SEND as shipped, or SKIP as a misconfigured Envoy would have it).
func startEnvoyTrailers(t *testing.T, srv *Server, upstream http.Handler, allowModeOverride, gatewayToUpstream bool, trailerMode string) int {
	t.Helper()
	if testing.Short() {
		t.Skip("short mode")
	}
	bin := stack.RequireEnvoy(t)
	up := httptest.NewServer(upstream)
	t.Cleanup(up.Close)
	upPort := up.Listener.Addr().(*net.TCPAddr).Port

	// ext_authz and ext_proc on one gRPC server.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	srv.Register(g)
	authv3.RegisterAuthorizationServer(g, testAuthz{})
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	grpcPort := lis.Addr().(*net.TCPAddr).Port

	listen, admin := stack.FreePort(t), stack.FreePort(t)
	// The catch-all virtual host answers 421 so that a request whose route
	// was not re-picked after the :authority rewrite is visible.
	gateway := `direct_response: {status: 421, body: {inline_string: "route cache not cleared"}}`
	if gatewayToUpstream {
		gateway = `route: {cluster: bedrock}`
	}
	stack.RunEnvoy(t, bin, fmt.Sprintf(envoyConfig, listen, upPort, grpcPort, grpcPort, admin, allowModeOverride, gateway, trailerMode), listen, admin)
	return listen
}

// sendThroughEnvoy sends a client request carrying caller credentials and
// the extra headers given as name, value pairs.
func sendThroughEnvoy(t *testing.T, listen int, tenantName, tid, method, path string, body []byte, extra ...[2]string) (int, []byte, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, fmt.Sprintf("http://127.0.0.1:%d", listen), rd)
	if err != nil {
		t.Fatal(err)
	}
	rawPath, rawQuery, _ := strings.Cut(path, "?")
	req.URL.Opaque, req.URL.RawQuery = rawPath, rawQuery
	req.Host = "gateway.example.com"
	req.Header.Set("Authorization", "Bearer user-jwt-token")
	req.Header.Set("X-Api-Key", "pk_a:sk_b")
	req.Header.Set("X-Amz-Security-Token", "spoofed-token")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Test-Id", tid)
	if tenantName != "" {
		req.Header.Set("X-Test-Tenant", tenantName)
	}
	for _, h := range extra {
		req.Header.Add(h[0], h[1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, rb, resp.Header
}

func TestThroughRealEnvoy(t *testing.T) {
	listen, fb := startEnvoy(t, true, false)
	body := []byte(`{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`)
	cases := []struct {
		name, tenant, method, path string
		body                       []byte
		wantStatus                 int
		wantKey                    string
		wantType, wantCode         string // of a rejection
	}{
		{"tenant converse with colon model id", "ent", "POST", haikuPath, body, 200, "ASIAacct-ent", "", ""},
		{"tenant inference profile arn", "ent", "POST", profilePath, body, 200, "ASIAacct-ent", "", ""},
		{"platform converse", "pro", "POST", haikuPath, body, 200, "AKIAPLATFORM", "", ""},
		{"tenant get without body", "ent", "GET", "/async-invoke?maxResults=2", nil, 200, "ASIAacct-ent", "", ""},
		{"platform async list refused", "pro", "GET", "/async-invoke?maxResults=2", nil, 403, "", "AccessDeniedException", "async_invoke_not_allowed"},
		{"no tenant", "", "POST", haikuPath, body, 403, "", "AccessDeniedException", "no_tenant"},
		{"unsupported", "pro", "POST", "/model/x/unknown", body, 404, "", "UnknownOperationException", "unsupported_operation"},
		{"bidi", "pro", "POST", "/model/x/invoke-with-bidirectional-stream", body, 400, "", "ValidationException", "not_implemented"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tid := fmt.Sprintf("envoy-%d", i)
			status, rb, hdr := sendThroughEnvoy(t, listen, tc.tenant, tid, tc.method, tc.path, tc.body)
			if status != tc.wantStatus {
				t.Fatalf("status %d (%s), want %d", status, rb, tc.wantStatus)
			}
			if tc.wantStatus != 200 {
				// What the AWS SDKs read: x-amzn-errortype, and __type and
				// message in a JSON body.
				var b struct {
					Type    string `json:"__type"`
					Message string `json:"message"`
					Error   string `json:"error"`
				}
				if err := json.Unmarshal(rb, &b); err != nil || b.Type != tc.wantType || b.Error != tc.wantCode || b.Message == "" {
					t.Errorf("rejection body %s (err %v), want __type %s, error %s and a message", rb, err, tc.wantType, tc.wantCode)
				}
				if hdr.Get("Content-Type") != "application/json" || hdr.Get("X-Amzn-Errortype") != tc.wantType || hdr.Get("X-Tenantgate-Error") != tc.wantCode {
					t.Errorf("rejection headers %v, want content-type application/json, x-amzn-errortype %s, x-tenantgate-error %s", hdr, tc.wantType, tc.wantCode)
				}
			}
			fb.mu.Lock()
			got := fb.signers[tid]
			fb.mu.Unlock()
			if got != tc.wantKey {
				t.Fatalf("upstream saw signer %q, want %q", got, tc.wantKey)
			}
		})
	}
	if len(fb.leaks) != 0 {
		t.Fatalf("caller credentials reached upstream in %v", fb.leaks)
	}
}

// TestEnvoyWithoutModeOverride: if Envoy is misconfigured and ignores the
// mode override, the body never reaches ext_proc and the request goes out
// unsigned, but the caller's credentials were already stripped in the reply
// to the headers, so none of them reach AWS.
func TestEnvoyWithoutModeOverride(t *testing.T) {
	listen, fb := startEnvoy(t, false, true)
	status, rb, _ := sendThroughEnvoy(t, listen, "ent", "no-override", "POST", haikuPath, []byte(`{}`))
	if status != http.StatusForbidden {
		t.Fatalf("upstream accepted an unsigned request: %d %s", status, rb)
	}
	fb.mu.Lock()
	defer fb.mu.Unlock()
	if len(fb.leaks) != 0 {
		t.Fatalf("caller credentials reached upstream in %v", fb.leaks)
	}
	if _, signed := fb.signers["no-override"]; signed {
		t.Fatal("request verified without a signature")
	}
}
