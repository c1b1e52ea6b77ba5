package app

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/identity"
	"github.com/tenantgate/tenantgate/internal/store/filestore"
)

const (
	testIssuer = "https://project.supabase.co/auth/v1"
	testSecret = "test-jwt-secret-0123456789abcdef0123456789"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func testConfig(t *testing.T, extra string) *config.Config {
	t.Helper()
	y := `
server:
  grpc_listen: 127.0.0.1:0
  http_listen: 127.0.0.1:0
  shutdown_grace: 5s
  shutdown_drain: 0s
store:
  demo: true
plans:
  models: {free: ["*"], tier_125_800: ["*"], tier_200_1000: ["*"]}
auth:
  issuers:
    - issuer: ` + testIssuer + `
` + extra
	env := map[string]string{config.EnvSupabaseJWTSecret: testSecret}
	cfg, err := config.Parse([]byte(y), func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func staticAWS() *aws.Config {
	return &aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIDPLATFORM", "platform-secret", ""),
	}
}

type running struct {
	app  *App
	conn *grpc.ClientConn
	logs *lockedBuffer
	stop func() error
}

func startApp(t *testing.T, cfg *config.Config) *running {
	t.Helper()
	return startAppWith(t, cfg, Options{AWSConfig: staticAWS()})
}

func startAppWith(t *testing.T, cfg *config.Config, opts Options) *running {
	t.Helper()
	logs := &lockedBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	opts.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts.ReadyInterval = 20 * time.Millisecond
	a, err := New(ctx, cfg, opts)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	conn, err := grpc.NewClient(a.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(10 * time.Second):
				t.Error("Run did not return")
			}
		})
		return runErr
	}
	t.Cleanup(func() {
		_ = stop()
		conn.Close()
	})
	return &running{app: a, conn: conn, logs: logs, stop: stop}
}

func checkRequest(path string, hdrs map[string]string) *authv3.CheckRequest {
	all := map[string]string{":method": "POST", ":path": path, ":authority": "bedrock.gateway.example", "content-type": "application/json"}
	for k, v := range hdrs {
		all[k] = v
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "POST", Path: path, Host: "bedrock.gateway.example", Scheme: "https", Headers: all,
		}},
	}}
}

