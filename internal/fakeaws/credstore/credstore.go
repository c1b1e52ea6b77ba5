// Package credstore is the in-process credential registry shared by the
// fake AWS services: the platform's long-term keys and the temporary
// credentials the fake STS issues, which the fake Bedrock runtime accepts
// until they expire.
package credstore

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"sync"
	"time"

	"github.com/tenantgate/tenantgate/internal/fakeaws/sigv4verify"
)

// Store holds credentials by access key id. It is safe for concurrent use.
type Store struct {
	mu    sync.RWMutex
	creds map[string]sigv4verify.Credential
	now   func() time.Time
}

// New returns an empty store; now is the clock (nil means time.Now).
func New(now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{creds: map[string]sigv4verify.Credential{}, now: now}
}

// AddStatic registers a long-term key pair belonging to principalARN.
func (s *Store) AddStatic(accessKeyID, secretAccessKey, principalARN string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.creds[accessKeyID] = sigv4verify.Credential{AccessKeyID: accessKeyID, SecretAccessKey: secretAccessKey, PrincipalARN: principalARN}
}

// IssueTemporary creates a fresh ASIA... credential with a session token,
// valid for ttl, belonging to principalARN.
func (s *Store) IssueTemporary(principalARN string, ttl time.Duration) sigv4verify.Credential {
	c := sigv4verify.Credential{
		AccessKeyID:     "ASIA" + randomAlnum(16),
		SecretAccessKey: randomB64(30),
		SessionToken:    "FQoGZXIvYXdzEFAKE" + randomB64(96),
		Expiration:      s.now().UTC().Add(ttl).Truncate(time.Second),
		PrincipalARN:    principalARN,
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.creds[c.AccessKeyID] = c
	return c
}

// Expire makes a temporary credential expire now (for tests). It reports
// whether the key was known and temporary.
func (s *Store) Expire(accessKeyID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.creds[accessKeyID]
	if !ok || !c.Temporary() {
		return false
	}
	c.Expiration = s.now().UTC()
	s.creds[accessKeyID] = c
	return true
}

// LookupCredential implements sigv4verify.CredentialSource.
func (s *Store) LookupCredential(_ context.Context, accessKeyID string) (sigv4verify.Credential, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c, ok := s.creds[accessKeyID]
	return c, ok
}

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"

func randomAlnum(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alnum[int(b[i])%len(alnum)]
	}
	return string(b)
}

func randomB64(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// RequestID returns a random AWS-style request id (UUID format).
func RequestID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	const h = "0123456789abcdef"
	out := make([]byte, 0, 36)
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out = append(out, '-')
		}
		out = append(out, h[c>>4], h[c&15])
	}
	return string(out)
}
