// Package servicetoken owns verification of the Supabase service_role key:
// an HS256 JWT signed with the project's JWT secret, carrying
// role=service_role and no user. Keys are accepted only for issuers that
// enable service_role, each verified with that issuer's secret only. A
// legacy key (iss "supabase", ref "<project ref>") is bound to the one
// issuer whose project ref equals its ref claim; one without a ref, or with
// a ref no enabled issuer has, is refused. User tokens are verified
// elsewhere.
package servicetoken

import (
	"bytes"
	"context"
	"encoding/base64"
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
	// Issuer is the configured issuer the key was bound to (for a legacy
	// key, the issuer whose project ref matched), not the raw iss claim.
	Issuer    string
	Role      string
	Ref       string // Supabase project ref, when present
	ExpiresAt time.Time
}

// Verifier verifies service_role keys. It is immutable and safe for
// concurrent use.
type Verifier struct {
	byIssuer map[string]project
	byRef    map[string]project
	leeway   time.Duration
	now      func() time.Time
}

// project is one issuer whose service_role key is accepted.
type project struct {
	issuer string
	ref    string // "" when the issuer has no Supabase project ref
	key    []byte
}

// New builds a verifier from the issuers that enable service_role; each
// needs an HS256 secret, and no two may share a project ref.
func New(issuers []config.Issuer, leeway time.Duration) (*Verifier, error) {
	v := &Verifier{byIssuer: map[string]project{}, byRef: map[string]project{}, leeway: leeway, now: time.Now}
	for _, is := range issuers {
		if !is.ServiceRole {
			continue
		}
		if is.HS256Secret == "" {
			return nil, fmt.Errorf("servicetoken: issuer %q: service_role needs an HS256 secret", is.Issuer)
		}
		p := project{issuer: is.Issuer, ref: is.Ref(), key: []byte(is.HS256Secret)}
		v.byIssuer[is.Issuer] = p
		if p.ref != "" {
			if other, dup := v.byRef[p.ref]; dup {
				return nil, fmt.Errorf("servicetoken: issuers %q and %q have the same project ref", other.issuer, is.Issuer)
			}
			v.byRef[p.ref] = p
		}
	}
	if len(v.byIssuer) == 0 {
		return nil, errors.New("servicetoken: no issuer enables service_role")
	}
	return v, nil
}

type claims struct {
	jwt.RegisteredClaims
	Role string `json:"role"`
	Ref  string `json:"ref"`
}

// bind picks the project a key belongs to from its unverified claims. A
// legacy key is bound by its ref alone, even if an issuer is literally
// named "supabase".
func (v *Verifier) bind(c *claims) (project, error) {
	if c.Issuer == LegacyIssuer {
		if c.Ref == "" {
			return project{}, errors.New("legacy key without a ref claim")
		}
		p, ok := v.byRef[c.Ref]
		if !ok {
			return project{}, errors.New("legacy key of a project that is not enabled")
		}
		return p, nil
	}
	p, ok := v.byIssuer[c.Issuer]
	if !ok {
		return project{}, errors.New("issuer is not enabled for service_role")
	}
	if c.Ref != "" && c.Ref != p.ref {
		return project{}, errors.New("ref claim is not the issuer's project ref")
	}
	return p, nil
}

// Verify checks signature (HS256 only, with the bound issuer's secret),
// issuer binding, expiry and the service_role role. A token that names a
// user (sub) is not a service key.
func (v *Verifier) Verify(ctx context.Context, token string) (Claims, error) {
	if err := ctx.Err(); err != nil {
		return Claims{}, fmt.Errorf("servicetoken: %w", err)
	}
	var c claims
	var bound project
	var bindErr error
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{"HS256"}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(v.leeway),
		jwt.WithTimeFunc(v.now),
	)
	_, err := p.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) {
		// The claims are decoded (not yet trusted) before the key is chosen.
		bound, bindErr = v.bind(&c)
		if bindErr != nil {
			return nil, bindErr
		}
		return bound.key, nil
	})
	if bindErr != nil {
		return Claims{}, fmt.Errorf("%w: %s", ErrInvalid, bindErr)
	}
	if err != nil {
		return Claims{}, fmt.Errorf("%w: %s", ErrInvalid, reason(err))
	}
	if c.Role != RoleServiceRole {
		return Claims{}, fmt.Errorf("%w: role is not %s", ErrInvalid, RoleServiceRole)
	}
	if c.Subject != "" {
		return Claims{}, fmt.Errorf("%w: token names a user", ErrInvalid)
	}
	out := Claims{Issuer: bound.issuer, Role: c.Role, Ref: c.Ref}
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
//
// It runs on every bearer request, so a payload that cannot name the role
// (no "service_role" and no JSON escape in it) is answered without the
// JSON parse; every other token takes the full unverified parse.
func LooksLikeServiceRole(token string) bool {
	if strings.Count(token, ".") != 2 || len(token) > 16<<10 {
		return false
	}
	_, rest, _ := strings.Cut(token, ".")
	seg, _, _ := strings.Cut(rest, ".")
	payload, err := base64.RawURLEncoding.DecodeString(seg) // as jwt.Parser decodes it
	if err != nil {
		return false
	}
	if !bytes.Contains(payload, []byte(RoleServiceRole)) && !bytes.Contains(payload, []byte{'\\'}) {
		return false
	}
	var c claims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &c); err != nil {
		return false
	}
	return c.Role == RoleServiceRole
}
