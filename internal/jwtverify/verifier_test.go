package jwtverify

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/internal/config"
)

// fixture is a verifier with four issuers:
//   - jwksIss: JWKS only (RS256, PS256, ES256, EdDSA), keys rsa1 (alg RS256), ec1, ed1
//   - hsIss:   HS256 only
//   - mixIss:  HS256 secret and the same JWKS
//   - otherIss: JWKS only, key rsa2 (kid other-rsa), RS256 only
type fixture struct {
	v                            *Verifier
	srv, other                   *jwksServer
	clock                        *fakeClock
	reg                          *prometheus.Registry
	jwksIss, hsIss, mixIss, oIss string
}

func newFixture(t *testing.T, cacheSize int) *fixture {
	t.Helper()
	k := getKeys(t)
	f := &fixture{clock: newClock(t0), reg: prometheus.NewRegistry()}
	f.srv = newJWKSServer(t, jwksJSON(rsaJWK("rsa1", "RS256", &k.rsa1.PublicKey), ecJWK("ec1", &k.ec1.PublicKey), edJWK("ed1", k.ed1.Public().(ed25519Pub))))
	f.other = newJWKSServer(t, jwksJSON(rsaJWK("other-rsa", "", &k.rsa2.PublicKey)))
	f.jwksIss = f.srv.URL + "/auth/v1"
	f.hsIss = "https://hs.example.supabase.co/auth/v1"
	f.mixIss = "https://mix.example.supabase.co/auth/v1"
	f.oIss = f.other.URL + "/auth/v1"
	auth := config.Auth{
		Leeway:         dur(30 * time.Second),
		TokenCacheSize: cacheSize,
		Issuers: []config.Issuer{
			{Issuer: f.jwksIss, Audiences: []string{"authenticated", "api"}, JWKSURL: f.srv.URL + "/.well-known/jwks.json",
				JWKSRefresh: dur(time.Hour), UnknownKIDRefetch: dur(30 * time.Second), Algorithms: []string{"RS256", "PS256", "ES256", "EdDSA"}},
			{Issuer: f.hsIss, Audiences: []string{"authenticated"}, HS256Secret: hsSecret},
			{Issuer: f.mixIss, Audiences: []string{"authenticated"}, HS256Secret: hsSecret, JWKS: boolp(true), JWKSURL: f.srv.URL + "/.well-known/jwks.json",
				JWKSRefresh: dur(time.Hour), UnknownKIDRefetch: dur(30 * time.Second), Algorithms: []string{"RS256", "ES256", "EdDSA"}},
			{Issuer: f.oIss, Audiences: []string{"authenticated"}, JWKSURL: f.other.URL + "/.well-known/jwks.json",
				JWKSRefresh: dur(time.Hour), UnknownKIDRefetch: dur(30 * time.Second), Algorithms: []string{"RS256"}},
		},
	}
	f.v = newVerifier(t, auth, f.clock, f.reg)
	waitReady(t, f.v)
	return f
}

