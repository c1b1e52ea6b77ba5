// Package cache owns the in-process cache in front of a tenant store: one
// bounded TTL table per lookup kind, single flight per key, a shorter TTL for
// "not found" (held apart from found entries, under a hash of the key),
// a rate limit on store lookups of API keys not known to exist, and
// invalidation by change events (Postgres NOTIFY or a tenants file reload),
// and stale-if-error: while the store is unreachable, found entries past
// their TTL keep being answered for up to Options.StaleIfError (entries an
// invalidation removed are gone and never answered stale). It also records
// store query latency, errors and stale answers.
package cache

import (
	"container/list"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/tenantgate/tenantgate/internal/tenant"
)

// ErrLimited is answered, without querying the source, by an API key lookup
// over the unknown-key rate limit (Options.KeyLookupRate).
var ErrLimited = errors.New("store: too many lookups of unknown API keys")

// Source is the store behind the cache: every lookup tenantgate makes. Any
// error other than tenant.ErrNotFound from a lookup means the store is
// unavailable.
type Source interface {
	// PersonalAccount returns userID's personal account; tenant.ErrNotFound
	// when there is none.
	PersonalAccount(ctx context.Context, userID string) (tenant.Account, error)
	// Account returns the account; tenant.ErrNotFound when missing.
	Account(ctx context.Context, accountID string) (tenant.Account, error)
	// Membership returns userID's role in accountID; tenant.ErrNotFound when
	// the user is not a member.
	Membership(ctx context.Context, accountID, userID string) (tenant.Role, error)
	// Plan returns the account's plan; an account without a credit_accounts
	// row has Tier tenant.NoTier and no error.
	Plan(ctx context.Context, accountID string) (tenant.Plan, error)
	// APIKeyByPublic returns the API key; tenant.ErrNotFound when missing.
	APIKeyByPublic(ctx context.Context, publicKey string) (tenant.APIKey, error)
	// TouchAPIKeys sets last_used_at of the keys in one update.
	TouchAPIKeys(ctx context.Context, keyIDs []string, at time.Time) error
	// Route returns the account's routing row, enabled or not;
	// tenant.ErrNotFound when missing.
	Route(ctx context.Context, accountID string) (tenant.Route, error)
	// Routes returns all enabled routes.
	Routes(ctx context.Context) ([]tenant.Route, error)
	// Ping reports whether the store can answer.
	Ping(ctx context.Context) error
	// Close releases connections and stops background work.
	Close()
}

