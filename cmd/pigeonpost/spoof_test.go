package main

import (
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
)

// Issue 18's sender spoofing: a message that names a sender the account
// has not verified, in a second From, a "FROM :" field, a Sender or a
// Resent-From, is refused at DATA; before, it was relayed and DKIM-signed
// over the foreign name. Nothing reaches the destination.
func TestSMTPRefusesForeignSenders(t *testing.T) {
	s := startStack(t)
	from, to := "hello@"+senderDomain, "user@"+rcptDomain
	for _, c := range []struct {
		name, header string
		code         int
		enhanced     smtp.EnhancedCode
	}{
		{"a second From", "From: " + from + "\r\nFrom: ceo@bank.test\r\n", 550, smtp.EnhancedCode{5, 6, 0}},
		{"FROM with a space", "From: " + from + "\r\nFROM : ceo@bank.test\r\n", 550, smtp.EnhancedCode{5, 6, 0}},
		{"a foreign Sender", "From: " + from + "\r\nSender: ceo@bank.test\r\n", 550, smtp.EnhancedCode{5, 7, 1}},
		{"a foreign Resent-From", "From: " + from + "\r\nResent-From: ceo@bank.test\r\n", 550, smtp.EnhancedCode{5, 7, 1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			msg := c.header + "To: " + to + "\r\nSubject: " + c.name + "\r\n\r\nPay the invoice.\r\n"
			_, err := testkit.SendMail(s.smtpClient(true, liveKey), from, []string{to}, msg)
			testkit.WantSMTPError(t, err, c.code, c.enhanced)
		})
	}
	// The account's own Sender is fine.
	msg := "From: " + from + "\r\nSender: ops@" + senderDomain + "\r\nTo: " + to + "\r\nSubject: ok\r\n\r\nx\r\n"
	reply, err := testkit.SendMail(s.smtpClient(true, liveKey), from, []string{to}, msg)
	if err != nil {
		t.Fatalf("a Sender of the account's domain: %v", err)
	}
	s.waitStatus(queuedID(t, reply), "delivered")
	if n := len(s.sink.Messages()); n != 1 {
		t.Errorf("%d messages reached the destination, want only the last", n)
	}
}
