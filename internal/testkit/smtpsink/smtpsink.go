// Package smtpsink is the one SMTP sink of pigeonpost's tests and tools: a
// go-smtp server standing in for a destination MX, a smarthost or a
// submission server. It is a leaf without "testing", so that commands
// (e2e/driver, cmd/smtpload) use it as they are; internal/testkit wraps it
// for tests (testkit.StartSink).
//
// By default it accepts every sender and recipient and keeps each message
// in memory; Options add STARTTLS, an implicit-TLS port, AUTH, a copy of
// each message on disk, or a discard mode that only counts (the benchmark
// sink: no lock and no copy per message). Reply and Hold script failures
// and stalls per SMTP stage.
package smtpsink

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/pigeonpost/pigeonpost/internal/certs"
)

// Options configures Start. The zero value is a plain recording sink on
// 127.0.0.1 with a kernel-chosen port.
type Options struct {
	// Addr is the listen address; "" means "127.0.0.1:0".
	Addr string
	// Domain is the server's name in its greeting; "" means "sink.localhost".
	Domain string

	// TLS advertises STARTTLS with Cert, or without Cert with a
	// self-signed certificate for "localhost", 127.0.0.1 and Domain made at
	// start (valid for CertValidity, default 24 hours).
	TLS          bool
	Cert         *tls.Certificate
	CertValidity time.Duration
	// ImplicitTLS also listens on a second loopback port (TLSAddr) where
	// the connection is TLS from the start (port 465 style). It implies TLS.
	ImplicitTLS bool
	// BrokenTLS advertises STARTTLS, but every handshake fails. It wins
	// over TLS.
	BrokenTLS bool

	// Auth, when set, offers AUTH PLAIN (and LOGIN with AuthLogin) and
	// accepts the credentials it reports good. Without TLS, AUTH is
	// allowed in the clear. AuthRequired refuses MAIL before a successful
	// AUTH (go-smtp's ErrAuthRequired, 502 5.7.0).
	Auth         func(username, password string) bool
	AuthLogin    bool
	AuthRequired bool

	// SMTPUTF8 advertises SMTPUTF8.
	SMTPUTF8 bool
	// MaxRecipients bounds RCPT TO per message; 0: no limit.
	MaxRecipients int
	// MaxMessagesPerConnection makes MAIL after that many accepted
	// messages on one connection answer 421 4.7.0, as a provider that
	// throttles per connection does; 0: no limit.
	MaxMessagesPerConnection int

	// Discard counts messages and bytes but keeps nothing: Messages stays
	// empty and Reply/Hold at "data" still apply.
	Discard bool
	// Dir, when set, also gets each kept message as NNN-recipients.eml
	// (Received.File), for a person to look at.
	Dir string

	// ErrorLog receives go-smtp's errors; nil discards them.
	ErrorLog smtp.Logger
}

// Received is one message the sink accepted.
type Received struct {
	Helo string   // the client's EHLO (or HELO) name
	From string   // MAIL FROM address ("" for the null sender)
	To   []string // accepted RCPT TO addresses, in order
	Data []byte   // the DATA (or BDAT) bytes as received, after dot-unstuffing
	TLS  bool     // the message came over TLS (STARTTLS or implicit)
	File string   // with Options.Dir: where the message was written
}

// Stats counts what the sink saw since it started.
type Stats struct {
	Connections int64 // accepted TCP connections
	Sessions    int64 // SMTP sessions begun, refused ones included (one per connection and one more after each STARTTLS)
	Messages    int64 // messages accepted
	Bytes       int64 // bytes of the accepted messages
	Rcpts       int64 // recipients of the accepted messages
	AuthOK      int64 // successful AUTH
	AuthFail    int64 // failed AUTH
	Rejected    int64 // MAIL refused for want of AUTH (AuthRequired)
	DataErrors  int64 // DATA that failed while being read
	Active      int64 // TCP connections open now
	MaxActive   int64 // the most TCP connections open at once (see ResetMaxActive)
}

