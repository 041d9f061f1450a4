// Package feedback reads the reports mail systems send back about
// delivered mail — ARF complaints (RFC 5965) and delivery status
// notifications (RFC 3464) — and applies them to the emails they name.
package feedback

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/textproto"
	"strings"

	"github.com/emersion/go-message"
	msgtextproto "github.com/emersion/go-message/textproto"
)

// Kind is what a report tells.
type Kind string

const (
	KindComplaint Kind = "complaint"       // ARF feedback report
	KindDelivery  Kind = "delivery-status" // DSN
)

// Report is a parsed report.
type Report struct {
	Kind         Kind
	FeedbackType string               // ARF Feedback-Type, lower-cased ("abuse", "fraud", "not-spam", ...); empty for a DSN
	UserAgent    string               // ARF User-Agent, or the DSN's Reporting-MTA (type prefix stripped)
	Recipients   []Recipient          // DSN: one per recipient block; ARF: one per Original-Rcpt-To (Action empty)
	Original     textproto.MIMEHeader // header of the original message (net/textproto), nil when the report has none
}

// Recipient is one recipient a report is about.
type Recipient struct {
	Address    string // Final-Recipient (else Original-Recipient), the "rfc822;" type stripped, trimmed, angle brackets removed
	Action     string // lower-cased: failed, delayed, delivered, relayed, expanded ("" for ARF)
	Status     [3]int // RFC 3463 code of the Status field, {0,0,0} when absent or malformed
	Diagnostic string // Diagnostic-Code with its type ("smtp;") stripped, whitespace of folded lines collapsed, at most 512 bytes
}

// Permanent reports a failed delivery with a 5.x.x status.
func (r Recipient) Permanent() bool {
	return r.Action == "failed" && r.Status[0] == 5
}

// ErrNotReport: the message is not a multipart/report of a kind this package reads.
var ErrNotReport = errors.New("feedback: not a feedback or delivery-status report")

// Limits that keep memory bounded whatever a sender puts in a report: only
// headers and the machine-readable part are kept, each up to a cap.
const (
	maxHeaderBytes = 256 << 10 // a message's or a part's header, the original's header
	maxStatusBytes = 64 << 10  // the message/feedback-report or delivery-status part
	maxRecipients  = 1000
)

// headerLimit bounds the header of a message: the report's, or a forwarded one's.
var headerLimit = &message.ReadOptions{MaxHeaderBytes: maxHeaderBytes}

// reportKinds maps a multipart/report's report-type to the Kind it carries.
// RFC 6533 keeps report-type=delivery-status for internationalized DSNs, but
// global-delivery-status is accepted too, for senders that name it so.
var reportKinds = map[string]Kind{
	"feedback-report":        KindComplaint,
	"delivery-status":        KindDelivery,
	"global-delivery-status": KindDelivery,
}

// machineParts maps the media type of a report's machine-readable part to the
// Kind of report it belongs in.
var machineParts = map[string]Kind{
	"message/feedback-report":        KindComplaint,
	"message/delivery-status":        KindDelivery,
	"message/global-delivery-status": KindDelivery,
}

// originalParts are the media types a report returns the original in: whole
// (RFC 2046, RFC 6532) or its header only (RFC 6522, RFC 6533, and the
// message/rfc822-headers some senders write for text/rfc822-headers).
var originalParts = map[string]bool{
	"message/rfc822":         true,
	"message/global":         true,
	"text/rfc822-headers":    true,
	"message/rfc822-headers": true,
	"message/global-headers": true,
}

// Parse reads a report from r (a whole message, header and body).
//
// The report is the message itself when it is a multipart/report, or a part
// of a top-level multipart/mixed: a multipart/report part, or an attached
// message that is one (a report forwarded as an attachment).
func Parse(r io.Reader) (*Report, error) {
	msg, err := message.ReadWithOptions(r, headerLimit)
	if err != nil && !undecodable(err) {
		return nil, fmt.Errorf("feedback: reading the header: %w", err)
	}
	mediaType, params := contentType(msg.Header)
	switch mediaType {
	case "multipart/report":
		return readReport(msg.Body, params)
	case "multipart/mixed":
		return findInMixed(msg.Body, params["boundary"])
	}
	return nil, fmt.Errorf("%w: content type %.64q", ErrNotReport, mediaType)
}

// findInMixed looks through the parts of a multipart/mixed for the report it
// wraps, one level deep.
func findInMixed(body io.Reader, boundary string) (*Report, error) {
	parts := newPartReader(body, boundary)
	for {
		part, err := parts.next()
		if err == io.EOF {
			return nil, fmt.Errorf("%w: multipart/mixed without a report", ErrNotReport)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: reading multipart/mixed: %v", ErrNotReport, err)
		}
		mediaType, params := contentType(part.Header)
		if mediaType == "message/rfc822" {
			// A forward: the report may be the attached message.
			inner, err := message.ReadWithOptions(part.Body, headerLimit)
			if err != nil && !undecodable(err) {
				continue
			}
			part = inner
			mediaType, params = contentType(inner.Header)
		}
		if mediaType != "multipart/report" {
			continue
		}
		rep, err := readReport(part.Body, params)
		if errors.Is(err, ErrNotReport) {
			continue // another kind of report, a read receipt say; one of ours may follow
		}
		return rep, err
	}
}

