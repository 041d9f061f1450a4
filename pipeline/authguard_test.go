package pipeline

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
	"github.com/pigeonpost/pigeonpost/tracking"
)

func TestAuthFailuresCountPerIPAndForget(t *testing.T) {
	var ft authFailures
	now := time.Unix(1_000_000, 0)
	for want := 1; want <= 3; want++ {
		if got := ft.add("192.0.2.1", now); got != want {
			t.Fatalf("failure %d counted as %d", want, got)
		}
	}
	if got := ft.add("192.0.2.2", now); got != 1 {
		t.Errorf("other IP counted %d", got)
	}
	if got := ft.add("192.0.2.1", now.Add(authFailureWindow+time.Second)); got != 1 {
		t.Errorf("after the window: %d, want 1", got)
	}
	ft.reset("192.0.2.2")
	if got := ft.add("192.0.2.2", now); got != 1 {
		t.Errorf("after reset: %d", got)
	}
}

// An address that failed authLockoutAfter times is refused, unchecked,
// even with a good key, until the window has passed since its last
// failure; others are not; a success before that clears the count.
func TestAuthLockout(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	st := store.New(testkit.StartRedis(t).Client(t), time.Now)
	svc := New(st, tracking.NewSigner([]byte("secret")), Options{Hostname: "gw.test", Now: func() time.Time { return now }})
	// Public addresses are locked out; a private one (a proxy, perhaps)
	// only slowed.
	const ip, other, private = "8.8.4.4", "9.9.9.9", "10.0.0.1"
	ctx := context.Background()
	const good = "sp_live_authguardtestkey00000000001"
	testKey(t, st, "acme", good)
	for range authLockoutAfter - 1 {
		if _, err := svc.AuthenticateFrom(ctx, "sp_live_wrongwrongwrongwrongwrong", ip); !errors.Is(err, ErrAuthFailed) {
			t.Fatalf("a wrong key: %v", err)
		}
	}
	if _, err := svc.AuthenticateFrom(ctx, good, ip); err != nil {
		t.Fatalf("a good key before the lockout: %v", err)
	}
	for range authLockoutAfter {
		_, _ = svc.AuthenticateFrom(ctx, "sp_live_wrongwrongwrongwrongwrong", ip)
		_, _ = svc.AuthenticateFrom(ctx, "sp_live_wrongwrongwrongwrongwrong", private)
	}
	_, err := svc.AuthenticateFrom(ctx, good, ip)
	var pe *Error
	if !errors.Is(err, ErrAuthLocked) || !errors.As(err, &pe) || pe.RetryAfter != authFailureWindow {
		t.Fatalf("a good key from a locked-out address: %v", err)
	}
	if _, err := svc.AuthenticateFrom(ctx, good, other); err != nil {
		t.Errorf("another address: %v", err)
	}
	if _, err := svc.AuthenticateFrom(ctx, good, private); err != nil {
		t.Errorf("a private address is not locked out: %v", err)
	}
	now = now.Add(authFailureWindow + time.Second)
	if _, err := svc.AuthenticateFrom(ctx, good, ip); err != nil {
		t.Errorf("after the window: %v", err)
	}
}
