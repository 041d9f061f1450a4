package compose

import (
	"bytes"
	"fmt"
	"mime"
	"net/mail"
	"net/textproto"
	"strings"
	"time"
	"unicode/utf8"

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
	// The display name is checked as decoded too: net/mail decodes an
	// encoded-word ("=?utf-8?q?a=0D=0A...?=") that could hide a line break.
	if err != nil || pipeline.CheckPrintable("from", c.From) != nil || pipeline.CheckPrintable("from", from.Name) != nil || unfoldable(from.Name) {
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
			if err != nil || pipeline.CheckPrintable(f.field, raw) != nil || pipeline.CheckPrintable(f.field, a.Name) != nil || unfoldable(a.Name) {
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
	h.Set("Subject", encodeText("Subject", c.Subject))
	h.SetDate(now)
	folded := []string{"From", "To", "Cc", "Reply-To", "Subject"}
	for name, value := range c.Headers {
		if err := checkCustomHeader(name, value); err != nil {
			return gomail.Header{}, nil, err
		}
		h.Set(name, encodeText(name, value))
		folded = append(folded, name)
	}
	for _, key := range folded {
		refold(&h, key)
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

// maxHeaderWord is the longest run of octets without a space that a
// header value is written with as it is: the field name (at most
// maxHeaderName), ": " and the run must fit a line of 998 octets (RFC 5322
// §2.1.1), since a line can be folded only at white space. encodeText
// encodes a text with a longer run; a List-* value with one is refused.
const maxHeaderWord = 900

// maxHeaderName bounds the name of a custom header.
const maxHeaderName = 64

// checkCustomHeader allows X-* and List-* headers with a token name and a
// value without line breaks (header injection: RFC 5322 §2.2 allows CR
// and LF in a field body only as folding) or other control characters.
// X-* values may be any text: one that is not ASCII is written as RFC 2047
// encoded-words (encodeText). List-* values hold <URLs> and ids
// (RFC 2369, RFC 2919), where an encoded-word has no place: they must be
// ASCII (a URL percent-encoded).
func checkCustomHeader(name, value string) error {
	lower := strings.ToLower(name)
	if !strings.HasPrefix(lower, "x-") && !strings.HasPrefix(lower, "list-") {
		return pipeline.ErrInvalid.With(fmt.Sprintf("headers: %s is not allowed; only X-* and List-* headers may be set", pipeline.Quote(name)))
	}
	if len(name) > maxHeaderName {
		return pipeline.ErrInvalid.With(fmt.Sprintf("headers: %s is not a valid header name (at most %d characters)", pipeline.Quote(name), maxHeaderName))
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
	if strings.HasPrefix(lower, "list-") {
		if !isASCII(value) {
			return pipeline.ErrInvalid.With(fmt.Sprintf("headers: the value of %q must be ASCII (List-* fields hold <URLs>: percent-encode them)", name))
		}
		if unfoldable(value) {
			return pipeline.ErrInvalid.With(fmt.Sprintf("headers: the value of %q has a run of more than %d octets without a space, or of spaces; it cannot be folded into header lines", name, maxHeaderWord))
		}
	}
	return nil
}

// unfoldable reports a run of more than maxHeaderWord octets without a
// space in v, or of more than maxHeaderWord spaces: text that refold
// could not fold into lines of 998 octets as it is.
func unfoldable(v string) bool {
	spaces := 0
	for word := range strings.SplitSeq(v, " ") {
		if len(word) > maxHeaderWord {
			return true
		}
		if spaces++; word != "" {
			spaces = 0
		}
		if spaces > maxHeaderWord {
			return true
		}
	}
	return false
}

// encodeText writes the unstructured value of the field name (the
// subject, a custom header): as it is when ASCII and foldable (unfoldable),
// else as RFC 2047 Q
// encoded-words in UTF-8, separated by spaces, the first short enough to
// share a line of maxLine octets with the field name, the others of at
// most 75 octets (RFC 2047 §2), so that refold makes lines of at most
// maxLine octets. Only X-* values get here with text that is not ASCII.
// A decoder joins adjacent encoded-words: the value is kept exactly.
func encodeText(name, value string) string {
	if isASCII(value) && !unfoldable(value) {
		return value
	}
	const prefix, suffix, maxWord = "=?utf-8?q?", "?=", 75
	empty := len(prefix) + len(suffix)
	limit := max(maxLine-len(name)-2, empty+9) // room for one character (=XX=XX=XX=XX) at least
	var b strings.Builder
	b.WriteString(prefix)
	n := empty // octets of the word being written
	var enc []byte
	for _, r := range value {
		enc = enc[:0]
		for _, c := range []byte(string(r)) {
			switch {
			case c == ' ':
				enc = append(enc, '_')
			case c > ' ' && c < 0x7f && c != '=' && c != '?' && c != '_':
				enc = append(enc, c)
			default:
				enc = fmt.Appendf(enc, "=%02X", c)
			}
		}
		if n+len(enc) > limit && n > empty {
			b.WriteString(suffix + " " + prefix)
			n, limit = empty, maxWord
		}
		b.Write(enc)
		n += len(enc)
	}
	b.WriteString(suffix)
	return b.String()
}

// maxLine is the length of header line that refold aims at (RFC 5322
// §2.1.1: 78 octets; RFC 2047 §2: 76 for a line with an encoded-word).
const maxLine = 76

// refold writes the field key of h again, folded at spaces into lines of
// at most maxLine octets where its words allow: the first line holds the
// field name and the first word, and a longer word has a line of its own.
// A word too long for a line of 998 octets (RFC 5322 §2.1.1) is cut by a
// fold, as go-message does, which adds a space to the value, and a run of
// spaces longer than a line leaves a line of white space: encodeText,
// checkCustomHeader and composeHeader leave no such text (unfoldable) in
// the fields they write.
// go-message itself folds at 76 only when every word allows it, else at
// 998: one long word put a whole value on lines of up to 998 octets.
func refold(h *gomail.Header, key string) {
	v := h.Get(key)
	if v == "" {
		return
	}
	key = textproto.CanonicalMIMEHeaderKey(key)
	h.Del(key)
	const hardLine = 998
	var b strings.Builder
	b.WriteString(key + ":")
	line := b.Len()
	for i, word := range strings.Split(v, " ") {
		// Fold before a word that does not fit, and before a space that
		// would not fit a line of 998 (a run of spaces).
		if i > 0 && (word != "" && line+1+len(word) > maxLine || line+1+len(word) > hardLine) {
			b.WriteString("\r\n")
			line = 0
		}
		for line+1+len(word) > hardLine { // line is at most the name's here
			cut := hardLine - line - 1
			for cut > 1 && !utf8.RuneStart(word[cut]) {
				cut--
			}
			b.WriteString(" " + word[:cut] + "\r\n")
			word, line = word[cut:], 0
		}
		b.WriteString(" " + word)
		line += 1 + len(word)
	}
	b.WriteString("\r\n")
	h.AddRaw([]byte(b.String()))
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