// TestVerifyExpiredIsTyped checks that only a correctly signed token whose
// sole fault is its exp is reported as *ExpiredError (with its exp), and
// that the error still wraps ErrInvalidToken.
func TestVerifyExpiredIsTyped(t *testing.T) {
	k := getKeys(t)
	f := newFixture(t, 0)
	rs := jwt.SigningMethodRS256
	kid := map[string]any{"kid": "rsa1"}
	c := stdClaims(f.jwksIss)
	exp := t0.Add(-time.Hour)
	tests := []struct {
		name    string
		token   string
		expired bool
	}{
		{"expired", sign(t, rs, k.rsa1, kid, with(c, "exp", exp.Unix())), true},
		{"expired hs256", sign(t, jwt.SigningMethodHS256, []byte(hsSecret), nil, with(stdClaims(f.hsIss), "exp", exp.Unix())), true},
		{"expired and badly signed", sign(t, rs, k.rsa2, kid, with(c, "exp", exp.Unix())), false},
		{"expired and wrong audience", sign(t, rs, k.rsa1, kid, with(c, "exp", exp.Unix(), "aud", "service")), false},
		{"expired and not yet valid", sign(t, rs, k.rsa1, kid, with(c, "exp", exp.Unix(), "nbf", t0.Add(time.Hour).Unix())), false},
		{"expired without sub", sign(t, rs, k.rsa1, kid, with(c, "exp", exp.Unix(), "sub", nil)), false},
		{"not yet valid", sign(t, rs, k.rsa1, kid, with(c, "nbf", t0.Add(time.Hour).Unix())), false},
		{"bad signature", sign(t, rs, k.rsa2, kid, c), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.v.Verify(context.Background(), tt.token)
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("err = %v, want ErrInvalidToken", err)
			}
			var ee *ExpiredError
			if got := errors.As(err, &ee); got != tt.expired {
				t.Fatalf("errors.As(*ExpiredError) = %v, want %v (err %v)", got, tt.expired, err)
			}
			if tt.expired && !ee.ExpiresAt.Equal(exp) {
				t.Errorf("ExpiresAt = %v, want %v", ee.ExpiresAt, exp)
			}
			if strings.Contains(err.Error(), tt.token) {
				t.Fatal("error contains the token")
			}
		})
	}
}

