package deliver

import (
	"context"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// Sessions that ended with a delivered message are kept open for the next
// message to the same address: a relay or a busy MX then costs one dial,
// one EHLO and one TLS handshake per idle period instead of per message.
// A kept session is checked with RSET before use; one that fails it is
// closed and the message goes over a new connection, so nothing is sent
// twice by reuse.
//
// A session opened under a destination's connection lease (Shaping) keeps
// the lease while it is idle, since the destination counts it, and idles
// for leasedIdleTimeout only: a slot is not held long by a session nobody
// uses, and a message that finds its destination full in this process
// closes this process's idle sessions there (releaseIdle).
const (
	poolIdleTimeout   = 30 * time.Second // servers commonly drop idle clients after a minute or more
	leasedIdleTimeout = 5 * time.Second
	poolMaxIdle       = 16 // per destination address
)

type pooledSession struct {
	c     *smtp.Client
	conn  net.Conn  // the raw connection: deadlines and Close
	wire  io.Writer // what c writes to: conn, or the TLS connection over it (writeData)
	since time.Time
	key   string // in the pool
	lease *Lease // the connection slot the session holds (Shaping); nil: none
	// leased: the session is under a slot (its own, or the message's it
	// was handed to), so it closes gracefully.
	leased bool
}

// close ends the connection and gives its slot back.
func (s *pooledSession) close() {
	closeConn(s.conn, s.lease != nil || s.leased)
	if s.lease != nil {
		s.lease.release()
	}
}

// closeConn closes conn. A leased connection is closed gracefully first:
// our side of it is shut and what the server still sends is read until it
// closes its side (for a second at most), so that the destination has
// counted the connection gone before its slot is given to another.
func closeConn(conn net.Conn, leased bool) {
	if tc, ok := conn.(*net.TCPConn); ok && leased {
		if tc.CloseWrite() == nil && tc.SetReadDeadline(time.Now().Add(gracefulClose)) == nil {
			io.Copy(io.Discard, io.LimitReader(tc, 64<<10)) //nolint:errcheck // until EOF or the deadline
		}
	}
	conn.Close()
}

// gracefulClose bounds the wait for a destination to close its side.
const gracefulClose = time.Second

// takeLease takes out of the pool one of the idle sessions holding a slot
// at dest and returns the slot, with the session, for a message that found
// dest at its connection limit: the message is sent over that session
// when it goes to the same address (reuse), else the session is closed
// and the slot used for a new connection. nil when there is none.
func (t *Transport) takeLease(dest string) *Lease {
	taken := false
	list := t.pool.remove(func(s *pooledSession) bool {
		if taken || s.lease == nil || s.lease.Destination() != dest {
			return false
		}
		taken = true
		return true
	})
	if len(list) == 0 {
		return nil
	}
	s := list[0]
	l := s.lease.handOver()
	s.lease, s.leased = nil, true // the new Lease holds the slot
	l.session = s
	return l
}

// expired reports whether s idled too long at now.
func (s *pooledSession) expired(now time.Time) bool {
	if s.lease != nil {
		return now.Sub(s.since) >= leasedIdleTimeout
	}
	return now.Sub(s.since) >= poolIdleTimeout
}

// sessionPool holds idle sessions by destination address and TLS policy.
// The zero value is ready to use.
type sessionPool struct {
	mu   sync.Mutex
	idle map[string][]*pooledSession
}

func poolKey(target string, useTLS bool) string {
	return target + "|" + strconv.FormatBool(useTLS)
}

// get returns the most recently used live-looking session for key, closing
// any that idled too long.
func (p *sessionPool) get(key string, now time.Time) *pooledSession {
	var stale []*pooledSession
	defer closeSessions(&stale) // after the lock: a lease's release is a Redis call
	p.mu.Lock()
	defer p.mu.Unlock()
	list := p.idle[key]
	for len(list) > 0 {
		s := list[len(list)-1]
		list = list[:len(list)-1]
		if !s.expired(now) {
			p.idle[key] = list
			return s
		}
		stale = append(stale, s)
	}
	delete(p.idle, key)
	return nil
}

func closeSessions(list *[]*pooledSession) {
	for _, s := range *list {
		s.close()
	}
}

// put keeps s for key, or closes it when the pool for key is full.
func (p *sessionPool) put(key string, s *pooledSession, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.idle == nil {
		p.idle = map[string][]*pooledSession{}
	}
	if len(p.idle[key]) >= poolMaxIdle {
		defer s.close()
		return
	}
	s.since, s.key = now, key
	p.idle[key] = append(p.idle[key], s)
}

// remove takes out of the pool the sessions drop selects.
func (p *sessionPool) remove(drop func(*pooledSession) bool) []*pooledSession {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*pooledSession
	for key, list := range p.idle {
		kept := list[:0]
		for _, s := range list {
			if drop(s) {
				out = append(out, s)
			} else {
				kept = append(kept, s)
			}
		}
		if len(kept) == 0 {
			delete(p.idle, key)
		} else {
			p.idle[key] = kept
		}
	}
	return out
}

// closeAll ends every idle session.
func (p *sessionPool) closeAll() {
	for _, s := range p.remove(func(*pooledSession) bool { return true }) {
		quit(s.c, time.Second)
		s.close()
	}
}

// CloseIdle closes the sessions kept for reuse (at shutdown).
func (t *Transport) CloseIdle() { t.pool.closeAll() }

// CloseExpired closes the sessions that idled too long, giving back the
// connection slots they held; the worker calls it every second.
func (t *Transport) CloseExpired(now time.Time) {
	for _, s := range t.pool.remove(func(s *pooledSession) bool { return s.expired(now) }) {
		quit(s.c, time.Second)
		s.close()
	}
}

// reuse sends env over a kept session to target, if there is one that
// answers RSET. ok is false when there was none (or it was dead): the
// caller then opens a new connection.
func (t *Transport) reuse(ctx context.Context, host, key string, env Envelope, timeout time.Duration) (reply string, e *Error, next, ok bool) {
	if env.Lease != nil {
		// The idle session whose slot the message took (takeLease).
		if s := env.Lease.takeSession(key); s != nil {
			if reply, e, next, ok := t.sendOver(ctx, host, key, s, env, timeout); ok {
				return reply, e, next, true
			}
		}
	}
	for {
		s := t.pool.get(key, time.Now())
		if s == nil {
			return "", nil, false, false
		}
		if reply, e, next, ok := t.sendOver(ctx, host, key, s, env, timeout); ok {
			return reply, e, next, true
		}
	}
}

// sendOver sends env over the kept session s if it answers RSET; ok is
// false when it did not (it is closed).
func (t *Transport) sendOver(ctx context.Context, host, key string, s *pooledSession, env Envelope, timeout time.Duration) (reply string, e *Error, next, ok bool) {
	stop := context.AfterFunc(ctx, func() { s.conn.Close() })
	if err := s.c.Reset(); err != nil {
		stop()
		s.close() // dead or out of step
		return "", nil, false, false
	}
	reply, err := t.transaction(s, env, timeout)
	stop()
	if err == nil {
		if s.lease == nil && env.Lease != nil && env.Lease.attach() {
			s.lease = env.Lease // a session handed over with the message's slot keeps it
		}
		t.pool.put(key, s, time.Now())
		return reply, nil, false, true
	}
	e = t.ctxError(ctx, host, smtpReplyError(host, err))
	quit(s.c, timeout)
	s.close()
	return "", e, e.Code == 421, true
}
