package pipeline

import (
	"bytes"
	"context"
	"io"
	"slices"
	"strings"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"

	"github.com/pigeonpost/pigeonpost/pipeline/store"
	"github.com/pigeonpost/pigeonpost/tracking"
)

// A preview is a submission taken through Submit's steps but for the
// writes: checked as a send is (prepare), its recipients looked up in the
// suppression list and the account's pause checked without charging the
// rate or the month (admit), and one email made as emailsOf does it and
// rewritten for tracking as Render does it at delivery. No record, body, queue entry, idempotency key or
// count is written.

// PreviewEmailID is the email id of every preview's copy. No email has it
// (ids are "em_" and 26 base32 characters), so its pixel and its
// X-Pigeonpost-Id name nothing; its click ids are signed for a purpose the
// click endpoint refuses (tracking.Signer.PreviewClickID), since a sealed
// id of an email without a record would redirect.
const PreviewEmailID = "em_preview"

// Preview is one email of a submission as it would go out.
type Preview struct {
	EmailID string // PreviewEmailID
	From    string // the From: address
	To      string // the recipient it was made for
	Subject string
	// Message is the MIME as delivery sends it: the X-Pigeonpost-Id field
	// delivery adds, then the stored body. The DKIM-Signature that delivery
	// puts between them is made as the email goes out, and not here.
	Message  []byte
	Tracking Tracking // what the email gets, after the settings
	// Links, when clicks are tracked, are the links of the parts rewritten
	// (tracking.Result.Found): tracked, or untracked with the reason.
	Links    []tracking.Link
	Warnings []string // those a send would answer, and the recipient's suppression
}

// Preview checks sub as Submit does and returns its email to the
// recipient to (the first when to is ""), as it would go out, storing and
// charging nothing. Its errors are Submit's, but for the rate and monthly
// limits, which a preview does not reach: a suppressed recipient is a
// warning unless every recipient is (ErrAllSuppressed).
func (s *Service) Preview(ctx context.Context, sub Submission, to string) (*Preview, error) {
	now := s.opt.Now().UTC()
	p, err := s.prepare(ctx, sub, false, now)
	if err != nil {
		return nil, err
	}
	if sub.Claim == nil {
		// Submit would derive the message's idempotency key (claiming
		// it): the header goes, and a malformed one is refused.
		if _, err := idempotencyKeyHeader(p.msg); err != nil {
			return nil, err
		}
	}
	at := 0
	if to != "" {
		at = slices.IndexFunc(sub.Recipients, func(r string) bool { return strings.EqualFold(r, to) })
		if at < 0 {
			return nil, ErrInvalid.With("to: " + Quote(to) + " is not a recipient of the message")
		}
	}
	suppressed, err := s.admit(ctx, sub.Key, []*prepared{p}, now, false)
	if err != nil {
		return nil, err
	}
	if sub.Send == nil && !slices.Contains(suppressed[0], false) {
		return nil, ErrAllSuppressed
	}
	rcpt := sub.Recipients[at]
	base := p.msg.bytes()
	track := p.track
	warnings := append([]string(nil), p.warnings...)
	if suppressed[0][at] {
		warnings = append(warnings, rcpt+" is on the suppression list: a send would not deliver to it")
	}
	e := p.email(PreviewEmailID, rcpt, now)
	track.record(e)
	track.preview = true
	body, res, err := s.rewrite(e, base, track)
	if err != nil {
		return nil, err
	}
	out := s.signer.AppendFeedbackField(make([]byte, 0, 128+len(body)), e.ID)
	return &Preview{
		EmailID: e.ID, From: e.FromAddress, To: rcpt, Subject: e.Subject,
		Message:  append(out, body...),
		Tracking: track.Tracking,
		Links:    res.Found,
		Warnings: append(warnings, res.Warnings...),
	}, nil
}

// PreviewMessage is Preview of a message as an SMTP client sends it (its
// line endings are normalised as smtpd's are): the envelope is the address
// of its From field and those of its To, Cc and Bcc fields, and its
// X-SP-Track-* fields ask for tracking.
func (s *Service) PreviewMessage(ctx context.Context, k *store.Key, raw []byte, to string) (*Preview, error) {
	msg, err := io.ReadAll(NormalizeCRLF(bytes.NewReader(raw)))
	if err != nil {
		return nil, ErrBadMessage.WithCause(err)
	}
	from, rcpts, err := envelopeOf(msg)
	if err != nil {
		return nil, err
	}
	return s.Preview(ctx, Submission{Key: k, Source: "smtp", EnvelopeFrom: from, Recipients: rcpts, Message: msg}, to)
}

// envelopeOf returns the envelope of a message that comes without one: the
// From address, and the To, Cc and Bcc addresses in that order.
func envelopeOf(msg []byte) (string, []string, error) {
	h, _, err := readHeader(msg)
	if err != nil {
		return "", nil, err
	}
	mh := mail.Header{Header: message.Header{Header: h}}
	from, err := fromAddress(mh)
	if err != nil {
		return "", nil, err
	}
	var rcpts []string
	for _, field := range []string{"To", "Cc", "Bcc"} {
		list, err := mh.AddressList(field)
		if err != nil {
			return "", nil, ErrBadMessage.With("the " + field + " header holds an address that is not valid")
		}
		for _, a := range list {
			rcpts = append(rcpts, a.Address)
		}
	}
	if len(rcpts) == 0 {
		return "", nil, ErrBadAddress.With("the message has no recipient: its To, Cc and Bcc headers hold no address")
	}
	return from, rcpts, nil
}
