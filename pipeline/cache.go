package pipeline

import (
	"sync"
	"time"
)

// ttlCache keeps recent lookups (API keys, sender domains, tracking
// settings, links) so that the hot path costs no Redis round trip for them.
// A change drops the entries it touches at once in every process
// (invalidate.go); the TTL bounds what a process keeps when it cannot hear
// about changes.
type ttlCache[V any] struct {
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

func newTTLCache[V any](ttl time.Duration) *ttlCache[V] {
	return &ttlCache[V]{ttl: ttl, entries: map[string]ttlEntry[V]{}}
}

// lookup returns the value of key: the cached one, or else what load
// returns, which is kept for the TTL when load succeeds and nothing was
// dropped meanwhile.
func (c *ttlCache[V]) lookup(key string, now time.Time, load func() (V, error)) (V, error) {
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

// dropIf removes every entry for which match is true.
func (c *ttlCache[V]) dropIf(match func(V) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.drops++
	for k, e := range c.entries {
		if match(e.value) {
			delete(c.entries, k)
		}
	}
}

// drop removes key's entry.
func (c *ttlCache[V]) drop(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.drops++
	delete(c.entries, key)
}

// dropAll empties the cache.
func (c *ttlCache[V]) dropAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.drops++
	clear(c.entries)
}
