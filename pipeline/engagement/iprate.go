package engagement

import (
	"net/netip"
	"sync"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/safehttp"
)

// Anyone may hit the tracking endpoints, and each valid id (every email
// with tracking, every link) keeps up to maxHitEvents events: one client
// walking many ids could still write without end. So each client address
// records at most a rate of hits (Options.MaxHitsPerIPPerMinute), a token
// bucket that holds a minute of hits. Over it the endpoints answer as
// always (the pixel, the redirect: a person's click still reaches its
// link) and nothing is recorded.
//
// The buckets live in this process's memory only, keyed by the address
// (an IPv6 address by its /64, which one client usually holds whole); they
// are never stored in Redis nor logged, in privacy mode or not. With
// several processes behind a balancer each has its own buckets.
//
// Only public addresses are limited unless Options.LimitPrivateHits, as
// for the key-guessing lockout: behind a proxy every hit comes from the
// proxy's private address.

// ipBucketsPerGeneration bounds the memory of the buckets: at most two
// generations of this many addresses (some 100 bytes each) are kept.
const ipBucketsPerGeneration = 1 << 15

// ipLimiter is a token bucket per client address, in two generations: an
// address is looked up in the current one, then in the old one (and moved
// to the current); when the current one is full it becomes the old one,
// and what the old one held is forgotten. An address forgotten so gets a
// full bucket again: to reset its own, a client must make the limiter see
// a generation's worth of other addresses, which is a rate of its own.
type ipLimiter struct {
	perMinute    float64
	limitPrivate bool
	perGen       int

	mu       sync.Mutex
	cur, old map[netip.Prefix]*ipBucket
}

type ipBucket struct {
	tokens float64
	at     time.Time // when tokens was last brought up to date
}

// newIPLimiter returns a limiter of perMinute hits a minute per address;
// nil (no limit) when perMinute is 0.
func newIPLimiter(perMinute int, limitPrivate bool) *ipLimiter {
	if perMinute <= 0 {
		return nil
	}
	return &ipLimiter{
		perMinute: float64(perMinute), limitPrivate: limitPrivate, perGen: ipBucketsPerGeneration,
		cur: map[netip.Prefix]*ipBucket{}, old: map[netip.Prefix]*ipBucket{},
	}
}

// allow takes a token from ip's bucket at now, and reports whether there
// was one. An address that does not parse, or a private one when those
// are not limited, is always allowed.
func (l *ipLimiter) allow(ip string, now time.Time) bool {
	if l == nil {
		return true
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return true
	}
	addr = addr.Unmap()
	if !l.limitPrivate && !safehttp.Public(addr) {
		return true
	}
	bits := 32
	if addr.Is6() {
		bits = 64
	}
	key, _ := addr.Prefix(bits)

	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.cur[key]
	if b == nil {
		if b = l.old[key]; b != nil {
			delete(l.old, key)
		} else {
			b = &ipBucket{tokens: l.perMinute, at: now}
		}
		if len(l.cur) >= l.perGen {
			l.old, l.cur = l.cur, make(map[netip.Prefix]*ipBucket, l.perGen)
		}
		l.cur[key] = b
	}
	if d := now.Sub(b.at); d > 0 {
		b.tokens = min(l.perMinute, b.tokens+d.Minutes()*l.perMinute)
		b.at = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// size is how many addresses the limiter holds.
func (l *ipLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.cur) + len(l.old)
}