func TestVerify(t *testing.T) {
	k := getKeys(t)
	f := newFixture(t, 0)
	attacker := newJWKSServer(t, jwksJSON(rsaJWK("evil", "", &k.rsa2.PublicKey)))
	rs := jwt.SigningMethodRS256
	hdr := func(kv ...any) map[string]any {
		m := map[string]any{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	c := stdClaims(f.jwksIss)
	valid := sign(t, rs, k.rsa1, hdr("kid", "rsa1"), c)
	parts := strings.Split(valid, ".")
	tampered := parts[0] + "." + b64([]byte(fmt.Sprintf(`{"iss":%q,"sub":"admin","aud":"authenticated","exp":%d}`, f.jwksIss, t0.Add(time.Hour).Unix()))) + "." + parts[2]
	noneTok := func(iss string) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodNone, stdClaims(iss)).SignedString(jwt.UnsafeAllowNoneSignatureType)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	tests := []struct {
		name    string
		token   string
		wantSub string
		reason  string // substring of the refusal; empty means accepted
	}{
		{"rs256", valid, "user-1", ""},
		{"es256", sign(t, jwt.SigningMethodES256, k.ec1, hdr("kid", "ec1"), c), "user-1", ""},
		{"eddsa", sign(t, jwt.SigningMethodEdDSA, k.ed1, hdr("kid", "ed1"), c), "user-1", ""},
		{"rs256 without kid tries matching keys", sign(t, rs, k.rsa1, hdr("kid", nil), c), "user-1", ""},
		{"hs256 shared secret", sign(t, jwt.SigningMethodHS256, []byte(hsSecret), nil, stdClaims(f.hsIss)), "user-1", ""},
		{"hs256 on mixed issuer", sign(t, jwt.SigningMethodHS256, []byte(hsSecret), nil, stdClaims(f.mixIss)), "user-1", ""},
		{"rs256 on mixed issuer", sign(t, rs, k.rsa1, hdr("kid", "rsa1"), stdClaims(f.mixIss)), "user-1", ""},
		{"second configured audience", sign(t, rs, k.rsa1, hdr("kid", "rsa1"), with(c, "aud", []string{"other", "api"})), "user-1", ""},
		{"expired within leeway", sign(t, rs, k.rsa1, hdr("kid", "rsa1"), with(c, "exp", t0.Add(-20*time.Second).Unix())), "user-1", ""},
		{"iat within leeway", sign(t, rs, k.rsa1, hdr("kid", "rsa1"), with(c, "iat", t0.Add(20*time.Second).Unix())), "user-1", ""},
		{"nbf within leeway", sign(t, rs, k.rsa1, hdr("kid", "rsa1"), with(c, "nbf", t0.Add(20*time.Second).Unix())), "user-1", ""},

		{"alg none", noneTok(f.jwksIss), "", "invalid"},
		{"alg none hs issuer", noneTok(f.hsIss), "", "invalid"},
		{"hs256 with rsa public key on jwks issuer", sign(t, jwt.SigningMethodHS256, rsaPublicPEM(t, &k.rsa1.PublicKey), hdr("kid", "rsa1"), c), "", "invalid"},
		{"hs256 with rsa public key on mixed issuer", sign(t, jwt.SigningMethodHS256, rsaPublicPEM(t, &k.rsa1.PublicKey), hdr("kid", "rsa1"), stdClaims(f.mixIss)), "", "bad signature"},
		{"hs256 wrong secret", sign(t, jwt.SigningMethodHS256, []byte(hsSecret+"x"), nil, stdClaims(f.hsIss)), "", "bad signature"},
		{"rs256 on hs-only issuer", sign(t, rs, k.rsa1, hdr("kid", "rsa1"), stdClaims(f.hsIss)), "", "invalid"},
		{"kid not in set", sign(t, rs, k.rsa1, hdr("kid", "nope"), c), "", "unknown kid"},
		{"tampered payload", tampered, "", "bad signature"},
		{"signed by another key under a known kid", sign(t, rs, k.rsa2, hdr("kid", "rsa1"), c), "", "bad signature"},
		{"other issuer's key and kid", sign(t, rs, k.rsa2, hdr("kid", "other-rsa"), c), "", "unknown kid"},
		{"jku pointing elsewhere", sign(t, rs, k.rsa2, hdr("kid", "evil", "jku", attacker.URL+"/.well-known/jwks.json", "x5u", attacker.URL), c), "", "unknown kid"},
		{"es256 header on rsa key", sign(t, jwt.SigningMethodES256, k.ec1, hdr("kid", "rsa1"), c), "", "key does not allow algorithm"},
		{"ps256 on key pinned to rs256", sign(t, jwt.SigningMethodPS256, k.rsa1, hdr("kid", "rsa1"), c), "", "key does not allow algorithm"},
		{"eddsa header on ec key", sign(t, jwt.SigningMethodEdDSA, k.ed1, hdr("kid", "ec1"), c), "", "key does not allow algorithm"},
		{"algorithm outside issuer allowlist", sign(t, jwt.SigningMethodES256, k.ec1, hdr("kid", "ec1"), stdClaims(f.oIss)), "", "invalid"},
		{"rs384 not allowed", sign(t, jwt.SigningMethodRS384, k.rsa1, hdr("kid", "rsa1"), c), "", "invalid"},
		{"wrong audience", sign(t, rs, k.rsa1, hdr("kid", "rsa1"), with(c, "aud", "service")), "", "wrong audience"},
		{"missing audience", sign(t, rs, k.rsa1, hdr("kid", "rsa1"), with(c, "aud", nil)), "", "invalid"},
		{"missing exp", sign(t, rs, k.rsa1, hdr("kid", "rsa1"), with(c, "exp", nil)), "", "missing required claim"},
		{"expired", sign(t, rs, k.rsa1, hdr("kid", "rsa1"), with(c, "exp", t0.Add(-time.Minute).Unix())), "", "expired"},
		{"future nbf", sign(t, rs, k.rsa1, hdr("kid", "rsa1"), with(c, "nbf", t0.Add(time.Minute).Unix())), "", "not yet valid"},
		{"future iat", sign(t, rs, k.rsa1, hdr("kid", "rsa1"), with(c, "iat", t0.Add(time.Minute).Unix())), "", "issued in the future"},
		{"exp not a number", sign(t, rs, k.rsa1, hdr("kid", "rsa1"), with(c, "exp", "tomorrow")), "", "invalid"},
		{"missing sub", sign(t, rs, k.rsa1, hdr("kid", "rsa1"), with(c, "sub", nil)), "", "missing sub"},
		{"empty sub", sign(t, rs, k.rsa1, hdr("kid", "rsa1"), with(c, "sub", "")), "", "missing sub"},
		{"unknown issuer", sign(t, rs, k.rsa1, hdr("kid", "rsa1"), stdClaims("https://evil.example/auth/v1")), "", "unknown issuer"},
		{"issuer differs only by trailing slash", sign(t, rs, k.rsa1, hdr("kid", "rsa1"), stdClaims(f.jwksIss+"/")), "", "unknown issuer"},
		{"missing iss", sign(t, rs, k.rsa1, hdr("kid", "rsa1"), with(c, "iss", nil)), "", "missing iss"},
		{"iss not a string", sign(t, rs, k.rsa1, hdr("kid", "rsa1"), with(c, "iss", 7)), "", "missing iss"},
		{"kid not a string", sign(t, rs, k.rsa1, hdr("kid", 1), c), "", "malformed kid"},
		{"crit header", sign(t, rs, k.rsa1, hdr("kid", "rsa1", "crit", []string{"exp"}), c), "", "critical"},
		{"empty", "", "", "malformed"},
		{"two segments", parts[0] + "." + parts[1], "", "malformed"},
		{"garbage", "not.a.jwt", "", "malformed"},
		{"oversized", strings.Repeat("a", maxTokenLen+1), "", "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := f.v.Verify(context.Background(), tt.token)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if got.Subject != tt.wantSub || got.Role != "authenticated" || got.Email != "u@example.com" || got.ExpiresAt.IsZero() || len(got.Audience) == 0 {
					t.Fatalf("claims = %+v", got)
				}
				return
			}
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("err = %v, want ErrInvalidToken", err)
			}
			if errors.Is(err, ErrUnavailable) {
				t.Fatalf("refusal reported as unavailable: %v", err)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("err = %q, want reason containing %q", err, tt.reason)
			}
			if tt.token != "" && strings.Contains(err.Error(), tt.token) {
				t.Fatal("error contains the token")
			}
			if got.Subject != "" || got.Issuer != "" {
				t.Fatalf("refused token returned claims %+v", got)
			}
		})
	}
	if n := attacker.total(); n != 0 {
		t.Fatalf("key material fetched from a URL named by the token (%d requests)", n)
	}
	if n := counter(t, f.v.verifications, unknownIssuerLabel, "invalid"); n < 3 {
		t.Fatalf("unknown-issuer refusals counted %v times", n)
	}
	if n := counter(t, f.v.verifications, f.jwksIss, "valid"); n < 5 {
		t.Fatalf("valid verifications for jwks issuer counted %v times", n)
	}
}

