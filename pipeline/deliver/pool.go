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
const (
	poolIdleTimeout = 30 * time.Second // servers commonly drop idle clients after a minute or more
	poolMaxIdle     = 16               // per destination address
)

type pooledSession struct {
	c     *smtp.Client
	conn  net.Conn  // the raw connection: deadlines and Close
	wire  io.Writer // what c writes to: conn, or the TLS connection over it (writeData)
	since time.Time
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
	p.mu.Lock()
	defer p.mu.Unlock()
	list := p.idle[key]
	for len(list) > 0 {
		s := list[len(list)-1]
		list = list[:len(list)-1]
		if now.Sub(s.since) < poolIdleTimeout {
			p.idle[key] = list
			return s
		}
		s.conn.Close()
	}
	delete(p.idle, key)
	return nil
}

// put keeps s for key, or closes it when the pool for key is full.
func (p *sessionPool) put(key string, s *pooledSession, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.idle == nil {
		p.idle = map[string][]*pooledSession{}
	}
	if len(p.idle[key]) >= poolMaxIdle {
		s.conn.Close()
		return
	}
	s.since = now
	p.idle[key] = append(p.idle[key], s)
}

// closeAll ends every idle session.
func (p *sessionPool) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, list := range p.idle {
		for _, s := range list {
			quit(s.c, time.Second)
			s.conn.Close()
		}
	}
	p.idle = nil
}

// CloseIdle closes the sessions kept for reuse (at shutdown).
func (t *Transport) CloseIdle() { t.pool.closeAll() }

// reuse sends env over a kept session to target, if there is one that
// answers RSET. ok is false when there was none (or it was dead): the
// caller then opens a new connection.
func (t *Transport) reuse(ctx context.Context, host, key string, env Envelope, timeout time.Duration) (e *Error, next, ok bool) {
	for {
		s := t.pool.get(key, time.Now())
		if s == nil {
			return nil, false, false
		}
		stop := context.AfterFunc(ctx, func() { s.conn.Close() })
		if err := s.c.Reset(); err != nil {
			stop()
			s.conn.Close() // dead or out of step: try the next one
			continue
		}
		err := t.transaction(s, env, timeout)
		stop()
		if err == nil {
			t.pool.put(key, s, time.Now())
			return nil, false, true
		}
		e := t.ctxError(ctx, host, smtpReplyError(host, err))
		quit(s.c, timeout)
		s.conn.Close()
		return e, e.Code == 421, true
	}
}
