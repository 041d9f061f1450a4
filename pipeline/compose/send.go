package compose

import (
	"context"
	"encoding/json"
	"time"

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
	sub, err := s.buildSubmission(ctx, k, req, true)
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
	sub, err := s.buildSubmission(ctx, k, req, false)
	if err != nil {
		return nil, err
	}
	return s.sub.Preview(ctx, sub, to)
}

// buildSubmission renders the template, resolves the attachments and
// composes the MIME message of req. Attachment URLs are fetched only once
// the send is known to be admitted now (admitBeforeFetching); limits says
// whether the rate and monthly limits count (a send) or not (a preview).
func (s *Service) buildSubmission(ctx context.Context, k *store.Key, req SendRequest, limits bool) (pipeline.Submission, error) {
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
	fields := Compose{
		From: req.From, To: req.To, Cc: req.Cc, Bcc: req.Bcc, ReplyTo: req.ReplyTo,
		Subject: subject, HTML: htmlBody, Text: text, Headers: req.Headers,
	}
	fields.Attachments, err = s.resolveAttachments(ctx, req.Attachments, func() error {
		return s.admitBeforeFetching(ctx, k, fields, now, limits)
	})
	if err != nil {
		return pipeline.Submission{}, err
	}
	composed, err := ComposeMessage(fields, now)
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

// admitBeforeFetching refuses, before any attachment URL is fetched, a
// send that Submit would refuse: its fields (the header ComposeMessage
// makes), its sender, the account's pause, its recipients all suppressed
// and, with limits (a send, not a preview), the rate and monthly limits,
// charging nothing (pipeline.Service.CheckAdmission). A send that is to be
// refused must not make the server fetch URLs for it (issue 18: a refused
// batch made 10,000 outbound GETs). Submit checks and charges again, as it
// does for every send.
func (s *Service) admitBeforeFetching(ctx context.Context, k *store.Key, fields Compose, now time.Time, limits bool) error {
	_, env, err := composeHeader(fields, now)
	if err != nil {
		return err
	}
	return s.sub.CheckAdmission(ctx, k, env.EnvelopeFrom, env.Recipients, limits)
}
