package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-msgauth/dkim"

	"github.com/pigeonpost/pigeonpost/config"
	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline/deliver"
)

// rawSMTP is an authenticated implicit-TLS session on the gateway driven
// byte by byte: for what smtp.Client will not send (bare line endings,
// BDAT) or would hide (a reply too many).
type rawSMTP struct {
	t    *testing.T
	conn *tls.Conn
	r    *bufio.Reader
}

func (s *stack) rawSMTP(t *testing.T) *rawSMTP {
	t.Helper()
	conn, err := tls.Dial("tcp", s.addrs.SMTPTLS, testkit.InsecureTLS())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	c := &rawSMTP{t: t, conn: conn, r: bufio.NewReader(conn)}
	c.expect("220 ")
	c.write("EHLO client.test\r\n")
	c.expect("250 ")
	c.write("AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00apikey\x00"+liveKey)) + "\r\n")
	c.expect("235 ")
	return c
}

func (c *rawSMTP) write(s string) {
	c.t.Helper()
	if _, err := c.conn.Write([]byte(s)); err != nil {
		c.t.Fatal(err)
	}
}

// expect reads one reply, which must start with prefix, and returns its
// last line.
func (c *rawSMTP) expect(prefix string) string {
	c.t.Helper()
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("waiting for %q: %q, %v", prefix, line, err)
		}
		if len(line) >= 4 && line[3] == '-' {
			continue
		}
		line = strings.TrimRight(line, "\r\n")
		if !strings.HasPrefix(line, prefix) {
			c.t.Fatalf("reply %q, want %q…", line, prefix)
		}
		return line
	}
}

// quiet reports that no reply is waiting: the server answered nothing
// more than what was read. It ends the session with QUIT, whose 221 must
// be the next reply.
func (c *rawSMTP) quiet() {
	c.t.Helper()
	c.write("QUIT\r\n")
	c.expect("221 ")
}

// send runs one transaction with DATA ("DATA") or one BDAT LAST chunk
// ("BDAT") and returns the final reply.
func (c *rawSMTP) send(via, from, to, msg string) string {
	c.t.Helper()
	c.write("MAIL FROM:<" + from + ">\r\nRCPT TO:<" + to + ">\r\n")
	c.expect("250 ")
	c.expect("250 ")
	if via == "BDAT" {
		c.write("BDAT " + strconv.Itoa(len(msg)) + " LAST\r\n" + msg)
	} else {
		c.write("DATA\r\n")
		c.expect("354 ")
		c.write(msg + ".\r\n")
	}
	return c.expect("")
}

// verifyDKIM fails the test unless data carries one DKIM signature of
// senderDomain that verifies against the stack's DNS.
func (s *stack) verifyDKIM(t *testing.T, data []byte) {
	t.Helper()
	v, err := dkim.VerifyWithOptions(bytes.NewReader(data), &dkim.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) {
			return (&deliver.Resolver{Addr: s.dns.Addr(), Timeout: 2 * time.Second}).LookupTXT(context.Background(), name)
		},
	})
	if err != nil || len(v) != 1 || v[0].Err != nil || v[0].Domain != senderDomain {
		t.Fatalf("DKIM: %v %+v", err, v)
	}
}

