// Package membudget bounds the memory that message contents take in the
// process: one budget of bytes, from which a large message reserves its
// share before it is read whole (from an SMTP client, or back from Redis for
// delivery). When many large messages arrive at once, they wait for each
// other instead of exhausting memory; their senders, whose sessions stop
// reading, are held back by TCP.
//
// There are two ways to reserve:
//
//   - Acquire(ctx, n): all or nothing, for a size known in advance (a body
//     read back for delivery). The caller holds nothing while it waits.
//   - Reservation.Grow(ctx, n): for a message whose size is learnt as it
//     arrives. Growth takes what is free at once as long as what is left
//     still covers the largest single need (Largest); otherwise the
//     reservation waits, keeping what it holds, for Largest in all. Only one
//     reservation at a time waits while holding a part; the others queue for
//     that right.
//
// That is deadlock-free: everything held by reservations waiting while
// holding was taken at once and left at least Largest free, so together
// they hold at most Size - Largest. The one reservation allowed to wait for
// more needs at most Largest minus its own part, which the rest of the
// budget covers once the reservations that are not waiting (each has all
// it needs) are released. Every request is at most Largest, and waiters are
// served in order, so nobody waits forever behind a stream of small ones.
//
// A budget may also cap each owner's part (Share): a reservation made for
// an owner (ReserveFor, e.g. one account's messages) that would take the
// owner past its share fails at once with ErrOverShare instead of waiting,
// so that one owner can neither hold the whole budget nor make the others
// wait behind it, and two reservations of one owner never wait for each
// other.
//
// A nil *Budget is unlimited: reservations from it count nothing and never
// wait.
package membudget

import (
	"container/list"
	"context"
	"errors"
	"sync"
)

// ErrOverShare is Grow's error when the reservation's owner holds its whole
// share already.
var ErrOverShare = errors.New("membudget: the owner holds its whole share")

// Budget is a number of bytes shared by the reservations taken from it. It
// is safe for concurrent use.
type Budget struct {
	size    int64
	largest int64
	share   int64 // per owner; 0: none

	mu      sync.Mutex
	used    int64
	queue   list.List // *waiter: reservations waiting for bytes, in order
	growing bool      // a reservation has the right to wait while holding a part
	growers list.List // *waiter: reservations waiting for that right, in order
	owners  map[string]int64
}

type waiter struct {
	n     int64
	ready chan struct{} // closed when granted
}

// New returns a budget of size bytes in which no single need is above
// largest (a larger request is cut to it). largest is at most size; both
// are at least 1. share caps what one owner's reservations hold together;
// it is at least largest, so that any one need fits, and 0 means no cap.
func New(size, largest, share int64) *Budget {
	size = max(size, 1)
	largest = min(max(largest, 1), size)
	if share > 0 {
		share = min(max(share, largest), size)
	}
	return &Budget{size: size, largest: largest, share: share, owners: map[string]int64{}}
}

// Share is what one owner's reservations may hold together; 0: no cap.
func (b *Budget) Share() int64 {
	if b == nil {
		return 0
	}
	return b.share
}

// Size is the whole budget in bytes.
func (b *Budget) Size() int64 {
	if b == nil {
		return 0
	}
	return b.size
}

// Largest is the largest single need.
func (b *Budget) Largest() int64 {
	if b == nil {
		return 0
	}
	return b.largest
}

// InUse is the number of bytes held by reservations.
func (b *Budget) InUse() int64 {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// Waiting is the number of reservations waiting for bytes or for the right
// to wait while holding a part.
func (b *Budget) Waiting() int {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.queue.Len() + b.growers.Len()
}

// Acquire reserves n bytes (at most Largest), waiting until they are free or
// ctx is done. On error nothing is held.
func (b *Budget) Acquire(ctx context.Context, n int64) (*Reservation, error) {
	r := &Reservation{b: b}
	if b == nil {
		r.held = n
		return r, nil
	}
	n = min(max(n, 0), b.largest)
	if err := b.acquire(ctx, n); err != nil {
		return nil, err
	}
	r.held, r.fixed = n, true
	return r, nil
}

// Reserve returns an empty reservation, to Grow as a message arrives.
func (b *Budget) Reserve() *Reservation {
	return &Reservation{b: b}
}

// ReserveFor is Reserve for a reservation that counts against owner's
// share.
func (b *Budget) ReserveFor(owner string) *Reservation {
	return &Reservation{b: b, owner: owner}
}

// takeShare counts n more bytes against owner's share, or reports that
// they would take it past. Called with mu held.
func (b *Budget) takeShare(owner string, n int64) bool {
	if owner == "" || b.share == 0 {
		return true
	}
	if b.owners[owner]+n > b.share {
		return false
	}
	b.owners[owner] += n
	return true
}

// giveShare is takeShare undone. Called with mu held.
func (b *Budget) giveShare(owner string, n int64) {
	if owner == "" || b.share == 0 {
		return
	}
	if b.owners[owner] -= n; b.owners[owner] <= 0 {
		delete(b.owners, owner)
	}
}

// acquire takes n more bytes, in turn.
func (b *Budget) acquire(ctx context.Context, n int64) error {
	b.mu.Lock()
	if b.queue.Len() == 0 && b.used+n <= b.size {
		b.used += n
		b.mu.Unlock()
		return nil
	}
	w := &waiter{n: n, ready: make(chan struct{})}
	elem := b.queue.PushBack(w)
	b.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		b.mu.Lock()
		select {
		case <-w.ready:
			// Granted as ctx ended: give it back.
			b.used -= n
			b.notify()
		default:
			front := b.queue.Front() == elem
			b.queue.Remove(elem)
			if front {
				b.notify() // those behind may fit now
			}
		}
		b.mu.Unlock()
		return ctx.Err()
	}
}

