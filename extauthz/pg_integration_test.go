package extauthz

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/internal/apierror"
	"github.com/tenantgate/tenantgate/internal/apikey"
	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/jwtverify"
	"github.com/tenantgate/tenantgate/internal/stack"
	"github.com/tenantgate/tenantgate/internal/store/pgstore"
	"github.com/tenantgate/tenantgate/internal/testpg"
)

const (
	pgAlice    = "11111111-1111-4111-8111-111111111111"
	pgBob      = "22222222-2222-4222-8222-222222222222"
	pgCarol    = "33333333-3333-4333-8333-333333333333"
	pgNobody   = "99999999-9999-4999-8999-999999999999"
	pgAcme     = "a0000000-0000-4000-8000-000000000001"
	pgAliceAcc = "a0000000-0000-4000-8000-000000000011"
	pgBobAcc   = "a0000000-0000-4000-8000-000000000022"
	pgCarolAcc = "a0000000-0000-4000-8000-000000000033"
	pgHMAC     = "integration-hmac-secret-0123456789abcdef"
	pgPK       = "pk_acmeIntegrationKey00000000000000"
	pgPKRev    = "pk_acmeRevokedKey000000000000000000"
	pgSK       = "sk_acmeIntegrationSecret00000000000"
)

// TestCheckAgainstPostgres runs the real verifier (ES256 keys from a local
// JWKS endpoint), the real API key authenticator and the PostgreSQL store
// behind Check, called over gRPC as Envoy does.
func TestCheckAgainstPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Database.
	url := testpg.Start(t)
	if err := pgstore.Migrate(ctx, url, true, nil); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	hash := apikey.Hash(pgHMAC, pgSK)
	seed := fmt.Sprintf(`
INSERT INTO basejump.accounts (id, primary_owner_user_id, name, slug, personal_account) VALUES
  ('%[1]s', '%[5]s', 'Alice', 'alice', true),
  ('%[2]s', '%[6]s', 'Bob', 'bob', true),
  ('%[3]s', '%[7]s', 'Carol', 'carol', true),
  ('%[4]s', '%[5]s', 'Acme', 'acme', false);
INSERT INTO basejump.account_user (user_id, account_id, account_role) VALUES
  ('%[5]s', '%[1]s', 'owner'), ('%[6]s', '%[2]s', 'owner'), ('%[7]s', '%[3]s', 'owner'),
  ('%[5]s', '%[4]s', 'owner'), ('%[6]s', '%[4]s', 'member');
INSERT INTO public.credit_accounts (account_id, tier, balance) VALUES
  ('%[1]s', 'tier_2_20', 5), ('%[3]s', 'tier_2_20', 0), ('%[4]s', 'tier_200_1000', 100);
INSERT INTO public.api_keys (public_key, secret_key_hash, account_id, title, status) VALUES
  ('%[8]s', '%[10]s', '%[4]s', 'acme', 'active'),
  ('%[9]s', '%[10]s', '%[4]s', 'old', 'revoked');
`, pgAliceAcc, pgBobAcc, pgCarolAcc, pgAcme, pgAlice, pgBob, pgCarol, pgPK, pgPKRev, hash)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, seed); err != nil {
		t.Fatalf("seed: %v", err)
	}
	conn.Close(ctx)
	store, err := pgstore.Open(ctx, url, pgstore.Options{QueryTimeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	defer store.Close()

	// Local JWKS endpoint.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rogue, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b64 := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	pad := func(b []byte) []byte { return append(make([]byte, 32-len(b)), b...) }
	jwks, _ := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig",
		"x": b64(pad(key.X.Bytes())), "y": b64(pad(key.Y.Bytes())),
	}}})
	jwksSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("content-type", "application/json")
		w.Write(jwks)
	}))
	defer jwksSrv.Close()
	issuer := jwksSrv.URL + "/auth/v1"

	cfg, err := config.Parse([]byte(fmt.Sprintf(`
auth:
  api_keys: {secret: %q}
  issuers:
    - issuer: %q
      jwks_url: %q
      algorithms: [ES256]
plans:
  models:
    tier_2_20: ["anthropic.claude-3-haiku-*"]
    tier_200_1000: ["*"]
`, pgHMAC, issuer, jwksSrv.URL+"/auth/v1/.well-known/jwks.json")), nil)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	cfg.Service.TrustedPrincipals = []string{workload}

	reg := prometheus.NewRegistry()
	verifier, err := jwtverify.New(ctx, cfg.Auth, jwtverify.Options{Registerer: reg})
	if err != nil {
		t.Fatalf("verifier: %v", err)
	}
	keys := apikey.NewAuthenticator(store, cfg.Auth.APIKeys.Secret, apikey.Options{Registerer: reg})
	srv, err := New(Options{Auth: cfg.Auth, Plans: cfg.Plans, Service: cfg.Service, Registerer: reg,
		Logger: slog.New(slog.DiscardHandler)}, verifier, keys, store)
	if err != nil {
		t.Fatalf("extauthz: %v", err)
	}

	cc := stack.InProcessGRPC(t, srv.Register)
	client := authv3.NewAuthorizationClient(cc)

	token := func(k *ecdsa.PrivateKey, iss, sub string) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
			"iss": iss, "sub": sub, "aud": "authenticated", "role": "authenticated",
			"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
		})
		tok.Header["kid"] = "k1"
		s, err := tok.SignedString(k)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	userAllowed := func(acct, user, tier, role string, ent bool, cred string) want {
		return allowed(acct, user, tier, role, ent, cred)
	}
	cases := []struct {
		name      string
		path      string
		hdrs      map[string]string
		principal string
		want      want
	}{
		{"personal account", pathHaiku, bearer(token(key, issuer, pgAlice)), "", userAllowed(pgAliceAcc, pgAlice, "tier_2_20", "owner", false, "jwt")},
		{"personal tier refuses model", pathSonnet, bearer(token(key, issuer, pgAlice)), "", denied(403, apierror.ModelNotAllowed)},
		{"personal account without plan row is an unknown tier", pathSonnet, bearer(token(key, issuer, pgBob)), "", denied(403, apierror.UnknownTier)},
		{"team owner", pathSonnet, with(bearer(token(key, issuer, pgAlice)), "x-account-id", pgAcme), "", userAllowed(pgAcme, pgAlice, "tier_200_1000", "owner", true, "jwt")},
		{"team member", pathSonnet, with(bearer(token(key, issuer, pgBob)), "x-account-id", pgAcme, "x-account-tier", "free"), "", userAllowed(pgAcme, pgBob, "tier_200_1000", "member", true, "jwt")},
		{"not a member", pathHaiku, with(bearer(token(key, issuer, pgCarol)), "x-account-id", pgAcme), "", denied(403, apierror.NotAMember)},
		{"no personal account", pathHaiku, bearer(token(key, issuer, pgNobody)), "", denied(403, apierror.NoPersonalAccount)},
		{"token signed by another key", pathHaiku, bearer(token(rogue, issuer, pgAlice)), "", denied(401, apierror.InvalidToken)},
		{"token from unconfigured issuer", pathHaiku, bearer(token(key, "https://evil.example/auth/v1", pgAlice)), "", denied(401, apierror.InvalidToken)},
		{"api key", pathSonnet, map[string]string{"x-api-key": pgPK + ":" + pgSK}, "", userAllowed(pgAcme, pgAlice, "tier_200_1000", "owner", true, "api_key")},
		{"api key wrong secret", pathSonnet, map[string]string{"x-api-key": pgPK + ":sk_wrongwrongwrongwrongwrongwrong00"}, "", denied(401, apierror.InvalidAPIKey)},
		{"api key revoked", pathSonnet, map[string]string{"x-api-key": pgPKRev + ":" + pgSK}, "", denied(401, apierror.APIKeyRevoked)},
		{"api key for another account", pathSonnet, map[string]string{"x-api-key": pgPK + ":" + pgSK, "x-account-id": pgAliceAcc}, "", denied(403, apierror.NotAMember)},
		{"trusted workload", pathSonnet, map[string]string{"x-account-id": pgAcme}, workload,
			serviceAllowed(pgAcme, workload, "tier_200_1000", true, "mtls")},
		{"trusted workload, unknown account", pathSonnet, map[string]string{"x-account-id": pgNobody}, workload, denied(403, apierror.AccountNotFound)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := client.Check(ctx, envoyRequest("POST", tc.path, tc.hdrs, tc.principal))
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			assertVerdict(t, decode(t, resp), tc.want)
		})
	}

	// With the database gone, lookups fail closed with 503.
	store.Close()
	resp, err := client.Check(ctx, envoyRequest("POST", pathHaiku, bearer(token(key, issuer, pgCarol)), ""))
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	assertVerdict(t, decode(t, resp), denied(503, apierror.Unavailable))
}
