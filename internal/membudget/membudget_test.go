package membudget

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
)

// result runs fn in a goroutine and returns its error on a channel.
func result(fn func() error) <-chan error {
	c := make(chan error, 1)
	go func() { c <- fn() }()
	return c
}

func recv(t *testing.T, c <-chan error) error {
	t.Helper()
	select {
	case err := <-c:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("no result")
		return nil
	}
}

func TestAcquireWaitsInOrder(t *testing.T) {
	b := New(100, 60, 0)
	ctx := context.Background()
	first, err := b.Acquire(ctx, 60)
	if err != nil || b.InUse() != 60 {
		t.Fatalf("first: %v, in use %d", err, b.InUse())
	}
	var second, third *Reservation
	c2 := result(func() (err error) { second, err = b.Acquire(ctx, 50); return })
	testkit.WaitFor(t, "the second to wait", func() bool { return b.Waiting() == 1 })
	// 40 are free and the third fits, but it does not overtake the second.
	c3 := result(func() (err error) { third, err = b.Acquire(ctx, 10); return })
	testkit.WaitFor(t, "the third to wait", func() bool { return b.Waiting() == 2 })
	first.Release()
	if err := recv(t, c2); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, c3); err != nil {
		t.Fatal(err)
	}
	if b.InUse() != 60 || second.Held() != 50 || third.Held() != 10 {
		t.Errorf("in use %d, held %d and %d", b.InUse(), second.Held(), third.Held())
	}
	second.Release()
	third.Release()
	if b.InUse() != 0 || b.Waiting() != 0 {
		t.Errorf("after release: in use %d, waiting %d", b.InUse(), b.Waiting())
	}
}

func TestAcquireCutToLargest(t *testing.T) {
	b := New(100, 30, 0)
	r, err := b.Acquire(context.Background(), 1000)
	if err != nil || r.Held() != 30 || b.InUse() != 30 {
		t.Fatalf("%v: held %d, in use %d", err, r.Held(), b.InUse())
	}
	if New(10, 50, 0).Largest() != 10 {
		t.Error("largest above size")
	}
}

func TestAcquireTimeoutHoldsNothing(t *testing.T) {
	b := New(100, 100, 0)
	hold, _ := b.Acquire(context.Background(), 80)
	ctx, cancel := context.WithCancel(context.Background())
	c := result(func() error { _, err := b.Acquire(ctx, 50); return err })
	testkit.WaitFor(t, "the waiter", func() bool { return b.Waiting() == 1 })
	cancel()
	if err := recv(t, c); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
	if b.InUse() != 80 || b.Waiting() != 0 {
		t.Errorf("in use %d, waiting %d", b.InUse(), b.Waiting())
	}
	hold.Release()
	if b.InUse() != 0 {
		t.Errorf("in use %d", b.InUse())
	}
}

// TestCancelledFrontLetsOthersIn: when the waiter at the front gives up,
// those behind it that fit are served.
func TestCancelledFrontLetsOthersIn(t *testing.T) {
	b := New(100, 100, 0)
	hold, _ := b.Acquire(context.Background(), 60)
	ctx, cancel := context.WithCancel(context.Background())
	big := result(func() error { _, err := b.Acquire(ctx, 90); return err })
	testkit.WaitFor(t, "the big one", func() bool { return b.Waiting() == 1 })
	small := result(func() error { _, err := b.Acquire(context.Background(), 30); return err })
	testkit.WaitFor(t, "the small one", func() bool { return b.Waiting() == 2 })
	cancel()
	if err := recv(t, big); err == nil {
		t.Fatal("the big one got its bytes")
	}
	if err := recv(t, small); err != nil {
		t.Fatal(err)
	}
	hold.Release()
	if b.InUse() != 30 {
		t.Errorf("in use %d", b.InUse())
	}
}

