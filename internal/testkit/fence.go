package testkit

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
)

// The SSRF tests' tools (attachments, webhooks, internal/safehttp): a
// listener that counts the connections a guard let through to it, and a
// fence behind the guard that refuses and records any destination off
// loopback, so that a guard that lets one through fails the test without
// a packet leaving the machine.

// CountingListener counts the connections it accepted.
type CountingListener struct {
	net.Listener
	accepted atomic.Int64
}

func (l *CountingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

// Accepted is the number of connections accepted so far.
func (l *CountingListener) Accepted() int64 { return l.accepted.Load() }

// StartCountingTLS serves h over HTTPS on addr (host:port) through a
// CountingListener until the test ends.
func StartCountingTLS(t testing.TB, addr string, h http.Handler) (*httptest.Server, *CountingListener) {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	cl := &CountingListener{Listener: l}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = cl
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, cl
}

// Fence is a dialer for behind a guard: it lets loopback through and
// refuses, recording it, anything else.
type Fence struct {
	mu     sync.Mutex
	leaked []string
}

// Dialer is the fence as a dialer (safehttp.Options.Dialer).
func (f *Fence) Dialer() *net.Dialer {
	return &net.Dialer{Control: func(_, address string, _ syscall.RawConn) error {
		if ap, err := netip.ParseAddrPort(address); err == nil && ap.Addr().Unmap().IsLoopback() {
			return nil
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.leaked = append(f.leaked, address)
		return errors.New("test fence: a non-loopback destination got past the guard")
	}}
}

// Check fails the test if anything reached the fence.
func (f *Fence) Check(t testing.TB) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.leaked) > 0 {
		t.Errorf("the guard let these destinations through to the dialer: %v", f.leaked)
	}
}