// Stages are the replies Reply and Hold act on: "helo" (EHLO or HELO: the
// session is refused), "mail", "rcpt" and "data" (end of DATA, after the
// whole message was read).
var Stages = []string{"helo", "mail", "rcpt", "data"}

// Server is a running sink.
type Server struct {
	opts     Options
	srv      *smtp.Server
	addr     *net.TCPAddr
	tlsAddr  *net.TCPAddr
	errc     chan error
	closed   chan struct{} // closed by Close: held replies go on
	closeOne sync.Once

	conns, sessions, msgs, bytes, rcpts, authOK, authFail, rejected, dataErr atomic.Int64
	active, maxActive                                                        atomic.Int64

	scripted atomic.Bool // Reply or Hold was called: take mu at each stage

	mu      sync.Mutex
	kept    []Received
	arrived chan struct{} // closed and replaced whenever a message is kept
	replies map[string]*reply
	holds   map[string]*hold
	byRcpt  map[string]*reply // by recipient, lower case (ReplyRcpt)
	grey    *greylist
}

// greylist is the state of Greylist.
type greylist struct {
	delay time.Duration
	now   func() time.Time
	seen  map[string]time.Time // sender NUL recipient → first try
}

type reply struct {
	err *smtp.SMTPError
	n   int // remaining replies; <0: until changed
}

type hold struct {
	held    chan struct{} // a held command sends here once
	release chan struct{} // closed by the release func
}

// Start starts a sink serving in the background until Close or Shutdown.
func Start(opts Options) (*Server, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.Domain == "" {
		opts.Domain = "sink.localhost"
	}
	if opts.ImplicitTLS {
		opts.TLS = true
	}
	if opts.Dir != "" {
		if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
			return nil, err
		}
	}
	s := &Server{
		opts:    opts,
		errc:    make(chan error, 2),
		closed:  make(chan struct{}),
		arrived: make(chan struct{}),
		replies: make(map[string]*reply),
		holds:   make(map[string]*hold),
	}
	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = opts.Domain
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	srv.MaxMessageBytes = 64 << 20
	srv.MaxRecipients = opts.MaxRecipients
	srv.EnableSMTPUTF8 = opts.SMTPUTF8
	srv.ErrorLog = opts.ErrorLog
	if srv.ErrorLog == nil {
		srv.ErrorLog = discardLogger{}
	}
	switch {
	case opts.BrokenTLS:
		srv.TLSConfig = &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return nil, errors.New("smtpsink: BrokenTLS")
		}}
	case opts.TLS:
		cert := opts.Cert
		if cert == nil {
			validity := opts.CertValidity
			if validity <= 0 {
				validity = 24 * time.Hour
			}
			c, err := certs.SelfSigned(validity, "localhost", "127.0.0.1", opts.Domain)
			if err != nil {
				return nil, fmt.Errorf("smtpsink: certificate: %w", err)
			}
			cert = &c
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS12}
	}
	srv.AllowInsecureAuth = opts.Auth != nil && srv.TLSConfig == nil
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("smtpsink: listen: %w", err)
	}
	var tln net.Listener
	if opts.ImplicitTLS {
		if tln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			ln.Close()
			return nil, fmt.Errorf("smtpsink: listen (implicit TLS): %w", err)
		}
		s.tlsAddr = tln.Addr().(*net.TCPAddr)
	}
	s.srv, s.addr = srv, ln.Addr().(*net.TCPAddr)
	go func() { s.errc <- srv.Serve(countingListener{ln, s}) }()
	if tln != nil {
		go func() { s.errc <- srv.Serve(tls.NewListener(countingListener{tln, s}, srv.TLSConfig)) }()
	}
	return s, nil
}

// Addr returns the sink's address, "127.0.0.1:port".
func (s *Server) Addr() string { return s.addr.String() }

// Port returns the sink's TCP port.
func (s *Server) Port() int { return s.addr.Port }