func TestGrowAtOnceWhileLargestStaysFree(t *testing.T) {
	b := New(100, 40, 0)
	ctx := context.Background()
	r := b.Reserve()
	if err := r.Grow(ctx, 10); err != nil || r.Held() != 10 {
		t.Fatalf("%v, held %d", err, r.Held())
	}
	if err := r.Grow(ctx, 60); err != nil || r.Held() != 40 {
		t.Fatalf("grow past largest: %v, held %d", err, r.Held()) // cut to 40; 60 free remain
	}
	r2 := b.Reserve()
	if err := r2.Grow(ctx, 20); err != nil || b.InUse() != 60 {
		t.Fatalf("%v, in use %d", err, b.InUse())
	}
	r.Shrink(15)
	if r.Held() != 15 || b.InUse() != 35 {
		t.Errorf("after shrink: held %d, in use %d", r.Held(), b.InUse())
	}
	r.Release()
	r2.Release()
	if b.InUse() != 0 {
		t.Errorf("in use %d", b.InUse())
	}
}

// TestGrowWaitsForLargestOneAtATime: growth that would leave less than
// Largest free waits for Largest in all, one reservation at a time, keeping
// what it holds; a cancelled wait passes its turn on.
func TestGrowWaitsForLargestOneAtATime(t *testing.T) {
	b := New(100, 50, 0)
	ctx := context.Background()
	a, c, d := b.Reserve(), b.Reserve(), b.Reserve()
	for _, r := range []*Reservation{a, c, d} {
		if err := r.Grow(ctx, 10); err != nil {
			t.Fatal(err)
		}
	}
	other, _ := b.Acquire(ctx, 40) // 70 in use: a needs 40 more, 30 are free
	ga := result(func() error { return a.Grow(ctx, 20) })
	testkit.WaitFor(t, "a to wait for bytes", func() bool { return b.Waiting() == 1 })
	cctx, cancel := context.WithCancel(ctx)
	gc := result(func() error { return c.Grow(cctx, 20) })
	testkit.WaitFor(t, "c to wait for its turn", func() bool { return b.Waiting() == 2 })
	gd := result(func() error { return d.Grow(ctx, 20) })
	testkit.WaitFor(t, "d to wait for its turn", func() bool { return b.Waiting() == 3 })
	cancel()
	if err := recv(t, gc); !errors.Is(err, context.Canceled) || c.Held() != 10 {
		t.Fatalf("c: %v, held %d", err, c.Held())
	}
	other.Release() // 30 in use: a takes its 40 more
	if err := recv(t, ga); err != nil || a.Held() != 50 {
		t.Fatalf("a: %v, held %d", err, a.Held())
	}
	// d now has the turn and waits for 40 more: 30 are free.
	testkit.WaitFor(t, "d to wait for bytes", func() bool { return b.Waiting() == 1 })
	a.Release()
	if err := recv(t, gd); err != nil || d.Held() != 50 {
		t.Fatalf("d: %v, held %d", err, d.Held())
	}
	c.Release()
	d.Release()
	if b.InUse() != 0 || b.Waiting() != 0 {
		t.Errorf("in use %d, waiting %d", b.InUse(), b.Waiting())
	}
}

func TestGrowOfFixedReservationPanics(t *testing.T) {
	b := New(100, 50, 0)
	r, _ := b.Acquire(context.Background(), 10)
	defer func() {
		if recover() == nil {
			t.Error("no panic")
		}
	}()
	_ = r.Grow(context.Background(), 20)
}

func TestNilBudgetIsUnlimited(t *testing.T) {
	var b *Budget
	r := b.Reserve()
	if err := r.Grow(context.Background(), 1<<40); err != nil || r.Held() != 1<<40 {
		t.Fatalf("%v, held %d", err, r.Held())
	}
	r.Release()
	a, err := b.Acquire(context.Background(), 5)
	if err != nil || a.Held() != 5 || b.InUse() != 0 || b.Waiting() != 0 {
		t.Fatalf("%v %d", err, a.Held())
	}
	a.Release()
}

