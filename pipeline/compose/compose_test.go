package compose

import (
	"net/mail"
	"strings"
	"testing"
	"time"

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
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			c := base
			mutate(&c)
			if _, err := ComposeMessage(c, testNow); err == nil || pipeline.AsError(err).HTTPStatus != 400 {
				t.Fatalf("got %v, want a 400", err)
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
