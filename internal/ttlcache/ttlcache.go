// Package ttlcache keeps recent lookups for a while: the hot path's API keys,
// sender domains, tracking settings and links, so that they cost no Redis
// round trip. Whoever changes a record drops the entries it touches.
package ttlcache

import (
	"sync"
	"time"
)

// Cache keeps recent lookups (API keys, sender domains, tracking
// settings, links) so that the hot path costs no Redis round trip for them.
// A change drops the entries it touches at once in every process
// (pipeline/invalidate.go); the TTL bounds what a process keeps when it cannot hear
// about changes.
type Cache[V any] struct {
	ttl     time.Duration
	mu      sync.Mutex
	entries map[string]ttlEntry[V]
	// drops counts drops: a value loaded while one happened may be what
	// was dropped, read just before the change, so it is not kept.
	drops uint64
}

type ttlEntry[V any] struct {
	value   V
	expires time.Time
}

// maxCacheEntries bounds a cache: past it, everything is forgotten rather
// than letting the map grow.
const maxCacheEntries = 10000

// New returns a cache whose entries live for ttl; 0 keeps nothing.
func New[V any](ttl time.Duration) *Cache[V] {
	return &Cache[V]{ttl: ttl, entries: map[string]ttlEntry[V]{}}
}

// Lookup returns the value of key: the cached one, or else what load
// returns, which is kept for the TTL when load succeeds and nothing was
// dropped meanwhile.
func (c *Cache[V]) Lookup(key string, now time.Time, load func() (V, error)) (V, error) {
	c.mu.Lock()
	e, ok := c.entries[key]
	drops := c.drops
	c.mu.Unlock()
	if ok && !now.After(e.expires) {
		return e.value, nil
	}
	v, err := load()
	if err != nil || c.ttl <= 0 {
		return v, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.drops != drops {
		return v, nil
	}
	if len(c.entries) >= maxCacheEntries {
		clear(c.entries)
	}
	c.entries[key] = ttlEntry[V]{value: v, expires: now.Add(c.ttl)}
	return v, nil
}

// DropIf removes every entry for which match is true.
func (c *Cache[V]) DropIf(match func(V) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.drops++
	for k, e := range c.entries {
		if match(e.value) {
			delete(c.entries, k)
		}
	}
}

// Drop removes key's entry.
func (c *Cache[V]) Drop(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.drops++
	delete(c.entries, key)
}

// DropAll empties the cache.
func (c *Cache[V]) DropAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.drops++
	clear(c.entries)
}
