package apikey

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/tenantgate/tenantgate/internal/tenant"
)

const (
	testSecret = "test-hmac-secret"
	testPK     = "pk_ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
	testSK     = "sk_abcdefghijklmnopqrstuvwxyz012345"
	// printf '%s' sk_abcdefghijklmnopqrstuvwxyz012345 | openssl dgst -sha256 -hmac test-hmac-secret
	testSKHash = "3c65d09a2398ea66d8b4fa2cd12e79c8c25b772ac42f943c164d8a5a4a5caccf"
)

func TestParse(t *testing.T) {
	a32 := strings.Repeat("a", 32)
	tests := []struct {
		name   string
		header string
		pk, sk string
		err    error
	}{
		{"valid", testPK + ":" + testSK, testPK, testSK, nil},
		{"surrounding whitespace", "  " + testPK + ":" + testSK + "\t", testPK, testSK, nil},
		{"empty", "", "", "", ErrMalformed},
		{"no colon", testPK + testSK, "", "", ErrMalformed},
		{"swapped", testSK + ":" + testPK, "", "", ErrMalformed},
		{"short public", "pk_" + a32[:31] + ":sk_" + a32 + "x", "", "", ErrMalformed},
		{"long secret", "pk_" + a32 + ":sk_" + a32 + "b", "", "", ErrMalformed},
		{"non alnum public", "pk_" + a32[:31] + "-" + ":sk_" + a32, "", "", ErrMalformed},
		{"non alnum secret", "pk_" + a32 + ":sk_" + a32[:31] + "_", "", "", ErrMalformed},
		{"non ascii", "pk_" + a32[:30] + "é" + ":sk_" + a32, "", "", ErrMalformed},
		{"upper prefix", "PK_" + a32 + ":sk_" + a32, "", "", ErrMalformed},
		{"two colons", "pk_" + a32 + "::k_" + a32[:32], "", "", ErrMalformed},
		{"inner space", "pk_" + a32 + ": k_" + a32, "", "", ErrMalformed},
		{"bearer-like", "Bearer " + a32 + a32, "", "", ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if IsKey(tt.header) != (tt.err == nil) {
				t.Errorf("IsKey = %v, want %v", !(tt.err == nil), tt.err == nil)
			}
			pk, sk, err := Parse(tt.header)
			if !errors.Is(err, tt.err) || (err == nil) != (tt.err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if pk != tt.pk || sk != tt.sk {
				t.Fatalf("got (%q, %q), want (%q, %q)", pk, sk, tt.pk, tt.sk)
			}
		})
	}
}

func TestHash(t *testing.T) {
	tests := []struct {
		name, secret, sk, want string
	}{
		// Independently computed with openssl dgst -sha256 -hmac.
		{"openssl vector", testSecret, testSK, testSKHash},
		// RFC 4231 test case 2.
		{"rfc4231 case 2", "Jefe", "what do ya want for nothing?", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Hash(tt.secret, tt.sk); got != tt.want {
				t.Fatalf("Hash = %s, want %s", got, tt.want)
			}
		})
	}
	if Hash("other-secret", testSK) == testSKHash {
		t.Fatal("hash does not depend on the HMAC secret")
	}
}

type fakeStore struct {
	mu      sync.Mutex
	keys    map[string]tenant.APIKey
	lookErr error
	touches [][]string
	touchAt []time.Time
	failN   int // fail the next failN TouchAPIKeys calls
	lookups int
}

func (f *fakeStore) APIKeyByPublic(_ context.Context, pk string) (tenant.APIKey, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookups++
	if f.lookErr != nil {
		return tenant.APIKey{}, f.lookErr
	}
	k, ok := f.keys[pk]
	if !ok {
		return tenant.APIKey{}, tenant.ErrNotFound
	}
	return k, nil
}

func (f *fakeStore) TouchAPIKeys(_ context.Context, ids []string, at time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failN > 0 {
		f.failN--
		return errors.New("db down")
	}
	f.touches = append(f.touches, append([]string(nil), ids...))
	f.touchAt = append(f.touchAt, at)
	return nil
}

func (f *fakeStore) calls() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]string(nil), f.touches...)
}

var now = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func keyRow(id, pk, sk, status string, exp *time.Time) tenant.APIKey {
	return tenant.APIKey{KeyID: id, PublicKey: pk, SecretKeyHash: Hash(testSecret, sk), AccountID: "acct-" + id, Status: status, ExpiresAt: exp}
}

