package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// The sink accepts and discards messages while counting them: the downstream
// relay of `make bench`, and a ceiling target (-starttls -user -pass) that
// costs next to nothing per message. Its stats file has the format of
// /work/shared/bench/sink's, so -sink-stats reads either.

type sinkOptions struct {
	addr, addrFile, statsFile string
	starttls                  bool
	user, pass                string
	cert, key                 string
}

type sinkCounters struct {
	conns, sessions, msgs, bytes, rcpts, authOK, authFail, rejected, dataErr atomic.Int64
}

type sinkBackend struct {
	opt sinkOptions
	c   *sinkCounters
}

func (b *sinkBackend) NewSession(*smtp.Conn) (smtp.Session, error) {
	b.c.sessions.Add(1)
	return &sinkSession{b: b, authed: b.opt.user == ""}, nil
}

type sinkSession struct {
	b      *sinkBackend
	authed bool
	rcpts  int
}

func (s *sinkSession) AuthMechanisms() []string {
	if s.b.opt.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *sinkSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, username, password string) error {
		if username != s.b.opt.user || password != s.b.opt.pass {
			s.b.c.authFail.Add(1)
			return smtp.ErrAuthFailed
		}
		s.b.c.authOK.Add(1)
		s.authed = true
		return nil
	}), nil
}

func (s *sinkSession) Mail(string, *smtp.MailOptions) error {
	if !s.authed {
		s.b.c.rejected.Add(1)
		return smtp.ErrAuthRequired
	}
	return nil
}

func (s *sinkSession) Rcpt(string, *smtp.RcptOptions) error { s.rcpts++; return nil }

func (s *sinkSession) Data(r io.Reader) error {
	n, err := io.Copy(io.Discard, r)
	if err != nil {
		s.b.c.dataErr.Add(1)
		return err
	}
	s.b.c.msgs.Add(1)
	s.b.c.bytes.Add(n)
	s.b.c.rcpts.Add(int64(s.rcpts))
	return nil
}

func (s *sinkSession) Reset()        { s.rcpts = 0 }
func (s *sinkSession) Logout() error { return nil }

type countingListener struct {
	net.Listener
	c *sinkCounters
}

func (l countingListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err == nil {
		l.c.conns.Add(1)
	}
	return conn, err
}

func (c *sinkCounters) snapshot(start time.Time) map[string]any {
	return map[string]any{
		"name": "smtpload-sink", "pid": os.Getpid(), "uptime_s": time.Since(start).Seconds(),
		"connections": c.conns.Load(), "sessions": c.sessions.Load(),
		"messages": c.msgs.Load(), "bytes": c.bytes.Load(), "rcpts": c.rcpts.Load(),
		"auth_ok": c.authOK.Load(), "auth_fail": c.authFail.Load(),
		"mail_rejected_unauthenticated": c.rejected.Load(), "data_errors": c.dataErr.Load(),
	}
}

// writeFileAtomic writes b to path through a rename, so readers never see a
// partial file.
func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// newSink returns the server and listener of a sink; the caller serves.
func newSink(opt sinkOptions) (*smtp.Server, net.Listener, *sinkCounters, error) {
	c := &sinkCounters{}
	srv := smtp.NewServer(&sinkBackend{opt: opt, c: c})
	srv.Domain = "sink.bench.test"
	srv.MaxMessageBytes = 64 << 20
	srv.MaxRecipients = 1000
	srv.ReadTimeout = 60 * time.Second
	srv.WriteTimeout = 60 * time.Second
	srv.ErrorLog = log.New(io.Discard, "", 0)
	if opt.starttls {
		var cert tls.Certificate
		var err error
		if opt.cert != "" {
			cert, err = tls.LoadX509KeyPair(opt.cert, opt.key)
		} else {
			cert, err = selfSigned()
		}
		if err != nil {
			return nil, nil, nil, err
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	} else if opt.user != "" {
		srv.AllowInsecureAuth = true
	}
	ln, err := net.Listen("tcp", opt.addr)
	if err != nil {
		return nil, nil, nil, err
	}
	return srv, countingListener{ln, c}, c, nil
}

// runSink serves until SIGTERM or SIGINT, then prints its totals.
func runSink(opt sinkOptions) error {
	srv, ln, c, err := newSink(opt)
	if err != nil {
		return err
	}
	start := time.Now()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	writeStats := func() {
		if opt.statsFile != "" {
			b, _ := json.Marshal(c.snapshot(start))
			_ = writeFileAtomic(opt.statsFile, append(b, '\n'))
		}
	}
	writeStats()
	if opt.addrFile != "" {
		if err := writeFileAtomic(opt.addrFile, []byte(ln.Addr().String()+"\n")); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "smtpload sink: pid %d listening on %s starttls=%v auth=%v\n", os.Getpid(), ln.Addr(), opt.starttls, opt.user != "")

	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			writeStats()
		case err := <-errc:
			if errors.Is(err, smtp.ErrServerClosed) {
				return nil
			}
			return err
		case <-sig:
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = srv.Shutdown(ctx)
			cancel()
			srv.Close()
			writeStats()
			b, _ := json.Marshal(c.snapshot(start))
			fmt.Fprintf(os.Stderr, "smtpload sink totals %s\n", b)
			return nil
		}
	}
}
