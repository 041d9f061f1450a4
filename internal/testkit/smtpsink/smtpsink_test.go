package smtpsink

import (
	"context"
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

const body = "Subject: hi\r\n\r\nhello\r\n"

func send(c *smtp.Client, rcpt string) error {
	if err := c.Mail("a@example.org", nil); err != nil {
		return err
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(body)); err != nil {
		return err
	}
	return w.Close()
}

// TestImplicitTLSAuthLoginDir: e2e/driver's rehearsal server.
func TestImplicitTLSAuthLoginDir(t *testing.T) {
	dir := t.TempDir()
	s, err := Start(Options{Domain: "mx.example.test", TLS: true, ImplicitTLS: true, SMTPUTF8: true, Dir: dir,
		Auth: func(u, p string) bool { return u == "apikey" && p == "secret" }, AuthLogin: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := smtp.DialTLS(s.TLSAddr(), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // self-signed test server
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ok, params := c.Extension("AUTH"); !ok || params != "PLAIN LOGIN" {
		t.Fatalf("AUTH %v %q", ok, params)
	}
	if ok, _ := c.Extension("SMTPUTF8"); !ok {
		t.Fatal("no SMTPUTF8")
	}
	if err := c.Auth(sasl.NewLoginClient("apikey", "secret")); err != nil {
		t.Fatalf("AUTH LOGIN: %v", err)
	}
	if err := send(c, "Who@Example.NET"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	msgs, err := s.Wait(ctx, func(m []Received) bool { return len(To(m, "who@example.net")) == 1 })
	if err != nil {
		t.Fatal(err)
	}
	m := msgs[0]
	if !m.TLS || m.File != filepath.Join(dir, "001-Who@Example.NET.eml") {
		t.Fatalf("TLS %v, file %q", m.TLS, m.File)
	}
	if b, err := os.ReadFile(m.File); err != nil || string(b) != body {
		t.Fatalf("file: %q, %v", b, err)
	}
	if st := s.Stats(); st.AuthOK != 1 || st.Messages != 1 || st.Connections != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestDiscardAuthRequired: cmd/smtpload's benchmark sink.
func TestDiscardAuthRequired(t *testing.T) {
	s, err := Start(Options{Discard: true, MaxRecipients: 2,
		Auth: func(u, p string) bool { return u == "bench" && p == "pw" }, AuthRequired: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := smtp.Dial(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if ok, params := c.Extension("AUTH"); !ok || params != "PLAIN" {
		t.Fatalf("AUTH %v %q (in the clear without TLS)", ok, params)
	}
	var se *smtp.SMTPError
	if err := send(c, "b@example.net"); !errors.As(err, &se) || se.Code != 502 {
		t.Fatalf("MAIL before AUTH: %v, want 502 (go-smtp ErrAuthRequired)", err)
	}
	if err := c.Auth(sasl.NewPlainClient("", "bench", "bad")); !errors.As(err, &se) || se.Code != 535 {
		t.Fatalf("bad password: %v, want 535", err)
	}
	if err := c.Auth(sasl.NewPlainClient("", "bench", "pw")); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := send(c, "b@example.net"); err != nil {
			t.Fatal(err)
		}
	}
	st := s.Stats()
	want := Stats{Connections: 1, Sessions: 1, Messages: 3, Bytes: 3 * int64(len(body)), Rcpts: 3, AuthOK: 1, AuthFail: 1, Rejected: 1, Active: 1, MaxActive: 1}
	if st != want {
		t.Fatalf("stats %+v, want %+v", st, want)
	}
	if n := len(s.Messages()); n != 0 {
		t.Fatalf("discard mode kept %d messages", n)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-s.Errors(); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
		t.Fatalf("serve ended with %v", err)
	}
}

// TestThrottlePerConnectionAndCountOpen: MaxMessagesPerConnection answers
// MAIL with 421 4.7.0 once a connection has had its messages, a new
// connection gets its own; Active and MaxActive count open connections.
func TestThrottlePerConnectionAndCountOpen(t *testing.T) {
	s, err := Start(Options{MaxMessagesPerConnection: 2, Discard: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, err := smtp.Dial(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	b, err := smtp.Dial(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := send(a, "x@example.net"); err != nil {
			t.Fatal(err)
		}
	}
	var se *smtp.SMTPError
	if err := send(a, "x@example.net"); !errors.As(err, &se) || se.Code != 421 || se.EnhancedCode != (smtp.EnhancedCode{4, 7, 0}) {
		t.Fatalf("third message on one connection: %v, want 421 4.7.0", err)
	}
	if err := send(b, "x@example.net"); err != nil {
		t.Fatalf("another connection: %v", err)
	}
	if st := s.Stats(); st.Active != 2 || st.MaxActive != 2 || st.Messages != 3 {
		t.Fatalf("stats %+v, want 2 open, at most 2, 3 messages", st)
	}
	a.Close()
	b.Close()
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().Active != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("connections still open: %+v", s.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	s.ResetMaxActive()
	if st := s.Stats(); st.MaxActive != 0 {
		t.Fatalf("after ResetMaxActive: %+v", st)
	}
}
