package compose

import (
	"bytes"
	"fmt"
	"mime"
	"net/mail"
	"strings"
	"time"

	"github.com/emersion/go-message"
	gomail "github.com/emersion/go-message/mail"
	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/htmltext"
)

// Compose is an email described by fields, as the REST API receives it.
type Compose struct {
	From        string // may carry a display name: "Acme <hello@acme.com>"
	To          []string
	Cc          []string
	Bcc         []string
	ReplyTo     []string
	Subject     string
	HTML        string
	Text        string            // generated from HTML when empty
	Headers     map[string]string // custom X-* and List-* headers
	Attachments []ComposeAttachment
}

// ComposeAttachment is a file to attach, decoded. With a ContentID it is an
// inline part (Content-Disposition: inline) that the HTML shows as cid:<id>.
type ComposeAttachment struct {
	Filename    string
	ContentType string
	ContentID   string
	Data        []byte
}

// Composed is the result of building a message from fields.
type Composed struct {
	EnvelopeFrom string
	Recipients   []string // to, cc and bcc: Bcc travels only in the envelope
	Message      []byte
}

// MaxComposeRecipients bounds to + cc + bcc of one REST send.
const MaxComposeRecipients = 100

// ComposeMessage builds the RFC 5322 message for c. Nothing a caller sends
// can add a header: CR and LF (and other control characters) in any field
// that reaches a header are refused, never encoded away.
//
// The MIME structure is the usual one, each level only when needed:
//
//	multipart/mixed                 when there are attachments
//	  multipart/related             when there are inline (contentId) parts
//	    multipart/alternative       text/plain + text/html
//	    inline parts
//	  attachments
func ComposeMessage(c Compose, now time.Time) (*Composed, error) {
	h, out, err := composeHeader(c, now)
	if err != nil {
		return nil, err
	}

	text := c.Text
	if text == "" {
		text = htmltext.FromHTML(c.HTML)
	}
	root := textNode("text/plain", text)
	if c.HTML != "" {
		root = &mimeNode{contentType: "multipart/alternative", parts: []*mimeNode{root, textNode("text/html", c.HTML)}}
	}
	var inline, attached []*mimeNode
	for _, a := range c.Attachments {
		if a.ContentID != "" {
			inline = append(inline, attachmentNode(a))
		} else {
			attached = append(attached, attachmentNode(a))
		}
	}
	if len(inline) > 0 {
		root = &mimeNode{contentType: "multipart/related", params: map[string]string{"type": root.contentType},
			parts: append([]*mimeNode{root}, inline...)}
	}
	if len(attached) > 0 {
		root = &mimeNode{contentType: "multipart/mixed", parts: append([]*mimeNode{root}, attached...)}
	}

	// The root's content headers go into the message header itself.
	h.SetContentType(root.contentType, root.params)
	if root.encoding != "" {
		h.Set("Content-Transfer-Encoding", root.encoding)
	}
	var buf bytes.Buffer
	w, err := message.CreateWriter(&buf, h.Header)
	if err != nil {
		return nil, err
	}
	if err := root.write(w); err != nil {
		return nil, err
	}
	out.Message = buf.Bytes()
	return out, nil
}

