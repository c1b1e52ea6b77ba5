package cache

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/internal/metrics/metricstest"
	"github.com/tenantgate/tenantgate/internal/tenant"
)

// A flood of unknown keys fills the negative entries only: the keys that
// exist stay cached.
func TestNegativeEntriesDoNotEvictFound(t *testing.T) {
	src := newFake()
	clk := &clock{t: time.Unix(0, 0)}
	c := New(src, Options{TTL: time.Hour, NegativeTTL: time.Hour, MaxEntries: 2, NegativeMaxEntries: 3, Now: clk.Now})
	ctx := context.Background()
	if _, err := c.APIKeyByPublic(ctx, "pk_1"); err != nil {
		t.Fatal(err)
	}
	const unknown = 10
	for i := 0; i < unknown; i++ {
		if _, err := c.APIKeyByPublic(ctx, fmt.Sprintf("pk_rand%d", i)); !errors.Is(err, tenant.ErrNotFound) {
			t.Fatalf("unknown key %d: %v", i, err)
		}
	}
	if _, err := c.APIKeyByPublic(ctx, "pk_1"); err != nil {
		t.Fatal(err)
	}
	if got := src.n("apikey"); got != 1+unknown {
		t.Fatalf("source called %d times, want %d: the found key was evicted by not-found entries", got, 1+unknown)
	}
	if n := c.apikey.len(); n != 1+3 {
		t.Fatalf("%d entries, want 1 found + 3 not found (NegativeMaxEntries)", n)
	}
	// The newest not-found entries are the ones kept.
	if _, err := c.APIKeyByPublic(ctx, fmt.Sprintf("pk_rand%d", unknown-1)); !errors.Is(err, tenant.ErrNotFound) || src.n("apikey") != 1+unknown {
		t.Fatalf("newest not-found entry not cached: %v, %d calls", err, src.n("apikey"))
	}
}

// Not-found entries are held under a hash of the lookup key: an API key's
// public part is not kept as given.
func TestNegativeEntriesKeyedByHash(t *testing.T) {
	src := newFake()
	c, _ := newCache(t, src)
	pk := "pk_unknownunknownunknownunknown12"
	if _, err := c.APIKeyByPublic(context.Background(), pk); !errors.Is(err, tenant.ErrNotFound) {
		t.Fatal(err)
	}
	c.apikey.mu.Lock()
	_, raw := c.apikey.neg[pk]
	sum := sha256.Sum256([]byte(pk))
	_, hashed := c.apikey.neg[string(sum[:])]
	c.apikey.mu.Unlock()
	if raw || !hashed {
		t.Fatalf("negative entry under the raw key %v, under its hash %v", raw, hashed)
	}
}

// Lookups of API keys not known to exist are rate limited; the refused
// ones never reach the store, answer ErrLimited and are counted.
func TestUnknownKeyLookupsLimited(t *testing.T) {
	src := newFake()
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Unix(0, 0)}
	c := New(src, Options{TTL: time.Minute, NegativeTTL: time.Minute, KeyLookupRate: 1, KeyLookupBurst: 2, Metrics: m, Now: clk.Now})
	ctx := context.Background()
	lookup := func(pk string) error { _, err := c.APIKeyByPublic(ctx, pk); return err }

	for _, pk := range []string{"pk_a", "pk_b"} {
		if err := lookup(pk); !errors.Is(err, tenant.ErrNotFound) {
			t.Fatalf("%s within the burst: %v", pk, err)
		}
	}
	if err := lookup("pk_c"); !errors.Is(err, ErrLimited) || errors.Is(err, tenant.ErrNotFound) {
		t.Fatalf("pk_c over the burst: %v, want ErrLimited", err)
	}
	if got := src.n("apikey"); got != 2 {
		t.Fatalf("source called %d times, want 2 (the limited lookup must not query)", got)
	}
	// Cached not-found answers cost no token.
	if err := lookup("pk_a"); !errors.Is(err, tenant.ErrNotFound) {
		t.Fatalf("cached pk_a: %v", err)
	}
	clk.Advance(time.Second)
	if err := lookup("pk_c"); !errors.Is(err, tenant.ErrNotFound) {
		t.Fatalf("pk_c after a token refilled: %v", err)
	}
	if err := lookup("pk_d"); !errors.Is(err, ErrLimited) {
		t.Fatalf("pk_d: %v, want ErrLimited", err)
	}
	if got := src.n("apikey"); got != 3 {
		t.Fatalf("source called %d times, want 3", got)
	}
	if got := metricstest.Value(t, reg, "tenantgate_store_lookups_limited_total", "kind", "api_key"); got != 2 {
		t.Errorf("limited lookups metric = %v, want 2", got)
	}
	if got := metricstest.Value(t, reg, "tenantgate_store_query_errors_total", "kind", "api_key"); got != 0 {
		t.Errorf("limited lookups counted as query errors: %v", got)
	}
	// Other lookup kinds are not limited.
	for i := 0; i < 5; i++ {
		if _, err := c.Account(ctx, fmt.Sprintf("x%d", i)); !errors.Is(err, tenant.ErrNotFound) {
			t.Fatalf("account lookup: %v", err)
		}
	}
}