// Options configures a Cache.
type Options struct {
	// TTL of found entries; zero or negative disables caching.
	TTL time.Duration
	// NegativeTTL of "not found" entries; zero or negative disables them.
	NegativeTTL time.Duration
	// MaxEntries bounds the found entries of each lookup kind (default 10000).
	MaxEntries int
	// NegativeMaxEntries bounds the "not found" entries of each lookup kind
	// (default MaxEntries). They are held apart from found entries, so a
	// flood of unknown keys never evicts the keys that exist.
	NegativeMaxEntries int
	// KeyLookupRate limits source lookups of API keys not known to exist,
	// per second; over it APIKeyByPublic answers ErrLimited without a query.
	// Keys the source returned before (up to MaxEntries of them) are never
	// limited. Zero or negative: no limit.
	KeyLookupRate float64
	// KeyLookupBurst is the number of such lookups allowed at once (min 1).
	KeyLookupBurst int
	// StaleIfError is how long past its TTL a found entry may still be
	// answered while the source is unreachable (any error other than
	// tenant.ErrNotFound and ErrLimited). "Not found" entries are never
	// answered stale. Zero or negative: never.
	StaleIfError time.Duration
	// Metrics may be nil.
	Metrics *Metrics
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Event says which cached rows changed. Table is the unqualified table name
// (accounts, account_user, credit_accounts, api_keys,
// enterprise_bedrock_routing). Identifiers that are empty are unknown, in
// which case every entry of the table is dropped.
type Event struct {
	Table     string `json:"table"`
	AccountID string `json:"account_id,omitempty"`
	UserID    string `json:"user_id,omitempty"`
	PublicKey string `json:"public_key,omitempty"`
	// All drops every entry of Table (TRUNCATE).
	All bool `json:"all,omitempty"`
}

// Table names carried by events.
const (
	TableAccounts    = "accounts"
	TableAccountUser = "account_user"
	TableCredit      = "credit_accounts"
	TableAPIKeys     = "api_keys"
	TableRouting     = "enterprise_bedrock_routing"
)

// Cache wraps a Source. It implements the same lookups plus Invalidate and
// Flush. It is safe for concurrent use.
type Cache struct {
	src     Source
	opts    Options
	metrics *Metrics

	personal *table[tenant.Account]
	account  *table[tenant.Account]
	member   *table[tenant.Role]
	plan     *table[tenant.Plan]
	apikey   *table[tenant.APIKey]
	route    *table[tenant.Route]
	routes   *table[[]tenant.Route]

	// health tracks whether the source is reachable, for stale answers
	// and Ping.
	health sourceHealth

	closeOnce sync.Once
	onClose   []func()
}

// sourceHealth is what the cache knows of the source's reachability: when it
// last answered (a value or "not found") and whether its last answer was an
// outage.
type sourceHealth struct {
	mu           sync.Mutex
	lastAnswered time.Time
	down         bool
}

// record notes the outcome of one source call at now.
func (h *sourceHealth) record(err error, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if isOutage(err) {
		h.down = true
		return
	}
	h.down = false
	if now.After(h.lastAnswered) {
		h.lastAnswered = now
	}
}

func (h *sourceHealth) state() (down bool, lastAnswered time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.down, h.lastAnswered
}

// isOutage reports whether err from a source lookup means the source is
// unreachable: any error but "not found" and the unknown-key rate limit.
func isOutage(err error) bool {
	return err != nil && !errors.Is(err, tenant.ErrNotFound) && !errors.Is(err, ErrLimited)
}

// New wraps src.
func New(src Source, opts Options) *Cache {
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = 10000
	}
	if opts.NegativeMaxEntries <= 0 {
		opts.NegativeMaxEntries = opts.MaxEntries
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := &Cache{src: src, opts: opts, metrics: opts.Metrics}
	c.personal = newTable[tenant.Account]("personal_account", c)
	c.account = newTable[tenant.Account]("account", c)
	c.member = newTable[tenant.Role]("membership", c)
	c.plan = newTable[tenant.Plan]("plan", c)
	c.apikey = newTable[tenant.APIKey]("api_key", c)
	if opts.KeyLookupRate > 0 {
		l := newKeyLimiter(opts.KeyLookupRate, opts.KeyLookupBurst, opts.MaxEntries, opts.Now)
		c.apikey.admit, c.apikey.loaded = l.admit, l.loaded
	}
	c.route = newTable[tenant.Route]("route", c)
	c.routes = newTable[[]tenant.Route]("routes", c)
	return c
}

// OnClose registers f to run (once, in order) when Close is called, before
// the source is closed. Used to stop invalidation listeners.
func (c *Cache) OnClose(f func()) { c.onClose = append(c.onClose, f) }

// PersonalAccount returns the personal account of userID.
func (c *Cache) PersonalAccount(ctx context.Context, userID string) (tenant.Account, error) {
	return c.personal.get(ctx, userID, func(ctx context.Context) (tenant.Account, error) {
		return c.src.PersonalAccount(ctx, userID)
	})
}

// Account returns the account accountID.
func (c *Cache) Account(ctx context.Context, accountID string) (tenant.Account, error) {
	return c.account.get(ctx, accountID, func(ctx context.Context) (tenant.Account, error) {
		return c.src.Account(ctx, accountID)
	})
}

// Membership returns userID's role in accountID.
func (c *Cache) Membership(ctx context.Context, accountID, userID string) (tenant.Role, error) {
	return c.member.get(ctx, memberKey(accountID, userID), func(ctx context.Context) (tenant.Role, error) {
		return c.src.Membership(ctx, accountID, userID)
	})
}

func memberKey(accountID, userID string) string { return accountID + "\x00" + userID }

// Plan returns the plan of accountID.
func (c *Cache) Plan(ctx context.Context, accountID string) (tenant.Plan, error) {
	return c.plan.get(ctx, accountID, func(ctx context.Context) (tenant.Plan, error) {
		return c.src.Plan(ctx, accountID)
	})
}

// APIKeyByPublic returns the API key with the public part publicKey.
func (c *Cache) APIKeyByPublic(ctx context.Context, publicKey string) (tenant.APIKey, error) {
	return c.apikey.get(ctx, publicKey, func(ctx context.Context) (tenant.APIKey, error) {
		return c.src.APIKeyByPublic(ctx, publicKey)
	})
}

// TouchAPIKeys is passed through uncached.
func (c *Cache) TouchAPIKeys(ctx context.Context, keyIDs []string, at time.Time) error {
	start := c.opts.Now()
	err := c.src.TouchAPIKeys(ctx, keyIDs, at)
	c.metrics.observe("touch_api_keys", start, c.opts.Now(), err)
	return err
}

// Route returns the routing row of accountID (enabled or not).
func (c *Cache) Route(ctx context.Context, accountID string) (tenant.Route, error) {
	return c.route.get(ctx, accountID, func(ctx context.Context) (tenant.Route, error) {
		return c.src.Route(ctx, accountID)
	})
}

// Routes returns all enabled routes. The slice is the caller's.
func (c *Cache) Routes(ctx context.Context) ([]tenant.Route, error) {
	rs, err := c.routes.get(ctx, "", func(ctx context.Context) ([]tenant.Route, error) {
		return c.src.Routes(ctx)
	})
	if err != nil {
		return nil, err
	}
	return append([]tenant.Route(nil), rs...), nil
}

// Ping checks the source. While it is unreachable Ping still answers nil
// as long as the cache can serve stale answers: the source answered within
// Options.StaleIfError. It is tenantgate's readiness, and an outage of the
// store must not take every instance out of rotation while they can serve.
func (c *Cache) Ping(ctx context.Context) error {
	err := c.src.Ping(ctx)
	now := c.opts.Now()
	c.health.record(err, now)
	if err == nil || c.opts.StaleIfError <= 0 {
		return err
	}
	if _, last := c.health.state(); !last.IsZero() && now.Sub(last) < c.opts.StaleIfError {
		return nil
	}
	return err
}

// Close stops the registered listeners and closes the source.
func (c *Cache) Close() {
	c.closeOnce.Do(func() {
		for _, f := range c.onClose {
			f()
		}
		c.src.Close()
	})
}

// Flush drops every cached entry.
func (c *Cache) Flush() {
	c.personal.flush()
	c.account.flush()
	c.member.flush()
	c.plan.flush()
	c.apikey.flush()
	c.route.flush()
	c.routes.flush()
	c.metrics.invalidated("flush")
}

// Expire marks every found entry expired without removing it: the next
// lookup of each asks the source, and an entry is answered stale only if the
// source is unreachable then (Options.StaleIfError). "Not found" entries are
// dropped. Used when change events may have been missed (the invalidation
// listener lost its connection): an invalidation event, which says a row
// changed, removes entries instead (Invalidate).
func (c *Cache) Expire() {
	c.personal.expire()
	c.account.expire()
	c.member.expire()
	c.plan.expire()
	c.apikey.expire()
	c.route.expire()
	c.routes.expire()
	c.metrics.invalidated("expire")
}

// Invalidate drops the entries ev affects.
func (c *Cache) Invalidate(ev Event) {
	switch ev.Table {
	case TableAccounts:
		switch {
		case ev.All || ev.AccountID == "" || ev.UserID == "":
			c.account.flush()
			c.personal.flush()
		default:
			c.account.remove(ev.AccountID)
			c.personal.remove(ev.UserID)
			c.personal.removeWhere(func(_ string, a tenant.Account) bool { return a.ID == ev.AccountID })
		}
	case TableAccountUser:
		switch {
		case ev.All || ev.AccountID == "":
			c.member.flush()
		case ev.UserID == "":
			prefix := ev.AccountID + "\x00"
			c.member.removeWhere(func(k string, _ tenant.Role) bool { return len(k) >= len(prefix) && k[:len(prefix)] == prefix })
		default:
			c.member.remove(memberKey(ev.AccountID, ev.UserID))
		}
	case TableCredit:
		if ev.All || ev.AccountID == "" {
			c.plan.flush()
		} else {
			c.plan.remove(ev.AccountID)
		}
	case TableAPIKeys:
		if ev.All || ev.PublicKey == "" {
			c.apikey.flush()
		} else {
			c.apikey.remove(ev.PublicKey)
		}
	case TableRouting:
		if ev.All || ev.AccountID == "" {
			c.route.flush()
		} else {
			c.route.remove(ev.AccountID)
		}
		c.routes.flush()
	default:
		c.Flush()
		return
	}
	c.metrics.invalidated(ev.Table)
}

type entry[V any] struct {
	key      string
	val      V
	notFound bool
	expires  time.Time
}

// table is one lookup kind: a bounded LRU of found entries by key and one
// of "not found" entries by negKey(key). gen changes on every invalidation
// so that a load started before it is not stored after it.
type table[V any] struct {
	kind string
	c    *Cache
	// admit, when set, is asked before each source load; its error is
	// returned instead, without a query.
	admit func(key string) error
	// loaded, when set, is told the outcome of each source load.
	loaded func(key string, err error)

	mu     sync.Mutex
	gen    uint64
	items  map[string]*list.Element
	lru    *list.List
	neg    map[string]*list.Element
	negLRU *list.List
	sf     singleflight.Group
}

func newTable[V any](kind string, c *Cache) *table[V] {
	return &table[V]{kind: kind, c: c,
		items: map[string]*list.Element{}, lru: list.New(),
		neg: map[string]*list.Element{}, negLRU: list.New()}
}

// negKey is the key of a "not found" entry: a hash, so that what callers
// made up (random API keys) is not kept as given.
func negKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return string(sum[:])
}

