package deliver

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/clock"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// Shaping is traffic shaping per destination, shared by every process
// through Redis (pipeline/store/destinations.go). A destination is the
// primary MX host of a recipient domain (mail through a relay host is not
// shaped: the smarthost is the operator's), or the
// provider group its name falls in (all of Google's MX hosts are one
// destination): at most MaxConnections deliveries to it at once and
// MessagesPerMinute messages a minute, across processes; and a provider's
// back-off reply (421, or 4.7.x "rate limited", "too many", "try again
// later") suspends it for SuspendMin, doubling at each suspension in a
// row up to SuspendMax, instead of each queued message retrying on its
// own schedule. A message for a suspended or full destination is put back
// on the retry schedule without an attempt: to the end of the suspension,
// or a couple of seconds later for a full one, spread at random so that
// what was held does not come back in one wave.
type Shaping struct {
	Store             *store.Store
	MaxConnections    int           // per destination, all processes; 0: no limit
	MessagesPerMinute int           // per destination, all processes; 0: no limit
	SuspendMin        time.Duration // first suspension; 0: 1 minute
	SuspendMax        time.Duration // longest suspension; 0: 30 minutes
	// Groups map MX host names to provider groups; nil: DefaultGroups.
	Groups []Group
	// LeaseTTL is how long a connection slot stays taken without renewal
	// (a killed process's slots free themselves after it); 0: 1 minute.
	LeaseTTL time.Duration
	// SlotWait is how long a message for a destination at its connection
	// limit waits for a slot in the worker (polling Redis about every
	// 50 ms); 0: 1 second; negative: not at all.
	SlotWait time.Duration
	// BusyDelay is how long a message that did not get a slot within
	// SlotWait is put back before it is tried again (±50 %); 0: 2 seconds.
	BusyDelay time.Duration
	Now       func() time.Time
	Logger    *slog.Logger
	// Int64N is the randomness of the spreads; nil: math/rand/v2.Int64N.
	Int64N func(n int64) int64
}

// Group is a provider whose MX hosts count as one destination.
type Group struct {
	Name     string
	Suffixes []string // host name suffixes, e.g. ".google.com"
}

// DefaultGroups are the large providers whose limits are per provider,
// not per MX host.
var DefaultGroups = []Group{
	{Name: "google", Suffixes: []string{".google.com", ".googlemail.com"}},
	{Name: "microsoft", Suffixes: []string{".outlook.com", ".protection.outlook.com", ".hotmail.com"}},
	{Name: "yahoo", Suffixes: []string{".yahoodns.net"}},
	{Name: "apple", Suffixes: []string{".mail.icloud.com"}},
}

func (s *Shaping) groups() []Group {
	if s.Groups != nil {
		return s.Groups
	}
	return DefaultGroups
}

// Destination returns the destination that host (an MX or relay host
// name, or an address) belongs to: its provider group's name, or the host
// itself, lower case without a final dot.
func (s *Shaping) Destination(host string) string {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	for _, g := range s.groups() {
		for _, suffix := range g.Suffixes {
			suffix = strings.ToLower(suffix)
			if strings.HasSuffix(h, suffix) || h == strings.TrimPrefix(suffix, ".") {
				return g.Name
			}
		}
	}
	return h
}

// Group returns the provider group of dest for metric labels: its name,
// or "other" (a label never holds a host name).
func (s *Shaping) Group(dest string) string {
	for _, g := range s.groups() {
		if g.Name == dest {
			return g.Name
		}
	}
	return "other"
}

func (s *Shaping) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Shaping) leaseTTL() time.Duration {
	if s.LeaseTTL > 0 {
		return s.LeaseTTL
	}
	return time.Minute
}

func (s *Shaping) suspendMin() time.Duration {
	if s.SuspendMin > 0 {
		return s.SuspendMin
	}
	return time.Minute
}

func (s *Shaping) suspendMax() time.Duration {
	if s.SuspendMax > 0 {
		return max(s.SuspendMax, s.suspendMin())
	}
	return max(30*time.Minute, s.suspendMin())
}

func (s *Shaping) int64n(n int64) int64 {
	if n <= 0 {
		return 0
	}
	if s.Int64N != nil {
		return s.Int64N(n)
	}
	return rand.Int64N(n)
}

// rateBurst is how many messages may go to a destination at once under
// its rate: ten seconds' worth, at least one.
func (s *Shaping) rateBurst() int { return max(s.MessagesPerMinute/6, 1) }

