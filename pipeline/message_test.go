package pipeline

import (
	"errors"
	"slices"
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
		"two From headers":  "From: a@acme.test\r\nFrom: ceo@bank.test\r\n\r\nx",
		"a second from":     "From: a@acme.test\r\nfrom: ceo@bank.test\r\n\r\nx",
		"FROM :":            "From: a@acme.test\r\nFROM : ceo@bank.test\r\n\r\nx",
		"bad Sender":        "From: a@acme.test\r\nSender: <<<\r\n\r\nx",
		"a NUL in a field":  "From: a@acme.test\r\nSubject: a\x00b\r\n\r\nx",
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

// Sender and Resent-From/-Sender addresses are kept for the sender check.
func TestParseMessageSenders(t *testing.T) {
	m, err := parseForTest("From: a@acme.test\r\nSender: ops@acme.test\r\nResent-From: Boss <ceo@bank.test>\r\n\r\nx")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"ops@acme.test", "ceo@bank.test"}; !slices.Equal(m.senders, want) {
		t.Errorf("senders %q, want %q", m.senders, want)
	}
}

// FuzzParseMessage checks the header handling on arbitrary input: it never
// panics, and whatever it accepts comes out with no Bcc, X-SP-Track-* or
// X-SP-Send-At header and exactly one Message-Id.
func FuzzParseMessage(f *testing.F) {
	f.Add("From: a@acme.test\r\nBcc: x@y.test\r\nX-SP-Track-Opens: true\r\n\r\nbody")
	f.Add("From: \"A\" <a@acme.test>\r\nSubject: =?utf-8?b?w6k=?=\r\n\r\n")
	f.Add("\r\n")
	f.Add("From: a@acme.test\r\nX-SP-Send-At: Thu, 24 Dec 2026 09:00:00 +0100\r\n\r\nbody")
	// Header floods (S11): one line past the limit, as fields and folded.
	f.Add("From: a@acme.test\r\n" + strings.Repeat("X-H: v\r\n", maxHeaderLines) + "\r\nbody")
	f.Add("From: a@acme.test\r\nX-H: v" + strings.Repeat("\r\n v", maxHeaderLines) + "\r\n\r\nbody")
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
		for _, h := range []string{"\r\nbcc:", "\r\nx-sp-track-opens:", "\r\nx-sp-track-clicks:", "\r\nx-sp-send-at:"} {
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

// X-SP-Send-At: the times it takes, a past one sending now, and what it
// refuses (ErrInvalid: 550 5.5.2, naming the header); always stripped.
func TestParseSendAt(t *testing.T) {
	utc := func(s string) time.Time {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			panic(err)
		}
		return t
	}
	// testNow is 2026-11-29T10:00:00Z.
	ok := []struct {
		name, header string
		want         time.Time // zero: send now
	}{
		{"RFC 3339", "X-SP-Send-At: 2026-12-24T09:00:00Z", utc("2026-12-24T09:00:00Z")},
		{"RFC 3339 offset and fraction", "X-SP-Send-At: 2026-12-24T10:00:00.25+01:00", utc("2026-12-24T09:00:00.25Z")},
		{"RFC 5322", "X-SP-Send-At: Thu, 24 Dec 2026 09:00:00 +0100", utc("2026-12-24T08:00:00Z")},
		{"RFC 5322 with a comment", "X-SP-Send-At: Thu, 24 Dec 2026 09:00:00 +0000 (UTC)", utc("2026-12-24T09:00:00Z")},
		{"RFC 5322 obsolete form", "X-SP-Send-At: 24 Dec 26 09:00 EST", utc("2026-12-24T14:00:00Z")},
		{"surrounding whitespace", "X-SP-Send-At: \t 2026-12-24T09:00:00Z \t", utc("2026-12-24T09:00:00Z")},
		{"folded", "X-SP-Send-At:\r\n 2026-12-24T09:00:00Z", utc("2026-12-24T09:00:00Z")},
		{"lower-case name", "x-sp-send-at: 2026-12-24T09:00:00Z", utc("2026-12-24T09:00:00Z")},
		{"exactly 30 days ahead", "X-SP-Send-At: 2026-12-29T10:00:00Z", utc("2026-12-29T10:00:00Z")},
		{"in the past: now", "X-SP-Send-At: 2026-11-29T09:59:59Z", time.Time{}},
		{"long past, RFC 5322: now", "X-SP-Send-At: Mon, 02 Jan 2006 15:04:05 -0700", time.Time{}},
		{"exactly now: now", "X-SP-Send-At: Sun, 29 Nov 2026 11:00:00 +0100", time.Time{}},
		{"empty: now", "X-SP-Send-At:", time.Time{}},
	}
	for _, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			m, err := parseForTest("From: a@acme.test\r\n" + tc.header + "\r\nSubject: s\r\n\r\nbody\r\n")
			if err != nil {
				t.Fatal(err)
			}
			if !m.sendAt.Equal(tc.want) || (!m.sendAt.IsZero() && m.sendAt.Location() != time.UTC) {
				t.Errorf("sendAt %v, want %v", m.sendAt, tc.want)
			}
			out := string(m.bytes())
			if strings.Contains(strings.ToLower(out), "x-sp-send-at") {
				t.Errorf("X-SP-Send-At still in %q", out)
			}
			if !strings.Contains(out, "Subject: s\r\n") || !strings.HasSuffix(out, "\r\n\r\nbody\r\n") {
				t.Errorf("message damaged: %q", out)
			}
		})
	}

	refused := []struct {
		name, header string
		says         []string // in the error message
	}{
		{"more than 30 days ahead", "X-SP-Send-At: 2026-12-29T10:00:01Z",
			[]string{"X-SP-Send-At: 2026-12-29T10:00:01Z is more than 30 days ahead"}},
		{"RFC 5322 more than 30 days ahead", "X-SP-Send-At: Mon, 01 Mar 2027 01:00:00 +0100",
			[]string{"X-SP-Send-At: 2027-03-01T00:00:00Z is more than 30 days ahead"}},
		{"garbage", "X-SP-Send-At: tomorrow",
			[]string{`X-SP-Send-At: "tomorrow" is not a date`, "RFC 3339 (2026-12-24T09:00:00Z)", "RFC 5322 (Thu, 24 Dec 2026 09:00:00 +0100)"}},
		{"no time zone", "X-SP-Send-At: 2026-12-24T09:00:00",
			[]string{`X-SP-Send-At: "2026-12-24T09:00:00" is not a date`}},
		{"two headers", "X-SP-Send-At: 2026-12-24T09:00:00Z\r\nX-SP-Send-At: 2026-12-25T09:00:00Z",
			[]string{"X-SP-Send-At: the header appears 2 times"}},
		{"two headers, one empty", "X-SP-Send-At: 2026-12-24T09:00:00Z\r\nx-sp-send-at:",
			[]string{"X-SP-Send-At: the header appears 2 times"}},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseForTest("From: a@acme.test\r\n" + tc.header + "\r\n\r\nbody\r\n")
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, want ErrInvalid", err)
			}
			if e := AsError(err); e.SMTPCode != 550 || e.Enhanced != [3]int{5, 5, 2} {
				t.Errorf("got %d %v", e.SMTPCode, e.Enhanced)
			}
			for _, s := range tc.says {
				if !strings.Contains(AsError(err).Message, s) {
					t.Errorf("message %q does not say %q", AsError(err).Message, s)
				}
			}
		})
	}
}

