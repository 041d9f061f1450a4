package feedback

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/deliver"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
	"github.com/pigeonpost/pigeonpost/tracking"
)

// Reports arrive after the email was handed over: a complaint from a
// mailbox provider's feedback loop, or a bounce from a server that
// accepted the email (250) and failed to deliver it later. Both come to
// the gateway's reports mailbox (smtpd's mailbox server) or to POST
// /v1/inbound/fbl, and name their email by the signed id delivery put in
// its header (tracking.FeedbackHeader): a report cannot name an email it
// was not sent a copy of.
//
// A complaint marks the email complained, suppresses the address, marks
// the contact complained and fires email.complained; a permanent failure
// marks it bounced (email.bounced), and suppresses the address when the
// failure says the address is bad, as a bounce at delivery does. Both
// count toward the account's rates (pipeline/reputation). A report for an
// email already marked so changes nothing: feedback loops repeat
// themselves.

// Guard hears of every complaint and bounce (reputation.Guard).
type Guard interface {
	Observe(ctx context.Context, accountID string) error
}

// Options configure a Service.
type Options struct {
	Now    func() time.Time
	Logger *slog.Logger
}

// Service applies reports. It is safe for concurrent use.
type Service struct {
	store  *store.Store
	signer *tracking.Signer
	guard  Guard
	opt    Options
}

// New returns the Service; guard may be nil.
func New(st *store.Store, signer *tracking.Signer, guard Guard, opt Options) *Service {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	return &Service{store: st, signer: signer, guard: guard, opt: opt}
}

// What a report did to its email.
const (
	ResultComplained = "complained"
	ResultBounced    = "bounced"
	ResultFailed     = "failed" // a temporary failure the reporter gave up on
	ResultIgnored    = "ignored"
)

// Outcome is what a report did.
type Outcome struct {
	EmailID    string
	Kind       Kind
	Result     string // one of the Result constants
	Reason     string // why it was ignored
	Suppressed bool   // the address went on the suppression list
}

// Receive reads a report that came to the reports mailbox, open to
// anyone, and applies it to the email its signed id names. An unreadable
// report is ErrBadMessage; one that names no email of this server is
// ErrNotFound.
func (s *Service) Receive(ctx context.Context, r io.Reader) (*Outcome, error) {
	return s.receive(ctx, r, "")
}

// ReceiveFor is Receive for a report an account's key posts (POST
// /v1/inbound/fbl): the key needs full permission (the report changes the
// suppression list), and the email must be the account's.
func (s *Service) ReceiveFor(ctx context.Context, k *store.Key, r io.Reader) (*Outcome, error) {
	if err := pipeline.RequirePermission(k, store.PermissionFull); err != nil {
		return nil, err
	}
	return s.receive(ctx, r, k.AccountID)
}

func (s *Service) receive(ctx context.Context, r io.Reader, accountID string) (*Outcome, error) {
	rep, err := Parse(r)
	if errors.Is(err, ErrNotReport) {
		return nil, pipeline.ErrBadMessage.With("not a report: the message must be a multipart/report of report-type feedback-report (ARF, RFC 5965) or delivery-status (DSN, RFC 3464)")
	}
	if err != nil {
		return nil, pipeline.ErrBadMessage.With("the report cannot be read: " + strings.TrimPrefix(err.Error(), "feedback: "))
	}
	e, err := s.email(ctx, rep, accountID)
	if err != nil {
		return nil, err
	}
	out := &Outcome{EmailID: e.ID, Kind: rep.Kind, Result: ResultIgnored}
	if e.Status == store.StatusComplained || e.Status == store.StatusBounced {
		out.Reason = "the email is " + string(e.Status) + " already"
		return out, nil
	}
	switch rep.Kind {
	case KindComplaint:
		err = s.complaint(ctx, rep, e, out)
	case KindDelivery:
		err = s.failure(ctx, rep, e, out)
	}
	if err != nil {
		return nil, pipeline.StorageError(err)
	}
	if out.Result != ResultIgnored && s.guard != nil {
		if err := s.guard.Observe(ctx, e.AccountID); err != nil {
			s.opt.Logger.Warn("checking the account's rates after a report failed", "account", e.AccountID, "err", err)
		}
	}
	return out, nil
}

// errNoEmail is the answer to a report that names no email of this server.
var errNoEmail = pipeline.ErrNotFound.With("the report names no email sent by this server: its original's header has no valid " +
	tracking.FeedbackHeader + " (or the email has expired)")