type result[V any] struct {
	val V
	err error
}

func (t *table[V]) get(ctx context.Context, key string, load func(context.Context) (V, error)) (V, error) {
	now := t.c.opts.Now()
	t.mu.Lock()
	staleOK := false
	if el, ok := t.items[key]; ok {
		e := el.Value.(*entry[V])
		if now.Before(e.expires) {
			t.lru.MoveToFront(el)
			t.mu.Unlock()
			t.c.metrics.hit(t.kind)
			if e.notFound {
				var zero V
				return zero, tenant.ErrNotFound
			}
			return e.val, nil
		}
		if staleOK = t.staleUsable(e, now); !staleOK {
			t.lru.Remove(el)
			delete(t.items, key)
		}
	}
	nk := negKey(key)
	if el, ok := t.neg[nk]; ok {
		if now.Before(el.Value.(*entry[V]).expires) {
			t.negLRU.MoveToFront(el)
			t.mu.Unlock()
			t.c.metrics.hit(t.kind)
			var zero V
			return zero, tenant.ErrNotFound
		}
		t.negLRU.Remove(el)
		delete(t.neg, nk)
	}
	gen := t.gen
	t.mu.Unlock()
	t.c.metrics.miss(t.kind)

	if staleOK {
		// The source failed its last call: answer the last known value at
		// once and retry in the background, so that a hanging store does not
		// hold every request for the query timeout.
		if down, _ := t.c.health.state(); down {
			if v, ok := t.stale(key, now); ok {
				t.load(ctx, gen, key, load)
				return v, nil
			}
		}
	}

	ch := t.load(ctx, gen, key, load)
	select {
	case <-ctx.Done():
		var zero V
		return zero, fmt.Errorf("store %s lookup: %w", t.kind, ctx.Err())
	case r := <-ch:
		res := r.Val.(result[V])
		if isOutage(res.err) {
			if v, ok := t.stale(key, t.c.opts.Now()); ok {
				return v, nil
			}
		}
		return res.val, res.err
	}
}

