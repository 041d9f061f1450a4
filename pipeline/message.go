package pipeline

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	netmail "net/mail"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"github.com/pigeonpost/pigeonpost/tracking"
)

// Headers that pigeonpost reads and strips before delivery.
const (
	headerTrackOpens  = "X-SP-Track-Opens"
	headerTrackClicks = "X-SP-Track-Clicks"
	headerSendAt      = "X-SP-Send-At"
)

// maxHeaderBytes bounds the header section against header floods (as
// Postfix's header_size_limit: https://www.postfix.org/postconf.5.html#header_size_limit).
const maxHeaderBytes = 1 << 20

// maxHeaderLines bounds the lines of the header section: a mebibyte of
// "a:b" lines is 200,000 fields, each read into the header's map and
// slices and then signed and rewritten. Go's mime/multipart allows 10,000
// fields per part; the tracking rewriter leaves a part with a longer
// header as it is.
const maxHeaderLines = 10_000

// submittedMessage is a message split into a header we may edit and a body
// we never copy until it is written out.
type submittedMessage struct {
	raw    []byte // the message as received; header and body are views of it
	header textproto.Header
	body   []byte
	from   string // address of the From: header, lower-cased domain
	// senders are the addresses of the fields that, like From, say who
	// sent the message (Sender, Resent-From, Resent-Sender): each must be
	// the account's too, or the message would go out signed in another's
	// name.
	senders     []string
	subject     string
	messageID   string
	trackOpens  *bool // from X-SP-Track-Opens, nil when absent
	trackClicks *bool
	// sendAt is when X-SP-Send-At schedules the message: zero when the
	// header is absent, empty or not in the future (send now).
	sendAt time.Time
}

// parseMessage reads the CRLF-normalised message raw, strips the headers that
// must not travel (Bcc, X-SP-Track-*, X-SP-Send-At), adds Message-ID and Date when missing
// (RFC 5322 §3.6), and checks that there is exactly one From address.
func parseMessage(raw []byte, hostname string, newID func() string, now time.Time) (*submittedMessage, error) {
	h, end, err := readHeader(raw)
	if err != nil {
		return nil, err
	}
	m := &submittedMessage{raw: raw, header: h, body: raw[end:]}

	if m.trackOpens, err = boolHeader(&m.header, headerTrackOpens); err != nil {
		return nil, err
	}
	if m.trackClicks, err = boolHeader(&m.header, headerTrackClicks); err != nil {
		return nil, err
	}
	if m.sendAt, err = sendAtHeader(&m.header, now); err != nil {
		return nil, err
	}
	m.header.Del("Bcc")
	if err := checkFieldNames(m.header); err != nil {
		return nil, err
	}

	mh := mail.Header{Header: message.Header{Header: m.header}}
	if m.from, err = fromAddress(mh); err != nil {
		return nil, err
	}
	for _, field := range senderFields {
		list, err := mh.AddressList(field)
		if err != nil {
			return nil, ErrBadMessage.Withf("the %s header must hold valid addresses", field)
		}
		for _, a := range list {
			m.senders = append(m.senders, a.Address)
		}
	}
	m.subject, _ = mh.Subject()
	if id, err := mh.MessageID(); err == nil && id != "" {
		m.messageID = id
	} else {
		m.messageID = newID() + "@" + hostname
		mh.SetMessageID(m.messageID)
	}
	if !m.header.Has("Date") {
		mh.SetDate(now)
	}
	m.header = mh.Header.Header
	return m, nil
}

// senderFields say, besides From, who sent a message (RFC 5322 §3.6.2,
// §3.6.6).
var senderFields = []string{"Sender", "Resent-From", "Resent-Sender"}

// checkFieldNames refuses a second From (RFC 5322 §3.6 allows one), and a
// field name with white space before its colon ("FROM :", obsolete syntax
// that some readers take for From): either would let a message go out
// signed over a From the sender check never saw.
func checkFieldNames(h textproto.Header) error {
	froms := 0
	for f := h.Fields(); f.Next(); {
		name := f.Key()
		if strings.TrimRight(name, " \t") != name {
			return ErrBadMessage.Withf("header field name %s has white space before its colon", Quote(name))
		}
		if strings.EqualFold(name, "From") {
			froms++
		}
	}
	if froms > 1 {
		return ErrBadMessage.With("the message has more than one From header; RFC 5322 allows exactly one")
	}
	return nil
}

