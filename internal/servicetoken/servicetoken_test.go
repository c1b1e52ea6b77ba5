package servicetoken

import (
	"context"
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
		{Issuer: projectIss, HS256Secret: secret},
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

func TestVerifyLegacyTriesEverySecret(t *testing.T) {
	v, err := New([]config.Issuer{
		{Issuer: "https://one.example", HS256Secret: otherSecret},
		{Issuer: projectIss, HS256Secret: secret},
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	v.now = func() time.Time { return now }
	if _, err := v.Verify(context.Background(), sign(t, jwt.SigningMethodHS256, []byte(secret), legacy(nil))); err != nil {
		t.Fatalf("legacy key signed with the second secret: %v", err)
	}
	// A configured issuer only uses its own secret.
	tok := sign(t, jwt.SigningMethodHS256, []byte(secret), legacy(map[string]any{"iss": "https://one.example"}))
	if _, err := v.Verify(context.Background(), tok); !errors.Is(err, ErrInvalid) {
		t.Fatalf("issuer verified with another issuer's secret: %v", err)
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

func TestNewNeedsSecret(t *testing.T) {
	if _, err := New([]config.Issuer{{Issuer: "https://x.example"}}, 0); err == nil {
		t.Fatal("no HS256 secret accepted")
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
