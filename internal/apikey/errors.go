// Package apikey owns platform API keys: parsing the x-api-key header
// (pk_...:sk_...), hashing the secret part with HMAC-SHA256, checking a key's
// status and expiry in constant time, and batching last_used_at updates.
package apikey

import "errors"

// Errors returned by Authenticate. Any other error means the store is
// unavailable.
var (
	ErrMalformed = errors.New("malformed api key")
	ErrInvalid   = errors.New("invalid api key")
	ErrRevoked   = errors.New("api key revoked")
	ErrExpired   = errors.New("api key expired")
)
