package jwtverify

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
)

// minRSABits is the smallest RSA modulus accepted from a JWKS.
const minRSABits = 2048

// jwk is one JSON Web Key as published in a JWKS document.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// publicKey is a parsed verification key with the facts needed to decide
// which algorithms it may verify.
type publicKey struct {
	kid string
	kty string // RSA, EC, OKP
	crv string // P-256, P-384, Ed25519
	alg string // optional alg pinned by the JWKS
	key any    // *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey
}

// allows reports whether the key may verify a token signed with alg.
func (k publicKey) allows(alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		return k.kty == "RSA"
	case "ES256":
		return k.kty == "EC" && k.crv == "P-256"
	case "ES384":
		return k.kty == "EC" && k.crv == "P-384"
	case "EdDSA":
		return k.kty == "OKP" && k.crv == "Ed25519"
	default:
		return false
	}
}

// parseJWKS parses a JWKS document. Keys that are malformed, not for
// signatures, or of an unsupported type are skipped; skipped reports how many.
func parseJWKS(data []byte) (keys []publicKey, skipped int, err error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, 0, fmt.Errorf("decode jwks: %w", err)
	}
	for _, raw := range doc.Keys {
		var j jwk
		if err := json.Unmarshal(raw, &j); err != nil {
			skipped++
			continue
		}
		k, err := parseJWK(j)
		if err != nil {
			skipped++
			continue
		}
		keys = append(keys, k)
	}
	return keys, skipped, nil
}

func parseJWK(j jwk) (publicKey, error) {
	if j.Use != "" && j.Use != "sig" {
		return publicKey{}, errors.New("key not for signatures")
	}
	k := publicKey{kid: j.Kid, kty: j.Kty, crv: j.Crv, alg: j.Alg}
	switch j.Kty {
	case "RSA":
		n, err := b64Int(j.N)
		if err != nil {
			return publicKey{}, fmt.Errorf("rsa n: %w", err)
		}
		e, err := b64Int(j.E)
		if err != nil {
			return publicKey{}, fmt.Errorf("rsa e: %w", err)
		}
		if n.BitLen() < minRSABits {
			return publicKey{}, errors.New("rsa modulus too small")
		}
		if !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 || e.Bit(0) == 0 {
			return publicKey{}, errors.New("rsa exponent out of range")
		}
		k.crv = ""
		k.key = &rsa.PublicKey{N: n, E: int(e.Int64())}
	case "EC":
		var curve elliptic.Curve
		switch j.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		default:
			return publicKey{}, fmt.Errorf("unsupported curve %q", j.Crv)
		}
		size := (curve.Params().BitSize + 7) / 8
		x, err := b64Fixed(j.X, size)
		if err != nil {
			return publicKey{}, fmt.Errorf("ec x: %w", err)
		}
		y, err := b64Fixed(j.Y, size)
		if err != nil {
			return publicKey{}, fmt.Errorf("ec y: %w", err)
		}
		// Uncompressed SEC 1 point; ParseUncompressedPublicKey checks it is on the curve.
		point := append(append([]byte{4}, x...), y...)
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, point)
		if err != nil {
			return publicKey{}, fmt.Errorf("ec point: %w", err)
		}
		k.key = pub
	case "OKP":
		if j.Crv != "Ed25519" {
			return publicKey{}, fmt.Errorf("unsupported curve %q", j.Crv)
		}
		x, err := b64Fixed(j.X, ed25519.PublicKeySize)
		if err != nil {
			return publicKey{}, fmt.Errorf("okp x: %w", err)
		}
		k.key = ed25519.PublicKey(x)
	default:
		return publicKey{}, fmt.Errorf("unsupported kty %q", j.Kty)
	}
	return k, nil
}

func b64Int(s string) (*big.Int, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, err
	}
	if len(b) == 0 {
		return nil, errors.New("empty")
	}
	return new(big.Int).SetBytes(b), nil
}

func b64Fixed(s string, size int) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, err
	}
	if len(b) != size {
		return nil, fmt.Errorf("length %d, want %d", len(b), size)
	}
	return b, nil
}
