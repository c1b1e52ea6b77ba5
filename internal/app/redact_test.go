package app

import (
	"bytes"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/tenantgate/tenantgate/internal/config"
)

func TestEffectiveYAMLRedactsSecrets(t *testing.T) {
	const (
		jwtSecret  = "jwt-secret-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		keySecret  = "hmac-secret-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
		dbPassword = "db-pass-cccc"
		anonKey    = "anon-key-dddd"
		svcKey     = "service-key-eeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"
		listenPass = "listen-pass-ffff"
	)
	y := `
store:
  database_url: postgres://tenantgate:` + dbPassword + `@db:5432/app?sslmode=require
  listen_database_url: postgres://listener:` + listenPass + `@direct:5432/app
auth:
  api_keys: {secret: ` + keySecret + `}
  issuers:
    - issuer: https://p.supabase.co/auth/v1
      hs256_secret: ` + jwtSecret + `
      jwks: true
      jwks_headers: {apikey: ` + anonKey + `}
service:
  api_keys: {worker: ` + svcKey + `}
`
	cfg, err := config.Parse([]byte(y), nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := EffectiveYAML(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, secret := range []string{jwtSecret, keySecret, dbPassword, anonKey, svcKey, listenPass} {
		if strings.Contains(s, secret) {
			t.Errorf("effective config contains secret %q", secret[:6])
		}
	}
	for _, want := range []string{"postgres://tenantgate:REDACTED@db:5432/app?sslmode=require", "postgres://listener:REDACTED@direct:5432/app", "apikey: REDACTED", "worker: REDACTED", "https://p.supabase.co/auth/v1"} {
		if !strings.Contains(s, want) {
			t.Errorf("effective config lacks %q:\n%s", want, s)
		}
	}
	// The original is untouched.
	if cfg.Auth.Issuers[0].HS256Secret != jwtSecret || cfg.Auth.Issuers[0].JWKSHeaders["apikey"] != anonKey ||
		cfg.Service.APIKeys["worker"] != svcKey || !strings.Contains(cfg.Store.DatabaseURL, dbPassword) {
		t.Error("Redact modified its input")
	}
	// The output uses the file schema (strict decode: no unknown fields).
	dec := yaml.NewDecoder(bytes.NewReader(out))
	dec.KnownFields(true)
	var back config.Config
	if err := dec.Decode(&back); err != nil {
		t.Fatalf("output is not in the config schema: %v", err)
	}
	if back.Server.ShutdownGrace != cfg.Server.ShutdownGrace || back.Store.CacheTTL != cfg.Store.CacheTTL {
		t.Errorf("durations do not round-trip: %v %v", back.Server.ShutdownGrace.D(), back.Store.CacheTTL.D())
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"postgres://u:secret@h:5432/db", "postgres://u:REDACTED@h:5432/db"},
		{"postgres://u@h/db", "postgres://u@h/db"},
		{"postgres://h/db?user=u&password=secret", "postgres://h/db?password=REDACTED&user=u"},
		{"host=h user=u password=secret", "REDACTED"},
		{"::not a url", "REDACTED"},
	}
	for _, tt := range tests {
		if got := RedactURL(tt.in); got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
