package smtpd

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
)

// The tests of line length (S10): lines over 998 octets and up to
// MaxLineBytes reach the pipeline measured (it re-encodes them); longer
// ones end the session with one permanent reply.

// rawSession is an authenticated implicit-TLS connection driven by hand,
// for what smtp.Client will not send or would hide (a reply too many).
type rawSession struct {
	t    *testing.T
	conn *tls.Conn
	r    *bufio.Reader
}

func (s *testServer) raw(t *testing.T) *rawSession {
	t.Helper()
	conn, err := tls.Dial("tcp", s.tlsAddr, testkit.InsecureTLS())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	rs := &rawSession{t: t, conn: conn, r: bufio.NewReader(conn)}
	rs.expect("220 ")
	rs.write("EHLO client.test\r\n")
	rs.expect("250 ")
	rs.write("AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00apikey\x00"+testKey)) + "\r\n")
	rs.expect("235 ")
	return rs
}

func (rs *rawSession) write(s string) {
	rs.t.Helper()
	if _, err := rs.conn.Write([]byte(s)); err != nil {
		rs.t.Fatal(err)
	}
}

// reply reads one reply and returns its last line.
func (rs *rawSession) reply() (string, error) {
	for {
		line, err := rs.r.ReadString('\n')
		if err != nil {
			return line, err
		}
		if len(line) < 4 || line[3] != '-' {
			return strings.TrimRight(line, "\r\n"), nil
		}
	}
}

func (rs *rawSession) expect(prefix string) string {
	rs.t.Helper()
	line, err := rs.reply()
	if err != nil || !strings.HasPrefix(line, prefix) {
		rs.t.Fatalf("reply %q, %v; want %q…", line, err, prefix)
	}
	return line
}

// TestDataLongLines: lines of 999, 1,500 and 100,000 octets are accepted
// as sent, and the pipeline is told the longest line, so that it re-encodes
// without reading the message again; over DATA and over BDAT.
func TestDataLongLines(t *testing.T) {
	s := startServer(t)
	for _, n := range []int{998, 999, 1500, 100_000} {
		msg := testkit.SimpleMessage(testFrom, testRcpt, "long") + "short\r\n" + strings.Repeat("x", n) + "\r\nshort\r\n"
		for _, via := range []string{"DATA", "BDAT"} {
			before := len(s.pipe.submissions())
			if via == "DATA" {
				if _, err := testkit.SendMail(s.client(t), testFrom, []string{testRcpt}, msg); err != nil {
					t.Fatalf("%d octets over DATA: %v", n, err)
				}
			} else {
				rs := s.raw(t)
				rs.write("MAIL FROM:<" + testFrom + ">\r\nRCPT TO:<" + testRcpt + ">\r\n")
				rs.expect("250 ")
				rs.expect("250 ")
				rs.write("BDAT " + strconv.Itoa(len(msg)) + " LAST\r\n" + msg)
				rs.expect("250 2.0.0 Ok: queued as em_")
			}
			subs := s.pipe.submissions()
			if len(subs) != before+1 {
				t.Fatalf("%d octets over %s: %d submissions, want 1", n, via, len(subs)-before)
			}
			sub := subs[len(subs)-1]
			if string(sub.Message) != msg || sub.LongestLine != n {
				t.Errorf("%d octets over %s: message changed or LongestLine %d", n, via, sub.LongestLine)
			}
		}
	}
	s.pipe.checkBreaches(t)
}

// TestDataLineOverLimit: a DATA line longer than MaxLineBytes (here go-smtp's
// default, 2,000, as the red team found it) gets exactly one reply, a
// permanent 554 5.6.0, and then the connection ends: not a temporary 451
// followed by go-smtp's "500 Too long line" as the reply to the next
// command. Nothing is submitted.
func TestDataLineOverLimit(t *testing.T) {
	s := startServer(t, func(o *Options) { o.MaxLineBytes = 2000 })
	rs := s.raw(t)
	rs.write("MAIL FROM:<" + testFrom + ">\r\nRCPT TO:<" + testRcpt + ">\r\nDATA\r\n")
	rs.expect("250 ")
	rs.expect("250 ")
	rs.expect("354 ")
	rs.write(testkit.SimpleMessage(testFrom, testRcpt, "too long") + strings.Repeat("y", 2100) + "\r\nmore\r\n.\r\nNOOP\r\n")
	rs.expect("554 5.6.0 ")
	if line, err := rs.reply(); !errors.Is(err, io.EOF) {
		t.Errorf("after the 554: %q, %v; want the connection closed", line, err)
	}
	if n := len(s.pipe.submissions()); n != 0 {
		t.Errorf("%d submissions, want none", n)
	}
	// The server goes on serving.
	if _, err := testkit.SendMail(s.client(t), testFrom, []string{testRcpt}, testkit.SimpleMessage(testFrom, testRcpt, "next")); err != nil {
		t.Fatal(err)
	}
}

// TestDataOverSizeKeepsSession: a DATA one byte over the limit is 552 5.3.4,
// nothing is submitted, and the same connection takes RSET and the next
// message. A message of exactly the limit is refused as well: go-smtp
// stops at the limit before it sees the final dot (the advertised SIZE is
// in effect one less).
func TestDataOverSizeKeepsSession(t *testing.T) {
	s := startServer(t)
	c := s.client(t)
	for _, size := range []int{maxBytes + 1, maxBytes} {
		msg := testMessage(size)[:size]
		msg[size-2], msg[size-1] = '\r', '\n'
		_, err := send(t, c, msg, 0)
		testkit.WantSMTPError(t, err, 552, smtp.EnhancedCode{5, 3, 4})
		if err := c.Reset(); err != nil {
			t.Fatalf("RSET after 552: %v", err)
		}
	}
	if n := len(s.pipe.submissions()); n != 0 {
		t.Errorf("%d submissions, want none", n)
	}
	// Each admission was begun at DATA, before the body was refused (its
	// Release gives the charge back: pipeline's TestAdmissionBegunAtData).
	if n := len(s.pipe.admissions()); n != 2 {
		t.Errorf("%d admissions begun, want one per DATA", n)
	}
	msg := testMessage(maxBytes - 1)[:maxBytes-1]
	msg[len(msg)-2], msg[len(msg)-1] = '\r', '\n'
	id, err := send(t, c, msg, 0)
	if err != nil {
		t.Fatalf("a message of the limit less one on the same connection: %v", err)
	}
	s.checkStored(t, id, msg)
}
