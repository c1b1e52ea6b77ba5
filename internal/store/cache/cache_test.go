package cache

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/internal/metrics/metricstest"
	"github.com/tenantgate/tenantgate/internal/tenant"
)

// fakeSource counts calls per method and answers from maps; gate, when set,
// blocks every lookup until closed.
type fakeSource struct {
	mu       sync.Mutex
	calls    map[string]int
	accounts map[string]tenant.Account
	tiers    map[string]string
	keys     map[string]tenant.APIKey // API keys besides pk_1
	fail     error
	gate     chan struct{}
	closed   atomic.Bool
}

func newFake() *fakeSource {
	return &fakeSource{
		calls: map[string]int{},
		accounts: map[string]tenant.Account{
			"a1": {ID: "a1", PrimaryOwnerUserID: "u1", Personal: true},
			"a2": {ID: "a2", PrimaryOwnerUserID: "u2"},
		},
		tiers: map[string]string{"a1": "free", "a2": "tier_200_1000"},
	}
}

func (f *fakeSource) enter(m string) error {
	f.mu.Lock()
	f.calls[m]++
	gate, fail := f.gate, f.fail
	f.mu.Unlock()
	if gate != nil {
		<-gate
	}
	return fail
}

func (f *fakeSource) n(m string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[m]
}

