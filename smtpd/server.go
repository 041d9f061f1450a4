// Package smtpd is pigeonpost's SMTP submission front end (RFC 6409) on
// go-smtp: the TLS policy, AUTH with API keys, the envelope and the size
// limit. It holds no business rules: it builds a pipeline.Submission and
// translates pipeline errors into SMTP replies in one place (reply.go).
// Beside it, the unsubscribe mailbox (unsubscribe.go) takes the mail of the
// sends' List-Unsubscribe mailto.
package smtpd

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/pigeonpost/pigeonpost/internal/membudget"
)

// Options configure the server.
type Options struct {
	Hostname        string
	MaxMessageBytes int64
	MaxRecipients   int
	// MaxLineBytes bounds a line, CRLF included, of a command or of DATA
	// (go-smtp's MaxLineLength; 0: DefaultMaxLineBytes). A DATA line over
	// 998 octets is accepted and re-encoded by the pipeline; one over
	// MaxLineBytes is refused with 554 5.6.0 and the connection closed. A
	// command line that long gets go-smtp's 500 5.4.0 and the same end.
	// Each connection may hold up to this much for a command line.
	MaxLineBytes   int
	MaxConnections int // across both listeners; beyond it new connections get 421
	// MaxConnectionsPerIP caps one client address's connections (0: none),
	// so that one host cannot hold every slot (with NOOPs, say).
	MaxConnectionsPerIP int
	ReadTimeout         time.Duration // per command, and per read while receiving DATA
	WriteTimeout        time.Duration
	DataTimeout         time.Duration // bound on a whole DATA transfer, a wait for Budget included
	// MaxSessionTime bounds a connection's life (0: none): past it, the
	// next read fails as a timeout, so the client is answered 421 and
	// reconnects. A slot cannot be held for ever, with NOOPs or a message
	// trickled in.
	MaxSessionTime time.Duration
	TLSConfig      *tls.Config
	Logger         *slog.Logger
	Metrics        *Metrics
	// Budget bounds the memory of the messages being read and submitted:
	// a message over 64 KiB reserves pipeline.MessageCost of its size from it before
	// it is read whole (session.go). Nil: unbounded. Make it with
	// pipeline.MessageCost(MaxMessageBytes) as its largest need.
	Budget *membudget.Budget
}

// DefaultMaxLineBytes is Options.MaxLineBytes when not set: room for the
// long single-line HTML some tools write, at a bounded cost per connection.
const DefaultMaxLineBytes = 256 << 10

// Server accepts submissions on a STARTTLS listener and an implicit-TLS one.
type Server struct {
	opt   Options
	pipe  Pipeline
	smtp  *smtp.Server
	conns *connLimit

	mu       sync.Mutex
	sessions map[*session]struct{} // open sessions, to hang up idle ones at shutdown
	closing  bool
}

var _ smtp.Backend = (*Server)(nil)

// New returns a server that authenticates and submits through pipe
// (in production a *pipeline.Service).
func New(pipe Pipeline, opt Options) *Server {
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.Metrics == nil {
		opt.Metrics = NewMetrics(nil)
	}
	if opt.MaxLineBytes <= 0 {
		opt.MaxLineBytes = DefaultMaxLineBytes
	}
	s := &Server{
		opt:      opt,
		pipe:     pipe,
		sessions: map[*session]struct{}{},
		conns:    newConnLimit(opt.MaxConnections, opt.MaxConnectionsPerIP),
	}
	srv := smtp.NewServer(s)
	srv.Domain = opt.Hostname
	srv.MaxMessageBytes = opt.MaxMessageBytes
	srv.MaxRecipients = opt.MaxRecipients
	srv.MaxLineLength = opt.MaxLineBytes
	srv.ReadTimeout = opt.ReadTimeout
	srv.WriteTimeout = opt.WriteTimeout
	srv.TLSConfig = opt.TLSConfig
	// AUTH is neither advertised nor accepted before TLS, but the session
	// says so (AuthMechanisms, Auth: 530 5.7.0, as for MAIL; RFC 3207 §4)
	// rather than go-smtp's gate, which answers 523 5.7.10.
	srv.AllowInsecureAuth = true
	srv.EnableSMTPUTF8 = true
	srv.ErrorLog = log.New(slogWriter{opt.Logger}, "", 0)
	s.smtp = srv
	return s
}

// Serve accepts connections on l, where clients must STARTTLS (port 587).
func (s *Server) Serve(l net.Listener) error {
	return s.smtp.Serve(s.limit(l))
}