// composeHeader checks every field of c but the attachments and returns
// the message header and the envelope (Message not set): all that
// ComposeMessage refuses, it refuses, without building a body.
func composeHeader(c Compose, now time.Time) (gomail.Header, *Composed, error) {
	from, err := mail.ParseAddress(c.From)
	if err != nil || pipeline.CheckPrintable("from", c.From) != nil {
		return gomail.Header{}, nil, pipeline.ErrBadAddress.With("from: " + pipeline.Quote(c.From) + " is not a valid address")
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
			if err != nil || pipeline.CheckPrintable(f.field, raw) != nil {
				return gomail.Header{}, nil, pipeline.ErrBadAddress.With(f.field + ": " + pipeline.Quote(raw) + " is not a valid address")
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
		return gomail.Header{}, nil, pipeline.ErrInvalid.With("to: at least one recipient is required")
	}
	if len(out.Recipients) > MaxComposeRecipients {
		return gomail.Header{}, nil, pipeline.ErrInvalid.With(fmt.Sprintf("to, cc, bcc: at most %d recipients in all (got %d)", MaxComposeRecipients, len(out.Recipients)))
	}
	if err := pipeline.CheckPrintable("subject", c.Subject); err != nil {
		return gomail.Header{}, nil, err
	}
	if c.HTML == "" && c.Text == "" {
		return gomail.Header{}, nil, pipeline.ErrInvalid.With("html or text: a message body is required")
	}
	h.SetSubject(c.Subject)
	h.SetDate(now)
	for name, value := range c.Headers {
		if err := checkCustomHeader(name, value); err != nil {
			return gomail.Header{}, nil, err
		}
		h.Set(name, value)
	}
	return h, out, nil
}

// mimeNode is one entity of the message being composed.
type mimeNode struct {
	contentType string
	params      map[string]string
	encoding    string // Content-Transfer-Encoding of a leaf
	disposition string
	dispParams  map[string]string
	contentID   string
	body        []byte
	parts       []*mimeNode
}

func textNode(contentType, body string) *mimeNode {
	return &mimeNode{contentType: contentType, params: map[string]string{"charset": "utf-8"},
		encoding: "quoted-printable", body: []byte(body)}
}

func attachmentNode(a ComposeAttachment) *mimeNode {
	mt, params, err := mime.ParseMediaType(a.ContentType)
	if err != nil {
		mt, params = "application/octet-stream", nil
	}
	if params == nil {
		params = map[string]string{}
	}
	params["name"] = a.Filename
	n := &mimeNode{contentType: mt, params: params, encoding: "base64", body: a.Data,
		disposition: "attachment", dispParams: map[string]string{"filename": a.Filename}}
	if a.ContentID != "" {
		n.disposition, n.contentID = "inline", "<"+a.ContentID+">"
	}
	return n
}

func (n *mimeNode) header() message.Header {
	var h message.Header
	h.SetContentType(n.contentType, n.params)
	if n.encoding != "" {
		h.Set("Content-Transfer-Encoding", n.encoding)
	}
	if n.disposition != "" {
		h.SetContentDisposition(n.disposition, n.dispParams)
	}
	if n.contentID != "" {
		h.Set("Content-Id", n.contentID)
	}
	return h
}

// write writes n's body (leaf) or parts (multipart) to w, which go-message
// encodes according to the entity's Content-Transfer-Encoding, then closes w.
func (n *mimeNode) write(w *message.Writer) error {
	if len(n.parts) == 0 {
		if _, err := w.Write(n.body); err != nil {
			return err
		}
		return w.Close()
	}
	for _, p := range n.parts {
		pw, err := w.CreatePart(p.header())
		if err != nil {
			return err
		}
		if err := p.write(pw); err != nil {
			return err
		}
	}
	return w.Close()
}

// checkCustomHeader allows X-* and List-* headers with a token name and a
// value without line breaks (header injection: RFC 5322 §2.2 allows CR
// and LF in a field body only as folding).
func checkCustomHeader(name, value string) error {
	lower := strings.ToLower(name)
	if !strings.HasPrefix(lower, "x-") && !strings.HasPrefix(lower, "list-") {
		return pipeline.ErrInvalid.With(fmt.Sprintf("headers: %q is not allowed; only X-* and List-* headers may be set", name))
	}
	for _, r := range name {
		if r <= ' ' || r >= 0x7f || r == ':' {
			return pipeline.ErrInvalid.With(fmt.Sprintf("headers: %q is not a valid header name", name))
		}
	}
	if strings.ContainsAny(value, "\r\n\x00") {
		return pipeline.ErrInvalid.With(fmt.Sprintf("headers: the value of %q must not contain line breaks", name))
	}
	if err := pipeline.CheckPrintable(fmt.Sprintf("headers: the value of %q", name), value); err != nil {
		return err
	}
	if strings.HasPrefix(lower, "x-sp-") {
		// X-SP-* headers are SMTP's way to ask for what a REST send has
		// fields for; the pipeline reads and strips them.
		field := "tracking"
		if lower == "x-sp-send-at" {
			field = "scheduledAt"
		}
		return pipeline.ErrInvalid.With(fmt.Sprintf("headers: %q is reserved; use the %s field", name, field))
	}
	return nil
}