// TLSAddr returns the implicit-TLS address ("" without Options.ImplicitTLS).
func (s *Server) TLSAddr() string {
	if s.tlsAddr == nil {
		return ""
	}
	return s.tlsAddr.String()
}

// TLSPort returns the implicit-TLS port (0 without Options.ImplicitTLS).
func (s *Server) TLSPort() int {
	if s.tlsAddr == nil {
		return 0
	}
	return s.tlsAddr.Port
}

// Errors receives what serving a listener ended with (nil or
// smtp.ErrServerClosed after Close or Shutdown).
func (s *Server) Errors() <-chan error { return s.errc }

// Close stops the sink and drops its connections. It is safe to call more
// than once.
func (s *Server) Close() {
	s.closeOne.Do(func() {
		close(s.closed)
		s.srv.Close() //nolint:errcheck
	})
}

// Shutdown stops accepting connections and waits, until ctx ends, for the
// sessions in progress to finish; then it closes the sink.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	s.Close()
	return err
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	return Stats{
		Connections: s.conns.Load(), Sessions: s.sessions.Load(),
		Messages: s.msgs.Load(), Bytes: s.bytes.Load(), Rcpts: s.rcpts.Load(),
		AuthOK: s.authOK.Load(), AuthFail: s.authFail.Load(),
		Rejected: s.rejected.Load(), DataErrors: s.dataErr.Load(),
		Active: s.active.Load(), MaxActive: s.maxActive.Load(),
	}
}

// ResetMaxActive starts Stats().MaxActive over from the connections open
// now, so that a test can measure one window.
func (s *Server) ResetMaxActive() { s.maxActive.Store(s.active.Load()) }

// Sessions returns Stats().Sessions.
func (s *Server) Sessions() int { return int(s.sessions.Load()) }

func checkStage(method, stage string) {
	if !slices.Contains(Stages, stage) {
		panic(fmt.Sprintf("smtpsink: Server.%s: unknown stage %q (want one of %q)", method, stage, Stages))
	}
}

// Reply makes the next n replies at stage (see Stages), counted over all
// sessions, err instead of success; n < 0 means until changed. A nil err or
// n == 0 restores normal replies for that stage. A rejected recipient is
// not recorded; a message rejected at end of DATA is not kept or counted.
// Reply panics on an unknown stage.
func (s *Server) Reply(stage string, err *smtp.SMTPError, n int) {
	checkStage("Reply", stage)
	s.scripted.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil || n == 0 {
		delete(s.replies, stage)
		return
	}
	s.replies[stage] = &reply{err: err, n: n}
}

// ReplyRcpt makes the next n replies to RCPT TO:<rcpt> (any case), over
// all sessions, err instead of success; n < 0 means until changed. A nil
// err or n == 0 restores normal replies for rcpt. It is checked before
// Reply's "rcpt" stage, so that one recipient fails while others pass.
func (s *Server) ReplyRcpt(rcpt string, err *smtp.SMTPError, n int) {
	s.scripted.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byRcpt == nil {
		s.byRcpt = make(map[string]*reply)
	}
	if err == nil || n == 0 {
		delete(s.byRcpt, strings.ToLower(rcpt))
		return
	}
	s.byRcpt[strings.ToLower(rcpt)] = &reply{err: err, n: n}
}

// Greylist answers RCPT with 451 4.7.1 (greylisted) for each new sender
// and recipient pair, and again until delay has passed, by now, since the
// pair was first seen; then it accepts the pair. delay 0 turns it off.
func (s *Server) Greylist(delay time.Duration, now func() time.Time) {
	s.scripted.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	if delay <= 0 {
		s.grey = nil
		return
	}
	s.grey = &greylist{delay: delay, now: now, seen: map[string]time.Time{}}
}

// ErrGreylisted is the reply of Greylist.
var ErrGreylisted = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1},
	Message: "Greylisted, please try again later"}