// notify grants the waiters at the front of the queue that fit. Called with
// mu held.
func (b *Budget) notify() {
	for {
		e := b.queue.Front()
		if e == nil {
			return
		}
		w := e.Value.(*waiter)
		if b.size-b.used < w.n {
			return // in order: nobody overtakes the front
		}
		b.used += w.n
		b.queue.Remove(e)
		close(w.ready)
	}
}

// passGrowRight hands the right to wait while holding to the next in line.
// Called with mu held.
func (b *Budget) passGrowRight() {
	if e := b.growers.Front(); e != nil {
		b.growers.Remove(e)
		close(e.Value.(*waiter).ready)
		return
	}
	b.growing = false
}

// release gives n bytes back. Called with mu held.
func (b *Budget) release(n int64) {
	b.used -= n
	b.notify()
}

// Reservation is a number of bytes held in a budget. It is not safe for
// concurrent use.
type Reservation struct {
	b     *Budget
	owner string // "": counts against no share
	held  int64
	// fixed: what is held was not taken by Grow's rule (Acquire, or a
	// Shrink that kept a part), so waiting for more while holding it could
	// deadlock; Grow refuses.
	fixed bool
}

// Held is the number of bytes the reservation holds. A nil reservation
// holds nothing.
func (r *Reservation) Held() int64 {
	if r == nil {
		return 0
	}
	return r.held
}

// Grow makes the reservation hold at least n bytes (at most Largest). It
// takes them at once while that leaves Largest free; otherwise it waits,
// keeping what it holds, until it can hold Largest (so it never needs to
// grow again), or until ctx is done: then it holds what it held before.
// A reservation from ReserveFor fails at once with ErrOverShare if what it
// would hold takes its owner past the budget's share. Only a reservation
// from Reserve or ReserveFor grows, and not after a Shrink that left it
// holding something.
func (r *Reservation) Grow(ctx context.Context, n int64) error {
	b := r.b
	if b == nil {
		r.held = max(r.held, n)
		return nil
	}
	n = min(n, b.largest)
	if n <= r.held {
		return nil
	}
	if r.fixed && r.held > 0 {
		panic("membudget: Grow of a reservation from Acquire or after Shrink")
	}
	b.mu.Lock()
	if inc := n - r.held; b.queue.Len() == 0 && b.used+inc <= b.size-b.largest {
		if !b.takeShare(r.owner, inc) {
			b.mu.Unlock()
			return ErrOverShare
		}
		b.used += inc
		r.held = n
		b.mu.Unlock()
		return nil
	}
	// The owner's share is counted before waiting, for all that the
	// reservation will hold, so that the owner's other reservations cannot
	// take it meanwhile; it is given back if the wait fails.
	share := b.largest - r.held
	if !b.takeShare(r.owner, share) {
		b.mu.Unlock()
		return ErrOverShare
	}
	granted := false
	defer func() {
		if !granted {
			b.mu.Lock()
			b.giveShare(r.owner, share)
			b.mu.Unlock()
		}
	}()
	// Wait for the right to wait while holding a part.
	if b.growing {
		w := &waiter{ready: make(chan struct{})}
		elem := b.growers.PushBack(w)
		b.mu.Unlock()
		select {
		case <-w.ready:
		case <-ctx.Done():
			b.mu.Lock()
			select {
			case <-w.ready:
				b.passGrowRight() // handed over as ctx ended: pass it on
			default:
				b.growers.Remove(elem)
			}
			b.mu.Unlock()
			return ctx.Err()
		}
	} else {
		b.growing = true
		b.mu.Unlock()
	}
	defer func() {
		b.mu.Lock()
		b.passGrowRight()
		b.mu.Unlock()
	}()
	if err := b.acquire(ctx, b.largest-r.held); err != nil {
		return err
	}
	r.held, granted = b.largest, true
	return nil
}

// Shrink gives back what the reservation holds above n bytes. A
// reservation that still holds something afterwards can no longer Grow.
func (r *Reservation) Shrink(n int64) {
	n = max(n, 0)
	if r == nil || n >= r.held {
		return
	}
	r.fixed = true
	if b := r.b; b != nil {
		b.mu.Lock()
		b.giveShare(r.owner, r.held-n)
		b.release(r.held - n)
		b.mu.Unlock()
	}
	r.held = n
}

// Release gives back everything the reservation holds. A nil reservation
// holds nothing.
func (r *Reservation) Release() { r.Shrink(0) }

type reservationKey struct{}

// NewContext returns ctx carrying res, the reservation of the request it
// belongs to, for code further down that takes memory on the request's
// behalf (an attachment fetched by URL): it grows the same reservation,
// within the same owner's share.
func NewContext(ctx context.Context, res *Reservation) context.Context {
	return context.WithValue(ctx, reservationKey{}, res)
}

// FromContext returns the reservation NewContext put in ctx, or nil.
func FromContext(ctx context.Context) *Reservation {
	res, _ := ctx.Value(reservationKey{}).(*Reservation)
	return res
}
