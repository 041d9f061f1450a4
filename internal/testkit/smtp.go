package testkit

import (
	"crypto/tls"
	"errors"
	"io"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// SMTP clients for tests of a submission port, layered by protocol state
// (go-smtp's server_test.go): greeted (EHLO sent, no TLS), TLS (STARTTLS
// or implicit TLS) and authenticated (AUTH PLAIN with an API key).

// SMTPMode says how DialSMTP reaches the server.
type SMTPMode int

const (
	// SMTPGreeted: plain TCP, EHLO client.test sent, no TLS.
	SMTPGreeted SMTPMode = iota
	// SMTPStartTLS: plain TCP upgraded with STARTTLS.
	SMTPStartTLS
	// SMTPImplicitTLS: TLS from the first byte (port 465's way).
	SMTPImplicitTLS
)

// InsecureTLS is a client configuration that trusts any certificate: the
// servers under test present self-signed ones.
func InsecureTLS() *tls.Config {
	return &tls.Config{InsecureSkipVerify: true}
}

// DialSMTP connects to addr as mode says and, when key is not empty,
// authenticates with AUTH PLAIN as "apikey" with key. The client is closed
// when the test ends; any failure fails the test.
func DialSMTP(t testing.TB, addr string, mode SMTPMode, key string) *smtp.Client {
	t.Helper()
	var c *smtp.Client
	var err error
	switch mode {
	case SMTPStartTLS:
		c, err = smtp.DialStartTLS(addr, InsecureTLS())
	case SMTPImplicitTLS:
		c, err = smtp.DialTLS(addr, InsecureTLS())
	default:
		c, err = smtp.Dial(addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if mode == SMTPGreeted {
		if err := c.Hello("client.test"); err != nil {
			t.Fatal(err)
		}
	}
	if key != "" {
		if err := c.Auth(sasl.NewPlainClient("", "apikey", key)); err != nil {
			t.Fatalf("auth: %v", err)
		}
	}
	return c
}

// SendMail runs one transaction on c and returns the final reply text or
// the error of the first step that failed (a *smtp.SMTPError for a reply).
func SendMail(c *smtp.Client, from string, to []string, msg string) (string, error) {
	if err := c.Mail(from, nil); err != nil {
		return "", err
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			return "", err
		}
	}
	w, err := c.Data()
	if err != nil {
		return "", err
	}
	if _, err := io.WriteString(w, msg); err != nil {
		return "", err
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", err
	}
	return resp.StatusText, nil
}

// SimpleMessage is a plain-text message with the three headers every test
// mail needs.
func SimpleMessage(from, to, subject string) string {
	return "From: " + from + "\r\nTo: " + to + "\r\nSubject: " + subject + "\r\n\r\nHello.\r\n"
}

// WantSMTPError fails the test unless err is an SMTP reply with code and
// enhanced code enh, and returns that reply.
func WantSMTPError(t testing.TB, err error, code int, enh smtp.EnhancedCode) *smtp.SMTPError {
	t.Helper()
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		t.Fatalf("got %v (%T), want SMTP %d %v", err, err, code, enh)
	}
	if se.Code != code || se.EnhancedCode != enh {
		t.Fatalf("got %d %v %q, want %d %v", se.Code, se.EnhancedCode, se.Message, code, enh)
	}
	return se
}
