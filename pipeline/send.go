package pipeline

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// SendRequest is an email described by fields, as POST /v1/emails (and each
// email of a batch) receives it.
type SendRequest struct {
	From        string            `json:"from"`
	To          []string          `json:"to"`
	Cc          []string          `json:"cc,omitempty"`
	Bcc         []string          `json:"bcc,omitempty"`
	ReplyTo     []string          `json:"replyTo,omitempty"`
	Subject     string            `json:"subject,omitempty"`
	HTML        string            `json:"html,omitempty"`
	Text        string            `json:"text,omitempty"`
	Headers     map[string]string `json:"headers,omitempty"`
	Tags        []string          `json:"tags,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	Attachments []Attachment      `json:"attachments,omitempty"`
	TemplateID  string            `json:"templateId,omitempty"`
	Variables   map[string]string `json:"variables,omitempty"`
	Tracking    *Tracking         `json:"tracking,omitempty"`
	ScheduledAt string            `json:"scheduledAt,omitempty"` // ISO 8601; "" sends now
}

// Send builds the message that req describes and submits it: the REST
// sibling of an SMTP DATA. With an idempotencyKey, a repeat of the same
// request within 24 h returns the first receipt (Replayed set) and sends
// nothing; the same key with another request is ErrIdempotencyMismatch.
// The key is claimed before anything else (attachments are not fetched
// again for a repeat), and the receipt is stored with the emails.
func (s *Service) Send(ctx context.Context, k *store.Key, req SendRequest, idempotencyKey string) (*Receipt, error) {
	return s.send(ctx, k, req, scopeSend, idempotencyKey)
}

func (s *Service) send(ctx context.Context, k *store.Key, req SendRequest, scope, idempotencyKey string) (_ *Receipt, err error) {
	var claim *idemClaim
	if idempotencyKey != "" {
		var cached []byte
		if claim, cached, err = s.claimSend(ctx, k, req, scope, idempotencyKey); err != nil {
			return nil, err
		}
		if cached != nil {
			return replayReceipt(cached)
		}
		// err is the named result: the key is released if anything below fails.
		defer s.releaseOnError(claim, &err)
	}
	sub, err := s.buildSubmission(ctx, k, req)
	if err != nil {
		return nil, err
	}
	sub.claim = claim
	return s.Submit(ctx, sub)
}

// claimSend claims the idempotency key of a send; the fingerprint is the
// request re-encoded (struct fields in order, map keys sorted), so that
// whitespace and key order in the client's JSON do not matter.
func (s *Service) claimSend(ctx context.Context, k *store.Key, req SendRequest, scope, key string) (*idemClaim, []byte, error) {
	if err := CheckIdempotencyKey(key); err != nil {
		return nil, nil, err
	}
	fp, err := json.Marshal(req)
	if err != nil {
		return nil, nil, err
	}
	return s.claimIdempotency(ctx, k.AccountID, scope, key, sha256Hex(fp))
}

// buildSubmission renders the template, resolves the attachments and
// composes the MIME message of req.
func (s *Service) buildSubmission(ctx context.Context, k *store.Key, req SendRequest) (Submission, error) {
	now := s.opt.Now().UTC()
	at, err := ParseSchedule("scheduled_at", req.ScheduledAt, now)
	if err != nil {
		return Submission{}, err
	}
	if err := checkLabels(req.Tags, req.Metadata); err != nil {
		return Submission{}, err
	}
	subject, htmlBody, text := req.Subject, req.HTML, req.Text
	if req.TemplateID != "" {
		if err := checkPrintable("templateId", req.TemplateID); err != nil {
			return Submission{}, err
		}
		if req.HTML != "" || req.Text != "" {
			return Submission{}, ErrInvalid.With("html, text: cannot be combined with templateId (the template gives the body)")
		}
		t, err := s.template(ctx, k, req.TemplateID)
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				return Submission{}, ErrInvalid.With("templateId: no template " + quoteShort(req.TemplateID) + " in this account")
			}
			return Submission{}, err
		}
		r, err := renderStoredTemplate(t, req.Variables)
		if err != nil {
			return Submission{}, err
		}
		htmlBody, text = r.HTML, r.Text
		if subject == "" {
			subject = r.Subject
		}
	} else if len(req.Variables) > 0 {
		return Submission{}, ErrInvalid.With("variables: only used with templateId")
	}
	attachments, err := s.resolveAttachments(ctx, req.Attachments)
	if err != nil {
		return Submission{}, err
	}
	composed, err := ComposeMessage(Compose{
		From: req.From, To: req.To, Cc: req.Cc, Bcc: req.Bcc, ReplyTo: req.ReplyTo,
		Subject: subject, HTML: htmlBody, Text: text, Headers: req.Headers, Attachments: attachments,
	}, now)
	if err != nil {
		return Submission{}, err
	}
	sub := Submission{
		Key: k, Source: "api", EnvelopeFrom: composed.EnvelopeFrom, Recipients: composed.Recipients,
		Message: composed.Message, Tags: req.Tags, Metadata: req.Metadata, Tracking: &Tracking{},
		ScheduledAt: at,
	}
	if req.Tracking != nil {
		sub.Tracking = &Tracking{Opens: req.Tracking.Opens, Clicks: req.Tracking.Clicks}
	}
	return sub, nil
}