func (f *fakeSource) PersonalAccount(_ context.Context, userID string) (tenant.Account, error) {
	if err := f.enter("personal"); err != nil {
		return tenant.Account{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range f.accounts {
		if a.Personal && a.PrimaryOwnerUserID == userID {
			return a, nil
		}
	}
	return tenant.Account{}, tenant.ErrNotFound
}

func (f *fakeSource) Account(_ context.Context, id string) (tenant.Account, error) {
	if err := f.enter("account"); err != nil {
		return tenant.Account{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if a, ok := f.accounts[id]; ok {
		return a, nil
	}
	return tenant.Account{}, tenant.ErrNotFound
}

func (f *fakeSource) Membership(_ context.Context, accountID, userID string) (tenant.Role, error) {
	if err := f.enter("membership"); err != nil {
		return "", err
	}
	if accountID == "a2" && userID == "u1" {
		return tenant.RoleMember, nil
	}
	return "", tenant.ErrNotFound
}

func (f *fakeSource) Plan(_ context.Context, id string) (tenant.Plan, error) {
	if err := f.enter("plan"); err != nil {
		return tenant.Plan{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if t, ok := f.tiers[id]; ok {
		return tenant.Plan{Tier: t}, nil
	}
	return tenant.Plan{Tier: tenant.NoTier}, nil
}

func (f *fakeSource) APIKeyByPublic(_ context.Context, pk string) (tenant.APIKey, error) {
	if err := f.enter("apikey"); err != nil {
		return tenant.APIKey{}, err
	}
	if pk == "pk_1" {
		return tenant.APIKey{KeyID: "k1", PublicKey: pk, AccountID: "a2", Status: tenant.KeyActive}, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if k, ok := f.keys[pk]; ok {
		return k, nil
	}
	return tenant.APIKey{}, tenant.ErrNotFound
}

func (f *fakeSource) TouchAPIKeys(context.Context, []string, time.Time) error {
	return f.enter("touch")
}

func (f *fakeSource) Route(_ context.Context, id string) (tenant.Route, error) {
	if err := f.enter("route"); err != nil {
		return tenant.Route{}, err
	}
	if id == "a2" {
		return tenant.Route{AccountID: "a2", RoleARN: "arn:aws:iam::111122223333:role/R", Enabled: true}, nil
	}
	return tenant.Route{}, tenant.ErrNotFound
}

func (f *fakeSource) Routes(context.Context) ([]tenant.Route, error) {
	if err := f.enter("routes"); err != nil {
		return nil, err
	}
	return []tenant.Route{{AccountID: "a2", Enabled: true}}, nil
}

func (f *fakeSource) Ping(context.Context) error { return f.enter("ping") }
func (f *fakeSource) Close()                     { f.closed.Store(true) }

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newCache(t *testing.T, src Source) (*Cache, *clock) {
	t.Helper()
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	return New(src, Options{TTL: time.Minute, NegativeTTL: 10 * time.Second, Now: clk.Now}), clk
}

func TestTTL(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name      string
		lookup    func(*Cache) error
		method    string
		ttl       time.Duration
		wantError error
	}{
		{"found account uses TTL", func(c *Cache) error { _, err := c.Account(ctx, "a1"); return err }, "account", time.Minute, nil},
		{"not found account uses negative TTL", func(c *Cache) error { _, err := c.Account(ctx, "zz"); return err }, "account", 10 * time.Second, tenant.ErrNotFound},
		{"membership found", func(c *Cache) error { _, err := c.Membership(ctx, "a2", "u1"); return err }, "membership", time.Minute, nil},
		{"membership not found", func(c *Cache) error { _, err := c.Membership(ctx, "a2", "u9"); return err }, "membership", 10 * time.Second, tenant.ErrNotFound},
		{"personal account", func(c *Cache) error { _, err := c.PersonalAccount(ctx, "u1"); return err }, "personal", time.Minute, nil},
		{"plan", func(c *Cache) error { _, err := c.Plan(ctx, "a1"); return err }, "plan", time.Minute, nil},
		{"api key missing", func(c *Cache) error { _, err := c.APIKeyByPublic(ctx, "pk_x"); return err }, "apikey", 10 * time.Second, tenant.ErrNotFound},
		{"route", func(c *Cache) error { _, err := c.Route(ctx, "a2"); return err }, "route", time.Minute, nil},
		{"routes", func(c *Cache) error { _, err := c.Routes(ctx); return err }, "routes", time.Minute, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newFake()
			c, clk := newCache(t, src)
			for i := 0; i < 3; i++ {
				if err := tt.lookup(c); !errors.Is(err, tt.wantError) {
					t.Fatalf("lookup %d: err %v, want %v", i, err, tt.wantError)
				}
			}
			if got := src.n(tt.method); got != 1 {
				t.Fatalf("source called %d times within TTL, want 1", got)
			}
			clk.Advance(tt.ttl - time.Millisecond)
			_ = tt.lookup(c)
			if got := src.n(tt.method); got != 1 {
				t.Fatalf("source called %d times just before expiry, want 1", got)
			}
			clk.Advance(2 * time.Millisecond)
			_ = tt.lookup(c)
			if got := src.n(tt.method); got != 2 {
				t.Fatalf("source called %d times after expiry, want 2", got)
			}
		})
	}
}

func TestErrorsAreNotCached(t *testing.T) {
	src := newFake()
	src.fail = errors.New("connection refused")
	c, _ := newCache(t, src)
	for i := 0; i < 2; i++ {
		_, err := c.Plan(context.Background(), "a1")
		if err == nil || errors.Is(err, tenant.ErrNotFound) {
			t.Fatalf("want outage error, got %v", err)
		}
	}
	if src.n("plan") != 2 {
		t.Fatalf("source called %d times, want 2 (errors must not be cached)", src.n("plan"))
	}
	src.mu.Lock()
	src.fail = nil
	src.mu.Unlock()
	p, err := c.Plan(context.Background(), "a1")
	if err != nil || p.Tier != "free" {
		t.Fatalf("after recovery: %+v %v", p, err)
	}
}

func TestDisabledTTLPassesThrough(t *testing.T) {
	src := newFake()
	c := New(src, Options{})
	for i := 0; i < 3; i++ {
		if _, err := c.Account(context.Background(), "a1"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Account(context.Background(), "nope"); !errors.Is(err, tenant.ErrNotFound) {
			t.Fatal(err)
		}
	}
	if src.n("account") != 6 {
		t.Fatalf("source called %d times, want 6", src.n("account"))
	}
}

func TestSingleflight(t *testing.T) {
	src := newFake()
	src.gate = make(chan struct{})
	c, _ := newCache(t, src)
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := c.Account(context.Background(), "a2")
			if err == nil && a.ID != "a2" {
				err = errors.New("wrong account " + a.ID)
			}
			errs <- err
		}()
	}
	// Wait until the one load is in flight, then give the others time to join.
	deadline := time.Now().Add(5 * time.Second)
	for src.n("account") == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	close(src.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := src.n("account"); got != 1 {
		t.Fatalf("source called %d times for %d concurrent lookups, want 1", got, n)
	}
}

func TestCallerCancellation(t *testing.T) {
	src := newFake()
	src.gate = make(chan struct{})
	defer close(src.gate)
	c, _ := newCache(t, src)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := c.Plan(ctx, "a1")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
}

func TestInvalidate(t *testing.T) {
	ctx := context.Background()
	type probe struct {
		method string
		lookup func(*Cache)
	}
	probes := []probe{
		{"account", func(c *Cache) { _, _ = c.Account(ctx, "a1") }},
		{"personal", func(c *Cache) { _, _ = c.PersonalAccount(ctx, "u1") }},
		{"membership", func(c *Cache) { _, _ = c.Membership(ctx, "a2", "u1") }},
		{"plan", func(c *Cache) { _, _ = c.Plan(ctx, "a2") }},
		{"apikey", func(c *Cache) { _, _ = c.APIKeyByPublic(ctx, "pk_1") }},
		{"route", func(c *Cache) { _, _ = c.Route(ctx, "a2") }},
		{"routes", func(c *Cache) { _, _ = c.Routes(ctx) }},
	}
	tests := []struct {
		name    string
		ev      Event
		reloads []string // probes whose entry must be dropped
	}{
		{"account row", Event{Table: TableAccounts, AccountID: "a1", UserID: "u1"}, []string{"account", "personal"}},
		{"other account row", Event{Table: TableAccounts, AccountID: "a9", UserID: "u9"}, nil},
		{"account truncate", Event{Table: TableAccounts, All: true}, []string{"account", "personal"}},
		{"membership row", Event{Table: TableAccountUser, AccountID: "a2", UserID: "u1"}, []string{"membership"}},
		{"membership of account", Event{Table: TableAccountUser, AccountID: "a2"}, []string{"membership"}},
		{"membership other user", Event{Table: TableAccountUser, AccountID: "a2", UserID: "u7"}, nil},
		{"plan row", Event{Table: TableCredit, AccountID: "a2"}, []string{"plan"}},
		{"other plan row", Event{Table: TableCredit, AccountID: "a1"}, nil},
		{"api key row", Event{Table: TableAPIKeys, AccountID: "a2", PublicKey: "pk_1"}, []string{"apikey"}},
		{"other api key", Event{Table: TableAPIKeys, AccountID: "a2", PublicKey: "pk_2"}, nil},
		{"route row", Event{Table: TableRouting, AccountID: "a2"}, []string{"route", "routes"}},
		{"other route row", Event{Table: TableRouting, AccountID: "a1"}, []string{"routes"}},
		{"unknown table flushes", Event{Table: "mystery"}, []string{"account", "personal", "membership", "plan", "apikey", "route", "routes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newFake()
			c, _ := newCache(t, src)
			for _, p := range probes {
				p.lookup(c)
			}
			c.Invalidate(tt.ev)
			for _, p := range probes {
				p.lookup(c)
			}
			want := map[string]bool{}
			for _, m := range tt.reloads {
				want[m] = true
			}
			for _, p := range probes {
				n := src.n(p.method)
				if want[p.method] && n != 2 {
					t.Errorf("%s: source called %d times, want 2 (entry should be dropped)", p.method, n)
				}
				if !want[p.method] && n != 1 {
					t.Errorf("%s: source called %d times, want 1 (entry should stay)", p.method, n)
				}
			}
		})
	}
}

func TestInvalidationDuringLoadIsNotStored(t *testing.T) {
	src := newFake()
	gate := make(chan struct{})
	src.gate = gate
	c, _ := newCache(t, src)
	done := make(chan tenant.Plan)
	go func() {
		p, _ := c.Plan(context.Background(), "a2")
		done <- p
	}()
	for src.n("plan") == 0 {
		time.Sleep(time.Millisecond)
	}
	// The row changes and its notification arrives while the old value is
	// being read; later loads are not blocked.
	src.mu.Lock()
	src.tiers["a2"] = "free"
	src.gate = nil
	src.mu.Unlock()
	c.Invalidate(Event{Table: TableCredit, AccountID: "a2"})
	close(gate)
	<-done
	p, err := c.Plan(context.Background(), "a2")
	if err != nil {
		t.Fatal(err)
	}
	if p.Tier != "free" {
		t.Fatalf("tier %q after invalidation, want the new value free", p.Tier)
	}
}

func TestBounded(t *testing.T) {
	src := newFake()
	clk := &clock{t: time.Unix(0, 0)}
	c := New(src, Options{TTL: time.Hour, NegativeTTL: time.Hour, MaxEntries: 2, Now: clk.Now})
	ctx := context.Background()
	for _, id := range []string{"x1", "x2", "x3"} {
		_, _ = c.Account(ctx, id)
	}
	if n := c.account.len(); n != 2 {
		t.Fatalf("%d entries, want 2", n)
	}
	_, _ = c.Account(ctx, "x3") // newest: cached
	if src.n("account") != 3 {
		t.Fatalf("x3 should be cached")
	}
	_, _ = c.Account(ctx, "x1") // oldest: evicted
	if src.n("account") != 4 {
		t.Fatalf("x1 should have been evicted")
	}
}

func TestFlushCloseAndMetrics(t *testing.T) {
	src := newFake()
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	// A second registration on the same registry reuses the collectors.
	if _, err := NewMetrics(reg); err != nil {
		t.Fatalf("second NewMetrics: %v", err)
	}
	c := New(src, Options{TTL: time.Minute, NegativeTTL: time.Second, Metrics: m})
	ctx := context.Background()
	_, _ = c.Account(ctx, "a1")
	_, _ = c.Account(ctx, "a1")
	c.Flush()
	_, _ = c.Account(ctx, "a1")
	if src.n("account") != 2 {
		t.Fatalf("source called %d times, want 2", src.n("account"))
	}
	if got := metricstest.Value(t, reg, "tenantgate_store_cache_hits_total", "kind", "account"); got != 1 {
		t.Errorf("hits = %v, want 1", got)
	}
	if got := metricstest.Value(t, reg, "tenantgate_store_cache_misses_total", "kind", "account"); got != 2 {
		t.Errorf("misses = %v, want 2", got)
	}
	if got := metricstest.Value(t, reg, "tenantgate_store_cache_invalidations_total", "table", "flush"); got != 1 {
		t.Errorf("flush invalidations = %v, want 1", got)
	}
	src.fail = errors.New("boom")
	_, _ = c.Plan(ctx, "a1")
	if got := metricstest.Value(t, reg, "tenantgate_store_query_errors_total", "kind", "plan"); got != 1 {
		t.Errorf("query errors = %v, want 1", got)
	}
	stopped := false
	c.OnClose(func() { stopped = true })
	c.Close()
	c.Close()
	if !stopped || !src.closed.Load() {
		t.Fatalf("Close: listener stopped=%v source closed=%v", stopped, src.closed.Load())
	}
}
