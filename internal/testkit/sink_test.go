package testkit

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

const testMessage = "From: a@example.org\r\n" +
	"To: b@example.net\r\n" +
	"Subject: hi\r\n" +
	"\r\n" +
	"line one\r\n" +
	".leading dot\r\n" +
	"..two dots\r\n" +
	"last line\r\n"

func sendTo(c *smtp.Client, from string, to []string, body string) error {
	if err := c.Mail(from, nil); err != nil {
		return fmt.Errorf("MAIL: %w", err)
	}
	for _, rcpt := range to {
		if err := c.Rcpt(rcpt, nil); err != nil {
			return fmt.Errorf("RCPT %s: %w", rcpt, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := io.WriteString(w, body); err != nil {
		return fmt.Errorf("DATA write: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("DATA end: %w", err)
	}
	return nil
}

func smtpCode(err error) int {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

func TestSinkPlain(t *testing.T) {
	s := StartSink(t, SinkOptions{})
	host, port, _ := net.SplitHostPort(s.Addr())
	if host != "127.0.0.1" || port != strconv.Itoa(s.Port()) || s.Port() == 0 {
		t.Fatalf("Addr() = %q, Port() = %d", s.Addr(), s.Port())
	}
	c, err := smtp.Dial(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Fatal("plain sink advertises STARTTLS")
	}
	if err := sendTo(c, "a@example.org", []string{"b@example.net", "c@example.net"}, testMessage); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	msgs := s.Wait(t, 1, 10*time.Second)
	if len(msgs) != 1 {
		t.Fatalf("got %d messages", len(msgs))
	}
	m := msgs[0]
	if m.Helo != "client.test" || m.From != "a@example.org" || strings.Join(m.To, ",") != "b@example.net,c@example.net" || m.TLS {
		t.Fatalf("got %+v", m)
	}
	if string(m.Data) != testMessage {
		t.Fatalf("Data = %q, want %q", m.Data, testMessage)
	}
	// Messages returns a copy.
	s.Messages()[0].Data[0] = 'X'
	if s.Messages()[0].Data[0] != 'F' {
		t.Fatal("Messages() shares memory with the sink")
	}
}

func TestSinkSTARTTLS(t *testing.T) {
	s := StartSink(t, SinkOptions{TLS: true})
	c, err := smtp.DialStartTLS(s.Addr(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.TLSConnectionState(); !ok {
		t.Fatal("client is not on TLS")
	}
	if err := sendTo(c, "", []string{"b@example.net"}, testMessage); err != nil {
		t.Fatal(err)
	}
	c.Quit() //nolint:errcheck
	m := s.Wait(t, 1, 10*time.Second)[0]
	if !m.TLS || m.From != "" || string(m.Data) != testMessage {
		t.Fatalf("got %+v", m)
	}
}

func TestSinkReply(t *testing.T) {
	s := StartSink(t, SinkOptions{})
	c, err := smtp.Dial(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	s.Reply("rcpt", &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}, 1)
	if err := c.Mail("a@example.org", nil); err != nil {
		t.Fatal(err)
	}
	err = c.Rcpt("b@example.net", nil)
	if smtpCode(err) != 451 {
		t.Fatalf("first RCPT: %v, want 451", err)
	}
	if err := c.Rcpt("c@example.net", nil); err != nil {
		t.Fatalf("second RCPT: %v", err)
	}
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}

	s.Reply("data", &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "no thanks"}, -1)
	for i := 0; i < 2; i++ {
		if err := sendTo(c, "a@example.org", []string{"b@example.net"}, testMessage); smtpCode(err) != 554 {
			t.Fatalf("send %d: %v, want 554", i, err)
		}
	}
	s.Reply("data", nil, 0)
	s.Reply("rcpt", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}, 1)
	err = sendTo(c, "a@example.org", []string{"gone@example.net"}, testMessage)
	if smtpCode(err) != 550 {
		t.Fatalf("RCPT: %v, want 550", err)
	}
	c.Reset() //nolint:errcheck
	if err := sendTo(c, "a@example.org", []string{"b@example.net"}, testMessage); err != nil {
		t.Fatal(err)
	}
	msgs := s.Wait(t, 1, 10*time.Second)
	if len(msgs) != 1 || strings.Join(msgs[0].To, ",") != "b@example.net" {
		t.Fatalf("got %+v", msgs)
	}

	func() {
		defer func() {
			if recover() == nil {
				t.Error("Reply with an unknown stage did not panic")
			}
		}()
		s.Reply("quit", nil, 1)
	}()
}

// TestSinkSessionReplies: "helo" and "mail" replies, counted over sessions,
// and what a session records.
func TestSinkSessionReplies(t *testing.T) {
	s := StartSink(t, SinkOptions{})
	s.Reply("helo", &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "go away"}, 1)
	s.Reply("mail", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "sender rejected"}, 1)

	c, err := smtp.Dial(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Hello("first.test"); smtpCode(err) != 421 {
		t.Fatalf("first EHLO: %v, want 421", err)
	}
	c.Close()

	c, err = smtp.Dial(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("second.test"); err != nil {
		t.Fatalf("second EHLO: %v", err)
	}
	if err := sendTo(c, "a@example.org", []string{"b@example.net"}, testMessage); smtpCode(err) != 550 {
		t.Fatalf("first MAIL: %v, want 550", err)
	}
	c.Reset() //nolint:errcheck
	if err := sendTo(c, "a@example.org", []string{"b@example.net"}, testMessage); err != nil {
		t.Fatal(err)
	}
	if m := s.Messages(); len(m) != 1 || m[0].Helo != "second.test" {
		t.Fatalf("got %+v", m)
	}
	if n := s.Sessions(); n != 2 {
		t.Fatalf("Sessions() = %d, want 2 (the refused one counts)", n)
	}
}

func TestSinkBrokenTLS(t *testing.T) {
	s := StartSink(t, SinkOptions{BrokenTLS: true})
	c, err := smtp.DialStartTLS(s.Addr(), &tls.Config{InsecureSkipVerify: true})
	if err == nil {
		// The client's handshake runs on its first command after STARTTLS.
		err = c.Noop()
		c.Close()
	}
	if err == nil {
		t.Fatal("STARTTLS succeeded")
	}
	if n := s.Sessions(); n != 1 {
		t.Fatalf("Sessions() = %d, want 1", n)
	}
}

// TestSinkHold: a held RCPT is answered only after release.
func TestSinkHold(t *testing.T) {
	s := StartSink(t, SinkOptions{})
	held, release := s.Hold("rcpt")
	c, err := smtp.Dial(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("a@example.org", nil); err != nil {
		t.Fatal(err)
	}
	answered := make(chan error, 1)
	go func() { answered <- c.Rcpt("b@example.net", nil) }()
	<-held
	select {
	case err := <-answered:
		t.Fatalf("held RCPT answered: %v", err)
	default:
	}
	release()
	release() // a second call is harmless
	if err := <-answered; err != nil {
		t.Fatalf("RCPT after release: %v", err)
	}
	// Released for good: the next RCPT is not held.
	if err := c.Rcpt("c@example.net", nil); err != nil {
		t.Fatal(err)
	}
}

// TestSinkHoldClose: closing the sink lets held commands go on.
func TestSinkHoldClose(t *testing.T) {
	s := StartSink(t, SinkOptions{})
	held, _ := s.Hold("helo")
	c, err := smtp.Dial(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	answered := make(chan error, 1)
	go func() { answered <- c.Hello("client.test") }()
	<-held
	s.Close()
	<-answered // any answer, or the connection closed
}

func TestSinkWaitTimeout(t *testing.T) {
	s := StartSink(t, SinkOptions{})
	msg := runFake(t, func(tb testing.TB) { s.Wait(tb, 1, 10*time.Millisecond) })
	if !strings.Contains(msg, "got 0") {
		t.Fatalf("fatal = %q", msg)
	}
}

func TestSelfSignedCert(t *testing.T) {
	cert, err := SelfSignedCert("mx.example.test", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	for _, name := range []string{"mx.example.test", "127.0.0.1"} {
		if _, err := cert.Leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: pool}); err != nil {
			t.Errorf("verify %s: %v", name, err)
		}
	}
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{DNSName: "other.test", Roots: pool}); err == nil {
		t.Error("verified for a host not in the certificate")
	}
	if d := cert.Leaf.NotAfter.Sub(cert.Leaf.NotBefore); d > 25*time.Hour || d < 24*time.Hour {
		t.Errorf("validity %v", d)
	}
}