// readHeader reads the header section of the CRLF-normalised message raw
// and returns it with the offset of the body.
func readHeader(raw []byte) (textproto.Header, int, error) {
	end := headerEnd(raw)
	if end < 0 {
		return textproto.Header{}, 0, ErrBadMessage.With("message has no header section (expected a blank line after the header)")
	}
	if end > maxHeaderBytes {
		return textproto.Header{}, 0, ErrBadMessage.With(fmt.Sprintf("header section exceeds %d bytes", maxHeaderBytes))
	}
	if bytes.Count(raw[:end], []byte("\r\n")) > maxHeaderLines+1 { // +1: the blank line
		return textproto.Header{}, 0, ErrBadMessage.With(fmt.Sprintf("header section exceeds %d lines", maxHeaderLines))
	}
	if bytes.IndexByte(raw[:end], 0) >= 0 {
		// RFC 5322 §2.2: a field is printable US-ASCII and white space; a
		// NUL is read differently by each program it passes through.
		return textproto.Header{}, 0, ErrBadMessage.With("the header section holds a NUL byte")
	}
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(raw[:end])))
	if err != nil {
		return textproto.Header{}, 0, ErrBadMessage.With("malformed header: " + err.Error())
	}
	return h, end, nil
}

// fromAddress returns the address of the one From field of a header.
func fromAddress(h mail.Header) (string, error) {
	from, err := h.AddressList("From")
	if err != nil || len(from) != 1 {
		if err == nil && len(from) == 0 {
			return "", ErrBadMessage.With("message has no From header")
		}
		return "", ErrBadMessage.With("the From header must hold exactly one valid address")
	}
	return from[0].Address, nil
}

// headerEnd returns the offset of the body: just past the blank line that
// ends the header section, or -1 if there is none.
func headerEnd(raw []byte) int {
	if bytes.HasPrefix(raw, []byte("\r\n")) {
		return 2
	}
	if i := bytes.Index(raw, []byte("\r\n\r\n")); i >= 0 {
		return i + 4
	}
	if bytes.HasSuffix(raw, []byte("\r\n")) {
		return len(raw) // header only, no body
	}
	return -1
}

// boolHeader reads and removes a true/false header.
func boolHeader(h *textproto.Header, name string) (*bool, error) {
	if !h.Has(name) {
		return nil, nil
	}
	v := strings.ToLower(strings.TrimSpace(h.Get(name)))
	h.Del(name)
	switch v {
	case "true", "yes", "1":
		b := true
		return &b, nil
	case "false", "no", "0":
		b := false
		return &b, nil
	}
	return nil, ErrBadMessage.With(fmt.Sprintf("%s must be true or false, got %q", name, v))
}

// sendAtHeader reads and removes X-SP-Send-At, the SMTP spelling of REST's
// scheduledAt: an RFC 3339 time ("2026-12-24T09:00:00Z", with an offset or
// fractional seconds) or an RFC 5322 date ("Thu, 24 Dec 2026 09:00:00
// +0100", or its obsolete forms). It returns the zero time (send now) when
// the header is absent or empty, and for a time that is not after now: unlike
// REST's scheduledAt, which refuses a time in the past, a past date sends
// now, because the client is a legacy system whose clock may be skewed, or
// an MTA retrying a message it queued before the time, and bouncing its
// mail for that helps no one. A time more than MaxScheduleAhead ahead, an
// unparsable value and two X-SP-Send-At headers are refused (ErrInvalid).
func sendAtHeader(h *textproto.Header, now time.Time) (time.Time, error) {
	values := h.Values(headerSendAt)
	if len(values) == 0 {
		return time.Time{}, nil
	}
	h.Del(headerSendAt)
	if len(values) > 1 {
		return time.Time{}, ErrInvalid.With(fmt.Sprintf("%s: the header appears %d times; give it once", headerSendAt, len(values)))
	}
	v := strings.TrimSpace(values[0])
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		if t, err = netmail.ParseDate(v); err != nil {
			return time.Time{}, ErrInvalid.With(headerSendAt + ": " + Quote(v) +
				" is not a date; use RFC 3339 (2026-12-24T09:00:00Z) or RFC 5322 (Thu, 24 Dec 2026 09:00:00 +0100)")
		}
		t = withObsoleteZone(t, v)
	}
	if !t.After(now) {
		return time.Time{}, nil // past or now: send now (see above)
	}
	if err := checkSchedule(headerSendAt, t, now); err != nil {
		return time.Time{}, err
	}
	return t.UTC(), nil
}

