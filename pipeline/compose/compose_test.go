package compose

import (
	"bytes"
	"mime"
	"net/mail"
	"net/textproto"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	gomail "github.com/emersion/go-message/mail"
	gomessagetextproto "github.com/emersion/go-message/textproto"

	"github.com/pigeonpost/pigeonpost/pipeline"
)

var testNow = time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)

func TestComposeMessage(t *testing.T) {
	c, err := ComposeMessage(Compose{
		From: "Acme <hello@acme.test>", To: []string{"a@x.test"}, Cc: []string{"b@x.test"}, Bcc: []string{"c@x.test"},
		ReplyTo: []string{"support@acme.test"}, Subject: "Héllo", HTML: "<p>Hi</p>", Text: "Hi",
		Headers: map[string]string{"X-Ref": "42", "List-Unsubscribe": "<mailto:u@acme.test>"},
	}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	msg := string(c.Message)
	if c.EnvelopeFrom != "hello@acme.test" || strings.Join(c.Recipients, ",") != "a@x.test,b@x.test,c@x.test" {
		t.Errorf("envelope %q %v", c.EnvelopeFrom, c.Recipients)
	}
	for _, want := range []string{"From: \"Acme\" <hello@acme.test>", "Cc: <b@x.test>", "Reply-To: <support@acme.test>",
		"X-Ref: 42", "List-Unsubscribe: <mailto:u@acme.test>", "multipart/alternative", "text/plain", "text/html"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q missing:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "c@x.test") {
		t.Error("Bcc recipient appears in the message")
	}
	if m, err := mail.ReadMessage(strings.NewReader(msg)); err != nil || len(m.Header["From"]) != 1 {
		t.Errorf("composed message does not parse with one From: %v", err)
	}
}

func TestComposeRefusesInjection(t *testing.T) {
	base := Compose{From: "hello@acme.test", To: []string{"a@x.test"}, Subject: "s", Text: "t"}
	cases := map[string]func(c *Compose){
		"subject CRLF":           func(c *Compose) { c.Subject = "s\r\nBcc: evil@x.test" },
		"subject bare LF":        func(c *Compose) { c.Subject = "s\nBcc: evil@x.test" },
		"from CRLF":              func(c *Compose) { c.From = "hello@acme.test\r\nBcc: evil@x.test" },
		"to CRLF":                func(c *Compose) { c.To = []string{"a@x.test\r\nBcc: evil@x.test"} },
		"header value CRLF":      func(c *Compose) { c.Headers = map[string]string{"X-A": "1\r\nBcc: evil@x.test"} },
		"header name colon":      func(c *Compose) { c.Headers = map[string]string{"X-A: b": "1"} },
		"standard header":        func(c *Compose) { c.Headers = map[string]string{"Bcc": "evil@x.test"} },
		"reserved header":        func(c *Compose) { c.Headers = map[string]string{"X-SP-Track-Opens": "true"} },
		"reserved X-SP-Send-At":  func(c *Compose) { c.Headers = map[string]string{"x-sp-send-at": "2026-12-24T09:00:00Z"} },
		"no recipient":           func(c *Compose) { c.To = nil },
		"no body":                func(c *Compose) { c.Text = "" },
		"NUL in subject":         func(c *Compose) { c.Subject = "a\x00b" },
		"U+2028 in subject":      func(c *Compose) { c.Subject = "a\u2028Bcc: x@y.test" },
		"display name CRLF":      func(c *Compose) { c.From = "Acme\r\nBcc: v@victim.test <hello@acme.test>" },
		"to display name CRLF":   func(c *Compose) { c.To = []string{"Bob\r\nBcc: v@victim.test <a@x.test>"} },
		"replyTo LF":             func(c *Compose) { c.ReplyTo = []string{"a@x.test\nBcc: v@victim.test"} },
		"cc CRLF":                func(c *Compose) { c.Cc = []string{"a@x.test\r\nBcc: v@victim.test"} },
		"bcc CRLF":               func(c *Compose) { c.Bcc = []string{"a@x.test\r\nBcc: v@victim.test"} },
		"header value U+2028":    func(c *Compose) { c.Headers = map[string]string{"X-A": "a\u2028b"} },
		"header name with CRLF":  func(c *Compose) { c.Headers = map[string]string{"X-A:\r\nBcc": "v"} },
		"too many recipients":    func(c *Compose) { c.Bcc = strings.Split(strings.Repeat("b@x.test,", 100), ",")[:100] },
		"DKIM-Signature header":  func(c *Compose) { c.Headers = map[string]string{"DKIM-Signature": "v=1"} },
		"Content-Type header":    func(c *Compose) { c.Headers = map[string]string{"Content-Type": "text/html"} },
		"Received header":        func(c *Compose) { c.Headers = map[string]string{"Received": "from evil"} },
		"List header with CR LF": func(c *Compose) { c.Headers = map[string]string{"List-Id": "a\rb"} },
		"header value NUL":       func(c *Compose) { c.Headers = map[string]string{"X-A": "a\x00b"} },
		"header value NEL (C1)":  func(c *Compose) { c.Headers = map[string]string{"X-A": "a\u0085b"} },
		"header value U+2029":    func(c *Compose) { c.Headers = map[string]string{"X-A": "a\u2029b"} },
		"header value bad UTF-8": func(c *Compose) { c.Headers = map[string]string{"X-A": "a\xffb"} },
		"header name too long":   func(c *Compose) { c.Headers = map[string]string{"X-" + strings.Repeat("a", 63): "v"} },
		"List header not ASCII":  func(c *Compose) { c.Headers = map[string]string{"List-Unsubscribe": "<https://acme.test/désabonner>"} },
		"List header long word": func(c *Compose) {
			c.Headers = map[string]string{"List-Unsubscribe": "<https://acme.test/" + strings.Repeat("u", 900) + ">"}
		},
		"display name NUL": func(c *Compose) { c.From = "Acme\x00 <hello@acme.test>" },
		// net/mail decodes an encoded-word in a display name: the decoded
		// name is checked too.
		"encoded display name CRLF": func(c *Compose) { c.From = "=?utf-8?q?Acme=0D=0ABcc:_v@victim.test?= <hello@acme.test>" },
		"encoded to name CRLF":      func(c *Compose) { c.To = []string{"=?utf-8?b?DQpCY2M6IHZAdmljdGltLnRlc3Q=?= <a@x.test>"} },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			c := base
			mutate(&c)
			_, err := ComposeMessage(c, testNow)
			if err == nil || pipeline.AsError(err).HTTPStatus != 400 {
				t.Fatalf("got %v, want a 400", err)
			}
			// The error names the field: a header by its name.
			msg := pipeline.AsError(err).Message
			for field := range c.Headers {
				if quoted := strconv.Quote(field); !strings.Contains(msg, "headers") || !strings.Contains(msg, quoted[1:len(quoted)-1]) {
					t.Errorf("%q does not name the header %q", msg, field)
				}
			}
		})
	}
}

