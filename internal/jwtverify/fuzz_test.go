package jwtverify

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/internal/config"
)

// FuzzVerify feeds arbitrary strings to a verifier with HS256 and JWKS
// issuers: it must never panic and never accept.
func FuzzVerify(f *testing.F) {
	k := getKeys(f)
	srv := newJWKSServer(f, jwksJSON(rsaJWK("rsa1", "", &k.rsa1.PublicKey), ecJWK("ec1", &k.ec1.PublicKey), edJWK("ed1", k.ed1.Public().(ed25519Pub))))
	jwksIss := srv.URL + "/auth/v1"
	hsIss := "https://hs.example/auth/v1"
	ctx, cancel := context.WithCancel(context.Background())
	f.Cleanup(cancel)
	v, err := New(ctx, config.Auth{Leeway: dur(30 * time.Second), TokenCacheSize: 16, Issuers: []config.Issuer{
		{Issuer: jwksIss, Audiences: []string{"authenticated"}, JWKSURL: srv.URL + "/.well-known/jwks.json", HS256Secret: hsSecret, JWKS: boolp(true),
			JWKSRefresh: dur(time.Hour), UnknownKIDRefetch: dur(time.Hour), Algorithms: []string{"RS256", "ES256", "EdDSA"}},
		{Issuer: hsIss, Audiences: []string{"authenticated"}, HS256Secret: hsSecret},
	}}, Options{Now: func() time.Time { return t0 }, Registerer: prometheus.NewRegistry()})
	if err != nil {
		f.Fatal(err)
	}
	waitReady(f, v)

	// Seeds: near-valid tokens that must all be refused.
	good := sign(f, jwt.SigningMethodRS256, k.rsa1, map[string]any{"kid": "rsa1"}, stdClaims(jwksIss))
	p := strings.Split(good, ".")
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, stdClaims(hsIss)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	for _, s := range []string{
		"", ".", "..", "a.b.c",
		p[0] + "." + p[1] + ".",
		p[0] + "." + p[1] + "." + strings.ToUpper(p[2]),
		p[0] + "." + b64([]byte(`{"iss":"`+hsIss+`","sub":"x","aud":"authenticated","exp":9999999999}`)) + "." + p[2],
		none,
		sign(f, jwt.SigningMethodHS256, rsaPublicPEM(f, &k.rsa1.PublicKey), map[string]any{"kid": "rsa1"}, stdClaims(jwksIss)),
		sign(f, jwt.SigningMethodHS256, []byte(hsSecret), nil, with(stdClaims(hsIss), "exp", t0.Add(-time.Hour).Unix())),
		sign(f, jwt.SigningMethodRS256, k.rsa2, map[string]any{"kid": "rsa1"}, stdClaims(jwksIss)),
		sign(f, jwt.SigningMethodES256, k.ec1, map[string]any{"kid": "ec1"}, with(stdClaims(jwksIss), "sub", nil)),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		c, err := v.Verify(context.Background(), token)
		if err == nil {
			t.Fatalf("accepted %q as %+v", token, c)
		}
		if !errors.Is(err, ErrInvalidToken) && !errors.Is(err, ErrUnavailable) {
			t.Fatalf("unexpected error class: %v", err)
		}
		if len(token) > 8 && strings.Contains(err.Error(), token) {
			t.Fatal("error contains the token")
		}
	})
}