func userToken(t *testing.T, secret, sub string) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": testIssuer, "sub": sub, "aud": "authenticated", "role": "authenticated",
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func okHeaders(resp *authv3.CheckResponse) map[string]string {
	out := map[string]string{}
	for _, h := range resp.GetOkResponse().GetHeaders() {
		out[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
	}
	return out
}

func TestAppAnswersCheckWithEmbeddedTenants(t *testing.T) {
	r := startApp(t, testConfig(t, ""))
	client := authv3.NewAuthorizationClient(r.conn)
	const path = "/model/anthropic.claude-3-haiku-20240307-v1:0/invoke"
	demoKey := filestore.DemoAPIKeyPublic + ":" + filestore.DemoAPIKeySecret

	tests := []struct {
		name        string
		hdrs        map[string]string
		wantAllowed bool
		wantAccount string
		wantEnt     string
		wantHTTP    int32
	}{
		{name: "alice jwt, personal account", hdrs: map[string]string{"authorization": "Bearer " + userToken(t, testSecret, filestore.DemoAliceUserID)},
			wantAllowed: true, wantAccount: filestore.DemoAliceAccountID, wantEnt: "false"},
		{name: "bob jwt, acme team", hdrs: map[string]string{"authorization": "Bearer " + userToken(t, testSecret, filestore.DemoBobUserID), "x-account-id": filestore.DemoAcmeAccountID},
			wantAllowed: true, wantAccount: filestore.DemoAcmeAccountID, wantEnt: "true"},
		{name: "demo api key", hdrs: map[string]string{"x-api-key": demoKey},
			wantAllowed: true, wantAccount: filestore.DemoAcmeAccountID, wantEnt: "true"},
		{name: "token signed with another secret", hdrs: map[string]string{"authorization": "Bearer " + userToken(t, "another-secret-0123456789abcdef0123456789", filestore.DemoAliceUserID)},
			wantHTTP: 401},
		{name: "no credential", hdrs: nil, wantHTTP: 401},
		{name: "carol not a member of acme", hdrs: map[string]string{"authorization": "Bearer " + userToken(t, testSecret, filestore.DemoCarolUserID), "x-account-id": filestore.DemoAcmeAccountID},
			wantHTTP: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			resp, err := client.Check(ctx, checkRequest(path, tt.hdrs))
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			allowed := resp.GetStatus().GetCode() == int32(codes.OK)
			if allowed != tt.wantAllowed {
				t.Fatalf("allowed = %v, want %v: %v", allowed, tt.wantAllowed, resp)
			}
			if !allowed {
				if got := int32(resp.GetDeniedResponse().GetStatus().GetCode()); got != tt.wantHTTP {
					t.Errorf("denied HTTP status = %d, want %d", got, tt.wantHTTP)
				}
				return
			}
			h := okHeaders(resp)
			if h[identity.HeaderAccountID] != tt.wantAccount || h[identity.HeaderEnterprise] != tt.wantEnt {
				t.Errorf("identity headers = %v", h)
			}
			id, err := identity.FromStruct(resp.GetDynamicMetadata())
			if err != nil || id.AccountID != tt.wantAccount {
				t.Errorf("dynamic metadata = %v (%v)", id, err)
			}
		})
	}

	// Every service is registered and reported healthy once ready.
	hc := healthpb.NewHealthClient(r.conn)
	for _, svc := range []string{"", authv3.Authorization_ServiceDesc.ServiceName, extprocv3.ExternalProcessor_ServiceDesc.ServiceName} {
		deadline := time.Now().Add(5 * time.Second)
		for {
			resp, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc})
			if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("health %q: %v %v", svc, resp, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	base := "http://" + r.app.HTTPAddr().String()
	if code, body := httpGet(t, base+"/readyz"); code != 200 {
		t.Errorf("readyz = %d %s", code, body)
	}
	_, metrics := httpGet(t, base+"/metrics")
	for _, want := range []string{
		"tenantgate_extauthz_decisions_total",
		"tenantgate_jwt_verifications_total",
		"tenantgate_apikey_authentications_total",
		`tenantgate_grpc_requests_total{code="OK",method="/envoy.service.auth.v3.Authorization/Check"}`,
		"tenantgate_store_cache_hits_total",
		"go_goroutines",
		"process_",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	if err := r.stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	logs := r.logs.String()
	for _, want := range []string{`"msg":"tenantgate serving"`, `"store":"demo"`, testIssuer, `"msg":"tenantgate stopped"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q", want)
		}
	}
	for _, secret := range []string{testSecret, filestore.DemoAPIKeySecret, "platform-secret"} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain a secret")
		}
	}
}

func TestAppExtProcSignsWithPlatformCredentials(t *testing.T) {
	r := startApp(t, testConfig(t, ""))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stream, err := extprocv3.NewExternalProcessorClient(r.conn).Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	id := identity.Identity{AccountID: filestore.DemoAliceAccountID, UserID: filestore.DemoAliceUserID, Tier: "free", Role: "owner", Principal: identity.PrincipalUser, Credential: "jwt"}
	req := &extprocv3.ProcessingRequest{
		Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{
			Headers:     headerMap(map[string]string{":method": "POST", ":path": "/model/amazon.nova-lite-v1%3A0/converse", ":authority": "bedrock.gateway.example", "authorization": "Bearer user-token"}),
			EndOfStream: true,
		}},
		MetadataContext: metadataFor(id),
	}
	if err := stream.Send(req); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	hm := resp.GetRequestHeaders().GetResponse().GetHeaderMutation()
	if hm == nil {
		t.Fatalf("no header mutation: %v", resp)
	}
	var auth, host string
	for _, h := range hm.GetSetHeaders() {
		switch strings.ToLower(h.GetHeader().GetKey()) {
		case "authorization":
			auth = string(h.GetHeader().GetRawValue())
		case ":authority", "host":
			host = string(h.GetHeader().GetRawValue())
		}
	}
	if host != "bedrock-runtime.us-east-1.amazonaws.com" {
		t.Errorf("upstream host = %q", host)
	}
	if !strings.Contains(auth, "AWS4-HMAC-SHA256 Credential=AKIDPLATFORM/") || !strings.Contains(auth, "/us-east-1/bedrock/aws4_request") {
		t.Errorf("authorization = %q, want a SigV4 signature with the platform key", auth)
	}
}

func headerMap(h map[string]string) *corev3.HeaderMap {
	hm := &corev3.HeaderMap{}
	for k, v := range h {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: k, RawValue: []byte(v)})
	}
	return hm
}

func metadataFor(id identity.Identity) *corev3.Metadata {
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{identity.MetadataNamespace: id.Struct()}}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestNewFailsCleanly(t *testing.T) {
	cfg := testConfig(t, "")
	// Occupy the gRPC port: New must fail and release what it opened.
	first, err := New(context.Background(), cfg, Options{AWSConfig: staticAWS()})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	busy := *cfg
	busy.Server.GRPCListen = first.GRPCAddr().String()
	if _, err := New(context.Background(), &busy, Options{AWSConfig: staticAWS()}); err == nil {
		t.Fatal("want a listen error")
	}
	if _, err := New(context.Background(), nil, Options{}); err == nil {
		t.Fatal("want an error for a nil config")
	}
	noCreds := *staticAWS()
	noCreds.Credentials = nil
	if _, err := New(context.Background(), cfg, Options{AWSConfig: &noCreds}); err == nil {
		t.Fatal("want an error without platform credentials")
	}
}

// New refuses a configuration without a database, a tenants file or an
// explicit demo: it never falls back to the public demo tenants and key.
func TestNewRefusesWithoutStore(t *testing.T) {
	cfg := testConfig(t, "")
	cfg.Store.Demo = false
	a, err := New(context.Background(), cfg, Options{AWSConfig: staticAWS()})
	if err == nil {
		a.Close()
		t.Fatal("New served without a store")
	}
	if !errors.Is(err, config.ErrNoStore) || !strings.Contains(err.Error(), "--demo") {
		t.Fatalf("error %q does not say what to set", err)
	}
}

func TestStoreKind(t *testing.T) {
	tests := []struct {
		cfg  config.Store
		want string
	}{
		{config.Store{DatabaseURL: "postgres://u:p@h/db"}, "postgres"},
		{config.Store{TenantsFile: "/etc/t.yaml"}, "tenants-file"},
		{config.Store{Demo: true}, "demo"},
		{config.Store{}, "none"},
		{config.Store{Demo: true, TenantsFile: "/etc/t.yaml"}, "none"},
	}
	for _, tt := range tests {
		if got := StoreKind(tt.cfg); got != tt.want {
			t.Errorf("StoreKind(%+v) = %q, want %q", tt.cfg, got, tt.want)
		}
	}
}

func TestMaxRecvMsgSize(t *testing.T) {
	tests := []struct {
		body int64
		want int
	}{
		{0, 4 << 20},
		{1 << 20, 4 << 20},
		{10 << 20, 11 << 20},
		{4 << 30, 1 << 30},
	}
	for _, tt := range tests {
		if got := maxRecvMsgSize(tt.body); got != tt.want {
			t.Errorf("maxRecvMsgSize(%d) = %d, want %d", tt.body, got, tt.want)
		}
	}
}

// An ext_proc stream open when SIGTERM arrives keeps being served while the
// server drains; readiness reports draining meanwhile.
func TestAppDrainsOpenExtProcStream(t *testing.T) {
	r := startApp(t, testConfig(t, ""))
	base := "http://" + r.app.HTTPAddr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := extprocv3.NewExternalProcessorClient(r.conn).Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&extprocv3.ProcessingRequest{
		Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{
			Headers:     headerMap(map[string]string{":method": "GET", ":path": "/async-invoke?maxResults=1", ":authority": "bedrock.gateway.example"}),
			EndOfStream: true,
		}},
		MetadataContext: metadataFor(identity.Identity{AccountID: filestore.DemoAliceAccountID, UserID: filestore.DemoAliceUserID, Tier: "free", Role: "owner", Principal: identity.PrincipalUser, Credential: "jwt"}),
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatalf("first response: %v", err)
	}

	stopped := make(chan error, 1)
	go func() { stopped <- r.stop() }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, body := httpGetNoFail(base + "/readyz")
		if code == 503 && strings.Contains(body, "draining") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz never reported draining: %d %s", code, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The stream is still served: a trailers message gets its answer.
	if err := stream.Send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestTrailers{RequestTrailers: &extprocv3.HttpTrailers{}}}); err != nil {
		t.Fatalf("send during drain: %v", err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatalf("recv during drain: %v", err)
	}
	select {
	case err := <-stopped:
		t.Fatalf("Run returned while a stream was open: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := stream.Recv(); err != nil {
			break
		}
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the stream ended")
	}
}

func httpGetNoFail(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A configuration whose plans leave tiers unlisted starts, but says at start
// which accounts will be refused.
func TestStartWarnsAboutUnlistedTiers(t *testing.T) {
	tests := []struct {
		name, plans string
		want        []string
		notWant     string
	}{
		{"no tier listed", "plans: {enterprise_tiers: []}\n", []string{"plans.models lists no tier", "unknown_tier"}, ""},
		{"enterprise tier not listed", "plans: {enterprise_tiers: [tier_9], models: {free: ['*']}}\n", []string{`enterprise tier \"tier_9\"`}, "plans.models lists no tier"},
		{"every tier listed", "plans: {enterprise_tiers: [tier_9], models: {free: ['*'], tier_9: ['*']}}\n", nil, "unknown_tier"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t, "")
			p, err := config.Parse([]byte(tt.plans), nil)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Plans = p.Plans
			r := startApp(t, cfg)
			logs := r.logs.String()
			for _, w := range tt.want {
				if !strings.Contains(logs, w) {
					t.Errorf("start logs lack %q:\n%s", w, logs)
				}
			}
			if tt.notWant != "" && strings.Contains(logs, tt.notWant) {
				t.Errorf("start logs contain %q:\n%s", tt.notWant, logs)
			}
		})
	}
}