// A REST send that sets X-SP-Send-At is told of the field that schedules.
func TestComposeReservedSendAtNamesScheduledAt(t *testing.T) {
	c := Compose{From: "hello@acme.test", To: []string{"a@x.test"}, Subject: "s", Text: "t",
		Headers: map[string]string{"X-SP-Send-At": "2026-12-24T09:00:00Z"}}
	_, err := ComposeMessage(c, testNow)
	if msg := pipeline.AsError(err).Message; !strings.Contains(msg, `"X-SP-Send-At" is reserved; use the scheduledAt field`) {
		t.Errorf("got %q", msg)
	}
}

// headerField returns the field name of a composed message as written,
// unfolded (every CRLF taken out, so the space after it stays), without
// "name: ", and fails the test unless every line of the header section is
// at most 998 octets and every line of the field at most maxLine.
func headerField(t *testing.T, msg []byte, name string) string {
	t.Helper()
	head, _, _ := strings.Cut(string(msg), "\r\n\r\n")
	var field []string
	for line := range strings.SplitSeq(head, "\r\n") {
		if len(line) > 998 {
			t.Errorf("a header line of %d octets: %.60q…", len(line), line)
		}
		switch {
		case strings.HasPrefix(line, name+": "):
			field = []string{line}
		case field != nil && strings.HasPrefix(line, " "):
			field = append(field, line)
		case field != nil:
			return checkedField(t, name, field)
		}
	}
	if field == nil {
		t.Fatalf("no %s field in\n%s", name, head)
	}
	return checkedField(t, name, field)
}

