package servicetoken

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tenantgate/tenantgate/internal/config"
)

const (
	secret      = "super-secret-jwt-token-with-at-least-32-characters-long"
	otherSecret = "another-secret-that-is-also-at-least-32-characters"
	projectIss  = "https://abcd.supabase.co/auth/v1"
)

var now = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func sign(t testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

func legacy(extra map[string]any) jwt.MapClaims {
	c := jwt.MapClaims{"iss": "supabase", "ref": "abcd", "role": "service_role",
		"iat": now.Add(-time.Hour).Unix(), "exp": now.Add(10 * 365 * 24 * time.Hour).Unix()}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func newVerifier(t testing.TB) *Verifier {
	t.Helper()
	v, err := New([]config.Issuer{
		{Issuer: "https://jwks-only.example"},
		{Issuer: projectIss, HS256Secret: secret, ServiceRole: true},
	}, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	v.now = func() time.Time { return now }
	return v
}

func TestVerify(t *testing.T) {
	v := newVerifier(t)
	hs := jwt.SigningMethodHS256
	tests := []struct {
		name  string
		token string
		ok    bool
	}{
		{"legacy service_role key", sign(t, hs, []byte(secret), legacy(nil)), true},
		{"configured issuer", sign(t, hs, []byte(secret), legacy(map[string]any{"iss": projectIss})), true},
		{"expired within leeway", sign(t, hs, []byte(secret), legacy(map[string]any{"exp": now.Add(-10 * time.Second).Unix()})), true},
		{"expired", sign(t, hs, []byte(secret), legacy(map[string]any{"exp": now.Add(-time.Hour).Unix()})), false},
		{"no exp", sign(t, hs, []byte(secret), legacy(map[string]any{"exp": nil})), false},
		{"not yet valid", sign(t, hs, []byte(secret), legacy(map[string]any{"nbf": now.Add(time.Hour).Unix()})), false},
		{"wrong secret", sign(t, hs, []byte(otherSecret), legacy(nil)), false},
		{"anon role", sign(t, hs, []byte(secret), legacy(map[string]any{"role": "anon"})), false},
		{"authenticated user", sign(t, hs, []byte(secret), legacy(map[string]any{"role": "authenticated", "sub": "u"})), false},
		{"service_role naming a user", sign(t, hs, []byte(secret), legacy(map[string]any{"sub": "11111111-1111-1111-1111-111111111111"})), false},
		{"no role", sign(t, hs, []byte(secret), legacy(map[string]any{"role": nil})), false},
		{"unknown issuer", sign(t, hs, []byte(secret), legacy(map[string]any{"iss": "https://evil.example"})), false},
		{"no issuer", sign(t, hs, []byte(secret), legacy(map[string]any{"iss": nil})), false},
		{"issuer without HS256 secret", sign(t, hs, []byte(secret), legacy(map[string]any{"iss": "https://jwks-only.example"})), false},
		{"legacy key of another project, same secret", sign(t, hs, []byte(secret), legacy(map[string]any{"ref": "efgh"})), false},
		{"legacy key without ref", sign(t, hs, []byte(secret), legacy(map[string]any{"ref": nil})), false},
		{"legacy key with empty ref", sign(t, hs, []byte(secret), legacy(map[string]any{"ref": ""})), false},
		{"legacy key with ref of another case", sign(t, hs, []byte(secret), legacy(map[string]any{"ref": "ABCD"})), false},
		{"configured issuer naming another project's ref", sign(t, hs, []byte(secret), legacy(map[string]any{"iss": projectIss, "ref": "efgh"})), false},
		{"HS512 refused", sign(t, jwt.SigningMethodHS512, []byte(secret), legacy(nil)), false},
		{"alg none refused", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, legacy(nil)), false},
		{"garbage", "not.a.jwt", false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := v.Verify(context.Background(), tt.token)
			if tt.ok {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if c.Role != RoleServiceRole || c.ExpiresAt.IsZero() {
					t.Errorf("claims = %+v", c)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			if tt.token != "" && strings.Contains(err.Error(), tt.token) {
				t.Error("error message contains the token")
			}
		})
	}
}

// A legacy key (iss "supabase") is bound to the one issuer whose project
// ref equals its ref claim, and verified with that issuer's secret only.
func TestVerifyLegacyBoundToProjectRef(t *testing.T) {
	const (
		issA = "https://aaaa.supabase.co/auth/v1"
		issB = "https://bbbb.supabase.co/auth/v1"
	)
	hs := jwt.SigningMethodHS256
	keyOf := func(ref, key string) string {
		return sign(t, hs, []byte(key), legacy(map[string]any{"ref": ref}))
	}
	tests := []struct {
		name    string
		issuers []config.Issuer
		token   string
		wantIss string // "" = refused
	}{
		{"project A's key at a gateway for project B, same secret",
			[]config.Issuer{{Issuer: issB, HS256Secret: secret, ServiceRole: true}},
			keyOf("aaaa", secret), ""},
		{"project B's key at a gateway for project B",
			[]config.Issuer{{Issuer: issB, HS256Secret: secret, ServiceRole: true}},
			keyOf("bbbb", secret), issB},
		{"both projects, each key binds to its own issuer (A)",
			[]config.Issuer{{Issuer: issA, HS256Secret: otherSecret, ServiceRole: true}, {Issuer: issB, HS256Secret: secret, ServiceRole: true}},
			keyOf("aaaa", otherSecret), issA},
		{"both projects, each key binds to its own issuer (B)",
			[]config.Issuer{{Issuer: issA, HS256Secret: otherSecret, ServiceRole: true}, {Issuer: issB, HS256Secret: secret, ServiceRole: true}},
			keyOf("bbbb", secret), issB},
		{"A's ref signed with B's secret",
			[]config.Issuer{{Issuer: issA, HS256Secret: otherSecret, ServiceRole: true}, {Issuer: issB, HS256Secret: secret, ServiceRole: true}},
			keyOf("aaaa", secret), ""},
		{"service_role enabled for A only, B's key refused even with A's secret",
			[]config.Issuer{{Issuer: issA, HS256Secret: secret, ServiceRole: true}, {Issuer: issB, HS256Secret: secret}},
			keyOf("bbbb", secret), ""},
		{"service_role enabled for A only, B's own issuer token refused",
			[]config.Issuer{{Issuer: issA, HS256Secret: secret, ServiceRole: true}, {Issuer: issB, HS256Secret: secret}},
			sign(t, hs, []byte(secret), legacy(map[string]any{"iss": issB, "ref": nil})), ""},
		{"explicit project_ref for a custom domain",
			[]config.Issuer{{Issuer: "https://auth.example.com/auth/v1", ProjectRef: "cccc", HS256Secret: secret, ServiceRole: true}},
			keyOf("cccc", secret), "https://auth.example.com/auth/v1"},
		{"custom domain without project_ref binds no legacy key",
			[]config.Issuer{{Issuer: "https://auth.example.com/auth/v1", HS256Secret: secret, ServiceRole: true}},
			keyOf("cccc", secret), ""},
		{"an issuer literally named supabase does not unbind legacy keys",
			[]config.Issuer{{Issuer: "supabase", HS256Secret: secret, ServiceRole: true}, {Issuer: issB, HS256Secret: otherSecret, ServiceRole: true}},
			keyOf("aaaa", secret), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := New(tt.issuers, 0)
			if err != nil {
				t.Fatal(err)
			}
			v.now = func() time.Time { return now }
			c, err := v.Verify(context.Background(), tt.token)
			if tt.wantIss == "" {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("accepted (claims %+v, err %v), want ErrInvalid", c, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if c.Issuer != tt.wantIss {
				t.Errorf("bound to issuer %q, want %q", c.Issuer, tt.wantIss)
			}
		})
	}
}

func TestVerifyCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := newVerifier(t).Verify(ctx, sign(t, jwt.SigningMethodHS256, []byte(secret), legacy(nil)))
	if err == nil || errors.Is(err, ErrInvalid) {
		t.Fatalf("canceled context: err = %v, want a context error that is not ErrInvalid", err)
	}
}

func TestNewNeedsAnEnabledIssuerWithSecret(t *testing.T) {
	for name, issuers := range map[string][]config.Issuer{
		"no HS256 secret":               {{Issuer: "https://x.example", ServiceRole: true}},
		"service_role enabled nowhere":  {{Issuer: "https://x.example", HS256Secret: secret}},
		"two issuers with the same ref": {{Issuer: "https://abcd.supabase.co/auth/v1", HS256Secret: secret, ServiceRole: true}, {Issuer: "https://y.example", ProjectRef: "abcd", HS256Secret: secret, ServiceRole: true}},
	} {
		if _, err := New(issuers, 0); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestLooksLikeServiceRole(t *testing.T) {
	tests := []struct {
		name  string
		token string
		want  bool
	}{
		{"service role (any signature)", sign(t, jwt.SigningMethodHS256, []byte("x"), legacy(nil)), true},
		{"user token", sign(t, jwt.SigningMethodHS256, []byte("x"), jwt.MapClaims{"sub": "u", "role": "authenticated"}), false},
		{"no role", sign(t, jwt.SigningMethodHS256, []byte("x"), jwt.MapClaims{"sub": "u"}), false},
		{"not a jwt", "abc", false},
		{"two segments", "a.b", false},
		{"bad base64", "a.b.c", false},
		{"huge", strings.Repeat("a", 20000) + ".b.c", false},
	}
	for _, tt := range tests {
		if got := LooksLikeServiceRole(tt.token); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

func FuzzVerify(f *testing.F) {
	v := newVerifier(f)
	f.Add(sign(f, jwt.SigningMethodHS256, []byte(secret), legacy(nil)))
	f.Add("eyJhbGciOiJub25lIn0.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, token string) {
		_ = LooksLikeServiceRole(token)
		c, err := v.Verify(context.Background(), token)
		if err == nil && c.Role != RoleServiceRole {
			t.Fatalf("accepted a token with role %q", c.Role)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("unexpected error class: %v", err)
		}
	})
}

// looksLikeServiceRoleReference is LooksLikeServiceRole as it was before its
// fast path: the full unverified parse of every token.
func looksLikeServiceRoleReference(token string) bool {
	if strings.Count(token, ".") != 2 || len(token) > 16<<10 {
		return false
	}
	var c claims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &c); err != nil {
		return false
	}
	return c.Role == RoleServiceRole
}

// TestLooksLikeServiceRoleFastPath: a user's bearer token is routed without
// a JSON parse (it runs on every request), and the answer never differs
// from the full unverified parse, escaped role names included.
func TestLooksLikeServiceRoleFastPath(t *testing.T) {
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	hdr := b64(`{"alg":"HS256","typ":"JWT"}`)
	user := sign(t, jwt.SigningMethodHS256, []byte("x"), jwt.MapClaims{
		"sub": "11111111-1111-4111-8111-111111111111", "role": "authenticated", "aud": "authenticated",
		"iss": "https://project.supabase.co/auth/v1", "exp": 4102444800, "email": "a@example.test",
	})
	tokens := map[string]string{
		"user":                  user,
		"service role":          sign(t, jwt.SigningMethodHS256, []byte("x"), legacy(nil)),
		"escaped role":          hdr + "." + b64(`{"role":"service\u005frole"}`) + ".sig",
		"role in another claim": hdr + "." + b64(`{"role":"anon","note":"service_role"}`) + ".sig",
		"bad header":            "!!." + b64(`{"role":"service_role"}`) + ".sig",
		"header not json":       b64("x") + "." + b64(`{"role":"service_role"}`) + ".sig",
		"payload not json":      hdr + "." + b64(`service_role`) + ".sig",
		"padded payload":        hdr + "." + base64.URLEncoding.EncodeToString([]byte(`{"role":"service_role"}`)) + ".sig",
		"role not a string":     hdr + "." + b64(`{"role":["service_role"]}`) + ".sig",
		"empty":                 "..",
	}
	for name, tok := range tokens {
		if got, want := LooksLikeServiceRole(tok), looksLikeServiceRoleReference(tok); got != want {
			t.Errorf("%s: got %v, the full parse says %v", name, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = LooksLikeServiceRole(user) }); n > 1 {
		t.Errorf("a user token costs %.0f allocations, want at most 1 (the decoded payload)", n)
	}
}

func FuzzLooksLikeServiceRole(f *testing.F) {
	f.Add(sign(f, jwt.SigningMethodHS256, []byte("x"), legacy(nil)))
	f.Add("eyJhbGciOiJub25lIn0.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.")
	f.Add("eyJhbGciOiJub25lIn0.eyJyb2xlIjoic2VydmljZVx1MDA1ZnJvbGUifQ.x")
	f.Fuzz(func(t *testing.T, token string) {
		if got, want := LooksLikeServiceRole(token), looksLikeServiceRoleReference(token); got != want {
			t.Fatalf("LooksLikeServiceRole(%q) = %v, the full parse says %v", token, got, want)
		}
	})
}