// ServeTLS accepts implicit-TLS connections on l (port 465); after the
// handshake they behave as on Serve.
func (s *Server) ServeTLS(l net.Listener) error {
	// The cap wraps the raw listener so that go-smtp still sees a *tls.Conn.
	return s.smtp.Serve(tls.NewListener(s.limit(l), s.opt.TLSConfig))
}

func (s *Server) limit(l net.Listener) net.Listener {
	return &limitListener{Listener: l, limit: s.conns, metrics: s.opt.Metrics, maxLife: s.opt.MaxSessionTime}
}

// Shutdown stops accepting, hangs up sessions that are between
// transactions with 421 (RFC 5321 §3.8), lets transactions in progress
// finish (they are hung up after their reply), and waits for every session
// to end, until ctx is done.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	var idle []*session
	for sess := range s.sessions {
		if !sess.busy.Load() {
			idle = append(idle, sess)
		}
	}
	s.mu.Unlock()
	for _, sess := range idle {
		sess.hangUp()
	}
	return s.smtp.Shutdown(ctx)
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// NewSession is called by go-smtp after EHLO/HELO, again after STARTTLS.
func (s *Server) NewSession(c *smtp.Conn) (smtp.Session, error) {
	s.opt.Metrics.sessions.Inc()
	ip := ""
	if addr, ok := c.Conn().RemoteAddr().(*net.TCPAddr); ok {
		ip = addr.IP.String()
	}
	sess := &session{srv: s, conn: c, ip: ip}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil, replyShuttingDown
	}
	s.sessions[sess] = struct{}{}
	return sess, nil
}

// connLimit caps concurrent connections, in all and per client address.
type connLimit struct {
	slots chan struct{}
	perIP int // 0: no cap per address

	mu   sync.Mutex
	byIP map[string]int
}

func newConnLimit(total, perIP int) *connLimit {
	return &connLimit{slots: make(chan struct{}, max(total, 1)), perIP: perIP, byIP: map[string]int{}}
}

// take reserves a slot for c, and returns what frees it, or the reply of
// a refusal.
func (l *connLimit) take(c net.Conn) (release func(), refusal *smtp.SMTPError) {
	ip := ""
	if addr, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		ip = addr.IP.String()
	}
	l.mu.Lock()
	if l.perIP > 0 && l.byIP[ip] >= l.perIP {
		l.mu.Unlock()
		return nil, replyTooManyFromIP
	}
	l.byIP[ip]++
	l.mu.Unlock()
	free := func() {
		l.mu.Lock()
		if l.byIP[ip]--; l.byIP[ip] <= 0 {
			delete(l.byIP, ip)
		}
		l.mu.Unlock()
	}
	select {
	case l.slots <- struct{}{}:
		return func() { <-l.slots; free() }, nil
	default:
		free()
		return nil, replyTooManyConnections
	}
}

// limitListener caps concurrent connections: beyond a cap a client gets
// 421 at once instead of a hanging connect. It also ends each connection's
// reads at maxLife (0: never).
type limitListener struct {
	net.Listener
	limit   *connLimit
	metrics *Metrics
	maxLife time.Duration
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		release, refusal := l.limit.take(c)
		if refusal == nil {
			sc := &slotConn{Conn: c, release: release}
			if l.maxLife > 0 {
				sc.end = time.Now().Add(l.maxLife)
				_ = c.SetReadDeadline(sc.end)
			}
			return sc, nil
		}
		l.metrics.refusedConns.Inc()
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = io.WriteString(c, wire(refusal))
		_ = c.Close()
	}
}

// slotConn is an accepted connection: it frees its slot when closed, and
// no read deadline set on it (by go-smtp per command, by readData per read,
// by a tls.Conn above it) goes past its end, so that a read at the end of
// its life fails as a timeout: go-smtp answers 421 4.4.2 and closes it.
type slotConn struct {
	net.Conn
	once    sync.Once
	release func()
	end     time.Time // zero: none
}

func (c *slotConn) SetReadDeadline(t time.Time) error {
	return c.Conn.SetReadDeadline(c.clamp(t))
}

func (c *slotConn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetWriteDeadline(t); err != nil {
		return err
	}
	return c.SetReadDeadline(t)
}

// clamp is t, or the connection's end if t is later or none.
func (c *slotConn) clamp(t time.Time) time.Time {
	if !c.end.IsZero() && (t.IsZero() || t.After(c.end)) {
		return c.end
	}
	return t
}

func (c *slotConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// slogWriter sends go-smtp's own log lines to slog.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.l.Debug("smtp", "msg", string(p))
	return len(p), nil
}
