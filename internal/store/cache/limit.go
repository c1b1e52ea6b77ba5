package cache

import (
	"container/list"
	"errors"
	"sync"
	"time"

	"github.com/tenantgate/tenantgate/internal/tenant"
)

// keyLimiter bounds the source lookups that random API keys can cause: a
// token bucket for keys not known to exist, and a bounded LRU of the
// (hashed) public keys the source has returned, which are never limited.
// Only the source can put a key in the known set, so a caller cannot use it
// to get past the limit without holding a real public key, and a real key
// costs at most one lookup per TTL or invalidation.
type keyLimiter struct {
	rate, burst float64
	now         func() time.Time

	mu     sync.Mutex
	tokens float64
	last   time.Time
	known  map[string]*list.Element
	lru    *list.List
	max    int
}

func newKeyLimiter(rate float64, burst, maxKnown int, now func() time.Time) *keyLimiter {
	if burst < 1 {
		burst = 1
	}
	return &keyLimiter{
		rate: rate, burst: float64(burst), now: now,
		tokens: float64(burst), last: now(),
		known: map[string]*list.Element{}, lru: list.New(), max: maxKnown,
	}
}

// admit lets a lookup of publicKey through when the key is known or a
// token is left; otherwise it answers ErrLimited.
func (l *keyLimiter) admit(publicKey string) error {
	h := negKey(publicKey)
	l.mu.Lock()
	defer l.mu.Unlock()
	if el, ok := l.known[h]; ok {
		l.lru.MoveToFront(el)
		return nil
	}
	now := l.now()
	if elapsed := now.Sub(l.last).Seconds(); elapsed > 0 {
		l.tokens = min(l.burst, l.tokens+elapsed*l.rate)
	}
	l.last = now
	if l.tokens < 1 {
		return ErrLimited
	}
	l.tokens--
	return nil
}

// loaded records what the source said about publicKey: found keys become
// known, keys it no longer has are forgotten; outages change nothing.
func (l *keyLimiter) loaded(publicKey string, err error) {
	h := negKey(publicKey)
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case err == nil:
		if el, ok := l.known[h]; ok {
			l.lru.MoveToFront(el)
			return
		}
		l.known[h] = l.lru.PushFront(h)
		for l.lru.Len() > l.max {
			old := l.lru.Back()
			l.lru.Remove(old)
			delete(l.known, old.Value.(string))
		}
	case errors.Is(err, tenant.ErrNotFound):
		if el, ok := l.known[h]; ok {
			l.lru.Remove(el)
			delete(l.known, h)
		}
	}
}
