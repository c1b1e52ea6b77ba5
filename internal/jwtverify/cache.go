package jwtverify

import (
	"container/list"
	"crypto/sha256"
	"sync"
	"time"
)

// maxCacheTTL bounds how long a verified token is served from the cache.
const maxCacheTTL = 5 * time.Minute

// tokenCache is a bounded LRU of verified tokens keyed by the SHA-256 of the
// token; the token itself is never stored.
type tokenCache struct {
	size int

	mu    sync.Mutex
	ll    *list.List // front = most recently used
	items map[[sha256.Size]byte]*list.Element
}

type cacheEntry struct {
	key    [sha256.Size]byte
	claims Claims
	until  time.Time
}

func newTokenCache(size int) *tokenCache {
	if size <= 0 {
		return nil
	}
	return &tokenCache{size: size, ll: list.New(), items: make(map[[sha256.Size]byte]*list.Element)}
}

// get returns the cached claims of a token if the entry is still valid at
// now: before its cache deadline and before the token's exp.
func (c *tokenCache) get(key [sha256.Size]byte, now time.Time) (Claims, bool) {
	if c == nil {
		return Claims{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		return Claims{}, false
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.until) || !now.Before(e.claims.ExpiresAt) {
		c.ll.Remove(el)
		delete(c.items, key)
		return Claims{}, false
	}
	c.ll.MoveToFront(el)
	return e.claims, true
}

// put stores claims until min(exp, now+maxCacheTTL), evicting the least
// recently used entry when full.
func (c *tokenCache) put(key [sha256.Size]byte, claims Claims, now time.Time) {
	if c == nil {
		return
	}
	until := now.Add(maxCacheTTL)
	if claims.ExpiresAt.Before(until) {
		until = claims.ExpiresAt
	}
	if !now.Before(until) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		e := el.Value.(*cacheEntry)
		e.claims, e.until = claims, until
		c.ll.MoveToFront(el)
		return
	}
	for c.ll.Len() >= c.size {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.items, old.Value.(*cacheEntry).key)
	}
	c.items[key] = c.ll.PushFront(&cacheEntry{key: key, claims: claims, until: until})
}

func (c *tokenCache) len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}