func TestVerifyClaims(t *testing.T) {
	k := getKeys(t)
	f := newFixture(t, 0)
	tok := sign(t, jwt.SigningMethodRS256, k.rsa1, map[string]any{"kid": "rsa1"}, with(stdClaims(f.jwksIss), "aud", []string{"authenticated", "x"}, "role", "service_role", "email", "ops@example.com"))
	got, err := f.v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	want := Claims{Subject: "user-1", Issuer: f.jwksIss, Role: "service_role", Email: "ops@example.com", ExpiresAt: t0.Add(time.Hour)}
	if got.Subject != want.Subject || got.Issuer != want.Issuer || got.Role != want.Role || got.Email != want.Email || !got.ExpiresAt.Equal(want.ExpiresAt) ||
		strings.Join(got.Audience, ",") != "authenticated,x" {
		t.Fatalf("claims = %+v, want %+v", got, want)
	}
}

func TestUnknownKIDRefetchRateLimited(t *testing.T) {
	k := getKeys(t)
	f := newFixture(t, 0)
	base := f.srv.count("/.well-known/jwks.json")
	c := stdClaims(f.jwksIss)
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok := sign(t, jwt.SigningMethodRS256, k.rsa1, map[string]any{"kid": fmt.Sprintf("forged-%d", i)}, c)
			if _, err := f.v.Verify(context.Background(), tok); !errors.Is(err, ErrInvalidToken) {
				t.Errorf("forged kid: err = %v", err)
			}
		}()
	}
	wg.Wait()
	if got := f.srv.count("/.well-known/jwks.json") - base; got != 1 {
		t.Fatalf("forged kids caused %d JWKS fetches, want exactly 1", got)
	}

	// The issuer rotates in a new key. Within the interval it is not seen yet.
	f.srv.set(http.StatusOK, jwksJSON(rsaJWK("rsa1", "RS256", &k.rsa1.PublicKey), rsaJWK("rsa-new", "", &k.rsa2.PublicKey)))
	rotated := sign(t, jwt.SigningMethodRS256, k.rsa2, map[string]any{"kid": "rsa-new"}, c)
	f.clock.Advance(10 * time.Second)
	if _, err := f.v.Verify(context.Background(), rotated); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("within refetch interval: err = %v", err)
	}
	if got := f.srv.count("/.well-known/jwks.json") - base; got != 1 {
		t.Fatalf("refetch inside interval: %d fetches", got)
	}
	f.clock.Advance(30 * time.Second)
	if _, err := f.v.Verify(context.Background(), rotated); err != nil {
		t.Fatalf("rotated key after interval: %v", err)
	}
	if got := f.srv.count("/.well-known/jwks.json") - base; got != 2 {
		t.Fatalf("after interval: %d fetches, want 2", got)
	}
}