// Admit takes a connection slot for dest, and one message of its rate.
// When dest is at its connection limit and idle returns a slot this
// process holds there (a session kept for reuse, closed for it), that
// one is used. When it cannot, lease is nil and retryAt says when the
// message should be tried again (already spread), with the reason
// ("suspended", "rate", "connections").
func (s *Shaping) Admit(ctx context.Context, dest string, idle func(dest string) *Lease) (lease *Lease, retryAt time.Time, reason string, err error) {
	wait := s.SlotWait
	if wait == 0 {
		wait = time.Second
	}
	for waited := time.Duration(0); ; {
		lease, retryAt, reason, err = s.admitOnce(ctx, dest, idle)
		if err != nil || lease != nil || reason != "connections" || waited >= wait {
			break
		}
		// A slot frees when a delivery there ends: a short wait is
		// cheaper than a trip through the retry schedule.
		d := slotPoll/2 + time.Duration(s.int64n(int64(slotPoll)))
		if !clock.Sleep(ctx, d) {
			break
		}
		waited += d
	}
	if reason == "connections" || reason == "rate" {
		s.note(ctx, dest, s.now())
	}
	return lease, retryAt, reason, err
}

// slotPoll is the mean time between two tries for a connection slot.
const slotPoll = 50 * time.Millisecond

func (s *Shaping) admitOnce(ctx context.Context, dest string, idle func(dest string) *Lease) (*Lease, time.Time, string, error) {
	now := s.now()
	ttl := s.leaseTTL()
	// A session this process keeps idle there holds a slot already: the
	// message takes it, with the session, and only the suspension and the
	// rate are checked (without a message rate, nothing is written),
	// instead of a slot leased and given back for every message.
	if l := idleLease(idle, dest); l != nil {
		return s.admitOnLease(ctx, dest, l, now, ttl)
	}
	id := store.NewID("lease")
	adm, at, err := s.Store.AdmitDestination(ctx, dest, id, now, now.Add(ttl), s.MaxConnections, s.MessagesPerMinute, s.rateBurst())
	if err != nil {
		return nil, time.Time{}, "", err
	}
	switch adm {
	case store.Admitted:
		return newLease(s, dest, id, ttl), time.Time{}, "", nil
	case store.Suspended:
		return nil, s.spread(now, at), "suspended", nil
	case store.RateLimited:
		return nil, s.spread(now, at), "rate", nil
	}
	// Every slot is leased; one of this process's sessions may have gone
	// idle since.
	if l := idleLease(idle, dest); l != nil {
		return s.admitOnLease(ctx, dest, l, now, ttl)
	}
	busy := s.BusyDelay
	if busy <= 0 {
		busy = 2 * time.Second
	}
	return nil, now.Add(busy/2 + time.Duration(s.int64n(int64(busy)))), "connections", nil
}

// admitOnLease admits a message to dest on l, a slot this process holds
// there (an idle session's): unless dest is suspended or over its rate,
// when l is released (closing its session).
func (s *Shaping) admitOnLease(ctx context.Context, dest string, l *Lease, now time.Time, ttl time.Duration) (*Lease, time.Time, string, error) {
	adm, at, err := s.Store.AdmitDestination(ctx, dest, "", now, now.Add(ttl), s.MaxConnections, s.MessagesPerMinute, s.rateBurst())
	switch {
	case err != nil:
		l.Release()
		return nil, time.Time{}, "", err
	case adm == store.Admitted:
		return l, time.Time{}, "", nil
	}
	l.Release() // closes the session that came with it
	return nil, s.spread(now, at), map[store.Admission]string{store.Suspended: "suspended", store.RateLimited: "rate"}[adm], nil
}

func idleLease(idle func(string) *Lease, dest string) *Lease {
	if idle == nil {
		return nil
	}
	return idle(dest)
}

// note indexes dest as limited (GET /v1/destinations), best effort.
func (s *Shaping) note(ctx context.Context, dest string, now time.Time) {
	if err := s.Store.NoteDestination(ctx, dest, now); err != nil {
		s.logger().Warn("indexing a limited destination failed", "destination", dest, "err", err)
	}
}

// spread returns a time from at to a tenth of the wait later (at least a
// second), so that the messages held back until at are not all due at
// the same instant.
func (s *Shaping) spread(now, at time.Time) time.Time {
	window := max(at.Sub(now)/10, time.Second)
	return at.Add(time.Duration(s.int64n(int64(window))))
}

// BackOff suspends dest when err is a provider's back-off reply, and
// returns the time the suspension ends (zero when it was not one).
func (s *Shaping) BackOff(ctx context.Context, dest string, err error) (time.Time, error) {
	var de *Error
	if !errors.As(err, &de) || !ProviderBackOff(de) {
		return time.Time{}, nil
	}
	now := s.now()
	until, level, serr := s.Store.SuspendDestination(ctx, dest, now, s.suspendMin(), s.suspendMax(), de.Error())
	if serr != nil {
		return time.Time{}, serr
	}
	s.note(ctx, dest, now)
	s.logger().Info("destination suspended after a back-off reply", "destination", dest, "until", until, "level", level, "reply", de.Error())
	return until, nil
}

