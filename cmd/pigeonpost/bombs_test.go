package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
)

// MIME bombs over SMTP (S11): a header of 20,000 lines is refused at the
// end of DATA with 550 5.6.0 naming the limit, and the session goes on; a
// multipart nested 150 deep, submitted tracked, is delivered byte for byte
// past its header, with a warning event naming the nesting limit.
func TestSMTPMIMEBombs(t *testing.T) {
	s := startStack(t)
	from, to := "hello@"+senderDomain, "user@"+rcptDomain
	c := s.smtpClient(true, liveKey)

	flood := "From: " + from + "\r\nTo: " + to + "\r\n" + strings.Repeat("X-H: v\r\n", 20_000) + "\r\nbody\r\n"
	_, err := testkit.SendMail(c, from, []string{to}, flood)
	if se := testkit.WantSMTPError(t, err, 550, smtp.EnhancedCode{5, 6, 0}); !strings.Contains(se.Message, "header section exceeds 10000 lines") {
		t.Errorf("reply %q does not name the limit", se.Message)
	}

	var b strings.Builder
	b.WriteString("From: " + from + "\r\nTo: " + to + "\r\nSubject: nested\r\nX-SP-Track-Opens: true\r\nX-SP-Track-Clicks: true\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n")
	body := b.Len() - len("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n")
	for i := 1; i < 150; i++ {
		fmt.Fprintf(&b, "--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n", i-1, i)
	}
	b.WriteString("--b149\r\nContent-Type: text/html\r\n\r\n<a href=\"https://shop.example.test/deep\">x</a>\r\n")
	for i := 149; i >= 0; i-- {
		fmt.Fprintf(&b, "--b%d--\r\n", i)
	}
	nested := b.String()
	reply, err := testkit.SendMail(c, from, []string{to}, nested)
	if err != nil {
		t.Fatalf("the nested message was refused after the flood: %v", err)
	}
	id := queuedID(t, reply)
	got := s.sink.Wait(t, 1, 20*time.Second)[0].Data
	if !bytes.HasSuffix(got, []byte(nested[body:])) {
		t.Errorf("the nested message was changed on the way:\n%.2000s", got)
	}
	var events struct {
		Data []struct {
			Type string
			Data map[string]string
		}
	}
	s.JSON("GET", "/v1/emails/"+id+"/events", liveKey, nil, &events)
	for _, ev := range events.Data {
		if ev.Type == "warning" && strings.Contains(ev.Data["message"], "multipart nested deeper than 50 levels") {
			return
		}
	}
	t.Errorf("no warning event naming the nesting limit: %+v", events.Data)
}
