package compose

import (
	"context"
	"encoding/json"
	"net/mail"
	"slices"

	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// SendRequest is an email described by fields, as POST /v1/emails (and each
// email of a batch) receives it.
type SendRequest struct {
	From        string             `json:"from"`
	To          []string           `json:"to"`
	Cc          []string           `json:"cc,omitempty"`
	Bcc         []string           `json:"bcc,omitempty"`
	ReplyTo     []string           `json:"replyTo,omitempty"`
	Subject     string             `json:"subject,omitempty"`
	HTML        string             `json:"html,omitempty"`
	Text        string             `json:"text,omitempty"`
	Headers     map[string]string  `json:"headers,omitempty"`
	Tags        []string           `json:"tags,omitempty"`
	Metadata    map[string]string  `json:"metadata,omitempty"`
	Attachments []Attachment       `json:"attachments,omitempty"`
	TemplateID  string             `json:"templateId,omitempty"`
	Variables   map[string]string  `json:"variables,omitempty"`
	Tracking    *pipeline.Tracking `json:"tracking,omitempty"`
	ScheduledAt string             `json:"scheduledAt,omitempty"` // ISO 8601; "" sends now
}

// Send builds the message that req describes and submits it: the REST
// sibling of an SMTP DATA. With an idempotencyKey, a repeat of the same
// request within 24 h returns the first receipt (Replayed set) and sends
// nothing; the same key with another request is ErrIdempotencyMismatch.
// The key is claimed before anything else (attachments are not fetched
// again for a repeat), and the receipt is stored with the emails.
func (s *Service) Send(ctx context.Context, k *store.Key, req SendRequest, idempotencyKey string) (*pipeline.Receipt, error) {
	return s.send(ctx, k, req, pipeline.ScopeSend, idempotencyKey)
}

func (s *Service) send(ctx context.Context, k *store.Key, req SendRequest, scope pipeline.Scope, idempotencyKey string) (_ *pipeline.Receipt, err error) {
	var claim *pipeline.Claim
	if idempotencyKey != "" {
		// The fingerprint is the request re-encoded (struct fields in
		// order, map keys sorted): whitespace and key order in the
		// client's JSON do not matter.
		fp, jsonErr := json.Marshal(req)
		if jsonErr != nil {
			return nil, jsonErr
		}
		var replay *pipeline.Receipt
		if claim, replay, err = s.sub.ClaimSend(ctx, k, scope, idempotencyKey, fp); err != nil || replay != nil {
			return replay, err
		}
		// err is the named result: the key is released if anything below fails.
		defer func() {
			if err != nil {
				s.sub.Release(claim)
			}
		}()
	}
	sub, err := s.buildSubmission(ctx, k, req)
	if err != nil {
		return nil, err
	}
	sub.Claim = claim
	return s.sub.Submit(ctx, sub)
}

// Preview builds the message that req describes, as Send does, and
// returns its email to the recipient to (the first when "") as it would
// go out (pipeline.Service.Preview), sending and storing nothing.
func (s *Service) Preview(ctx context.Context, k *store.Key, req SendRequest, to string) (*pipeline.Preview, error) {
	sub, err := s.buildSubmission(ctx, k, req)
	if err != nil {
		return nil, err
	}
	return s.sub.Preview(ctx, sub, to)
}

// buildSubmission renders the template, resolves the attachments and
// composes the MIME message of req.
func (s *Service) buildSubmission(ctx context.Context, k *store.Key, req SendRequest) (pipeline.Submission, error) {
	now := s.opt.Now().UTC()
	at, err := pipeline.ParseSchedule("scheduled_at", req.ScheduledAt, now)
	if err != nil {
		return pipeline.Submission{}, err
	}
	if err := pipeline.CheckLabels(req.Tags, req.Metadata); err != nil {
		return pipeline.Submission{}, err
	}
	subject, htmlBody, text := req.Subject, req.HTML, req.Text
	if req.TemplateID != "" {
		if req.HTML != "" || req.Text != "" {
			return pipeline.Submission{}, pipeline.ErrInvalid.With("html, text: cannot be combined with templateId (the template gives the body)")
		}
		t, err := s.LoadTemplate(ctx, k, req.TemplateID, "")
		if err != nil {
			return pipeline.Submission{}, err
		}
		r, err := t.Render(req.Variables, "variables")
		if err != nil {
			return pipeline.Submission{}, err
		}
		htmlBody, text = r.HTML, r.Text
		if subject == "" {
			subject = r.Subject
		}
	} else if len(req.Variables) > 0 {
		return pipeline.Submission{}, pipeline.ErrInvalid.With("variables: only used with templateId")
	}
	if err := s.checkSenderBeforeFetching(ctx, k, req); err != nil {
		return pipeline.Submission{}, err
	}
	attachments, err := s.resolveAttachments(ctx, req.Attachments)
	if err != nil {
		return pipeline.Submission{}, err
	}
	composed, err := ComposeMessage(Compose{
		From: req.From, To: req.To, Cc: req.Cc, Bcc: req.Bcc, ReplyTo: req.ReplyTo,
		Subject: subject, HTML: htmlBody, Text: text, Headers: req.Headers, Attachments: attachments,
	}, now)
	if err != nil {
		return pipeline.Submission{}, err
	}
	sub := pipeline.Submission{
		Key: k, Source: "api", EnvelopeFrom: composed.EnvelopeFrom, Recipients: composed.Recipients,
		Message: composed.Message, Tags: req.Tags, Metadata: req.Metadata, Tracking: &pipeline.Tracking{},
		ScheduledAt: at,
	}
	if req.Tracking != nil {
		sub.Tracking = &pipeline.Tracking{Opens: req.Tracking.Opens, Clicks: req.Tracking.Clicks}
	}
	return sub, nil
}

// checkSenderBeforeFetching checks the sender of a send that has
// attachments to fetch before any is: a send that is to be refused must
// not make the server fetch URLs for it (issue 18: a refused batch made
// 10,000 outbound GETs). Submit checks the sender again, as it does for
// every send.
func (s *Service) checkSenderBeforeFetching(ctx context.Context, k *store.Key, req SendRequest) error {
	if !slices.ContainsFunc(req.Attachments, func(a Attachment) bool { return a.Path != "" }) {
		return nil
	}
	from, err := mail.ParseAddress(req.From)
	if err != nil {
		return pipeline.ErrBadAddress.With("from: " + pipeline.Quote(req.From) + " is not a valid address")
	}
	return s.sub.CheckSender(ctx, k, from.Address)
}