// rcptReply returns the scripted reply to RCPT TO:<to> from from, if any.
func (s *Server) rcptReply(from, to string) error {
	if !s.scripted.Load() {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.byRcpt[strings.ToLower(to)]; r != nil {
		if r.n > 0 {
			r.n--
			if r.n == 0 {
				delete(s.byRcpt, strings.ToLower(to))
			}
		}
		return r.err
	}
	if g := s.grey; g != nil {
		pair := strings.ToLower(from) + "\x00" + strings.ToLower(to)
		first, ok := g.seen[pair]
		if !ok {
			g.seen[pair] = g.now()
			return ErrGreylisted
		}
		if g.now().Sub(first) < g.delay {
			return ErrGreylisted
		}
	}
	return nil
}

// Hold makes every reply at stage (as for Reply) wait until release is
// called or the sink is closed. Each held command first sends on held, so
// the caller knows the client is waiting; a command nobody receives from
// waits there instead. Hold panics on an unknown stage.
func (s *Server) Hold(stage string) (held <-chan struct{}, release func()) {
	checkStage("Hold", stage)
	h := &hold{held: make(chan struct{}), release: make(chan struct{})}
	s.scripted.Store(true)
	s.mu.Lock()
	s.holds[stage] = h
	s.mu.Unlock()
	var once sync.Once
	return h.held, func() {
		once.Do(func() {
			s.mu.Lock()
			if s.holds[stage] == h {
				delete(s.holds, stage)
			}
			s.mu.Unlock()
			close(h.release)
		})
	}
}

// stage waits while replies at stage are held, then returns the error the
// reply must be, if any.
func (s *Server) stage(stage string) error {
	if !s.scripted.Load() {
		return nil
	}
	s.mu.Lock()
	h := s.holds[stage]
	s.mu.Unlock()
	if h != nil {
		select {
		case h.held <- struct{}{}:
			select {
			case <-h.release:
			case <-s.closed:
			}
		case <-h.release:
		case <-s.closed:
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.replies[stage]
	if r == nil {
		return nil
	}
	if r.n > 0 {
		r.n--
		if r.n == 0 {
			delete(s.replies, stage)
		}
	}
	return r.err
}

var unsafeFileChars = regexp.MustCompile(`[^A-Za-z0-9._@-]+`)

func (s *Server) keep(m Received) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opts.Dir != "" {
		m.File = filepath.Join(s.opts.Dir, fmt.Sprintf("%03d-%s.eml", len(s.kept)+1, unsafeFileChars.ReplaceAllString(strings.Join(m.To, ","), "_")))
		_ = os.WriteFile(m.File, m.Data, 0o644)
	}
	s.kept = append(s.kept, m)
	close(s.arrived)
	s.arrived = make(chan struct{})
}

// Messages returns a copy of the messages kept so far, in order.
func (s *Server) Messages() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return copyReceived(s.kept)
}

// To returns the messages kept so far that have rcpt (any case) among
// their recipients.
func (s *Server) To(rcpt string) []Received {
	return To(s.Messages(), rcpt)
}

// To returns the messages of msgs that have rcpt (any case) among their
// recipients.
func To(msgs []Received, rcpt string) []Received {
	var out []Received
	for _, m := range msgs {
		if slices.ContainsFunc(m.To, func(t string) bool { return strings.EqualFold(t, rcpt) }) {
			out = append(out, m)
		}
	}
	return out
}

// Wait blocks until done holds for the messages kept so far, or ctx ends,
// and returns them (a copy) with ctx's error if it ended first.
func (s *Server) Wait(ctx context.Context, done func([]Received) bool) ([]Received, error) {
	for {
		s.mu.Lock()
		if done(s.kept) {
			msgs := copyReceived(s.kept)
			s.mu.Unlock()
			return msgs, nil
		}
		arrived := s.arrived
		s.mu.Unlock()
		select {
		case <-arrived:
		case <-ctx.Done():
			return s.Messages(), ctx.Err()
		}
	}
}

func copyReceived(in []Received) []Received {
	out := make([]Received, len(in))
	for i, m := range in {
		m.To = slices.Clone(m.To)
		m.Data = slices.Clone(m.Data)
		out[i] = m
	}
	return out
}

func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	s.sessions.Add(1)
	if err := s.stage("helo"); err != nil {
		return nil, err
	}
	return &session{s: s, conn: c, authed: s.opts.Auth == nil || !s.opts.AuthRequired}, nil
}

