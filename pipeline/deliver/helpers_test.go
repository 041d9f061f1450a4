package deliver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// silentUDP returns the address of a UDP socket that reads and never
// answers, and a channel that receives a value for each packet read (when
// there is room).
func silentUDP(t *testing.T) (string, <-chan struct{}) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	got := make(chan struct{}, 1)
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
			select {
			case got <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return pc.LocalAddr().String(), got
}

// received is one message as the sink saw it.
type received struct {
	Helo string
	From string
	To   []string
	Data []byte
	TLS  bool
}

// sinkOptions configures a test SMTP server.
type sinkOptions struct {
	TLS       bool // advertise STARTTLS with a self-signed certificate
	BrokenTLS bool // advertise STARTTLS, but every handshake fails
	HeloErr   *smtp.SMTPError
	MailErr   *smtp.SMTPError
	RcptErr   *smtp.SMTPError
	DataErr   *smtp.SMTPError // returned after the whole message was read

	// FailSessions > 0 applies the errors above to the first FailSessions
	// sessions only; later sessions accept.
	FailSessions int

	// RcptEntered, when set, receives a value when RCPT arrives; the reply
	// then waits until RcptRelease is closed.
	RcptEntered chan<- struct{}
	RcptRelease <-chan struct{}
}

// testSink is a loopback go-smtp server recording what it accepts.
type testSink struct {
	Addr string
	Port int

	opts sinkOptions

	mu       sync.Mutex
	msgs     []received
	sessions int
}

func newTestSink(t *testing.T, opts sinkOptions) *testSink {
	t.Helper()
	s := &testSink{opts: opts}
	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = "sink.test"
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	srv.AllowInsecureAuth = true
	srv.ErrorLog = discardLogger{}
	switch {
	case opts.BrokenTLS:
		srv.TLSConfig = &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return nil, errors.New("no certificate for you")
		}}
	case opts.TLS:
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = ln.Addr().String()
	s.Port = ln.Addr().(*net.TCPAddr).Port
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		ln.Close() // in case Serve had not registered it yet when Close ran
		<-done
	})
	return s
}

func (s *testSink) received() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.msgs...)
}

func (s *testSink) sessionCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions
}

func (s *testSink) newSession(c *smtp.Conn) (smtp.Session, error) {
	s.mu.Lock()
	s.sessions++
	fail := s.opts.FailSessions == 0 || s.sessions <= s.opts.FailSessions
	s.mu.Unlock()
	if fail && s.opts.HeloErr != nil {
		return nil, s.opts.HeloErr
	}
	return &sinkSession{sink: s, conn: c, fail: fail}, nil
}

type sinkSession struct {
	sink *testSink
	conn *smtp.Conn
	fail bool // apply the configured errors
	msg  received
}

func (ss *sinkSession) Reset()        { ss.msg = received{} }
func (ss *sinkSession) Logout() error { return nil }

func (ss *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	if ss.fail && ss.sink.opts.MailErr != nil {
		return ss.sink.opts.MailErr
	}
	ss.msg.From = from
	return nil
}

func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if ss.sink.opts.RcptEntered != nil {
		ss.sink.opts.RcptEntered <- struct{}{}
		<-ss.sink.opts.RcptRelease
	}
	if ss.fail && ss.sink.opts.RcptErr != nil {
		return ss.sink.opts.RcptErr
	}
	ss.msg.To = append(ss.msg.To, to)
	return nil
}

func (ss *sinkSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if ss.fail && ss.sink.opts.DataErr != nil {
		return ss.sink.opts.DataErr
	}
	ss.msg.Data = data
	ss.msg.Helo = ss.conn.Hostname()
	_, ss.msg.TLS = ss.conn.TLSConnectionState()
	ss.sink.mu.Lock()
	ss.sink.msgs = append(ss.sink.msgs, ss.msg)
	ss.sink.mu.Unlock()
	return nil
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...interface{}) {}
func (discardLogger) Println(...interface{})        {}

// selfSigned returns a throwaway certificate for "sink.test".
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "sink.test"},
		DNSNames:     []string{"sink.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// asError asserts err is an *Error and returns it.
func asError(t *testing.T, err error) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not *Error", err, err)
	}
	return e
}

// crlf turns a readable multi-line literal into a CRLF message.
func crlf(s string) []byte {
	return []byte(strings.ReplaceAll(s, "\n", "\r\n"))
}
