package main

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
)

// TestSMTPBDATChunks: the gateway advertises CHUNKING (go-smtp always
// does), and a message sent in several BDAT chunks reaches the destination
// intact: the chunks are cut inside a CRLF and inside a "\r\n.\r\n", which
// in BDAT is body text and not the end of the message, lines that start
// with dots keep them (dot-stuffed at delivery, unstuffed by the sink), and
// the DKIM signature verifies. The last chunk is a "BDAT n LAST" with bytes,
// or an empty "BDAT 0 LAST" after them.
func TestSMTPBDATChunks(t *testing.T) {
	s := startStack(t)
	from, to := "hello@"+senderDomain, "user@"+rcptDomain
	if ok, _ := testkit.DialSMTP(t, s.addrs.SMTP, testkit.SMTPStartTLS, liveKey).Extension("CHUNKING"); !ok {
		t.Fatal("EHLO does not advertise CHUNKING")
	}
	for n, zeroLast := range []bool{false, true} {
		subject := "chunks " + strconv.Itoa(n)
		// A Message-ID and a Date: the header goes out as sent.
		msg := "From: " + from + "\r\nTo: " + to + "\r\nSubject: " + subject + "\r\n" +
			"Message-ID: <bdat-" + strconv.Itoa(n) + "@" + senderDomain + ">\r\nDate: Mon, 7 Dec 2026 10:00:00 +0000\r\n\r\n" +
			"first line\r\n.\r\nafter a lone dot\r\n..two dots\r\n.leading dot\r\n" + strings.Repeat("filler line\r\n", 200) + "last line\r\n"
		dot := strings.Index(msg, "\r\n.\r\n")
		cuts := []int{strings.Index(msg, "\r\n\r\n") + 1, dot + 3, dot + 4, len(msg) - 100}
		c := s.rawSMTP(t)
		c.write("MAIL FROM:<" + from + ">\r\nRCPT TO:<" + to + ">\r\n")
		c.expect("250 ")
		c.expect("250 ")
		prev := 0
		for _, cut := range cuts {
			c.write("BDAT " + strconv.Itoa(cut-prev) + "\r\n" + msg[prev:cut])
			c.expect("250 2.0.0 ")
			prev = cut
		}
		if zeroLast {
			c.write("BDAT " + strconv.Itoa(len(msg)-prev) + "\r\n" + msg[prev:])
			c.expect("250 2.0.0 ")
			c.write("BDAT 0 LAST\r\n")
		} else {
			c.write("BDAT " + strconv.Itoa(len(msg)-prev) + " LAST\r\n" + msg[prev:])
		}
		id := queuedID(t, c.expect("250 2.0.0 Ok: queued as "))
		c.quiet()
		got := s.sink.Wait(t, n+1, 20*time.Second)[n]
		s.waitStatus(id, "delivered")
		if !bytes.HasSuffix(got.Data, []byte(msg)) {
			t.Fatalf("last chunk zero-length %v: delivered %q, want the message after the signature: %q", zeroLast, got.Data, msg)
		}
		s.verifyDKIM(t, got.Data)
	}
}
