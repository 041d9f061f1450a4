package testkit

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Sink is a recording SMTP server (go-smtp) on 127.0.0.1:0 standing in for a
// destination MX or smarthost. It accepts every sender and recipient unless
// told otherwise with Reply, and records each accepted message.
type Sink struct {
	srv    *smtp.Server
	ln     net.Listener
	addr   *net.TCPAddr
	log    *syncLogger
	closed chan struct{} // closed by Close: held replies go on

	mu       sync.Mutex
	msgs     []Received
	arrived  chan struct{} // closed and replaced whenever a message is recorded
	replies  map[string]*sinkReply
	holds    map[string]*sinkHold
	sessions int
	closeOne sync.Once
}

// Received is one message accepted by a Sink.
type Received struct {
	Helo string   // the client's EHLO (or HELO) name
	From string   // MAIL FROM address ("" for the null sender)
	To   []string // accepted RCPT TO addresses, in order
	Data []byte   // the DATA (or BDAT) bytes as received, after dot-unstuffing
	TLS  bool     // the message was sent over STARTTLS
}

// SinkOptions configures StartSink.
type SinkOptions struct {
	// TLS advertises STARTTLS with a self-signed certificate (for
	// "localhost" and 127.0.0.1) generated at start.
	TLS bool
	// BrokenTLS advertises STARTTLS, but every handshake fails. It wins
	// over TLS.
	BrokenTLS bool
}

type sinkReply struct {
	err *smtp.SMTPError
	n   int // remaining replies; <0: until changed
}

type sinkHold struct {
	held    chan struct{} // a held command sends here once
	release chan struct{} // closed by the release func
}

// sinkStages are the replies Reply and Hold act on.
var sinkStages = []string{"helo", "mail", "rcpt", "data"}

func checkStage(method, stage string) {
	if !slices.Contains(sinkStages, stage) {
		panic(fmt.Sprintf("testkit: Sink.%s: unknown stage %q (want one of %q)", method, stage, sinkStages))
	}
}

// StartSink starts a Sink on 127.0.0.1 with a kernel-chosen port. It is
// closed on t.Cleanup.
func StartSink(t testing.TB, opts SinkOptions) *Sink {
	t.Helper()
	s := &Sink{
		closed:  make(chan struct{}),
		arrived: make(chan struct{}),
		replies: make(map[string]*sinkReply),
		holds:   make(map[string]*sinkHold),
		log:     &syncLogger{t: t},
	}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		s.mu.Lock()
		s.sessions++
		s.mu.Unlock()
		s.hold("helo")
		if err := s.takeReply("helo"); err != nil {
			return nil, err
		}
		return &sinkSession{sink: s, conn: c}, nil
	}))
	srv.Domain = "sink.localhost"
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	srv.MaxMessageBytes = 64 << 20
	srv.ErrorLog = s.log
	switch {
	case opts.BrokenTLS:
		srv.TLSConfig = &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return nil, errors.New("testkit: sink with BrokenTLS")
		}}
	case opts.TLS:
		cert, err := SelfSignedCert("localhost", "127.0.0.1", srv.Domain)
		if err != nil {
			t.Fatalf("testkit: sink certificate: %v", err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testkit: sink listen: %v", err)
	}
	s.srv, s.ln, s.addr = srv, ln, ln.Addr().(*net.TCPAddr)
	go srv.Serve(ln) //nolint:errcheck // returns ErrServerClosed on Close
	t.Cleanup(s.Close)
	return s
}

// Addr returns the sink's address, "127.0.0.1:port".
func (s *Sink) Addr() string { return s.addr.String() }

// Port returns the sink's TCP port.
func (s *Sink) Port() int { return s.addr.Port }

// Reply makes the next n replies at stage, counted over all sessions, err
// instead of success; n < 0 means until changed. A nil err or n == 0
// restores normal replies for that stage. The stages are "helo" (EHLO or
// HELO: the session is refused), "mail", "rcpt" and "data" (end of DATA,
// after the whole message was read). A rejected recipient is not recorded;
// a message rejected at end of DATA is not recorded. Reply panics on any
// other stage.
func (s *Sink) Reply(stage string, err *smtp.SMTPError, n int) {
	checkStage("Reply", stage)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil || n == 0 {
		delete(s.replies, stage)
		return
	}
	s.replies[stage] = &sinkReply{err: err, n: n}
}

