// Package sends owns the transactional sends of the Pigeon Perch API: a
// stored template rendered for each recipient with its personalizations
// over its contact's fields, sent to one address or contact, to a batch of
// up to 1,000, or to a segment in the background; reading sends and
// batches back; and the List-Unsubscribe link every send carries, with
// its one-click endpoint. Each send is an email of the submission pipeline
// (pipeline.SubmitAll), so validation, rate limit, tracking, delivery,
// events and webhooks are the ones of every other email.
package sends

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"strings"
	"time"

	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/compose"
	"github.com/pigeonpost/pigeonpost/pipeline/contacts"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
	"github.com/pigeonpost/pigeonpost/tracking"
)

// Options configure a Service.
type Options struct {
	// PublicURL is the base of the unsubscribe links (http.public_url).
	PublicURL string
	// UnsubscribeMailbox, when set, is the address of the mailto form of
	// the links (smtpd.MailboxServer reads its mail).
	UnsubscribeMailbox string
	Now                func() time.Time
	Logger             *slog.Logger
}

// Service sends templates to contacts. It is safe for concurrent use.
type Service struct {
	opt      Options
	store    *store.Store
	sub      *pipeline.Service
	compose  *compose.Service
	contacts *contacts.Service
	signer   *tracking.Signer

	// wake tells Run that a send to a segment was accepted (segment.go).
	wake chan struct{}
}

// New returns the Service that submits into sub. signer signs the
// unsubscribe links, as it signs the click links.
func New(st *store.Store, sub *pipeline.Service, c *compose.Service, cs *contacts.Service, signer *tracking.Signer, opt Options) *Service {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	return &Service{opt: opt, store: st, sub: sub, compose: c, contacts: cs, signer: signer, wake: make(chan struct{}, 1)}
}

// Message is what every recipient of a send shares.
type Message struct {
	TemplateID  string
	Subject     string // replaces the template's subject; a template too
	From        string // default: the template's, else noreply@ the only verified domain
	ReplyTo     string // default: the template's
	Tags        []string
	Metadata    map[string]string
	Tracking    *pipeline.Tracking
	ScheduledAt string // ISO 8601; "" sends now
}

// Recipient is one recipient of a send: an address or a contact id, and
// the values that override its contact's fields in the template.
type Recipient struct {
	To               string            `json:"to"`
	Personalizations map[string]string `json:"personalizations,omitempty"`
}

// Request is POST /v1/sends to one recipient.
type Request struct {
	Message
	Recipient
}

// Sent is the outcome of one recipient: its send (an email id) or why it
// was refused. To is the contact's address (as given if it was refused).
// It is also stored under an idempotency key, hence the JSON.
type Sent struct {
	ID          string       `json:"id,omitempty"`
	To          string       `json:"to"`
	ContactID   string       `json:"contactId,omitempty"`
	Status      store.Status `json:"status,omitempty"`
	ScheduledAt *time.Time   `json:"scheduledAt,omitempty"`
	Warnings    []string     `json:"warnings,omitempty"`
	Error       *Refusal     `json:"error,omitempty"`
	Replayed    bool         `json:"-"` // the stored answer of an earlier request with the same key
}

// Refusal is a recipient's error as the client sees it.
type Refusal struct {
	Code    pipeline.Code `json:"code"`
	Message string        `json:"message"`
	cause   error
}

func refusal(err error) *Refusal {
	pe := pipeline.AsError(err)
	return &Refusal{Code: pe.Code, Message: pe.Message, cause: err}
}

// The idempotency scopes of the sends.
const (
	scopeSend    pipeline.Scope = "sends"
	scopeBatch   pipeline.Scope = "sends-batch"
	scopeSegment pipeline.Scope = "sends-segment"
)

// replayable is the answer of a send, stored under its idempotency key.
type replayable interface {
	*Sent | *BatchSent | *SegmentSent
	setReplayed()
}

func (s *Sent) setReplayed()        { s.Replayed = true }
func (b *BatchSent) setReplayed()   { b.Replayed = true }
func (g *SegmentSent) setReplayed() { g.Replayed = true }

// claimKey takes key (if not "") for request in scope, the request's JSON
// being its fingerprint. When an earlier request with the same key and
// fingerprint stored its answer, it is decoded into replay, marked
// Replayed, and nothing is to be sent.
func claimKey[R replayable](ctx context.Context, s *Service, k *store.Key, scope pipeline.Scope, key string, request any, replay R) (*pipeline.Claim, error) {
	if key == "" {
		return nil, nil
	}
	fp, err := json.Marshal(request)
	if err != nil {
		return nil, err
	}
	c, stored, err := s.sub.ClaimResponse(ctx, k, scope, key, fp)
	if err != nil || stored == nil {
		return c, err
	}
	if err := json.Unmarshal(stored, replay); err != nil {
		return nil, pipeline.ErrUnavailable.WithCause(fmt.Errorf("undecodable idempotent response: %w", err))
	}
	replay.setReplayed()
	return nil, nil
}

// releaseOnError frees c when the send that took it fails: errors are not
// replayed, and the client may retry with the same key.
func (s *Service) releaseOnError(c *pipeline.Claim, err *error) {
	if c != nil && *err != nil {
		s.sub.Release(c)
	}
}