type session struct {
	s      *Server
	conn   *smtp.Conn
	authed bool
	from   string
	to     []string
	sent   int // messages accepted on this connection
}

func (ss *session) AuthMechanisms() []string {
	switch {
	case ss.s.opts.Auth == nil:
		return nil
	case ss.s.opts.AuthLogin:
		return []string{sasl.Plain, sasl.Login}
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if ss.s.opts.Auth == nil {
		return nil, smtp.ErrAuthUnsupported
	}
	check := func(username, password string) error {
		if !ss.s.opts.Auth(username, password) {
			ss.s.authFail.Add(1)
			return smtp.ErrAuthFailed
		}
		ss.s.authOK.Add(1)
		ss.authed = true
		return nil
	}
	switch {
	case mech == sasl.Plain:
		return sasl.NewPlainServer(func(_, username, password string) error { return check(username, password) }), nil
	case mech == sasl.Login && ss.s.opts.AuthLogin:
		return &loginServer{check: check}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if !ss.authed {
		ss.s.rejected.Add(1)
		return smtp.ErrAuthRequired
	}
	if n := ss.s.opts.MaxMessagesPerConnection; n > 0 && ss.sent >= n {
		return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0},
			Message: "Too many messages on this connection, try again later"}
	}
	if err := ss.s.stage("mail"); err != nil {
		return err
	}
	ss.from = from
	ss.to = ss.to[:0]
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if err := ss.s.rcptReply(ss.from, to); err != nil {
		return err
	}
	if err := ss.s.stage("rcpt"); err != nil {
		return err
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	var data []byte
	var n int64
	var err error
	if ss.s.opts.Discard {
		n, err = io.Copy(io.Discard, r)
	} else {
		data, err = io.ReadAll(r)
		n = int64(len(data))
	}
	if err != nil {
		ss.s.dataErr.Add(1)
		return err
	}
	if err := ss.s.stage("data"); err != nil {
		return err
	}
	ss.sent++
	ss.s.msgs.Add(1)
	ss.s.bytes.Add(n)
	ss.s.rcpts.Add(int64(len(ss.to)))
	if !ss.s.opts.Discard {
		_, isTLS := ss.conn.TLSConnectionState()
		ss.s.keep(Received{Helo: ss.conn.Hostname(), From: ss.from, To: slices.Clone(ss.to), Data: data, TLS: isTLS})
	}
	return nil
}

func (ss *session) Reset() {
	ss.from = ""
	ss.to = ss.to[:0]
}

func (ss *session) Logout() error { return nil }

// loginServer is the server side of AUTH LOGIN: "Username:", "Password:".
type loginServer struct {
	check    func(username, password string) error
	username string
	step     int
}

func (l *loginServer) Next(response []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		l.step = 1
		if response == nil { // no initial response
			return []byte("Username:"), false, nil
		}
		fallthrough
	case 1:
		l.username, l.step = string(response), 2
		return []byte("Password:"), false, nil
	}
	return nil, true, l.check(l.username, string(response))
}

// countingListener counts the connections accepted and those open.
type countingListener struct {
	net.Listener
	s *Server
}

func (l countingListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err != nil {
		return conn, err
	}
	l.s.conns.Add(1)
	n := l.s.active.Add(1)
	for {
		m := l.s.maxActive.Load()
		if n <= m || l.s.maxActive.CompareAndSwap(m, n) {
			break
		}
	}
	return &countedConn{Conn: conn, active: &l.s.active}, nil
}

// countedConn takes itself off the open connections when closed.
type countedConn struct {
	net.Conn
	active *atomic.Int64
	once   sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.active.Add(-1) })
	return c.Conn.Close()
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}
func (discardLogger) Println(...any)        {}
