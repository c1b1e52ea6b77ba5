package jwtverify

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tenantgate/tenantgate/internal/config"
)

func TestBackgroundRefresh(t *testing.T) {
	k := getKeys(t)
	srv := newJWKSServer(t, jwksJSON(rsaJWK("rsa1", "", &k.rsa1.PublicKey)))
	iss := srv.URL + "/auth/v1"
	ctx, cancel := context.WithCancel(context.Background())
	v, err := New(ctx, config.Auth{Issuers: []config.Issuer{{Issuer: iss, Audiences: []string{"authenticated"}, JWKSURL: srv.URL + "/.well-known/jwks.json",
		JWKSRefresh: dur(20 * time.Millisecond), UnknownKIDRefetch: dur(time.Hour), Algorithms: []string{"RS256"}}}}, Options{Now: newClock(t0).Now})
	if err != nil {
		t.Fatal(err)
	}
	// A rotated key shows up through the periodic refresh alone.
	srv.set(http.StatusOK, jwksJSON(rsaJWK("rsa2", "", &k.rsa2.PublicKey)))
	after := srv.count("/.well-known/jwks.json")
	deadline := time.Now().Add(5 * time.Second)
	for srv.count("/.well-known/jwks.json") < after+2 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d background fetches", srv.count("/.well-known/jwks.json"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	tok := sign(t, jwt.SigningMethodRS256, k.rsa2, map[string]any{"kid": "rsa2"}, stdClaims(iss))
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("rotated key: %v", err)
	}
	// Ending ctx stops the refresh.
	cancel()
	time.Sleep(50 * time.Millisecond)
	n := srv.count("/.well-known/jwks.json")
	time.Sleep(100 * time.Millisecond)
	if m := srv.count("/.well-known/jwks.json"); m != n {
		t.Fatalf("refresh continued after ctx ended (%d -> %d)", n, m)
	}
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestSecretsNotLogged(t *testing.T) {
	k := getKeys(t)
	srv := newJWKSServer(t, nil)
	srv.set(http.StatusInternalServerError, []byte("down"))
	iss := srv.URL + "/auth/v1"
	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const headerSecret = "anon-key-value-should-not-appear"
	v, err := New(ctx, config.Auth{Issuers: []config.Issuer{{Issuer: iss, Audiences: []string{"authenticated"},
		JWKSURL:     srv.URL + "/.well-known/jwks.json?apikey=" + headerSecret,
		JWKSHeaders: map[string]string{"apikey": headerSecret}, JWKSRefresh: dur(time.Hour), UnknownKIDRefetch: dur(time.Hour), Algorithms: []string{"RS256"},
	}}}, Options{Now: newClock(t0).Now, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	tok := sign(t, jwt.SigningMethodRS256, k.rsa1, map[string]any{"kid": "rsa1"}, stdClaims(iss))
	_, verr := v.Verify(context.Background(), tok)
	rerr := v.Ready(context.Background())
	if verr == nil || rerr == nil {
		t.Fatalf("expected failures, got %v / %v", verr, rerr)
	}
	out := logs.String()
	if !strings.Contains(out, "jwks fetch failed") {
		t.Fatalf("fetch failure not logged: %q", out)
	}
	for _, s := range []string{out, verr.Error(), rerr.Error()} {
		if strings.Contains(s, headerSecret) || strings.Contains(s, tok) {
			t.Fatalf("secret or token leaked: %q", s)
		}
	}
}