// load starts (or joins) the source load of key and returns its result
// channel.
func (t *table[V]) load(ctx context.Context, gen uint64, key string, load func(context.Context) (V, error)) <-chan singleflight.Result {
	// The flight key carries the generation: callers arriving after an
	// invalidation start a fresh load instead of joining a stale one.
	return t.sf.DoChan(fmt.Sprintf("%d\x00%s", gen, key), func() (any, error) {
		// Detached from the first caller's cancellation so that one caller
		// giving up does not fail the others; the source bounds its queries.
		lctx := context.WithoutCancel(ctx)
		if t.admit != nil {
			if err := t.admit(key); err != nil {
				t.c.metrics.limited(t.kind)
				var zero V
				return result[V]{val: zero, err: err}, nil
			}
		}
		start := t.c.opts.Now()
		v, err := load(lctx)
		end := t.c.opts.Now()
		t.c.metrics.observe(t.kind, start, end, err)
		t.c.health.record(err, end)
		if t.loaded != nil {
			t.loaded(key, err)
		}
		t.store(gen, key, v, err, end)
		return result[V]{val: v, err: err}, nil
	})
}

// staleUsable reports whether the expired entry e may still be answered
// while the source is unreachable. Called with t.mu held.
func (t *table[V]) staleUsable(e *entry[V], now time.Time) bool {
	return !e.notFound && t.c.opts.StaleIfError > 0 && now.Before(e.expires.Add(t.c.opts.StaleIfError))
}