// readReport reads the parts of a multipart/report: the machine-readable part
// of the kind its report-type names, and the original's header. The
// human-readable part and the original's body are drained unread.
func readReport(body io.Reader, params map[string]string) (*Report, error) {
	reportType := strings.ToLower(params["report-type"])
	kind, ok := reportKinds[reportType]
	if !ok {
		return nil, fmt.Errorf("%w: report-type %.64q", ErrNotReport, reportType)
	}
	var (
		rep          *Report
		original     textproto.MIMEHeader
		haveOriginal bool
	)
	parts := newPartReader(body, params["boundary"])
	for {
		part, err := parts.next()
		if err != nil {
			// A report cut short after its machine-readable part (a
			// truncated original, a missing closing boundary) still
			// says what it has to say.
			if err == io.EOF || rep != nil {
				break
			}
			return nil, fmt.Errorf("feedback: reading the %s report: %w", reportType, err)
		}
		mediaType, _ := contentType(part.Header)
		switch {
		case rep == nil && machineParts[mediaType] == kind:
			if rep, err = readMachinePart(kind, part.Body); err != nil {
				return nil, err
			}
		case !haveOriginal && originalParts[mediaType]:
			original, haveOriginal = readOriginalHeader(part.Body), true
		}
	}
	if rep == nil {
		return nil, fmt.Errorf("feedback: %s report without its machine-readable part", reportType)
	}
	rep.Original = original
	return rep, nil
}

// readMachinePart reads a message/feedback-report or delivery-status part,
// up to maxStatusBytes of it.
func readMachinePart(kind Kind, body io.Reader) (*Report, error) {
	lines, cut := readLines(body, maxStatusBytes, false)
	if kind == KindComplaint {
		return complaint(fieldBlocks(lines))
	}
	if cut {
		// Keep only the recipient blocks that were read whole: a block
		// cut short may have lost its Action or Status.
		lines = lines[:lastBlank(lines)]
	}
	return deliveryStatus(fieldBlocks(lines))
}

// readOriginalHeader reads the header of the original message a report returns,
// up to its first blank line and maxHeaderBytes; its body, attachments and all,
// is left for the part reader to drain.
func readOriginalHeader(body io.Reader) textproto.MIMEHeader {
	lines, _ := readLines(body, maxHeaderBytes, true)
	blocks := fieldBlocks(lines)
	if len(blocks) == 0 {
		return nil
	}
	return blocks[0]
}

// contentType returns the media type and parameters of an entity, the type
// lower-cased; "" when it has none or it cannot be read.
func contentType(h message.Header) (string, map[string]string) {
	mediaType, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil && err != mime.ErrInvalidMediaParameter {
		return "", nil
	}
	return mediaType, params
}

// undecodable reports whether err only says that go-message does not know an
// entity's transfer encoding or charset: it then returns the entity undecoded,
// which is still worth reading, since the fields of a report are ASCII.
func undecodable(err error) bool {
	return message.IsUnknownCharset(err) || message.IsUnknownEncoding(err)
}

// partReader iterates over the parts of a multipart body, their transfer
// encoding decoded. go-message bounds the top-level header but no part's, so a
// gate bounds each part's header (and the boundary search before it); the
// bodies in between are drained without limit, since nothing of them is kept.
type partReader struct {
	multipart *msgtextproto.MultipartReader
	gate      *gate
	current   *msgtextproto.Part
}

func newPartReader(body io.Reader, boundary string) *partReader {
	g := &gate{r: body, left: -1}
	return &partReader{multipart: msgtextproto.NewMultipartReader(g, boundary), gate: g}
}

// next returns the next part, or io.EOF after the last.
func (p *partReader) next() (*message.Entity, error) {
	if p.current != nil {
		if _, err := io.Copy(io.Discard, p.current); err != nil {
			return nil, err
		}
	}
	p.gate.left = maxHeaderBytes
	part, err := p.multipart.NextPart()
	p.gate.left = -1
	if err != nil {
		return nil, err
	}
	p.current = part
	// New fails only for an unknown transfer encoding or charset, and then
	// returns the part undecoded (see undecodable).
	entity, _ := message.New(message.Header{Header: part.Header}, part)
	return entity, nil
}

var errPartHeaderTooBig = fmt.Errorf("feedback: a part header is over %d bytes", maxHeaderBytes)

// gate is a reader that, while closed, lets through only left more bytes.
type gate struct {
	r    io.Reader
	left int64 // bytes it may still read; -1 when open
}

func (g *gate) Read(p []byte) (int, error) {
	if g.left < 0 {
		return g.r.Read(p)
	}
	if g.left == 0 {
		return 0, errPartHeaderTooBig
	}
	if int64(len(p)) > g.left {
		p = p[:g.left]
	}
	n, err := g.r.Read(p)
	g.left -= int64(n)
	return n, err
}
