package extauthz

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tenantgate/tenantgate/internal/apierror"
	"github.com/tenantgate/tenantgate/internal/config"
	"github.com/tenantgate/tenantgate/internal/jwtverify"
)

// Supabase anonymous sign-ins issue tokens with role authenticated and
// is_anonymous true. They are refused with 403 anonymous_user unless the
// issuer allows them; the real verifier decides, on every credential path.
func TestCheckAnonymousUsers(t *testing.T) {
	userToken := func(anon any) string {
		c := jwt.MapClaims{"iss": projectIssuer, "sub": userA, "aud": "authenticated", "role": "authenticated",
			"iat": time.Now().Add(-time.Minute).Unix(), "exp": time.Now().Add(time.Hour).Unix()}
		if anon != nil {
			c["is_anonymous"] = anon
		}
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(jwtSecret))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	anonTok := userToken(true)
	tests := []struct {
		name     string
		allow    bool
		queryTok bool
		token    string
		want     want
	}{
		{name: "anonymous user refused", token: anonTok, want: denied(403, apierror.AnonymousUser)},
		{name: "anonymous user via query token refused", queryTok: true, token: anonTok, want: denied(403, apierror.AnonymousUser)},
		{name: "permanent user", token: userToken(false), want: allowed(acctA, userA, "tier_2_20", "owner", false, "jwt")},
		{name: "no is_anonymous claim", token: userToken(nil), want: allowed(acctA, userA, "tier_2_20", "owner", false, "jwt")},
		{name: "is_anonymous not a boolean", token: userToken("true"), want: denied(401, apierror.InvalidToken)},
		{name: "anonymous user where the issuer allows them", allow: true, token: anonTok, want: allowed(acctA, userA, "tier_2_20", "owner", false, "jwt")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Auth.Issuers = []config.Issuer{{Issuer: projectIssuer, HS256Secret: jwtSecret, AllowAnonymous: tt.allow}}
			cfg.Auth.QueryToken.Enabled = tt.queryTok
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ver, err := jwtverify.New(ctx, cfg.Auth, jwtverify.Options{})
			if err != nil {
				t.Fatal(err)
			}
			srv, err := New(Options{Auth: cfg.Auth, Plans: cfg.Plans, Service: cfg.Service, Logger: slog.New(slog.DiscardHandler)},
				ver, fakeKeys{}, &fakeDir{})
			if err != nil {
				t.Fatal(err)
			}
			path, hdrs := pathHaiku, bearer(tt.token)
			if tt.queryTok {
				path, hdrs = pathHaiku+"?token="+tt.token, nil
			}
			resp, err := srv.Check(ctx, envoyRequest("POST", path, hdrs, ""))
			if err != nil {
				t.Fatal(err)
			}
			assertVerdict(t, decode(t, resp), tt.want)
		})
	}
}