// obsoleteZones are the zone names of RFC 5322 §4.3 that have an offset.
var obsoleteZones = map[string]int{
	"UT": 0, "GMT": 0,
	"EST": -5 * 3600, "EDT": -4 * 3600,
	"CST": -6 * 3600, "CDT": -5 * 3600,
	"MST": -7 * 3600, "MDT": -6 * 3600,
	"PST": -8 * 3600, "PDT": -7 * 3600,
}

// withObsoleteZone gives a time that net/mail.ParseDate read from value,
// written with an obsolete zone name, the offset RFC 5322 defines for it:
// ParseDate leaves such a name to time.Parse, which knows it only when the
// server's own time zone uses it, and otherwise takes it for UTC ("09:00
// EST" would be sent five hours early). Only a name written in value
// counts: a numeric offset may come back named after the server's zone
// (+0800 is "CST" in China), and it is right as it is.
func withObsoleteZone(t time.Time, value string) time.Time {
	name, offset := t.Zone()
	want, ok := obsoleteZones[name]
	if !ok || offset == want || !slices.Contains(strings.Fields(value), name) {
		return t
	}
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	return time.Date(y, mo, d, h, mi, s, t.Nanosecond(), time.FixedZone(name, want))
}

// bytes returns the message as it goes out. When the header comes out as
// it came in (nothing stripped or added: fields that were read are written
// back as their raw bytes), that is the received message itself, not a copy
// of it: a copy of a 25 MB body is 25 MB more per message in flight.
func (m *submittedMessage) bytes() []byte {
	head, body, same := m.parts()
	if same {
		return m.raw
	}
	out := make([]byte, 0, len(head)+len(body))
	return append(append(out, head...), body...)
}

// parts is bytes held apart: the header block as it goes out (its blank
// line included) and the body, and whether the header block is the one
// received (then bytes is m.raw). The tracking rewrite reads them so, and
// makes the only copy of a large body.
func (m *submittedMessage) parts() (head, body []byte, same bool) {
	rawHeader := m.raw[:len(m.raw)-len(m.body)]
	var h bytes.Buffer
	h.Grow(len(rawHeader) + 256) // room for a Message-ID and a Date
	_ = textproto.WriteHeader(&h, m.header)
	if bytes.Equal(h.Bytes(), rawHeader) {
		return rawHeader, m.body, true
	}
	return h.Bytes(), m.body, false
}

// shortenLines makes the message relayable when it has a line longer than
// 998 octets (RFC 5322 §2.1.1, RFC 5321 §4.5.3.1.6), which a relay must
// neither send as is nor cut: the parts carrying such body lines are
// re-encoded (tracking.ShortenLines: quoted-printable or base64, the
// decoded content unchanged), before anything signs or stores the message.
// A header line that long is refused (ErrBadMessage, 550 5.6.0) naming its
// field. longest is the longest line as the caller measured it (0: not
// measured); when it is short, as nearly always, nothing is read again.
func (m *submittedMessage) shortenLines(longest int) error {
	if longest > 0 && longest <= tracking.MaxLineOctets || longest == 0 && !tracking.HasLongLine(m.raw) {
		return nil
	}
	out, err := tracking.ShortenLines(m.bytes())
	if err != nil {
		var le *tracking.LongLineError
		if errors.As(err, &le) {
			return ErrBadMessage.With(le.Reason + " (RFC 5322 §2.1.1)")
		}
		return err
	}
	h, end, err := readHeader(out)
	if err != nil {
		return err
	}
	m.raw, m.header, m.body = out, h, out[end:]
	return nil
}

// messageCopies bounds how many times a submission may hold its message at
// once: as received (for REST, the JSON and the MIME composed from it), the
// copy with its edited header, and the tracking rewriter's decoded HTML and
// output (up to an eighth larger) for one recipient; the rest is room for
// the parts' smaller buffers.
const messageCopies = 5

// MessageCost is the memory a message of n bytes may take while it is read
// and submitted: what smtpd and the REST API reserve from the process's
// message memory budget. MessageCost of smtp.max_message_bytes is the
// budget's largest need.
func MessageCost(n int64) int64 { return n * messageCopies }
