package cache

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/internal/metrics/metricstest"
	"github.com/tenantgate/tenantgate/internal/tenant"
)

var errDown = errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")

func newStaleCache(t *testing.T, src Source, stale time.Duration) (*Cache, *clock, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	return New(src, Options{TTL: time.Minute, NegativeTTL: 10 * time.Second, StaleIfError: stale, Metrics: m, Now: clk.Now}), clk, reg
}

func (f *fakeSource) setFail(err error) {
	f.mu.Lock()
	f.fail = err
	f.mu.Unlock()
}

// TestStaleIfError: which last known answers are served while the source is
// unreachable, and which are not.
func TestStaleIfError(t *testing.T) {
	ctx := context.Background()
	plan := func(c *Cache) (string, error) { p, err := c.Plan(ctx, "a1"); return p.Tier, err }
	account := func(c *Cache) (string, error) { a, err := c.Account(ctx, "a2"); return a.ID, err }
	missing := func(c *Cache) (string, error) { a, err := c.Account(ctx, "zz"); return a.ID, err }
	tests := []struct {
		name   string
		stale  time.Duration
		lookup func(*Cache) (string, error)
		kind   string // lookup kind (metric label)
		// between runs after the first (cached) lookup, before the outage.
		between func(c *Cache, src *fakeSource, clk *clock)
		// down is the source error during the outage (default errDown).
		down      error
		advance   time.Duration // after the outage starts
		want      string
		wantErr   error // errors.Is; errDown means "an outage error"
		wantStale float64
	}{
		{name: "expired within stale_if_error is served", stale: time.Hour, lookup: plan, kind: "plan",
			advance: 30 * time.Minute, want: "free", wantStale: 1},
		{name: "found account served stale", stale: time.Hour, lookup: account, kind: "account",
			advance: 2 * time.Minute, want: "a2", wantStale: 1},
		{name: "fresh entry is a hit, not stale", stale: time.Hour, lookup: plan, kind: "plan",
			advance: 30 * time.Second, want: "free"},
		{name: "beyond stale_if_error is an outage", stale: time.Hour, lookup: plan, kind: "plan",
			advance: time.Minute + time.Hour + time.Millisecond, wantErr: errDown},
		{name: "stale_if_error 0 disables it", stale: 0, lookup: plan, kind: "plan",
			advance: 2 * time.Minute, wantErr: errDown},
		{name: "entry an invalidation removed is never served stale", stale: time.Hour, lookup: plan, kind: "plan",
			between: func(c *Cache, _ *fakeSource, _ *clock) { c.Invalidate(Event{Table: TableCredit, AccountID: "a1"}) },
			advance: 2 * time.Minute, wantErr: errDown},
		{name: "invalidation of the whole table removes it too", stale: time.Hour, lookup: account, kind: "account",
			between: func(c *Cache, _ *fakeSource, _ *clock) { c.Invalidate(Event{Table: TableAccounts, All: true}) },
			advance: 2 * time.Minute, wantErr: errDown},
		{name: "invalidation removes it even before the TTL ends", stale: time.Hour, lookup: plan, kind: "plan",
			between: func(c *Cache, _ *fakeSource, _ *clock) { c.Invalidate(Event{Table: TableCredit, AccountID: "a1"}) },
			advance: time.Second, wantErr: errDown},
		{name: "flush removes it", stale: time.Hour, lookup: plan, kind: "plan",
			between: func(c *Cache, _ *fakeSource, _ *clock) { c.Flush() },
			advance: 2 * time.Minute, wantErr: errDown},
		{name: "listener gap expires without removing", stale: time.Hour, lookup: plan, kind: "plan",
			between: func(c *Cache, _ *fakeSource, _ *clock) { c.Expire() },
			advance: time.Second, want: "free", wantStale: 1},
		{name: "not found is never served stale", stale: time.Hour, lookup: missing, kind: "account",
			advance: 11 * time.Second, wantErr: errDown},
		{name: "not found from a reachable source is not masked", stale: time.Hour, lookup: account, kind: "account",
			between: func(_ *Cache, src *fakeSource, _ *clock) {
				src.mu.Lock()
				delete(src.accounts, "a2")
				src.mu.Unlock()
			},
			down: tenant.ErrNotFound, advance: 2 * time.Minute, wantErr: tenant.ErrNotFound},
		{name: "rate limited lookups are not masked", stale: time.Hour, lookup: plan, kind: "plan",
			down: ErrLimited, advance: 2 * time.Minute, wantErr: ErrLimited},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newFake()
			c, clk, reg := newStaleCache(t, src, tt.stale)
			if _, err := tt.lookup(c); err != nil && !errors.Is(err, tenant.ErrNotFound) {
				t.Fatalf("first lookup: %v", err)
			}
			if tt.between != nil {
				tt.between(c, src, clk)
			}
			down := tt.down
			if down == nil {
				down = errDown
			}
			if !errors.Is(down, tenant.ErrNotFound) {
				src.setFail(down)
			}
			clk.Advance(tt.advance)
			got, err := tt.lookup(c)
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("lookup: %v, want %q", err, tt.want)
			case tt.wantErr == nil && got != tt.want:
				t.Fatalf("lookup = %q, want %q", got, tt.want)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("lookup = %q, %v; want error %v", got, err, tt.wantErr)
			}
			if n := metricstest.Value(t, reg, "tenantgate_store_stale_answers_total", "kind", tt.kind); n != tt.wantStale {
				t.Fatalf("stale answers = %v, want %v", n, tt.wantStale)
			}
		})
	}
}