// An obsolete zone name has the offset RFC 5322 gives it whatever the
// server's own time zone, and a numeric offset is kept even when the
// server's zone calls it by one of those names (+0800 is CST in China).
func TestSendAtZoneIndependentOfServer(t *testing.T) {
	saved := time.Local
	t.Cleanup(func() { time.Local = saved })
	for _, local := range []*time.Location{time.UTC, time.FixedZone("EST", -5*3600), time.FixedZone("CST", 8*3600)} {
		time.Local = local
		for value, want := range map[string]string{
			"Thu, 24 Dec 2026 09:00:00 EST":   "2026-12-24T14:00:00Z",
			"Thu, 24 Dec 2026 09:00:00 PDT":   "2026-12-24T16:00:00Z",
			"Thu, 24 Dec 2026 09:00:00 GMT":   "2026-12-24T09:00:00Z",
			"Thu, 24 Dec 2026 09:00:00 +0800": "2026-12-24T01:00:00Z",
			"Thu, 24 Dec 2026 09:00:00 -0500": "2026-12-24T14:00:00Z",
		} {
			m, err := parseForTest("From: a@acme.test\r\nX-SP-Send-At: " + value + "\r\n\r\nx")
			if err != nil {
				t.Fatalf("local %s, %q: %v", local, value, err)
			}
			if got := m.sendAt.Format(time.RFC3339); got != want {
				t.Errorf("local %s, %q: %s, want %s", local, value, got, want)
			}
		}
	}
}

// TestShortenLines: a body line over 998 octets makes the message carry its
// part re-encoded (quoted-printable), whether the caller measured the line
// or not; a measured message without one is left as it is; a header line
// that long is refused 550 5.6.0 naming its field.
func TestShortenLines(t *testing.T) {
	long := strings.Repeat("z", 1500)
	raw := "From: a@acme.test\r\nSubject: s\r\nMessage-ID: <l@acme.test>\r\nDate: Mon, 02 Jan 2006 15:04:05 +0000\r\n\r\nhi\r\n" + long + "\r\n"
	for _, measured := range []int{0, 1500} {
		m, err := parseForTest(raw)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.shortenLines(measured); err != nil {
			t.Fatal(err)
		}
		out := string(m.bytes())
		if !strings.Contains(out, "Content-Transfer-Encoding: quoted-printable\r\n\r\nhi\r\nzzz") {
			t.Errorf("measured %d: not re-encoded:\n%.300s", measured, out)
		}
		for line := range strings.SplitSeq(out, "\r\n") {
			if len(line) > 998 {
				t.Fatalf("measured %d: a line of %d octets is left", measured, len(line))
			}
		}
		if m.header.Get("Message-Id") != "<l@acme.test>" || m.from != "a@acme.test" {
			t.Errorf("the header was lost: %v", m.header)
		}
	}

	short := "From: a@acme.test\r\nMessage-ID: <s@acme.test>\r\nDate: Mon, 02 Jan 2006 15:04:05 +0000\r\n\r\nhi\r\n"
	m, err := parseForTest(short)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.shortenLines(2); err != nil || string(m.bytes()) != short {
		t.Errorf("a short message changed: %v %q", err, m.bytes())
	}

	m, err = parseForTest("From: a@acme.test\r\nX-Huge: " + long + "\r\n\r\nhi\r\n")
	if err != nil {
		t.Fatal(err)
	}
	err = m.shortenLines(0)
	pe := AsError(err)
	if !errors.Is(err, ErrBadMessage) || pe.SMTPCode != 550 || pe.Enhanced != [3]int{5, 6, 0} || !strings.Contains(pe.Message, "X-Huge header") {
		t.Errorf("a long header line: %v", err)
	}
}