func TestAuthenticate(t *testing.T) {
	past := now.Add(-time.Second)
	future := now.Add(time.Hour)
	pk := func(c string) string { return "pk_" + strings.Repeat(c, 32) }
	sk := func(c string) string { return "sk_" + strings.Repeat(c, 32) }
	upper := keyRow("upper", pk("u"), sk("u"), tenant.KeyActive, nil)
	upper.SecretKeyHash = strings.ToUpper(upper.SecretKeyHash)
	wrongPK := keyRow("wrongpk", pk("z"), sk("w"), tenant.KeyActive, nil)
	store := &fakeStore{keys: map[string]tenant.APIKey{
		testPK:  keyRow("k1", testPK, testSK, tenant.KeyActive, nil),
		pk("f"): keyRow("future", pk("f"), sk("f"), tenant.KeyActive, &future),
		pk("p"): keyRow("past", pk("p"), sk("p"), tenant.KeyActive, &past),
		pk("n"): keyRow("now", pk("n"), sk("n"), tenant.KeyActive, &now),
		pk("r"): keyRow("revoked", pk("r"), sk("r"), tenant.KeyRevoked, nil),
		pk("e"): keyRow("expired", pk("e"), sk("e"), tenant.KeyExpired, &future),
		pk("s"): keyRow("suspended", pk("s"), sk("s"), "suspended", nil),
		pk("b"): keyRow("blank", pk("b"), sk("b"), "", nil),
		pk("u"): upper,
		pk("w"): wrongPK,
	}}
	reg := prometheus.NewRegistry()
	a := NewAuthenticator(store, testSecret, Options{Registerer: reg, Now: func() time.Time { return now }})

	tests := []struct {
		name   string
		header string
		wantID string
		err    error
	}{
		{"active", testPK + ":" + testSK, "k1", nil},
		{"active not yet expired", pk("f") + ":" + sk("f"), "future", nil},
		{"uppercase stored hash", pk("u") + ":" + sk("u"), "upper", nil},
		{"malformed", "pk_short:sk_short", "", ErrMalformed},
		{"unknown public key", pk("x") + ":" + sk("x"), "", ErrInvalid},
		{"wrong secret", testPK + ":" + sk("q"), "", ErrInvalid},
		{"revoked with right secret", pk("r") + ":" + sk("r"), "", ErrRevoked},
		{"revoked with wrong secret hides status", pk("r") + ":" + sk("q"), "", ErrInvalid},
		{"status expired", pk("e") + ":" + sk("e"), "", ErrExpired},
		{"expires_at past", pk("p") + ":" + sk("p"), "", ErrExpired},
		{"expires_at now", pk("n") + ":" + sk("n"), "", ErrExpired},
		{"other status", pk("s") + ":" + sk("s"), "", ErrInvalid},
		{"empty status", pk("b") + ":" + sk("b"), "", ErrInvalid},
		{"store row for another public key", pk("w") + ":" + sk("w"), "", ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := a.Authenticate(context.Background(), tt.header)
			if tt.err == nil {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				if k.KeyID != tt.wantID || k.AccountID != "acct-"+tt.wantID {
					t.Fatalf("got key %q account %q", k.KeyID, k.AccountID)
				}
				return
			}
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if k != (tenant.APIKey{}) {
				t.Fatalf("refused key returned a row: %+v", k)
			}
			if strings.Contains(err.Error(), "sk_") {
				t.Fatalf("error leaks the secret: %v", err)
			}
		})
	}
	if got := counterValue(t, a.results.WithLabelValues("ok")); got != 3 {
		t.Fatalf("ok counter = %v, want 3", got)
	}
	if got := counterValue(t, a.results.WithLabelValues("revoked")); got != 1 {
		t.Fatalf("revoked counter = %v, want 1", got)
	}
}

func TestAuthenticateStoreUnavailable(t *testing.T) {
	store := &fakeStore{lookErr: errors.New("connection refused")}
	a := NewAuthenticator(store, testSecret, Options{})
	_, err := a.Authenticate(context.Background(), testPK+":"+testSK)
	if err == nil {
		t.Fatal("expected error")
	}
	for _, known := range []error{ErrMalformed, ErrInvalid, ErrRevoked, ErrExpired, tenant.ErrNotFound} {
		if errors.Is(err, known) {
			t.Fatalf("store failure reported as %v", known)
		}
	}
	if !strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), testSK) {
		t.Fatalf("error = %q", err)
	}
}