// takeReply returns the error the next reply at stage must be, if any.
func (s *Sink) takeReply(stage string) error {
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

// Hold makes every reply at stage (as for Reply) wait until release is
// called or the sink is closed. Each held command first sends on held, so
// the test knows the client is waiting; a command nobody receives from
// waits there instead. Hold panics on an unknown stage.
func (s *Sink) Hold(stage string) (held <-chan struct{}, release func()) {
	checkStage("Hold", stage)
	h := &sinkHold{held: make(chan struct{}), release: make(chan struct{})}
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

// hold waits while replies at stage are held.
func (s *Sink) hold(stage string) {
	s.mu.Lock()
	h := s.holds[stage]
	s.mu.Unlock()
	if h == nil {
		return
	}
	select {
	case h.held <- struct{}{}:
	case <-h.release:
		return
	case <-s.closed:
		return
	}
	select {
	case <-h.release:
	case <-s.closed:
	}
}

// Sessions returns how many SMTP sessions have begun, refused ones
// included: one per EHLO or HELO that starts one, which is one per
// connection plus one after each STARTTLS.
func (s *Sink) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions
}

func (s *Sink) record(m Received) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, m)
	close(s.arrived)
	s.arrived = make(chan struct{})
}

// Messages returns a copy of the messages received so far, in order.
func (s *Sink) Messages() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return copyReceived(s.msgs)
}

// Wait blocks until at least n messages have been received and returns them
// (all of them, possibly more than n). If they do not arrive within timeout
// it calls t.Fatalf listing what did arrive.
func (s *Sink) Wait(t testing.TB, n int, timeout time.Duration) []Received {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		s.mu.Lock()
		if len(s.msgs) >= n {
			msgs := copyReceived(s.msgs)
			s.mu.Unlock()
			return msgs
		}
		arrived := s.arrived
		s.mu.Unlock()
		select {
		case <-arrived:
		case <-timer.C:
			msgs := s.Messages()
			var b strings.Builder
			for i, m := range msgs {
				fmt.Fprintf(&b, "\n  #%d from=<%s> to=%v tls=%v %d bytes%s", i, m.From, m.To, m.TLS, len(m.Data), subjectOf(m.Data))
			}
			t.Fatalf("testkit: sink %s: waited %v for %d message(s), got %d:%s", s.Addr(), timeout, n, len(msgs), b.String())
			return msgs
		}
	}
}

// Close stops the sink and drops its connections. It is safe to call more
// than once.
func (s *Sink) Close() {
	s.closeOne.Do(func() {
		s.log.stop()
		close(s.closed)
		s.srv.Close() //nolint:errcheck
	})
}

func copyReceived(in []Received) []Received {
	out := make([]Received, len(in))
	for i, m := range in {
		out[i] = Received{
			Helo: m.Helo,
			From: m.From,
			To:   append([]string(nil), m.To...),
			Data: append([]byte(nil), m.Data...),
			TLS:  m.TLS,
		}
	}
	return out
}

// subjectOf returns ` subject="..."` for a message with a Subject header.
func subjectOf(data []byte) string {
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" {
			break
		}
		if len(line) > 8 && strings.EqualFold(line[:8], "subject:") {
			return fmt.Sprintf(" subject=%q", strings.TrimSpace(line[8:]))
		}
	}
	return ""
}

type sinkSession struct {
	sink *Sink
	conn *smtp.Conn
	from string
	to   []string
}

func (ss *sinkSession) Reset() {
	ss.from = ""
	ss.to = nil
}

func (ss *sinkSession) Logout() error { return nil }

func (ss *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	ss.sink.hold("mail")
	if err := ss.sink.takeReply("mail"); err != nil {
		return err
	}
	ss.from = from
	ss.to = nil
	return nil
}

func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.sink.hold("rcpt")
	if err := ss.sink.takeReply("rcpt"); err != nil {
		return err
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *sinkSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.sink.hold("data")
	if err := ss.sink.takeReply("data"); err != nil {
		return err
	}
	_, isTLS := ss.conn.TLSConnectionState()
	ss.sink.record(Received{
		Helo: ss.conn.Hostname(),
		From: ss.from,
		To:   append([]string(nil), ss.to...),
		Data: data,
		TLS:  isTLS,
	})
	return nil
}

// syncLogger sends go-smtp's error log to t.Logf until the sink is closed,
// so that no goroutine logs after the test has finished.
type syncLogger struct {
	mu      sync.Mutex
	t       testing.TB
	stopped bool
}

func (l *syncLogger) Printf(format string, v ...interface{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.stopped {
		l.t.Logf("testkit: sink: "+format, v...)
	}
}

func (l *syncLogger) Println(v ...interface{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.stopped {
		l.t.Log(append([]interface{}{"testkit: sink:"}, v...)...)
	}
}

func (l *syncLogger) stop() {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
}