// TestStaleRecovers: once the source answers again, fresh answers replace
// the stale ones (no restart).
func TestStaleRecovers(t *testing.T) {
	ctx := context.Background()
	src := newFake()
	c, clk, _ := newStaleCache(t, src, time.Hour)
	if _, err := c.Plan(ctx, "a1"); err != nil {
		t.Fatal(err)
	}
	src.setFail(errDown)
	clk.Advance(2 * time.Minute)
	if p, err := c.Plan(ctx, "a1"); err != nil || p.Tier != "free" {
		t.Fatalf("during outage: %+v %v", p, err)
	}
	if _, err := c.Plan(ctx, "a2"); err == nil {
		t.Fatal("never seen account answered during outage")
	}
	src.setFail(nil)
	src.mu.Lock()
	src.tiers["a1"] = "tier_125_800"
	src.mu.Unlock()
	// Up to one more stale answer while the refresh runs in the background.
	deadline := time.Now().Add(5 * time.Second)
	for {
		p, err := c.Plan(ctx, "a1")
		if err != nil {
			t.Fatal(err)
		}
		if p.Tier == "tier_125_800" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still stale after recovery: %+v", p)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if p, err := c.Plan(ctx, "a2"); err != nil || p.Tier != "tier_200_1000" {
		t.Fatalf("new account after recovery: %+v %v", p, err)
	}
}

// TestStaleDoesNotWaitDuringOutage: once a lookup has failed, an expired
// entry is answered stale at once while the source is retried in the
// background, so a hanging store does not hold every request for
// query_timeout.
func TestStaleDoesNotWaitDuringOutage(t *testing.T) {
	ctx := context.Background()
	src := newFake()
	c, clk, reg := newStaleCache(t, src, time.Hour)
	for _, id := range []string{"a1", "a2"} {
		if _, err := c.Plan(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	src.setFail(errDown)
	clk.Advance(2 * time.Minute)
	if _, err := c.Plan(ctx, "a1"); err != nil { // learns of the outage
		t.Fatal(err)
	}
	gate := make(chan struct{})
	src.mu.Lock()
	src.gate = gate
	src.mu.Unlock()
	defer close(gate)
	done := make(chan error, 1)
	go func() { _, err := c.Plan(ctx, "a2"); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("stale answer waited for the hanging source")
	}
	if n := metricstest.Value(t, reg, "tenantgate_store_stale_answers_total", "kind", "plan"); n != 2 {
		t.Fatalf("stale answers = %v, want 2", n)
	}
}

// TestPingDuringOutage: readiness holds while stale answers can be served
// (the source answered within stale_if_error) and fails otherwise.
func TestPingDuringOutage(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		stale    time.Duration
		answered bool // a lookup succeeded before the outage
		advance  time.Duration
		wantErr  bool
	}{
		{"never answered", time.Hour, false, 0, true},
		{"answered recently", time.Hour, true, 10 * time.Minute, false},
		{"answered too long ago", time.Hour, true, 61 * time.Minute, true},
		{"stale_if_error off", 0, true, time.Second, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newFake()
			c, clk, _ := newStaleCache(t, src, tt.stale)
			if tt.answered {
				if _, err := c.Plan(ctx, "a1"); err != nil {
					t.Fatal(err)
				}
			}
			src.setFail(errDown)
			clk.Advance(tt.advance)
			if err := c.Ping(ctx); (err != nil) != tt.wantErr {
				t.Fatalf("Ping = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

// TestExpireRefetches: after a listener gap every entry is asked of the
// source again; fresh answers replace the old ones.
func TestExpireRefetches(t *testing.T) {
	ctx := context.Background()
	src := newFake()
	c, _, _ := newStaleCache(t, src, time.Hour)
	if _, err := c.Plan(ctx, "a1"); err != nil {
		t.Fatal(err)
	}
	src.mu.Lock()
	src.tiers["a1"] = "tier_125_800"
	src.mu.Unlock()
	c.Expire()
	if p, err := c.Plan(ctx, "a1"); err != nil || p.Tier != "tier_125_800" {
		t.Fatalf("after Expire: %+v %v", p, err)
	}
	if n := src.n("plan"); n != 2 {
		t.Fatalf("source asked %d times, want 2", n)
	}
}