func TestMalformedDoesNotHitStore(t *testing.T) {
	store := &fakeStore{}
	a := NewAuthenticator(store, testSecret, Options{})
	if _, err := a.Authenticate(context.Background(), "garbage"); !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v", err)
	}
	if store.lookups != 0 {
		t.Fatalf("store consulted %d times for a malformed key", store.lookups)
	}
}

func TestTouchBatching(t *testing.T) {
	store := &fakeStore{keys: map[string]tenant.APIKey{}}
	var headers []string
	for i := range 5 {
		pk := fmt.Sprintf("pk_%032d", i)
		sk := fmt.Sprintf("sk_%032d", i)
		store.keys[pk] = keyRow(fmt.Sprintf("id%d", i), pk, sk, tenant.KeyActive, nil)
		headers = append(headers, pk+":"+sk)
	}
	a := NewAuthenticator(store, testSecret, Options{Now: func() time.Time { return now }, TouchInterval: time.Hour})
	var wg sync.WaitGroup
	for range 20 {
		for _, h := range headers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := a.Authenticate(context.Background(), h); err != nil {
					t.Errorf("authenticate: %v", err)
				}
			}()
		}
	}
	wg.Wait()
	if n := len(store.calls()); n != 0 {
		t.Fatalf("TouchAPIKeys called %d times on the request path", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	cancel() // Run flushes once more when ctx ends
	<-done
	calls := store.calls()
	if len(calls) != 1 {
		t.Fatalf("TouchAPIKeys called %d times, want 1: %v", len(calls), calls)
	}
	want := []string{"id0", "id1", "id2", "id3", "id4"}
	if fmt.Sprint(calls[0]) != fmt.Sprint(want) {
		t.Fatalf("flushed %v, want %v", calls[0], want)
	}
	if !store.touchAt[0].Equal(now) {
		t.Fatalf("touched at %v", store.touchAt[0])
	}
}

func TestTouchRetriesAfterFailure(t *testing.T) {
	store := &fakeStore{keys: map[string]tenant.APIKey{testPK: keyRow("k1", testPK, testSK, tenant.KeyActive, nil)}, failN: 1}
	reg := prometheus.NewRegistry()
	a := NewAuthenticator(store, testSecret, Options{Registerer: reg, TouchInterval: 10 * time.Millisecond})
	if _, err := a.Authenticate(context.Background(), testPK+":"+testSK); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for len(store.calls()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	calls := store.calls()
	if len(calls) != 1 || fmt.Sprint(calls[0]) != "[k1]" {
		t.Fatalf("calls = %v, want one retry with [k1]", calls)
	}
	if got := counterValue(t, a.flushes.WithLabelValues("error")); got != 1 {
		t.Fatalf("error flushes = %v, want 1", got)
	}
}

func TestTouchPendingBounded(t *testing.T) {
	a := NewAuthenticator(&fakeStore{}, testSecret, Options{})
	for i := range maxPending + 50 {
		a.touch(fmt.Sprintf("id%d", i))
	}
	a.touch("id0")
	if n := len(a.pending); n != maxPending {
		t.Fatalf("pending = %d, want %d", n, maxPending)
	}
}

func TestNoFlushWhenIdle(t *testing.T) {
	store := &fakeStore{}
	a := NewAuthenticator(store, testSecret, Options{TouchInterval: time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	a.Run(ctx)
	if n := len(store.calls()); n != 0 {
		t.Fatalf("TouchAPIKeys called %d times with nothing pending", n)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{testPK + ":" + testSK, "", ":", "pk_:sk_", " " + testPK + ":" + testSK + " ", testSK + ":" + testPK} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		pk, sk, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) || pk != "" || sk != "" {
				t.Fatalf("Parse(%q) = %q, %q, %v", s, pk, sk, err)
			}
			return
		}
		if !validPart(pk, "pk_") || !validPart(sk, "sk_") || strings.TrimSpace(s) != pk+":"+sk {
			t.Fatalf("Parse(%q) accepted (%q, %q)", s, pk, sk)
		}
	})
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