func TestKeepsLastGoodKeysOnFetchFailure(t *testing.T) {
	k := getKeys(t)
	f := newFixture(t, 0)
	f.srv.set(http.StatusInternalServerError, []byte("boom"))
	f.clock.Advance(time.Minute)
	// An unknown kid forces a refetch, which fails.
	bad := sign(t, jwt.SigningMethodRS256, k.rsa1, map[string]any{"kid": "unknown"}, with(stdClaims(f.jwksIss), "exp", t0.Add(2*time.Hour).Unix()))
	if _, err := f.v.Verify(context.Background(), bad); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("unknown kid with cached keys: err = %v", err)
	}
	if n := counter(t, f.v.fetches, f.jwksIss, "error"); n != 1 {
		t.Fatalf("fetch errors = %v, want 1", n)
	}
	good := sign(t, jwt.SigningMethodRS256, k.rsa1, map[string]any{"kid": "rsa1"}, with(stdClaims(f.jwksIss), "exp", t0.Add(2*time.Hour).Unix()))
	if _, err := f.v.Verify(context.Background(), good); err != nil {
		t.Fatalf("last good keys dropped: %v", err)
	}
	if err := f.v.Ready(context.Background()); err != nil {
		t.Fatalf("Ready with cached keys: %v", err)
	}
}

func TestUnavailableWithoutKeys(t *testing.T) {
	k := getKeys(t)
	srv := newJWKSServer(t, []byte("nope"))
	srv.set(http.StatusServiceUnavailable, []byte("down"))
	iss := srv.URL + "/auth/v1"
	clock := newClock(t0)
	v := newVerifier(t, config.Auth{Leeway: dur(30 * time.Second), Issuers: []config.Issuer{
		{Issuer: iss, Audiences: []string{"authenticated"}, JWKSURL: srv.URL + "/.well-known/jwks.json", JWKSRefresh: dur(time.Hour), UnknownKIDRefetch: dur(time.Hour), Algorithms: []string{"RS256"}},
		{Issuer: "https://hs.example/auth/v1", Audiences: []string{"authenticated"}, HS256Secret: hsSecret},
	}}, clock, nil)
	tok := sign(t, jwt.SigningMethodRS256, k.rsa1, map[string]any{"kid": "rsa1"}, stdClaims(iss))
	for range 3 {
		_, err := v.Verify(context.Background(), tok)
		if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrInvalidToken) {
			t.Fatalf("err = %v, want ErrUnavailable only", err)
		}
	}
	if err := v.Ready(context.Background()); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), iss) {
		t.Fatalf("Ready = %v", err)
	}
	if n := srv.count("/.well-known/jwks.json"); n > 2 {
		t.Fatalf("issuer hammered: %d fetches", n)
	}
	// The key source recovers: the next allowed refetch loads the keys.
	srv.set(http.StatusOK, jwksJSON(rsaJWK("rsa1", "", &k.rsa1.PublicKey)))
	clock.Advance(2 * time.Hour)
	tok = sign(t, jwt.SigningMethodRS256, k.rsa1, map[string]any{"kid": "rsa1"}, with(stdClaims(iss), "exp", t0.Add(3*time.Hour).Unix()))
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	if err := v.Ready(context.Background()); err != nil {
		t.Fatalf("Ready after recovery: %v", err)
	}
}

