package pipeline

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/clock"
	"github.com/pigeonpost/pigeonpost/internal/safehttp"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// Guessing keys. Failed authentications are counted per client address,
// over SMTP AUTH and REST alike, for authFailureWindow: each failure after
// the first waits Options.AuthFailureDelay more (at most 5 times that),
// and an address with authLockoutAfter failures in the window is locked
// out until the window has passed since its last one: its attempts are
// refused without being checked, so that parallel connections gain
// nothing. A success clears the address's count.
//
// Only public addresses are locked out, unless Options.LockOutPrivate: a
// loopback or private address is as likely a proxy or a load balancer in
// front of every tenant, and locking it out would lock them all out for
// one client's wrong key. Those get the delay only.

const (
	authFailureWindow = 10 * time.Minute
	authLockoutAfter  = 20
)

// authFailures counts recent authentication failures per address.
type authFailures struct {
	mu    sync.Mutex
	byIP  map[string]authFailure
	clean time.Time
}

type authFailure struct {
	count int
	last  time.Time
}

// recent returns the address's failures in the window and when the last
// one was.
func (t *authFailures) recent(ip string, now time.Time) authFailure {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.byIP[ip]
	if now.Sub(f.last) > authFailureWindow {
		return authFailure{}
	}
	return f
}

// add records a failure and returns the address's failures in the window.
func (t *authFailures) add(ip string, now time.Time) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byIP == nil {
		t.byIP = map[string]authFailure{}
	}
	if now.Sub(t.clean) > authFailureWindow {
		for k, f := range t.byIP {
			if now.Sub(f.last) > authFailureWindow {
				delete(t.byIP, k)
			}
		}
		t.clean = now
	}
	f := t.byIP[ip]
	if now.Sub(f.last) > authFailureWindow {
		f.count = 0
	}
	f.count++
	f.last = now
	t.byIP[ip] = f
	return f.count
}

func (t *authFailures) reset(ip string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.byIP, ip)
}

// mayLockOut reports whether the address may be locked out.
func (s *Service) mayLockOut(ip string) bool {
	addr, err := netip.ParseAddr(ip)
	return err == nil && (s.opt.LockOutPrivate || safehttp.Public(addr))
}

// AuthenticateFrom is Authenticate for a client at address ip (SMTP AUTH,
// a REST request), counting its failures: a bad key waits (and is then
// ErrAuthFailed), and an address that failed too often is ErrAuthLocked,
// unchecked, until its window has passed.
func (s *Service) AuthenticateFrom(ctx context.Context, secret, ip string) (*store.Key, error) {
	now := s.opt.Now()
	if f := s.authFails.recent(ip, now); f.count >= authLockoutAfter && s.mayLockOut(ip) {
		return nil, ErrAuthLocked.After(f.last.Add(authFailureWindow).Sub(now))
	}
	k, err := s.Authenticate(ctx, secret)
	switch {
	case err == nil:
		s.authFails.reset(ip)
	case errors.Is(err, ErrAuthFailed):
		n := s.authFails.add(ip, now)
		if d := s.opt.AuthFailureDelay * time.Duration(min(n-1, 5)); d > 0 {
			clock.Sleep(ctx, d)
		}
	}
	return k, err
}