// A key that was found before is reloaded when its entry expires or is
// invalidated even while unknown keys are being refused.
func TestKnownKeyNotLimited(t *testing.T) {
	src := newFake()
	clk := &clock{t: time.Unix(0, 0)}
	c := New(src, Options{TTL: time.Minute, NegativeTTL: time.Minute, KeyLookupRate: 0.001, KeyLookupBurst: 1, Now: clk.Now})
	ctx := context.Background()
	if _, err := c.APIKeyByPublic(ctx, "pk_1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.APIKeyByPublic(ctx, "pk_x"); !errors.Is(err, ErrLimited) {
		t.Fatalf("pk_x: %v, want ErrLimited (burst spent)", err)
	}
	clk.Advance(2 * time.Minute) // the found entry expired; no token refilled
	for i := 0; i < 3; i++ {
		if _, err := c.APIKeyByPublic(ctx, "pk_1"); err != nil {
			t.Fatalf("known key after expiry: %v", err)
		}
		c.Invalidate(Event{Table: TableAPIKeys, PublicKey: "pk_1"})
	}
	if got := src.n("apikey"); got != 4 {
		t.Fatalf("source called %d times, want 4 (1 + 3 reloads of the known key)", got)
	}
	c.Flush()
	if _, err := c.APIKeyByPublic(ctx, "pk_1"); err != nil {
		t.Fatalf("known key after flush: %v", err)
	}
	if _, err := c.APIKeyByPublic(ctx, "pk_y"); !errors.Is(err, ErrLimited) {
		t.Fatalf("pk_y: %v, want ErrLimited", err)
	}
}

// A key created after its lookup was cached as not found becomes usable as
// soon as its NOTIFY arrives, not after the negative TTL.
func TestCreatedKeyClearsNegativeEntry(t *testing.T) {
	src := newFake()
	c, _ := newCache(t, src)
	ctx := context.Background()
	const pk = "pk_new"
	if _, err := c.APIKeyByPublic(ctx, pk); !errors.Is(err, tenant.ErrNotFound) {
		t.Fatal(err)
	}
	src.mu.Lock()
	src.keys = map[string]tenant.APIKey{pk: {KeyID: "k9", PublicKey: pk, AccountID: "a1", Status: tenant.KeyActive}}
	src.mu.Unlock()
	if _, err := c.APIKeyByPublic(ctx, pk); !errors.Is(err, tenant.ErrNotFound) {
		t.Fatalf("before the notification: %v, want the cached not found", err)
	}
	c.Invalidate(Event{Table: TableAPIKeys, AccountID: "a1", PublicKey: pk})
	if k, err := c.APIKeyByPublic(ctx, pk); err != nil || k.KeyID != "k9" {
		t.Fatalf("after the notification: %+v %v", k, err)
	}
}