func TestReadyHS256Only(t *testing.T) {
	v := newVerifier(t, config.Auth{Issuers: []config.Issuer{{Issuer: "https://hs.example/auth/v1", HS256Secret: hsSecret}}}, nil, nil)
	if err := v.Ready(context.Background()); err != nil {
		t.Fatalf("Ready = %v", err)
	}
}

func TestJWKSDiscovery(t *testing.T) {
	k := getKeys(t)
	body := jwksJSON(rsaJWK("rsa1", "", &k.rsa1.PublicKey))
	elsewhere := newJWKSServer(t, body)
	tests := []struct {
		name      string
		jwksURI   func(origin string) string
		wantReady bool
	}{
		{"same origin jwks_uri", func(o string) string { return o + "/auth/v1/keys" }, true},
		{"cross origin jwks_uri refused", func(string) string { return elsewhere.URL + "/.well-known/jwks.json" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newJWKSServer(t, nil)
			srv.set(http.StatusNotFound, []byte("not found"))
			iss := srv.URL + "/auth/v1"
			srv.handle("/auth/v1/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintf(w, `{"issuer":%q,"jwks_uri":%q}`, iss, tt.jwksURI(srv.URL))
			})
			srv.handle("/auth/v1/keys", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(body) })
			before := elsewhere.total()
			v := newVerifier(t, config.Auth{Issuers: []config.Issuer{{Issuer: iss, Audiences: []string{"authenticated"},
				JWKSRefresh: dur(time.Hour), UnknownKIDRefetch: dur(time.Hour), Algorithms: []string{"RS256"}}}}, newClock(t0), nil)
			tok := sign(t, jwt.SigningMethodRS256, k.rsa1, map[string]any{"kid": "rsa1"}, stdClaims(iss))
			_, err := v.Verify(context.Background(), tok)
			if srv.count("/auth/v1/.well-known/jwks.json") == 0 {
				t.Fatal("default JWKS URL {issuer}/.well-known/jwks.json not tried")
			}
			if tt.wantReady {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if srv.count("/auth/v1/keys") == 0 {
					t.Fatal("jwks_uri not fetched")
				}
				return
			}
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("err = %v, want ErrUnavailable", err)
			}
			if elsewhere.total() != before {
				t.Fatal("cross-origin jwks_uri was fetched")
			}
		})
	}
}

func TestJWKSHeadersAndBounds(t *testing.T) {
	k := getKeys(t)
	srv := newJWKSServer(t, jwksJSON(rsaJWK("rsa1", "", &k.rsa1.PublicKey)))
	iss := srv.URL + "/auth/v1"
	big := newJWKSServer(t, nil)
	big.set(http.StatusOK, []byte(`{"keys":[`+strings.Repeat(" ", maxJWKSBody)+`]}`))
	bigIss := big.URL + "/auth/v1"
	v := newVerifier(t, config.Auth{Issuers: []config.Issuer{
		{Issuer: iss, Audiences: []string{"authenticated"}, JWKSURL: srv.URL + "/.well-known/jwks.json", JWKSHeaders: map[string]string{"apikey": "anon-key"},
			JWKSRefresh: dur(time.Hour), UnknownKIDRefetch: dur(time.Hour), Algorithms: []string{"RS256"}},
		{Issuer: bigIss, Audiences: []string{"authenticated"}, JWKSURL: big.URL + "/.well-known/jwks.json",
			JWKSRefresh: dur(time.Hour), UnknownKIDRefetch: dur(time.Hour), Algorithms: []string{"RS256"}},
	}}, newClock(t0), nil)
	if _, err := v.Verify(context.Background(), sign(t, jwt.SigningMethodRS256, k.rsa1, map[string]any{"kid": "rsa1"}, stdClaims(iss))); err != nil {
		t.Fatal(err)
	}
	srv.mu.Lock()
	got := srv.headers[0].Get("apikey")
	srv.mu.Unlock()
	if got != "anon-key" {
		t.Fatalf("apikey header = %q", got)
	}
	_, err := v.Verify(context.Background(), sign(t, jwt.SigningMethodRS256, k.rsa1, map[string]any{"kid": "rsa1"}, stdClaims(bigIss)))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("oversized JWKS: err = %v, want ErrUnavailable", err)
	}
}

