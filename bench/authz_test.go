package bench

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/extauthz"
	"github.com/tenantgate/tenantgate/internal/apikey"
	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/jwtverify"
	"github.com/tenantgate/tenantgate/internal/store"
	"github.com/tenantgate/tenantgate/internal/store/filestore"
)

const (
	benchIssuer    = "https://bench.supabase.example/auth/v1"
	benchJWTSecret = "bench-hs256-secret-0123456789abcdef-0123"
	benchPath      = "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
)

// authzStack is extauthz.Server wired as in production: the real JWT
// verifier (HS256 issuer, verified-token cache on), the real API key
// authenticator and the embedded demo tenants behind the store cache.
type authzStack struct {
	srv *extauthz.Server
}

func newAuthzStack(b *testing.B) *authzStack {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
store:
  demo: true
auth:
  api_keys: {secret: %q}
  issuers:
    - issuer: %q
      hs256_secret: %q
plans:
  models: {free: ["*"], tier_125_800: ["*"], tier_200_1000: ["*"]}
`, filestore.DemoAPIKeyHMACSecret, benchIssuer, benchJWTSecret)), nil)
	if err != nil {
		b.Fatalf("config: %v", err)
	}
	logger := slog.New(slog.DiscardHandler)
	reg := prometheus.NewRegistry()
	st, err := store.Open(ctx, cfg.Store, logger, reg)
	if err != nil {
		b.Fatalf("store: %v", err)
	}
	b.Cleanup(st.Close)
	ver, err := jwtverify.New(ctx, cfg.Auth, jwtverify.Options{Logger: logger, Registerer: reg})
	if err != nil {
		b.Fatalf("verifier: %v", err)
	}
	keys := apikey.NewAuthenticator(st, cfg.Auth.APIKeys.Secret, apikey.Options{Logger: logger, Registerer: reg})
	go keys.Run(ctx)
	srv, err := extauthz.New(extauthz.Options{
		Auth: cfg.Auth, Plans: cfg.Plans, Service: cfg.Service,
		Logger: logger, Registerer: reg,
	}, ver, keys, st)
	if err != nil {
		b.Fatalf("extauthz: %v", err)
	}
	return &authzStack{srv: srv}
}

// mintHS256 signs a Supabase-style user token. jti makes each token unique.
func mintHS256(b *testing.B, secret, sub, jti string) string {
	b.Helper()
	now := time.Now()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": benchIssuer, "aud": "authenticated", "sub": sub, "role": "authenticated",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "jti": jti,
	}).SignedString([]byte(secret))
	if err != nil {
		b.Fatalf("sign token: %v", err)
	}
	return tok
}

// checkRequest is a CheckRequest as Envoy's ext_authz filter sends it.
func checkRequest(hdrs map[string]string) *authv3.CheckRequest {
	all := map[string]string{
		":method": "POST", ":path": benchPath, ":authority": "bedrock.gateway.example",
		":scheme": "https", "x-request-id": "req-bench", "content-type": "application/json",
	}
	for k, v := range hdrs {
		all[k] = v
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "bench", Method: "POST", Path: benchPath, Host: "bedrock.gateway.example",
			Scheme: "https", Protocol: "HTTP/1.1", Headers: all,
		}},
	}}
}

// mustDecide runs one Check outside the timer and fails the benchmark when
// the decision is not the expected one, so a row never measures the wrong
// path (for example a refusal where an allow was meant).
func mustDecide(b *testing.B, s *authzStack, req *authv3.CheckRequest, wantAllow bool) {
	b.Helper()
	resp, err := s.srv.Check(context.Background(), req)
	if err != nil {
		b.Fatalf("Check: %v", err)
	}
	allowed := resp.GetOkResponse() != nil
	if allowed != wantAllow {
		b.Fatalf("Check allowed=%v, want %v: %v", allowed, wantAllow, resp.GetDeniedResponse().GetBody())
	}
}

// BenchmarkCheck measures one ext_authz decision. The baseline is a user JWT
// seen for the first time (signature verified, then cached); the other rows
// are the same user's token served from the verified-token cache, the demo
// API key with the store cache warm, and a token with a bad signature.
func BenchmarkCheck(b *testing.B) {
	ctx := context.Background()
	b.Run("jwt_first_time", func(b *testing.B) {
		s := newAuthzStack(b)
		warm := checkRequest(map[string]string{"authorization": "Bearer " + mintHS256(b, benchJWTSecret, filestore.DemoAliceUserID, "warm")})
		mustDecide(b, s, warm, true) // store cache warm; only the token is new below
		reqs := make([]*authv3.CheckRequest, b.N)
		for i := range reqs {
			tok := mintHS256(b, benchJWTSecret, filestore.DemoAliceUserID, fmt.Sprintf("first-%d", i))
			reqs[i] = checkRequest(map[string]string{"authorization": "Bearer " + tok})
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := s.srv.Check(ctx, reqs[i]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("jwt_cached", func(b *testing.B) {
		s := newAuthzStack(b)
		req := checkRequest(map[string]string{"authorization": "Bearer " + mintHS256(b, benchJWTSecret, filestore.DemoAliceUserID, "cached")})
		mustDecide(b, s, req, true)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := s.srv.Check(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("api_key_store_cache_warm", func(b *testing.B) {
		s := newAuthzStack(b)
		req := checkRequest(map[string]string{"x-api-key": filestore.DemoAPIKeyPublic + ":" + filestore.DemoAPIKeySecret})
		mustDecide(b, s, req, true)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := s.srv.Check(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("jwt_refused_bad_signature", func(b *testing.B) {
		s := newAuthzStack(b)
		bad := mintHS256(b, "not-the-secret-0123456789abcdef-012345", filestore.DemoAliceUserID, "bad")
		req := checkRequest(map[string]string{"authorization": "Bearer " + bad})
		mustDecide(b, s, req, false)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := s.srv.Check(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
}