// prepared is a send's shared part checked once: the template parsed, the
// sender chosen, the schedule read.
type prepared struct {
	Message
	tmpl *compose.Template
	from string
	at   time.Time
}

func (s *Service) prepare(ctx context.Context, k *store.Key, m Message) (*prepared, error) {
	if strings.TrimSpace(m.TemplateID) == "" {
		return nil, pipeline.ErrInvalid.With("templateId: a template id is required")
	}
	at, err := pipeline.ParseSchedule("scheduledAt", m.ScheduledAt, s.opt.Now().UTC())
	if err != nil {
		return nil, err
	}
	return s.load(ctx, k, m, at)
}

// load is prepare with the schedule read.
func (s *Service) load(ctx context.Context, k *store.Key, m Message, at time.Time) (*prepared, error) {
	if err := pipeline.CheckLabels(m.Tags, m.Metadata); err != nil {
		return nil, err
	}
	t, err := s.compose.LoadTemplate(ctx, k, m.TemplateID, m.Subject)
	if err != nil {
		return nil, err
	}
	p := &prepared{Message: m, tmpl: t, from: m.From, at: at}
	if p.from == "" {
		p.from = t.From
	}
	if p.ReplyTo == "" {
		p.ReplyTo = t.ReplyTo
	}
	if p.from == "" {
		if p.from, err = s.defaultSender(ctx, k); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// defaultSender is the sender of a send that names none, nor does its
// template: noreply@ the key's domain, or the account's only verified
// domain. With several, which one is not guessed.
func (s *Service) defaultSender(ctx context.Context, k *store.Key) (string, error) {
	ds, err := s.store.ListDomains(ctx, k.AccountID)
	if err != nil {
		return "", pipeline.StorageError(err)
	}
	var verified []string
	for _, d := range ds {
		if d.Verified() && (k.DomainID == "" || d.ID == k.DomainID) {
			verified = append(verified, d.Name)
		}
	}
	if len(verified) != 1 {
		return "", pipeline.ErrInvalid.Withf("from: required: neither the request nor the template gives a sender, and the account has %d verified domains to default to (noreply@ the only one)", len(verified))
	}
	return "noreply@" + verified[0], nil
}

// submission renders the template for contact c and builds its message,
// with the List-Unsubscribe headers of RFC 8058.
//
// Its email is in shard (that of its batch, or its claim).
func (s *Service) submission(k *store.Key, p *prepared, c *contacts.Contact, personal map[string]string, batchID string, shard store.Shard) (pipeline.Submission, error) {
	values := c.Tokens()
	maps.Copy(values, personal) // personalizations win over the contact's fields
	r, err := p.tmpl.Render(values, "personalizations")
	if err != nil {
		return pipeline.Submission{}, err
	}
	emailID := store.NewIDIn("em", shard)
	unsubscribe := s.signer.UnsubscribeID(k.AccountID, c.ID, emailID)
	var replyTo []string
	if p.ReplyTo != "" {
		replyTo = []string{p.ReplyTo}
	}
	composed, err := compose.ComposeMessage(compose.Compose{
		From: p.from, To: []string{c.Email}, ReplyTo: replyTo,
		Subject: r.Subject, HTML: r.HTML, Text: r.Text,
		Headers: map[string]string{
			"List-Unsubscribe":      s.listUnsubscribe(unsubscribe),
			"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
		},
	}, s.opt.Now().UTC())
	if err != nil {
		return pipeline.Submission{}, err
	}
	sub := pipeline.Submission{
		Key: k, Source: "api", EnvelopeFrom: composed.EnvelopeFrom, Recipients: composed.Recipients,
		Message: composed.Message, Tags: p.Tags, Metadata: p.Metadata, Tracking: &pipeline.Tracking{},
		ScheduledAt: p.at, EmailIDs: []string{emailID},
		Send: &store.SendRef{TemplateID: p.tmpl.ID, ContactID: c.ID, BatchID: batchID},
	}
	if p.Tracking != nil {
		sub.Tracking = &pipeline.Tracking{Opens: p.Tracking.Opens, Clicks: p.Tracking.Clicks}
	}
	if c.Status != contacts.Subscribed {
		sub.Withhold = "the contact is " + string(c.Status)
	}
	return sub, nil
}

// unsubscribeURL is the one-click (POST) and landing page (GET) address.
func (s *Service) unsubscribeURL(id string) string {
	return s.opt.PublicURL + "/v1/unsubscribe/" + url.PathEscape(id)
}

// listUnsubscribe is the List-Unsubscribe header of the link id: the https
// URI RFC 8058's one-click needs and, when there is a mailbox that reads
// it, the mailto form for clients that only send mail.
func (s *Service) listUnsubscribe(id string) string {
	h := "<" + s.unsubscribeURL(id) + ">"
	if s.opt.UnsubscribeMailbox != "" {
		h += ", <mailto:" + s.opt.UnsubscribeMailbox + "?subject=unsubscribe%20" + url.QueryEscape(id) + ">"
	}
	return h
}