func TestCrossOriginRedirectRefused(t *testing.T) {
	k := getKeys(t)
	target := newJWKSServer(t, jwksJSON(rsaJWK("rsa1", "", &k.rsa1.PublicKey)))
	srv := newJWKSServer(t, nil)
	srv.handle("/.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/.well-known/jwks.json", http.StatusFound)
	})
	iss := srv.URL + "/auth/v1"
	v := newVerifier(t, config.Auth{Issuers: []config.Issuer{{Issuer: iss, Audiences: []string{"authenticated"}, JWKSURL: srv.URL + "/.well-known/jwks.json",
		JWKSHeaders: map[string]string{"apikey": "anon-key"}, JWKSRefresh: dur(time.Hour), UnknownKIDRefetch: dur(time.Hour), Algorithms: []string{"RS256"}}}}, newClock(t0), nil)
	_, err := v.Verify(context.Background(), sign(t, jwt.SigningMethodRS256, k.rsa1, map[string]any{"kid": "rsa1"}, stdClaims(iss)))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if target.total() != 0 {
		t.Fatal("redirect to another origin was followed")
	}
}

func TestTokenCache(t *testing.T) {
	k := getKeys(t)
	f := newFixture(t, 2)
	mk := func(sub string, exp time.Time) string {
		return sign(t, jwt.SigningMethodRS256, k.rsa1, map[string]any{"kid": "rsa1"}, with(stdClaims(f.jwksIss), "sub", sub, "exp", exp.Unix()))
	}
	short := mk("short", t0.Add(40*time.Second))
	for range 3 {
		if _, err := f.v.Verify(context.Background(), short); err != nil {
			t.Fatal(err)
		}
	}
	if n := counter(t, f.v.verifications, f.jwksIss, "cached"); n != 2 {
		t.Fatalf("cache hits = %v, want 2", n)
	}
	// Past exp the cached entry is not served; past exp+leeway the token is refused.
	f.clock.Advance(80 * time.Second)
	if _, err := f.v.Verify(context.Background(), short); !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired cached token: err = %v", err)
	}
	if n := counter(t, f.v.verifications, f.jwksIss, "cached"); n != 2 {
		t.Fatalf("expired token served from cache (hits = %v)", n)
	}
	// The cache is keyed by a hash and bounded.
	for _, s := range []string{"a", "b", "c"} {
		tok := mk(s, t0.Add(time.Hour))
		if _, err := f.v.Verify(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.v.cache.len(); n != 2 {
		t.Fatalf("cache holds %d entries, want 2", n)
	}
}

func TestTokenCacheLRU(t *testing.T) {
	c := newTokenCache(2)
	claims := func(s string, exp time.Time) Claims { return Claims{Subject: s, ExpiresAt: exp} }
	k := func(b byte) (key [32]byte) { key[0] = b; return }
	c.put(k(1), claims("1", t0.Add(time.Hour)), t0)
	c.put(k(2), claims("2", t0.Add(time.Hour)), t0)
	if _, ok := c.get(k(1), t0); !ok { // 1 becomes most recent
		t.Fatal("miss for 1")
	}
	c.put(k(3), claims("3", t0.Add(time.Hour)), t0) // evicts 2
	if _, ok := c.get(k(2), t0); ok {
		t.Fatal("least recently used entry not evicted")
	}
	if got, ok := c.get(k(3), t0); !ok || got.Subject != "3" {
		t.Fatal("miss for 3")
	}
	// Entries live at most maxCacheTTL even when exp is later.
	if _, ok := c.get(k(1), t0.Add(maxCacheTTL)); ok {
		t.Fatal("entry served beyond max TTL")
	}
	// Already expired claims are not stored.
	c.put(k(4), claims("4", t0), t0)
	if _, ok := c.get(k(4), t0); ok {
		t.Fatal("expired claims cached")
	}
	var disabled *tokenCache = newTokenCache(0)
	disabled.put(k(5), claims("5", t0.Add(time.Hour)), t0)
	if _, ok := disabled.get(k(5), t0); ok {
		t.Fatal("disabled cache returned an entry")
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		is   config.Issuer
	}{
		{"no key source", config.Issuer{Issuer: "https://a.example", JWKS: boolp(false)}},
		{"short secret", config.Issuer{Issuer: "https://a.example", HS256Secret: "short"}},
		{"hs256 as jwks algorithm", config.Issuer{Issuer: "https://a.example", Algorithms: []string{"HS256"}}},
		{"none as jwks algorithm", config.Issuer{Issuer: "https://a.example", Algorithms: []string{"none"}}},
		{"relative jwks url", config.Issuer{Issuer: "https://a.example", JWKSURL: "/jwks.json"}},
		{"empty issuer", config.Issuer{HS256Secret: hsSecret}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(context.Background(), config.Auth{Issuers: []config.Issuer{tt.is}}, Options{}); err == nil {
				t.Fatal("New accepted a bad issuer")
			}
		})
	}
	dup := config.Issuer{Issuer: "https://a.example", HS256Secret: hsSecret}
	if _, err := New(context.Background(), config.Auth{Issuers: []config.Issuer{dup, dup}}, Options{}); err == nil {
		t.Fatal("New accepted a duplicate issuer")
	}
}

