// Package jwtverify owns JWT verification for configured issuers: HS256
// shared secrets, JWKS key sets fetched only from configured URLs, the
// algorithm allowlist, time claims with leeway, and the verified-token cache.
package jwtverify

import (
	"errors"
	"fmt"
	"time"
)

// Claims are the verified claims tenantgate uses.
type Claims struct {
	Subject  string
	Issuer   string
	Audience []string
	Role     string // Supabase "role" claim (authenticated, anon, service_role)
	Email    string
	// Anonymous is the Supabase is_anonymous claim; true only for issuers
	// that allow anonymous users (others refuse such tokens).
	Anonymous bool
	ExpiresAt time.Time
}

// ErrInvalidToken wraps every refusal of a token (bad signature, unknown
// issuer or kid, wrong audience, expired, not yet valid, malformed, missing
// sub). The wrapped message says why, without the token. A token refused
// for its expiry alone is an *ExpiredError, which wraps ErrInvalidToken.
var ErrInvalidToken = errors.New("invalid token")

// ErrUnavailable reports that no key material could be obtained for the
// token's issuer (JWKS unreachable and no cached keys): a 503, not a 401.
var ErrUnavailable = errors.New("key source unavailable")

// ExpiredError is the refusal of a token whose signature, issuer, audience
// and other claims are valid but whose exp (plus leeway) has passed. It
// wraps ErrInvalidToken; callers tell it apart with errors.As.
type ExpiredError struct {
	// ExpiresAt is the token's exp claim.
	ExpiresAt time.Time
}

func (e *ExpiredError) Error() string {
	return fmt.Sprintf("%v: expired at %s", ErrInvalidToken, e.ExpiresAt.UTC().Format(time.RFC3339))
}

// Unwrap makes errors.Is(err, ErrInvalidToken) hold.
func (e *ExpiredError) Unwrap() error { return ErrInvalidToken }

// ErrAnonymous reports a valid token of a Supabase anonymous user
// (is_anonymous: true) from an issuer that does not allow them. It is a
// policy refusal (403), not an invalid token, and does not wrap
// ErrInvalidToken.
var ErrAnonymous = errors.New("anonymous users are not allowed")
