package pipeline

import (
	"bytes"
	"fmt"
	"net/mail"
	"strings"
	"time"

	gomail "github.com/emersion/go-message/mail"
)

// Compose is an email described by fields, as the REST API receives it.
type Compose struct {
	From    string // may carry a display name: "Acme <hello@acme.com>"
	To      []string
	Cc      []string
	Bcc     []string
	ReplyTo []string
	Subject string
	HTML    string
	Text    string
	Headers map[string]string // custom X-* and List-* headers
}

// Composed is the result of building a message from fields.
type Composed struct {
	EnvelopeFrom string
	Recipients   []string // to, cc and bcc: Bcc travels only in the envelope
	Message      []byte
}

// ComposeMessage builds the RFC 5322 message for c. Nothing a caller sends
// can add a header: CR and LF in any field are refused, never encoded away.
func ComposeMessage(c Compose, now time.Time) (*Composed, error) {
	from, err := mail.ParseAddress(c.From)
	if err != nil || strings.ContainsAny(c.From, "\r\n") {
		return nil, ErrBadAddress("from: " + quoteShort(c.From) + " is not a valid address")
	}
	var h gomail.Header
	h.SetAddressList("From", []*gomail.Address{{Name: from.Name, Address: from.Address}})
	out := &Composed{EnvelopeFrom: from.Address}
	for _, f := range []struct {
		field, header string
		list          []string
	}{{"to", "To", c.To}, {"cc", "Cc", c.Cc}, {"bcc", "", c.Bcc}, {"replyTo", "Reply-To", c.ReplyTo}} {
		var addrs []*gomail.Address
		for _, raw := range f.list {
			a, err := mail.ParseAddress(raw)
			if err != nil || strings.ContainsAny(raw, "\r\n") {
				return nil, ErrBadAddress(f.field + ": " + quoteShort(raw) + " is not a valid address")
			}
			addrs = append(addrs, &gomail.Address{Name: a.Name, Address: a.Address})
			if f.field != "replyTo" {
				out.Recipients = append(out.Recipients, a.Address)
			}
		}
		if f.header != "" && len(addrs) > 0 {
			h.SetAddressList(f.header, addrs)
		}
	}
	if len(c.To) == 0 {
		return nil, ErrInvalid("to: at least one recipient is required")
	}
	if strings.ContainsAny(c.Subject, "\r\n") {
		return nil, ErrInvalid("subject: must not contain line breaks")
	}
	if c.HTML == "" && c.Text == "" {
		return nil, ErrInvalid("html or text: a message body is required")
	}
	h.SetSubject(c.Subject)
	h.SetDate(now)
	for name, value := range c.Headers {
		if err := checkCustomHeader(name, value); err != nil {
			return nil, err
		}
		h.Set(name, value)
	}

	var buf bytes.Buffer
	parts := []struct{ contentType, body string }{{"text/plain", c.Text}, {"text/html", c.HTML}}
	if c.HTML == "" || c.Text == "" {
		// One part: the message itself carries the content type.
		p := parts[0]
		if c.Text == "" {
			p = parts[1]
		}
		h.SetContentType(p.contentType, map[string]string{"charset": "utf-8"})
		h.Set("Content-Transfer-Encoding", "quoted-printable")
		w, err := gomail.CreateSingleInlineWriter(&buf, h)
		if err != nil {
			return nil, err
		}
		if _, err := w.Write([]byte(p.body)); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
	} else {
		w, err := gomail.CreateInlineWriter(&buf, h)
		if err != nil {
			return nil, err
		}
		for _, p := range parts {
			var ph gomail.InlineHeader
			ph.SetContentType(p.contentType, map[string]string{"charset": "utf-8"})
			ph.Set("Content-Transfer-Encoding", "quoted-printable")
			pw, err := w.CreatePart(ph)
			if err != nil {
				return nil, err
			}
			if _, err := pw.Write([]byte(p.body)); err != nil {
				return nil, err
			}
			if err := pw.Close(); err != nil {
				return nil, err
			}
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
	}
	out.Message = buf.Bytes()
	return out, nil
}

// checkCustomHeader allows X-* and List-* headers with a token name and a
// value without line breaks (S5, header injection).
func checkCustomHeader(name, value string) error {
	lower := strings.ToLower(name)
	if !strings.HasPrefix(lower, "x-") && !strings.HasPrefix(lower, "list-") {
		return ErrInvalid(fmt.Sprintf("headers: %q is not allowed; only X-* and List-* headers may be set", name))
	}
	for _, r := range name {
		if r <= ' ' || r >= 0x7f || r == ':' {
			return ErrInvalid(fmt.Sprintf("headers: %q is not a valid header name", name))
		}
	}
	if strings.ContainsAny(value, "\r\n\x00") {
		return ErrInvalid(fmt.Sprintf("headers: the value of %q must not contain line breaks", name))
	}
	if strings.HasPrefix(lower, "x-sp-") {
		return ErrInvalid(fmt.Sprintf("headers: %q is reserved; use the tracking field", name))
	}
	return nil
}
