// Package jwtverify owns JWT verification for configured issuers: HS256
// shared secrets, JWKS key sets fetched only from configured URLs, the
// algorithm allowlist, time claims with leeway, and the verified-token cache.
package jwtverify

import (
	"errors"
	"time"
)

// Claims are the verified claims tenantgate uses.
type Claims struct {
	Subject   string
	Issuer    string
	Audience  []string
	Role      string // Supabase "role" claim (authenticated, anon, service_role)
	Email     string
	ExpiresAt time.Time
}

// ErrInvalidToken wraps every refusal of a token (bad signature, unknown
// issuer or kid, wrong audience, expired, not yet valid, malformed, missing
// sub). The wrapped message says why, without the token.
var ErrInvalidToken = errors.New("invalid token")

// ErrUnavailable reports that no key material could be obtained for the
// token's issuer (JWKS unreachable and no cached keys): a 503, not a 401.
var ErrUnavailable = errors.New("key source unavailable")
