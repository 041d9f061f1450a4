package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// sink is the downstream SMTP server: the MX of the recipient domain. It
// accepts everything, offers STARTTLS, and keeps each message in memory and
// as a file in dir (NNN-recipient.eml) for a person to look at.
//
// With auth set it is instead the rehearsal server: a stand-in submission
// server that takes any API key (after STARTTLS, or on its implicit-TLS
// port), so that each client's own message can be compared with what
// pigeonpost delivered.
type sink struct {
	srv     *smtp.Server
	dir     string
	port    int
	tlsPort int // rehearsal only

	mu   sync.Mutex
	msgs []received
}

type received struct {
	From string
	To   []string
	Data []byte
	TLS  bool
	File string
}

func startSink(dir string, auth bool) (*sink, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	s := &sink{dir: dir}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		if auth {
			return &authSession{sinkSession{sink: s, conn: c}}, nil
		}
		return &sinkSession{sink: s, conn: c}, nil
	}))
	srv.Domain = "mx.example.test"
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	srv.MaxMessageBytes = 64 << 20
	srv.EnableSMTPUTF8 = true
	srv.ErrorLog = discardLogger{}
	cert, err := selfSigned(srv.Domain)
	if err != nil {
		return nil, err
	}
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.srv, s.port = srv, ln.Addr().(*net.TCPAddr).Port
	go srv.Serve(ln) //nolint:errcheck // ends with Close
	if auth {
		tln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			srv.Close()
			return nil, err
		}
		s.tlsPort = tln.Addr().(*net.TCPAddr).Port
		go srv.Serve(tls.NewListener(tln, srv.TLSConfig)) //nolint:errcheck // ends with Close
	}
	return s, nil
}

func (s *sink) close() { _ = s.srv.Close() }

// to returns the messages received for rcpt.
func (s *sink) to(rcpt string) []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []received
	for _, m := range s.msgs {
		for _, t := range m.To {
			if strings.EqualFold(t, rcpt) {
				out = append(out, m)
				break
			}
		}
	}
	return out
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

// wait waits up to timeout for a message to rcpt.
func (s *sink) wait(ctx context.Context, rcpt string, timeout time.Duration) []received {
	deadline := time.Now().Add(timeout)
	for {
		if got := s.to(rcpt); len(got) > 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return got
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var unsafeFileChars = regexp.MustCompile(`[^A-Za-z0-9._@-]+`)

func (s *sink) add(m received) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m.File = filepath.Join(s.dir, fmt.Sprintf("%03d-%s.eml", len(s.msgs)+1, unsafeFileChars.ReplaceAllString(strings.Join(m.To, ","), "_")))
	_ = os.WriteFile(m.File, m.Data, 0o644)
	s.msgs = append(s.msgs, m)
}

type sinkSession struct {
	sink *sink
	conn *smtp.Conn
	from string
	to   []string
}

func (ss *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	ss.from = from
	return nil
}

func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.to = append(ss.to, to)
	return nil
}

func (ss *sinkSession) Data(r io.Reader) error {
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(r); err != nil {
		return err
	}
	_, isTLS := ss.conn.TLSConnectionState()
	ss.sink.add(received{From: ss.from, To: append([]string(nil), ss.to...), Data: buf.Bytes(), TLS: isTLS})
	return nil
}

func (ss *sinkSession) Reset()        { ss.from, ss.to = "", nil }
func (ss *sinkSession) Logout() error { return nil }

// authSession takes any user name and password, with PLAIN or LOGIN, once
// the connection is TLS (go-smtp refuses AUTH before that).
type authSession struct{ sinkSession }

func (*authSession) AuthMechanisms() []string { return []string{sasl.Plain, sasl.Login} }

func (*authSession) Auth(mech string) (sasl.Server, error) {
	if mech == sasl.Plain {
		return sasl.NewPlainServer(func(string, string, string) error { return nil }), nil
	}
	return &anyLogin{}, nil
}

// anyLogin is the server side of LOGIN: "Username:", "Password:", accept.
type anyLogin struct{ gotUser bool }

func (l *anyLogin) Next(response []byte) ([]byte, bool, error) {
	switch {
	case !l.gotUser && response == nil: // no initial response
		return []byte("Username:"), false, nil
	case !l.gotUser:
		l.gotUser = true
		return []byte("Password:"), false, nil
	}
	return nil, true, nil
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}
func (discardLogger) Println(...any)        {}

// selfSigned makes the certificate for the sink's STARTTLS (pigeonpost
// delivers with opportunistic TLS and does not verify it).
func selfSigned(host string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: host},
		DNSNames:     []string{host},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