func TestAnonymousUsers(t *testing.T) {
	const strict, lenient = "https://strict.supabase.co/auth/v1", "https://lenient.supabase.co/auth/v1"
	reg := prometheus.NewRegistry()
	v := newVerifier(t, config.Auth{Leeway: dur(30 * time.Second), TokenCacheSize: 100, Issuers: []config.Issuer{
		{Issuer: strict, HS256Secret: hsSecret, JWKS: boolp(false)},
		{Issuer: lenient, HS256Secret: hsSecret, JWKS: boolp(false), AllowAnonymous: true},
	}}, newClock(t0), reg)
	hs := jwt.SigningMethodHS256
	tests := []struct {
		name    string
		claims  jwt.MapClaims
		wantErr error // nil: accepted
		anon    bool
	}{
		{"anonymous user refused", with(stdClaims(strict), "is_anonymous", true), ErrAnonymous, false},
		{"permanent user", with(stdClaims(strict), "is_anonymous", false), nil, false},
		{"no is_anonymous claim", stdClaims(strict), nil, false},
		{"is_anonymous of the wrong type", with(stdClaims(strict), "is_anonymous", "true"), ErrInvalidToken, false},
		{"is_anonymous null", with(stdClaims(strict), "is_anonymous", jsonNull{}), ErrInvalidToken, false},
		{"anonymous user where allowed", with(stdClaims(lenient), "is_anonymous", true), nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := sign(t, hs, []byte(hsSecret), nil, tt.claims)
			for range 2 { // a refusal is not cached; an acceptance is
				c, err := v.Verify(context.Background(), tok)
				if tt.wantErr == nil {
					if err != nil {
						t.Fatalf("Verify: %v", err)
					}
					if c.Anonymous != tt.anon {
						t.Errorf("Anonymous = %v, want %v", c.Anonymous, tt.anon)
					}
					continue
				}
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if tt.wantErr == ErrAnonymous && errors.Is(err, ErrInvalidToken) {
					t.Errorf("anonymous refusal also wraps ErrInvalidToken: %v", err)
				}
			}
		})
	}
	if n := counter(t, v.verifications, strict, "anonymous"); n != 2 {
		t.Errorf("anonymous refusals counted %v times, want 2", n)
	}
}

// jsonNull marshals as JSON null.
type jsonNull struct{}

func (jsonNull) MarshalJSON() ([]byte, error) { return []byte("null"), nil }
