package pipeline

import (
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)

func parseForTest(raw string) (*submittedMessage, error) {
	return parseMessage([]byte(raw), "gw.test", func() string { return "msg_fixed" }, testNow)
}

func TestParseMessageHeaders(t *testing.T) {
	m, err := parseForTest("From: A <a@acme.test>\r\nTo: b@x.test\r\nBcc: hidden@x.test\r\n" +
		"X-SP-Track-Opens: true\r\nX-SP-Track-Clicks: FALSE\r\nX-Keep: yes\r\nList-Id: <l.acme.test>\r\nSubject: =?utf-8?q?Caf=C3=A9?=\r\n\r\nbody\r\n")
	if err != nil {
		t.Fatal(err)
	}
	out := string(m.bytes())
	if m.from != "a@acme.test" || m.subject != "Café" {
		t.Errorf("from %q subject %q", m.from, m.subject)
	}
	if m.trackOpens == nil || !*m.trackOpens || m.trackClicks == nil || *m.trackClicks {
		t.Errorf("tracking %v %v", m.trackOpens, m.trackClicks)
	}
	for _, gone := range []string{"Bcc", "hidden@", "X-SP-Track"} {
		if strings.Contains(out, gone) {
			t.Errorf("%q still in %q", gone, out)
		}
	}
	for _, kept := range []string{"X-Keep: yes\r\n", "List-Id: <l.acme.test>\r\n", "Message-Id: <msg_fixed@gw.test>\r\n", "Date: ", "\r\n\r\nbody\r\n"} {
		if !strings.Contains(out, kept) {
			t.Errorf("%q missing from %q", kept, out)
		}
	}
}

func TestParseMessageKeepsExistingIDAndDate(t *testing.T) {
	m, err := parseForTest("From: a@acme.test\r\nMessage-ID: <orig@acme.test>\r\nDate: Mon, 02 Jan 2006 15:04:05 +0000\r\n\r\nx")
	if err != nil {
		t.Fatal(err)
	}
	out := string(m.bytes())
	if m.messageID != "orig@acme.test" || strings.Count(out, "Date:") != 1 || strings.Contains(out, "msg_fixed") {
		t.Errorf("id %q, message %q", m.messageID, out)
	}
}

func TestParseMessageRejects(t *testing.T) {
	cases := map[string]string{
		"no header end":     "From: a@acme.test",
		"no From":           "To: b@x.test\r\n\r\nx",
		"two From":          "From: a@acme.test, b@acme.test\r\n\r\nx",
		"bad track value":   "From: a@acme.test\r\nX-SP-Track-Opens: maybe\r\n\r\nx",
		"unparsable From":   "From: <<<\r\n\r\nx",
		"header over 1 MiB": "From: a@acme.test\r\nX-Big: " + strings.Repeat("a", maxHeaderBytes) + "\r\n\r\nx",
	}
	for name, raw := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := parseForTest(raw)
			if err == nil {
				t.Fatal("accepted")
			}
			if e := AsError(err); e.SMTPCode != 550 || e.Enhanced != [3]int{5, 6, 0} {
				t.Errorf("got %d %v: %v", e.SMTPCode, e.Enhanced, err)
			}
		})
	}
}

// FuzzParseMessage checks the header handling on arbitrary input: it never
// panics, and whatever it accepts comes out with no Bcc or X-SP-Track-*
// header and exactly one Message-Id.
func FuzzParseMessage(f *testing.F) {
	f.Add("From: a@acme.test\r\nBcc: x@y.test\r\nX-SP-Track-Opens: true\r\n\r\nbody")
	f.Add("From: \"A\" <a@acme.test>\r\nSubject: =?utf-8?b?w6k=?=\r\n\r\n")
	f.Add("\r\n")
	f.Fuzz(func(t *testing.T, raw string) {
		m, err := parseForTest(raw)
		if err != nil {
			if AsError(err).Temporary {
				t.Fatalf("bad input gave a temporary error: %v", err)
			}
			return
		}
		out := strings.ToLower(string(m.bytes()))
		head := out[:headerEnd([]byte(out))]
		for _, h := range []string{"\r\nbcc:", "\r\nx-sp-track-opens:", "\r\nx-sp-track-clicks:"} {
			if strings.Contains("\r\n"+head, h) {
				t.Fatalf("%q survived in %q", h, head)
			}
		}
		if strings.Count("\r\n"+head, "\r\nmessage-id:") != 1 {
			t.Fatalf("Message-Id count wrong in %q", head)
		}
	})
}

func TestMessageBytesUnchangedHeaderIsNotCopied(t *testing.T) {
	raw := []byte("From: a@acme.test\r\nMessage-ID: <orig@acme.test>\r\nDate: Mon, 02 Jan 2006 15:04:05 +0000\r\n" +
		"Subject:   spaced  \r\n\tand folded\r\n\r\nbody\r\n")
	m, err := parseMessage(raw, "gw.test", func() string { return "msg_fixed" }, testNow)
	if err != nil {
		t.Fatal(err)
	}
	out := m.bytes()
	if string(out) != string(raw) {
		t.Fatalf("out %q, want the message as received", out)
	}
	if &out[0] != &raw[0] {
		t.Error("an unchanged message was copied")
	}

	// A header that changes is written out anew, and the received bytes are left alone.
	edited := []byte("From: a@acme.test\r\nX-SP-Track-Opens: true\r\n\r\nbody\r\n")
	before := string(edited)
	m, err = parseMessage(edited, "gw.test", func() string { return "msg_fixed" }, testNow)
	if err != nil {
		t.Fatal(err)
	}
	out = m.bytes()
	if strings.Contains(string(out), "X-SP-Track") || !strings.HasSuffix(string(out), "\r\n\r\nbody\r\n") || !strings.Contains(string(out), "Message-Id: <msg_fixed@gw.test>") {
		t.Errorf("edited message %q", out)
	}
	if string(edited) != before {
		t.Errorf("the received message was modified: %q", edited)
	}
}