func (s *Shaping) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// backOffWords are what providers write in the replies that ask a sender
// to slow down.
var backOffWords = []string{"rate limit", "rate-limit", "ratelimit", "too many", "try again later", "try later",
	"throttl", "slow down", "temporarily deferred", "unusual rate", "exceeded"}

// ProviderBackOff reports whether a failure is a destination asking the
// sender to slow down rather than refusing this message: a 421 (the
// server is closing the channel, at connect or later) but for 4.4.1 and
// 4.4.2 (an idle or broken connection), or a 4xx with a 4.7.x enhanced
// code and words such as "rate limited", "too many" or "try again later".
// Greylisting (a 4xx naming greylisting) is not: it is about one sender
// and recipient, and the message's own retry passes it.
func ProviderBackOff(e *Error) bool {
	if e == nil || !e.Temporary || e.Code/100 != 4 {
		return false
	}
	msg := strings.ToLower(e.Message)
	if strings.Contains(msg, "greylist") || strings.Contains(msg, "graylist") {
		return false
	}
	if e.Code == 421 {
		return e.Enhanced != [3]int{4, 4, 1} && e.Enhanced != [3]int{4, 4, 2}
	}
	if e.Enhanced[0] != 4 || e.Enhanced[1] != 7 {
		return false
	}
	for _, w := range backOffWords {
		if strings.Contains(msg, w) {
			return true
		}
	}
	return false
}

// Lease is a hold on a connection slot at a destination; the slot is
// renewed in the background until released. Whoever holds the Lease
// releases it, unless it handed the slot to a session kept for reuse
// (attach): the session releases the slot when it closes, or hands it on
// to a message that needs it (handOver), as a new Lease.
type Lease struct {
	slot *leaseSlot

	mu        sync.Mutex
	handedOff bool
	session   *pooledSession // an idle session that came with the slot (takeLease), not yet used
}

type leaseSlot struct {
	s        *Shaping
	dest, id string
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once
}

func newLease(s *Shaping, dest, id string, ttl time.Duration) *Lease {
	slot := &leaseSlot{s: s, dest: dest, id: id, stop: make(chan struct{}), done: make(chan struct{})}
	go slot.renew(ttl)
	return &Lease{slot: slot}
}

// Destination returns the destination the slot is at.
func (l *Lease) Destination() string { return l.slot.dest }

// attach hands the slot to a session kept for reuse; false when it was
// handed off already.
func (l *Lease) attach() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.handedOff {
		return false
	}
	l.handedOff = true
	return true
}

// handOver returns a new hold on the slot of an attached Lease, for a
// message that takes the slot of a closed idle session.
func (l *Lease) handOver() *Lease { return &Lease{slot: l.slot} }

// takeSession returns the idle session that came with the slot if it is
// connected to key; one connected elsewhere is closed.
func (l *Lease) takeSession(key string) *pooledSession {
	l.mu.Lock()
	s := l.session
	l.session = nil
	l.mu.Unlock()
	if s != nil && s.key != key {
		quit(s.c, time.Second)
		s.close()
		return nil
	}
	return s
}

// Release gives the slot back unless it was handed to a session, and
// closes the session that came with it if it was not used. It is safe to
// call more than once.
func (l *Lease) Release() {
	l.mu.Lock()
	handedOff, s := l.handedOff, l.session
	l.session = nil
	l.mu.Unlock()
	if s != nil {
		quit(s.c, time.Second)
		s.close()
	}
	if !handedOff {
		l.slot.release()
	}
}

// release gives the slot back, whoever holds it (the session closing).
func (l *Lease) release() { l.slot.release() }

func (l *leaseSlot) renew(ttl time.Duration) {
	defer close(l.done)
	tick := time.NewTicker(ttl / 3)
	defer tick.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), ttl/3)
		if err := l.s.Store.RenewDestinationLease(ctx, l.dest, l.id, l.s.now().Add(ttl), ttl); err != nil {
			l.s.logger().Warn("renewing a destination lease failed", "destination", l.dest, "err", err)
		}
		cancel()
	}
}

func (l *leaseSlot) release() {
	l.once.Do(func() {
		close(l.stop)
		<-l.done
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := l.s.Store.ReleaseDestinationLease(ctx, l.dest, l.id); err != nil {
			// It lapses by itself after LeaseTTL.
			l.s.logger().Warn("releasing a destination lease failed", "destination", l.dest, "err", err)
		}
	})
}