// decodedBody is the body of a single-part message, transfer decoding
// undone.
func decodedBody(t *testing.T, data []byte) []byte {
	t.Helper()
	e, err := message.Read(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(e.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSMTPLongLinesReencoded (S10): body lines of 1,500 and 100,000
// octets, sent over DATA and over BDAT, never reach the destination as
// they are: there every line is at most 998 octets, the body decodes to
// the bytes sent, and the DKIM signature (made over the re-encoded part)
// verifies.
func TestSMTPLongLinesReencoded(t *testing.T) {
	s := startStack(t)
	from, to := "hello@"+senderDomain, "user@"+rcptDomain
	n := 0
	for _, size := range []int{1500, 100_000} {
		for _, via := range []string{"DATA", "BDAT"} {
			body := "first line\r\n" + strings.Repeat("0123456789", size/10) + "\r\nlast line \r\n"
			msg := "From: " + from + "\r\nTo: " + to + "\r\nSubject: " + via + " " + strconv.Itoa(size) +
				"\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body
			c := s.rawSMTP(t)
			id := queuedID(t, c.send(via, from, to, msg))
			c.quiet()
			n++
			got := s.sink.Wait(t, n, 20*time.Second)[n-1]
			s.waitStatus(id, "delivered")
			for i, line := range bytes.Split(got.Data, []byte("\r\n")) {
				if len(line) > 998 {
					t.Fatalf("%s %d: line %d at the destination has %d octets", via, size, i, len(line))
				}
			}
			if !bytes.Contains(got.Data, []byte("Content-Transfer-Encoding: quoted-printable\r\n")) {
				t.Errorf("%s %d: not quoted-printable:\n%.500s", via, size, got.Data)
			}
			if dec := decodedBody(t, got.Data); string(dec) != body {
				t.Errorf("%s %d: the decoded body differs from the one sent (%d octets, want %d)", via, size, len(dec), len(body))
			}
			s.verifyDKIM(t, got.Data)
		}
	}
}

// TestSMTPLongHeaderLineRefused (S10): a header line over 998 octets cannot
// be re-encoded: the message is refused 550 5.6.0 naming the field, on a
// session that goes on.
func TestSMTPLongHeaderLineRefused(t *testing.T) {
	s := startStack(t)
	from, to := "hello@"+senderDomain, "user@"+rcptDomain
	c := s.rawSMTP(t)
	reply := c.send("DATA", from, to, "From: "+from+"\r\nTo: "+to+"\r\nSubject: "+strings.Repeat("s", 1200)+"\r\n\r\nbody\r\n")
	if !strings.HasPrefix(reply, "550 5.6.0 ") || !strings.Contains(reply, "Subject header") {
		t.Errorf("reply %q, want 550 5.6.0 naming the Subject header", reply)
	}
	c.write("RSET\r\n")
	c.expect("250 ")
	queuedID(t, c.send("DATA", from, to, testkit.SimpleMessage(from, to, "next")))
	c.quiet()
}

// TestSMTPUTF8Recipient (S14): the gateway advertises SMTPUTF8; a
// non-ASCII recipient sent with it is accepted, and bounced 5.6.7 when the
// destination does not offer SMTPUTF8 (the sink does not): nothing is sent
// there with an address the next hop cannot take.
func TestSMTPUTF8Recipient(t *testing.T) {
	s := startStack(t)
	from, to := "hello@"+senderDomain, "müller@"+rcptDomain
	if ok, _ := s.smtpClient(true, liveKey).Extension("SMTPUTF8"); !ok {
		t.Fatal("SMTPUTF8 not advertised")
	}
	c := s.rawSMTP(t)
	c.write("MAIL FROM:<" + from + ">\r\nRCPT TO:<" + to + ">\r\n")
	c.expect("250 ")
	c.expect("553 5.6.7 ")
	c.write("RSET\r\nMAIL FROM:<" + from + "> SMTPUTF8\r\nRCPT TO:<" + to + ">\r\nDATA\r\n")
	c.expect("250 ")
	c.expect("250 ")
	c.expect("250 ")
	c.expect("354 ")
	c.write(testkit.SimpleMessage(from, to, "utf8") + ".\r\n")
	id := queuedID(t, c.expect("250 "))
	c.quiet()
	e := s.waitStatus(id, "bounced")
	if !strings.Contains(e.LastError, "5.6.7") {
		t.Errorf("last error %q, want 5.6.7", e.LastError)
	}
	if n := len(s.sink.Messages()); n != 0 {
		t.Errorf("the sink got %d messages", n)
	}
}

// TestRecipientAddressLiteralRefused (S14): without
// delivery.allow_private_destinations, a recipient at an address literal
// or localhost is refused when it is given (RCPT 550 5.1.2, REST 400), not
// queued to fail at delivery.
func TestRecipientAddressLiteralRefused(t *testing.T) {
	s := startStack(t, func(c *config.Config) { c.Delivery.AllowPrivateDestinations = false })
	from := "hello@" + senderDomain
	c := s.rawSMTP(t)
	c.write("MAIL FROM:<" + from + ">\r\n")
	c.expect("250 ")
	for _, to := range []string{"a@[127.0.0.1]", "a@localhost"} {
		c.write("RCPT TO:<" + to + ">\r\n")
		c.expect("550 5.1.2 ")
	}
	c.quiet()
	resp := s.Call("POST", "/v1/emails", liveKey, nil, map[string]any{"from": from, "to": "a@[127.0.0.1]", "subject": "s", "text": "t"})
	if resp.Code != 400 || resp.ErrCode() != "invalid_address" {
		t.Errorf("REST: %d %s", resp.Code, resp.Body)
	}
}