func checkedField(t *testing.T, name string, lines []string) string {
	t.Helper()
	for _, line := range lines {
		if len(line) > maxLine {
			t.Errorf("%s: a line of %d octets: %q", name, len(line), line)
		}
		for i := 0; i < len(line); i++ {
			if line[i] >= 0x80 {
				t.Fatalf("%s: 8-bit octet in %q", name, line)
			}
		}
	}
	return strings.TrimPrefix(strings.Join(lines, ""), name+": ")
}

// Text that is not ASCII, in a custom header and in the subject, is
// written as RFC 2047 encoded-words in lines of at most 76 octets, and
// decodes to exactly what was sent; so is a long ASCII word, which could
// not be folded. ASCII text stays as it is.
func TestComposeEncodesHeaderText(t *testing.T) {
	values := map[string]string{
		"X-Name":                       "Zoë Müller-Łukasiewicz, 東京 ☃",
		"X-Long":                       strings.Repeat("Grüße aus Köln ", 40),
		"X-Word":                       strings.Repeat("x", 2000),
		"X-Mixed":                      "ascii =?not-a-word?= _under_score ? = " + strings.Repeat("é", 100),
		"X-Ascii":                      "plain ascii value",
		"X-Spaces":                     "  two  spaces  ",
		"X-" + strings.Repeat("n", 48): "ñ", // a long name leaves room for a word on its line
	}
	subject := "Votre commande n° 1234 est expédiée — " + strings.Repeat("ü", 80)
	c, err := ComposeMessage(Compose{From: "Zoë Ünïcode <hello@acme.test>", To: []string{"Jürgen <a@x.test>"}, Subject: subject, Text: "t",
		Headers: values}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	dec := new(mime.WordDecoder)
	for name, want := range values {
		raw := headerField(t, c.Message, textproto.CanonicalMIMEHeaderKey(name))
		if name == "X-Ascii" || name == "X-Spaces" { // ASCII as it is
			if raw != want {
				t.Errorf("%s: %q, want %q as it is", name, raw, want)
			}
			continue
		}
		if !strings.HasPrefix(raw, "=?utf-8?q?") {
			t.Errorf("%s: not encoded: %q", name, raw)
		}
		if got, err := dec.DecodeHeader(raw); err != nil || got != want {
			t.Errorf("%s: decodes to %q (%v), want %q", name, got, err, want)
		}
	}
	raw := headerField(t, c.Message, "Subject")
	if got, err := dec.DecodeHeader(raw); err != nil || got != subject {
		t.Errorf("subject decodes to %q (%v)", got, err)
	}
	m, err := mail.ReadMessage(bytes.NewReader(c.Message))
	if err != nil {
		t.Fatal(err)
	}
	from, err := m.Header.AddressList("From")
	if err != nil || len(from) != 1 || from[0].Name != "Zoë Ünïcode" {
		t.Errorf("From: %v %v", from, err)
	}
	to, err := m.Header.AddressList("To")
	if err != nil || len(to) != 1 || to[0].Name != "Jürgen" {
		t.Errorf("To: %v %v", to, err)
	}
}

// refold keeps every line within 998 octets and never fails, whatever the
// value: runs of spaces, tabs, long words of ASCII or UTF-8.
func TestRefoldBounds(t *testing.T) {
	for name, v := range map[string]string{
		"spaces": strings.Repeat(" ", 5000), "tabs": strings.Repeat("\t", 5000), "word": strings.Repeat("a", 5000),
		"utf-8 word": strings.Repeat("ä", 3000), "mixed": strings.Repeat("a ", 100) + strings.Repeat("é", 2000) + strings.Repeat(" ", 3000) + "end",
	} {
		var h gomail.Header
		h.Set("X-Test-Field", v)
		refold(&h, "X-Test-Field")
		var buf bytes.Buffer
		if err := gomessagetextproto.WriteHeader(&buf, h.Header.Header); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, line := range strings.Split(buf.String(), "\r\n") {
			if len(line) > 998 || !utf8.ValidString(line) {
				t.Errorf("%s: a line of %d octets, valid UTF-8 %v", name, len(line), utf8.ValidString(line))
			}
		}
	}
}