// email returns the email the report's original names.
func (s *Service) email(ctx context.Context, rep *Report, accountID string) (*store.Email, error) {
	if rep.Original == nil {
		return nil, errNoEmail
	}
	id, ok := s.signer.ParseFeedbackID(rep.Original.Get(tracking.FeedbackHeader))
	if !ok {
		return nil, errNoEmail
	}
	e, err := s.store.Email(ctx, id)
	if errors.Is(err, store.ErrNotFound) || err == nil && accountID != "" && e.AccountID != accountID {
		return nil, errNoEmail
	}
	if err != nil {
		return nil, pipeline.StorageError(err)
	}
	return e, nil
}

// complaint applies a feedback report. "not-spam" (a recipient taking a
// complaint back) is not one.
func (s *Service) complaint(ctx context.Context, rep *Report, e *store.Email, out *Outcome) error {
	if rep.FeedbackType == "not-spam" {
		out.Reason = "feedback type not-spam is not a complaint"
		return nil
	}
	now := s.opt.Now().UTC()
	ev := &store.Event{Type: store.EventComplained, Timestamp: now, AccountID: e.AccountID,
		Data: map[string]string{"feedbackType": rep.FeedbackType, "reporter": pipeline.Cut(rep.UserAgent, maxReporter)}}
	if err := s.store.UpdateEmail(ctx, e.ID, map[string]any{store.FieldStatus: store.StatusComplained}, ev); err != nil {
		return err
	}
	out.Result, out.Suppressed = ResultComplained, true
	return s.suppress(ctx, e, "complaint", "complained", now)
}

// failure applies a delivery status report: its failed recipient (the
// email's own address when several are listed).
func (s *Service) failure(ctx context.Context, rep *Report, e *store.Email, out *Outcome) error {
	var failed *Recipient
	for i, r := range rep.Recipients {
		if r.Action == "failed" && (failed == nil || strings.EqualFold(r.Address, e.ToAddress)) {
			failed = &rep.Recipients[i]
		}
	}
	if failed == nil {
		out.Reason = "the report says no delivery failed (action " + rep.Recipients[0].Action + ")"
		return nil
	}
	now := s.opt.Now().UTC()
	code := failed.code()
	reason := failed.Diagnostic
	if reason == "" {
		reason = statusString(code)
	}
	status, field, event := store.StatusBounced, store.FieldBouncedAt, store.EventBounced
	out.Result = ResultBounced
	if code[0] != 5 {
		status, field, event = store.StatusFailed, store.FieldFailedAt, store.EventFailed
		out.Result = ResultFailed
	}
	ev := &store.Event{Type: event, Timestamp: now, AccountID: e.AccountID,
		Data: map[string]string{"reason": reason, "reporter": pipeline.Cut(rep.UserAgent, maxReporter)}}
	if err := s.store.UpdateEmail(ctx, e.ID, map[string]any{store.FieldStatus: status, field: store.FormatTime(now),
		store.FieldLastError: "reported later: " + reason}, ev); err != nil {
		return err
	}
	if !deliver.AddressRejected(code) {
		return nil
	}
	out.Suppressed = true
	return s.suppress(ctx, e, "hard_bounce", "bounced", now)
}

// suppress puts the email's address on its account's suppression list and
// gives the contact of a send the status that says why.
func (s *Service) suppress(ctx context.Context, e *store.Email, reason, contactStatus string, now time.Time) error {
	if err := s.store.Suppress(ctx, e.AccountID, e.ToAddress, reason); err != nil {
		return err
	}
	if e.Send != nil && e.Send.ContactID != "" {
		return s.store.SetContactStatus(ctx, e.AccountID, e.Send.ContactID, contactStatus, now)
	}
	return nil
}

// code is the recipient's status, made precise by its diagnostic's
// enhanced code when the Status field says only the class (Exim's 5.0.0
// for a "550 5.1.1 user unknown").
func (r Recipient) code() [3]int {
	if r.Status[1] == 0 && r.Status[2] == 0 {
		if c := replyStatus(r.Diagnostic); c[0] == r.Status[0] {
			return c
		}
	}
	return r.Status
}

// maxReporter bounds what a report's sender wrote of itself (its
// User-Agent) that is kept with the event.
const maxReporter = 200

func statusString(c [3]int) string { return fmt.Sprintf("%d.%d.%d", c[0], c[1], c[2]) }