// stale returns key's found entry if it is still there (no invalidation
// removed it) and within Options.StaleIfError of its expiry, counting the
// stale answer.
func (t *table[V]) stale(key string, now time.Time) (V, bool) {
	t.mu.Lock()
	el, ok := t.items[key]
	var e *entry[V]
	if ok {
		e = el.Value.(*entry[V])
		ok = t.staleUsable(e, now)
	}
	t.mu.Unlock()
	if !ok {
		var zero V
		return zero, false
	}
	t.c.metrics.staleAnswer(t.kind)
	return e.val, true
}

func (t *table[V]) store(gen uint64, key string, v V, err error, now time.Time) {
	var ttl time.Duration
	notFound := false
	switch {
	case err == nil:
		ttl = t.c.opts.TTL
	case errors.Is(err, tenant.ErrNotFound):
		ttl = t.c.opts.NegativeTTL
		notFound = true
	default:
		return // outages are never cached
	}
	if ttl <= 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gen != gen {
		return
	}
	// An answer replaces the other kind's entry for the key, if any.
	items, lru, max := t.items, t.lru, t.c.opts.MaxEntries
	otherItems, otherLRU, otherKey := t.neg, t.negLRU, negKey(key)
	if notFound {
		items, lru, max = t.neg, t.negLRU, t.c.opts.NegativeMaxEntries
		otherItems, otherLRU, otherKey = t.items, t.lru, key
		key = negKey(key)
	}
	if el, ok := otherItems[otherKey]; ok {
		otherLRU.Remove(el)
		delete(otherItems, otherKey)
	}
	e := &entry[V]{key: key, val: v, notFound: notFound, expires: now.Add(ttl)}
	if el, ok := items[key]; ok {
		el.Value = e
		lru.MoveToFront(el)
		return
	}
	items[key] = lru.PushFront(e)
	for lru.Len() > max {
		old := lru.Back()
		lru.Remove(old)
		delete(items, old.Value.(*entry[V]).key)
	}
}

func (t *table[V]) remove(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.gen++
	if el, ok := t.items[key]; ok {
		t.lru.Remove(el)
		delete(t.items, key)
	}
	if el, ok := t.neg[negKey(key)]; ok {
		t.negLRU.Remove(el)
		delete(t.neg, negKey(key))
	}
}

// removeWhere drops the found entries match selects, and every "not found"
// entry (their keys are hashes and they have no value to match).
func (t *table[V]) removeWhere(match func(key string, v V) bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.gen++
	for k, el := range t.items {
		if e := el.Value.(*entry[V]); match(k, e.val) {
			t.lru.Remove(el)
			delete(t.items, k)
		}
	}
	t.neg = map[string]*list.Element{}
	t.negLRU.Init()
}

// expire marks every found entry expired (kept for stale answers) and
// drops the "not found" entries; loads started before it are not stored.
func (t *table[V]) expire() {
	now := t.c.opts.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.gen++
	for _, el := range t.items {
		if e := el.Value.(*entry[V]); e.expires.After(now) {
			c := *e
			c.expires = now
			el.Value = &c
		}
	}
	t.neg = map[string]*list.Element{}
	t.negLRU.Init()
}

func (t *table[V]) flush() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.gen++
	t.items = map[string]*list.Element{}
	t.lru.Init()
	t.neg = map[string]*list.Element{}
	t.negLRU.Init()
}

// len is the number of found and "not found" entries.
func (t *table[V]) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.items) + len(t.neg)
}
