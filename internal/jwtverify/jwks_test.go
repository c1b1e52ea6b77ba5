package jwtverify

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"testing"
)

type ed25519Pub = ed25519.PublicKey

func TestParseJWKS(t *testing.T) {
	k := getKeys(t)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ec := ecJWK("ec", &k.ec1.PublicKey)
	offCurve := ecJWK("ec-bad", &k.ec1.PublicKey)
	offCurve["y"] = offCurve["x"]
	enc := rsaJWK("enc", "", &k.rsa1.PublicKey)
	enc["use"] = "enc"
	shortEd := edJWK("ed-short", k.ed1.Public().(ed25519.PublicKey))
	shortEd["x"] = "AAAA"
	tests := []struct {
		name     string
		key      map[string]string
		ok       bool
		kty, crv string
	}{
		{"rsa", rsaJWK("r", "RS256", &k.rsa1.PublicKey), true, "RSA", ""},
		{"ec p-256", ec, true, "EC", "P-256"},
		{"ed25519", edJWK("e", k.ed1.Public().(ed25519.PublicKey)), true, "OKP", "Ed25519"},
		{"rsa below 2048 bits", rsaJWK("small", "", &small.PublicKey), false, "", ""},
		{"encryption key", enc, false, "", ""},
		{"ec point off curve", offCurve, false, "", ""},
		{"ed25519 wrong length", shortEd, false, "", ""},
		{"symmetric key", map[string]string{"kty": "oct", "k": "c2VjcmV0"}, false, "", ""},
		{"x25519", map[string]string{"kty": "OKP", "crv": "X25519", "x": b64(make([]byte, 32))}, false, "", ""},
		{"rsa even exponent", map[string]string{"kty": "RSA", "n": b64(k.rsa1.N.Bytes()), "e": "Ag"}, false, "", ""},
		{"rsa bad base64", map[string]string{"kty": "RSA", "n": "!!", "e": "AQAB"}, false, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, skipped, err := parseJWKS(jwksJSON(tt.key))
			if err != nil {
				t.Fatal(err)
			}
			if tt.ok != (len(keys) == 1) || tt.ok == (skipped == 1) {
				t.Fatalf("keys=%d skipped=%d, want ok=%v", len(keys), skipped, tt.ok)
			}
			if tt.ok && (keys[0].kty != tt.kty || keys[0].crv != tt.crv || keys[0].key == nil) {
				t.Fatalf("parsed %+v", keys[0])
			}
		})
	}
	if _, _, err := parseJWKS([]byte("{")); err == nil {
		t.Fatal("truncated JSON accepted")
	}
}

func TestKeyAllows(t *testing.T) {
	tests := []struct {
		k    publicKey
		alg  string
		want bool
	}{
		{publicKey{kty: "RSA"}, "RS256", true},
		{publicKey{kty: "RSA"}, "PS256", true},
		{publicKey{kty: "RSA", alg: "RS256"}, "PS256", false},
		{publicKey{kty: "RSA"}, "ES256", false},
		{publicKey{kty: "RSA"}, "HS256", false},
		{publicKey{kty: "RSA"}, "none", false},
		{publicKey{kty: "EC", crv: "P-256"}, "ES256", true},
		{publicKey{kty: "EC", crv: "P-384"}, "ES256", false},
		{publicKey{kty: "EC", crv: "P-384"}, "ES384", true},
		{publicKey{kty: "EC", crv: "P-256", alg: "ES256"}, "ES256", true},
		{publicKey{kty: "OKP", crv: "Ed25519"}, "EdDSA", true},
		{publicKey{kty: "OKP", crv: "Ed25519"}, "ES256", false},
		{publicKey{kty: "EC", crv: "P-256"}, "EdDSA", false},
	}
	for _, tt := range tests {
		if got := tt.k.allows(tt.alg); got != tt.want {
			t.Errorf("%+v allows %s = %v, want %v", tt.k, tt.alg, got, tt.want)
		}
	}
}

func FuzzParseJWKS(f *testing.F) {
	k := getKeys(f)
	f.Add(jwksJSON(rsaJWK("r", "", &k.rsa1.PublicKey), ecJWK("e", &k.ec1.PublicKey), edJWK("d", k.ed1.Public().(ed25519.PublicKey))))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"","y":""}]}`))
	f.Add([]byte(`{"keys":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, _, err := parseJWKS(data)
		if err != nil {
			if !json.Valid(data) {
				return
			}
		}
		for _, key := range keys {
			if key.key == nil {
				t.Fatalf("parsed key without material: %+v", key)
			}
		}
	})
}
