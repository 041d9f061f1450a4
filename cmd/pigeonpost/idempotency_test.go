package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
	"github.com/pigeonpost/pigeonpost/internal/testkit"
)

// A client whose connection dropped after the final dot sends the message
// again on a new connection: same id, and the destination gets one copy.
func TestRESTSMTPDuplicateResend(t *testing.T) {
	s := startStack(t)
	from, to := "hello@"+senderDomain, "user@"+rcptDomain
	msg := "From: " + from + "\r\nTo: " + to + "\r\nSubject: once\r\nMessage-ID: <order-1234@acme.test>\r\n" +
		"Date: Mon, 15 Jun 2026 10:00:00 +0000\r\n\r\nHello.\r\n"
	reply1, err := testkit.SendMail(s.smtpClient(true, liveKey), from, []string{to}, msg)
	if err != nil {
		t.Fatal(err)
	}
	reply2, err := testkit.SendMail(s.smtpClient(true, liveKey), from, []string{to}, msg)
	if err != nil {
		t.Fatal(err)
	}
	id := queuedID(t, reply1)
	if queuedID(t, reply2) != id {
		t.Fatalf("re-sent message got %q, first %q", reply2, reply1)
	}
	// The same Message-ID to another recipient is another message.
	other := strings.Replace(msg, "To: "+to, "To: other@"+rcptDomain, 1)
	reply3, err := testkit.SendMail(s.smtpClient(true, liveKey), from, []string{"other@" + rcptDomain}, other)
	if err != nil || queuedID(t, reply3) == id {
		t.Fatalf("another recipient: %q %v", reply3, err)
	}

	// An Idempotency-Key header is honoured and removed.
	keyed := "From: " + from + "\r\nTo: " + to + "\r\nSubject: keyed\r\nIdempotency-Key: smtp-42\r\n\r\nHello.\r\n"
	r4, err := testkit.SendMail(s.smtpClient(true, liveKey), from, []string{to}, keyed)
	if err != nil {
		t.Fatal(err)
	}
	// Rebuilt for the retry with a new Date and Message-ID: the same request still.
	rebuilt := strings.Replace(keyed, "Subject: keyed\r\n", "Subject: keyed\r\nDate: Tue, 16 Jun 2026 10:00:00 +0000\r\nMessage-ID: <retry@acme.test>\r\n", 1)
	r5, err := testkit.SendMail(s.smtpClient(true, liveKey), from, []string{to}, rebuilt)
	if err != nil || queuedID(t, r5) != queuedID(t, r4) {
		t.Fatalf("keyed resend: %q %q %v", r4, r5, err)
	}
	_, err = testkit.SendMail(s.smtpClient(true, liveKey), from, []string{to}, strings.Replace(keyed, "Hello.", "Changed.", 1))
	testkit.WantSMTPError(t, err, 550, smtp.EnhancedCode{5, 5, 0})

	for _, id := range []string{id, queuedID(t, reply3), queuedID(t, r4)} {
		s.waitStatus(id, "delivered")
	}
	msgs := s.sink.Messages()
	if len(msgs) != 3 {
		t.Fatalf("%d messages at the sink, want 3", len(msgs))
	}
	for _, m := range msgs {
		if bytes.Contains(bytes.ToLower(m.Data), []byte("idempotency-key")) {
			t.Errorf("Idempotency-Key header reached the destination:\n%s", m.Data)
		}
	}
	if n := len(s.ListAll(liveKey, "")); n != 3 {
		t.Errorf("%d emails stored, want 3", n)
	}
}