// TestNoDeadlock: many reservations growing step by step, as messages of
// unknown size arrive, beside all-or-nothing ones, on a budget that holds
// few of them at once. Every one finishes and the budget never goes over.
func TestNoDeadlock(t *testing.T) {
	const size, largest = 1000, 400
	b := New(size, largest, 0)
	var wg sync.WaitGroup
	var mu sync.Mutex
	over := false
	check := func() {
		if u := b.InUse(); u > size || u < 0 {
			mu.Lock()
			over = true
			mu.Unlock()
		}
	}
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			ctx := context.Background()
			for range 50 {
				if i%4 == 0 {
					r, err := b.Acquire(ctx, rng.Int64N(largest)+1)
					if err != nil {
						t.Error(err)
						return
					}
					check()
					r.Release()
					continue
				}
				r := b.Reserve()
				target := rng.Int64N(2*largest) + 1
				for step := int64(16); r.Held() < min(target, largest); step *= 2 {
					if err := r.Grow(ctx, min(step, target)); err != nil {
						t.Error(err)
						return
					}
					check()
				}
				r.Shrink(r.Held() / 2)
				r.Release()
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("stuck: in use %d, waiting %d", b.InUse(), b.Waiting())
	}
	if over || b.InUse() != 0 || b.Waiting() != 0 {
		t.Errorf("over %v, in use %d, waiting %d", over, b.InUse(), b.Waiting())
	}
}

// TestShareCapsOneOwner: an owner's reservations together hold at most the
// share; the one that would go past fails at once, without waiting and
// without holding anything more, while another owner still gets its part.
// Giving back makes room for the owner again.
func TestShareCapsOneOwner(t *testing.T) {
	b := New(100, 30, 40)
	ctx := context.Background()
	first := b.ReserveFor("acct_a")
	if err := first.Grow(ctx, 30); err != nil {
		t.Fatal(err)
	}
	second := b.ReserveFor("acct_a")
	if err := second.Grow(ctx, 5); err != nil {
		t.Fatalf("within the share: %v", err)
	}
	if err := second.Grow(ctx, 20); !errors.Is(err, ErrOverShare) {
		t.Fatalf("past the share: %v, want ErrOverShare", err)
	}
	if second.Held() != 5 || b.InUse() != 35 {
		t.Fatalf("after the refusal: held %d, in use %d; want 5, 35", second.Held(), b.InUse())
	}
	other := b.ReserveFor("acct_b")
	if err := other.Grow(ctx, 30); err != nil {
		t.Fatalf("another owner: %v", err)
	}
	anyone := b.Reserve()
	if err := anyone.Grow(ctx, 30); err != nil {
		t.Fatalf("no owner: %v", err)
	}
	first.Release()
	if err := second.Grow(ctx, 20); err != nil {
		t.Fatalf("after the owner gave back: %v", err)
	}
	for _, r := range []*Reservation{second, other, anyone} {
		r.Release()
	}
	if b.InUse() != 0 || len(b.owners) != 0 {
		t.Fatalf("all released: in use %d, owners %v", b.InUse(), b.owners)
	}
}

// TestShareCountedBeforeWaiting: a reservation waiting for the budget has
// its owner's share counted already, so a second one of the same owner is
// refused instead of waiting behind it; a failed wait gives the share back.
func TestShareCountedBeforeWaiting(t *testing.T) {
	b := New(100, 60, 60)
	ctx := context.Background()
	held, err := b.Acquire(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	waiting := b.ReserveFor("acct_a")
	waitCtx, cancel := context.WithCancel(ctx)
	done := result(func() error { return waiting.Grow(waitCtx, 50) })
	testkit.WaitFor(t, "the grow to wait", func() bool { return b.Waiting() == 1 })
	if err := b.ReserveFor("acct_a").Grow(ctx, 10); !errors.Is(err, ErrOverShare) {
		t.Fatalf("beside a waiting reservation of its owner: %v, want ErrOverShare", err)
	}
	cancel()
	if err := recv(t, done); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait: %v", err)
	}
	held.Release()
	if err := b.ReserveFor("acct_a").Grow(ctx, 10); err != nil {
		t.Fatalf("after the failed wait gave the share back: %v", err)
	}
}
