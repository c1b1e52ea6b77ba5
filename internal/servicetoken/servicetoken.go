// Package servicetoken owns verification of the Supabase service_role key:
// an HS256 JWT signed with the project's JWT secret, carrying
// role=service_role and no user (legacy keys carry iss "supabase" and no
// sub). Only HS256 is accepted and only with configured secrets; user
// tokens are verified elsewhere.
package servicetoken

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tenantgate/tenantgate/internal/config"
)

// RoleServiceRole is the Supabase role claim of service keys.
const RoleServiceRole = "service_role"

// LegacyIssuer is the iss of Supabase's legacy API keys.
const LegacyIssuer = "supabase"

// ErrInvalid wraps every refusal of a token; the message says why, never
// the token.
var ErrInvalid = errors.New("invalid service token")

// Claims are the verified claims of a service_role key.
type Claims struct {
	Issuer    string
	Role      string
	Ref       string // Supabase project ref, when present
	ExpiresAt time.Time
}

// Verifier verifies service_role keys. It is immutable and safe for
// concurrent use.
type Verifier struct {
	byIssuer map[string][]byte
	all      []jwt.VerificationKey
	leeway   time.Duration
	now      func() time.Time
}

// New builds a verifier from the configured issuers that have an HS256
// secret. The legacy issuer "supabase" is verified against those secrets.
func New(issuers []config.Issuer, leeway time.Duration) (*Verifier, error) {
	v := &Verifier{byIssuer: map[string][]byte{}, leeway: leeway, now: time.Now}
	for _, is := range issuers {
		if is.HS256Secret == "" {
			continue
		}
		key := []byte(is.HS256Secret)
		v.byIssuer[is.Issuer] = key
		v.all = append(v.all, key)
	}
	if len(v.all) == 0 {
		return nil, errors.New("servicetoken: no issuer has an HS256 secret")
	}
	return v, nil
}

type claims struct {
	jwt.RegisteredClaims
	Role string `json:"role"`
	Ref  string `json:"ref"`
}

// Verify checks signature (HS256 only), issuer, expiry and the service_role
// role. A token that names a user (sub) is not a service key.
func (v *Verifier) Verify(ctx context.Context, token string) (Claims, error) {
	if err := ctx.Err(); err != nil {
		return Claims{}, fmt.Errorf("servicetoken: %w", err)
	}
	var c claims
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{"HS256"}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(v.leeway),
		jwt.WithTimeFunc(v.now),
	)
	_, err := p.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		iss, _ := t.Claims.GetIssuer()
		if key, ok := v.byIssuer[iss]; ok {
			return key, nil
		}
		if iss == LegacyIssuer {
			return jwt.VerificationKeySet{Keys: v.all}, nil
		}
		return nil, errors.New("issuer is not configured")
	})
	if err != nil {
		return Claims{}, fmt.Errorf("%w: %s", ErrInvalid, reason(err))
	}
	if c.Role != RoleServiceRole {
		return Claims{}, fmt.Errorf("%w: role is not %s", ErrInvalid, RoleServiceRole)
	}
	if c.Subject != "" {
		return Claims{}, fmt.Errorf("%w: token names a user", ErrInvalid)
	}
	out := Claims{Issuer: c.Issuer, Role: c.Role, Ref: c.Ref}
	if c.ExpiresAt != nil {
		out.ExpiresAt = c.ExpiresAt.Time
	}
	return out, nil
}

// reason maps a parser error to a short cause without token material.
func reason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "bad signature or algorithm"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "not valid yet"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "required claim missing"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "unverifiable (unknown issuer)"
	default:
		return "rejected"
	}
}

// LooksLikeServiceRole reports whether token's unverified payload claims
// role=service_role. It only routes a token to Verify; it proves nothing.
func LooksLikeServiceRole(token string) bool {
	if strings.Count(token, ".") != 2 || len(token) > 16<<10 {
		return false
	}
	var c claims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &c); err != nil {
		return false
	}
	return c.Role == RoleServiceRole
}
