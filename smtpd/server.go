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
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/pires/go-proxyproto"

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
	// ProxyTrusted, when not empty, puts the PROXY protocol (v1 or v2) on
	// Serve and ServeTLS: only these sources (the load balancers) may
	// connect, each connection must open with a header, and the client
	// address it carries is the connection's own for the per-IP cap, AUTH
	// throttling and the logs. Other sources are closed at once; a trusted
	// one without a valid header is closed unanswered.
	ProxyTrusted []netip.Prefix
	// ProxyHeaderTimeout bounds the wait for the PROXY header (0: 10 s).
	ProxyHeaderTimeout time.Duration
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
	ll := &limitListener{Listener: l, limit: s.conns, metrics: s.opt.Metrics, maxLife: s.opt.MaxSessionTime}
	if len(s.opt.ProxyTrusted) > 0 {
		// proxyproto.Listener.Accept reads nothing: it checks the source
		// and wraps the connection, whose header is read on its first use.
		ll.Listener = &proxyproto.Listener{
			Listener:          l,
			ConnPolicy:        s.proxyPolicy,
			ReadHeaderTimeout: s.opt.ProxyHeaderTimeout,
		}
		ll.proxied, ll.logger = true, s.opt.Logger
	}
	return ll
}

// proxyPolicy requires a PROXY header from a trusted source; any other
// source is closed by proxyproto.Listener, which goes on accepting.
func (s *Server) proxyPolicy(o proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) {
	if a, ok := o.Upstream.(*net.TCPAddr); ok {
		ip := a.AddrPort().Addr().Unmap()
		for _, p := range s.opt.ProxyTrusted {
			if p.Contains(ip) {
				return proxyproto.REQUIRE, nil
			}
		}
	}
	s.opt.Metrics.proxyRefused.WithLabelValues("untrusted").Inc()
	s.opt.Logger.Debug("SMTP connection refused: not from smtp.proxy_trusted", "peer", o.Upstream.String())
	return proxyproto.REJECT, fmt.Errorf("%w: %s", proxyproto.ErrInvalidUpstream, o.Upstream)
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
	// proxied: the connections are *proxyproto.Conn, whose client address
	// is known only once the header is read. Their slot is taken on their
	// first Read or Write, in the connection's own goroutine, so that a
	// client slow to send its header (or sending none) holds up no accept.
	proxied bool
	logger  *slog.Logger
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		sc := &slotConn{Conn: c}
		if l.maxLife > 0 {
			sc.end = time.Now().Add(l.maxLife)
			_ = c.SetReadDeadline(sc.end)
		}
		if l.proxied {
			sc.admit = l.admit
			return sc, nil
		}
		if l.admit(sc) == nil {
			return sc, nil
		}
	}
}

// admit reads c's PROXY header when it has one, then takes c's slot; or
// it answers the refusal and closes c.
func (l *limitListener) admit(c *slotConn) error {
	if pc, ok := c.Conn.(*proxyproto.Conn); ok {
		// A read of nothing reads the header, and returns its error.
		if _, err := pc.Read(nil); err != nil {
			l.metrics.proxyRefused.WithLabelValues("header").Inc()
			l.logger.Info("SMTP connection refused: no valid PROXY header", "peer", pc.Raw().RemoteAddr().String(), "err", err)
			_ = c.Conn.Close()
			return errNoProxyHeader
		}
	}
	release, refusal := l.limit.take(c.Conn)
	if refusal == nil {
		if c.hold(release) {
			return nil
		}
		release()
		return net.ErrClosed
	}
	l.metrics.refusedConns.Inc()
	_ = c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = io.WriteString(c.Conn, wire(refusal))
	_ = c.Conn.Close()
	return refusal
}

var errNoProxyHeader = errors.New("smtpd: connection refused: no valid PROXY header")

// slotConn is an accepted connection: it frees its slot when closed, and
// no read deadline set on it (by go-smtp per command, by readData per read,
// by a tls.Conn above it) goes past its end, so that a read at the end of
// its life fails as a timeout: go-smtp answers 421 4.4.2 and closes it.
type slotConn struct {
	net.Conn
	end time.Time // zero: none

	// admit, when set, takes the slot on the first Read or Write
	// (limitListener.proxied); its error fails every one after.
	admit     func(*slotConn) error
	admitOnce sync.Once
	admitErr  error

	mu      sync.Mutex
	release func() // nil before the slot is taken and once freed
	closed  bool
}

// admitted takes the slot if that is still to do.
func (c *slotConn) admitted() error {
	if c.admit == nil {
		return nil
	}
	c.admitOnce.Do(func() { c.admitErr = c.admit(c) })
	return c.admitErr
}

// hold keeps release for Close, unless c is closed already.
func (c *slotConn) hold(release func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.release = release
	return true
}

func (c *slotConn) Read(b []byte) (int, error) {
	if err := c.admitted(); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

func (c *slotConn) Write(b []byte) (int, error) {
	if err := c.admitted(); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
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
	c.mu.Lock()
	release := c.release
	c.release, c.closed = nil, true
	c.mu.Unlock()
	if release != nil {
		release()
	}
	return c.Conn.Close()
}

// slogWriter sends go-smtp's own log lines to slog.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.l.Debug("smtp", "msg", string(p))
	return len(p), nil
}
