// Package store owns pigeonpost's records in Redis: accounts, API keys,
// domains, suppressions and emails, and the key layout in keys.go. It knows
// nothing of protocols; the pipeline decides what to store and when.
package store

import (
	"encoding/json"
	"strconv"
	"time"
)

// Key modes and permissions.
const (
	ModeLive = "live"
	ModeTest = "test"

	PermissionFull    = "full"
	PermissionSending = "sending"
)

// Status is an email's state, as documented for GET /v1/emails/:id.
type Status string

// The email statuses.
const (
	StatusScheduled  Status = "scheduled"
	StatusCancelled  Status = "cancelled"
	StatusPending    Status = "pending"
	StatusSent       Status = "sent"
	StatusDelivered  Status = "delivered"
	StatusBounced    Status = "bounced"
	StatusComplained Status = "complained"
	StatusFailed     Status = "failed"
	// StatusSuppressed is a send recorded and never delivered: its
	// contact is not subscribed, or the address is on the suppression list.
	StatusSuppressed Status = "suppressed"
)

// Statuses are every email status, in the order of an email's life.
var Statuses = []Status{StatusScheduled, StatusCancelled, StatusPending, StatusSent,
	StatusDelivered, StatusBounced, StatusComplained, StatusFailed, StatusSuppressed}

// EventType names what happened to an email: the type GET /v1/events
// filters on, and, prefixed with "email.", the webhook event.
type EventType string

// The event types.
const (
	EventSent       EventType = "sent"
	EventDelivered  EventType = "delivered"
	EventDeferred   EventType = "deferred"
	EventBounced    EventType = "bounced"
	EventFailed     EventType = "failed"
	EventOpened     EventType = "opened"
	EventClicked    EventType = "clicked"
	EventComplained EventType = "complained"
	// EventUnsubscribed: the recipient unsubscribed through the email's
	// List-Unsubscribe link (one-click or the landing page).
	EventUnsubscribed EventType = "unsubscribed"
	// EventWarning records something the sender should know of an email
	// that was accepted (e.g. a part the tracking rewrite left unchanged); it is
	// neither listed by type nor sent to webhooks.
	EventWarning EventType = "warning"

	// Account events are about an account, not one email: their EmailID
	// is empty, and their type is the webhook event as it is. The
	// reputation guard paused the account's sending, or it was resumed.
	EventAccountPaused  EventType = "account.paused"
	EventAccountResumed EventType = "account.resumed"
)

// ListedEventTypes are the event types GET /v1/events accepts as a filter.
var ListedEventTypes = []EventType{EventSent, EventDelivered, EventDeferred, EventBounced, EventFailed,
	EventOpened, EventClicked, EventComplained, EventUnsubscribed, EventAccountPaused, EventAccountResumed}

// MarshalBinary lets go-redis write a Status as it writes a string: it
// refuses types it does not know.
func (s Status) MarshalBinary() ([]byte, error) { return []byte(s), nil }

// MarshalBinary lets go-redis write an EventType as a string.
func (t EventType) MarshalBinary() ([]byte, error) { return []byte(t), nil }

// VerifyStatus is the state of a domain, of one of its DNS records, or of
// a tracking domain.
type VerifyStatus string

// The verification states.
const (
	VerifyPending  VerifyStatus = "pending"
	VerifyVerified VerifyStatus = "verified"
	VerifyFailed   VerifyStatus = "failed"
)

// Account owns keys, domains, suppressions and emails.
type Account struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"createdAt"`
}

// Key is an API key's record; the key itself is never stored, only its SHA-256.
type Key struct {
	ID         string     `json:"id"`
	AccountID  string     `json:"-"`
	Name       string     `json:"name"`
	Mode       string     `json:"mode"`
	Permission string     `json:"permission"`
	Prefix     string     `json:"prefix"`
	Last4      string     `json:"lastFour"`
	CreatedAt  time.Time  `json:"createdAt"`
	LastUsedAt *time.Time `json:"lastUsedAt"`
	// DomainID, when set, limits the key to sending from that domain.
	DomainID string `json:"domainId,omitempty"`
}

// DNSRecord is one record a domain owner must publish.
type DNSRecord struct {
	Type   string       `json:"type"`
	Name   string       `json:"name"`
	Value  string       `json:"value"`
	Status VerifyStatus `json:"status"`
	// Required records decide the domain's status; DMARC is advice.
	Required bool `json:"required"`
}

// Domain is a sending domain with its DKIM key.
type Domain struct {
	ID            string       `json:"id"`
	Name          string       `json:"name"`
	Status        VerifyStatus `json:"status"`
	Selector      string       `json:"-"`
	PrivateKeyPEM string       `json:"-"`
	DNSRecords    []DNSRecord  `json:"dnsRecords"`
	CreatedAt     time.Time    `json:"createdAt"`
	VerifiedAt    *time.Time   `json:"verifiedAt"`
}

// domainJSON is Domain with its secret fields, as stored.
type domainJSON struct {
	Domain
	Selector      string `json:"selector"`
	PrivateKeyPEM string `json:"privateKeyPem"`
}

// Verified reports whether mail may be sent from the domain.
func (d *Domain) Verified() bool { return d.Status == VerifyVerified }

// Email is one message to one recipient.
type Email struct {
	ID           string
	AccountID    string
	KeyID        string
	Mode         string
	Status       Status
	Source       string // smtp or api
	FromAddress  string // address of the From: header
	EnvelopeFrom string
	ToAddress    string
	Subject      string
	MessageID    string
	Tags         []string
	Metadata     map[string]string
	TrackOpens   bool
	TrackClicks  bool
	// Message names the stored MIME the email is sent from (MessageKey),
	// shared by every recipient of its submission; MessageLen is its size.
	// "" for a record written before messages: its own tracked copy is
	// under BodyKey.
	Message    string
	MessageLen int64
	// TrackBase and PixelTop are the rest of the email's tracking plan,
	// rendered at delivery: the base of its pixel and click URLs (the
	// sending domain's tracking domain, or the public URL; "" means the
	// public URL) and the pixel's placement.
	TrackBase string
	PixelTop  bool
	// Links are the destinations of the tracked links, by index: for an
	// email with a Message, written when it is first rendered.
	Links       []string
	Attempts    int
	LastError   string
	CreatedAt   time.Time
	SentAt      *time.Time
	DeliveredAt *time.Time
	BouncedAt   *time.Time
	FailedAt    *time.Time
	OpenedAt    *time.Time
	// PersonOpenedAt is the first open that was not a machine's
	// (MachineEvent): Apple Mail Privacy Protection opens every mail
	// it is delivered, before any person may.
	PersonOpenedAt *time.Time
	// Hits counts the tracking events recorded on the email, which
	// engagement bounds (anyone may hit a pixel).
	Hits        int
	ClickedAt   *time.Time
	ScheduledAt *time.Time // when a scheduled email is due
	CancelledAt *time.Time
	Send        *SendRef // set when the sends API made the email
}

// SendRef is what the sends API records of an email it made: the email
// is then listed by GET /v1/sends (and in its batch).
type SendRef struct {
	TemplateID string
	ContactID  string
	BatchID    string // "" for a single send
}

// Fields of the email hash that callers update by name.
const (
	FieldStatus      = "status"
	FieldAttempts    = "attempts"
	FieldLastError   = "lastError"
	FieldSentAt      = "sentAt"
	FieldDeliveredAt = "deliveredAt"
	FieldBouncedAt   = "bouncedAt"
	FieldFailedAt    = "failedAt"
	FieldOpenedAt    = "openedAt"
	// FieldPersonOpenedAt is Email.PersonOpenedAt.
	FieldPersonOpenedAt = "personOpenedAt"
	FieldHits           = "hits"
	FieldClickedAt      = "clickedAt"
	FieldScheduledAt    = "scheduledAt"
	FieldCancelledAt    = "cancelledAt"
	FieldLinks          = "links" // JSON array of the tracked links' destinations, by index
	// FieldReleased is set when the email stopped counting against its
	// message (MessageRefsKey): once, whatever final status comes next.
	FieldReleased = "released"
)

// FormatTime is the one timestamp format in records: RFC 3339, UTC, milliseconds.
func FormatTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

func parseTime(s string) *time.Time {
	if s == "" {
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return nil
	}
	return &t
}

func boolField(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only plain slices and maps of strings reach here
	}
	return string(b)
}

// hash returns the fields written when the email is created.
func (e *Email) hash() map[string]any {
	h := map[string]any{
		"id":           e.ID,
		"accountId":    e.AccountID,
		"keyId":        e.KeyID,
		"mode":         e.Mode,
		FieldStatus:    e.Status,
		"source":       e.Source,
		"fromAddress":  e.FromAddress,
		"envelopeFrom": e.EnvelopeFrom,
		"toAddress":    e.ToAddress,
		"subject":      e.Subject,
		"messageId":    e.MessageID,
		"tags":         mustJSON(nonNilSlice(e.Tags)),
		"metadata":     mustJSON(nonNilMap(e.Metadata)),
		"trackOpens":   boolField(e.TrackOpens),
		"trackClicks":  boolField(e.TrackClicks),
		FieldAttempts:  e.Attempts,
		"createdAt":    FormatTime(e.CreatedAt),
	}
	if e.Message == "" || !e.TrackClicks || e.Links != nil {
		// A tracked email rendered from its message gets its links at
		// its first render (SetLinksOnce).
		h[FieldLinks] = LinksValue(e.Links)
	}
	if e.Message != "" {
		h["message"], h["messageLen"] = e.Message, e.MessageLen
		if e.TrackBase != "" {
			h["trackBase"] = e.TrackBase
		}
		if e.PixelTop {
			h["pixelTop"] = "1"
		}
	}
	if e.SentAt != nil {
		h[FieldSentAt] = FormatTime(*e.SentAt)
	}
	if e.ScheduledAt != nil {
		h[FieldScheduledAt] = FormatTime(*e.ScheduledAt)
	}
	if e.LastError != "" {
		h[FieldLastError] = e.LastError
	}
	if r := e.Send; r != nil {
		h["send"], h["templateId"], h["contactId"], h["batchId"] = "1", r.TemplateID, r.ContactID, r.BatchID
	}
	return h
}

func emailFromHash(m map[string]string) *Email {
	e := &Email{
		ID:             m["id"],
		AccountID:      m["accountId"],
		KeyID:          m["keyId"],
		Mode:           m["mode"],
		Status:         Status(m[FieldStatus]),
		Source:         m["source"],
		FromAddress:    m["fromAddress"],
		EnvelopeFrom:   m["envelopeFrom"],
		ToAddress:      m["toAddress"],
		Subject:        m["subject"],
		MessageID:      m["messageId"],
		TrackOpens:     m["trackOpens"] == "1",
		TrackClicks:    m["trackClicks"] == "1",
		Message:        m["message"],
		TrackBase:      m["trackBase"],
		PixelTop:       m["pixelTop"] == "1",
		LastError:      m[FieldLastError],
		SentAt:         parseTime(m[FieldSentAt]),
		DeliveredAt:    parseTime(m[FieldDeliveredAt]),
		BouncedAt:      parseTime(m[FieldBouncedAt]),
		FailedAt:       parseTime(m[FieldFailedAt]),
		OpenedAt:       parseTime(m[FieldOpenedAt]),
		PersonOpenedAt: parseTime(m[FieldPersonOpenedAt]),
		ClickedAt:      parseTime(m[FieldClickedAt]),
		ScheduledAt:    parseTime(m[FieldScheduledAt]),
		CancelledAt:    parseTime(m[FieldCancelledAt]),
	}
	if m["send"] == "1" {
		e.Send = &SendRef{TemplateID: m["templateId"], ContactID: m["contactId"], BatchID: m["batchId"]}
	}
	e.Attempts, _ = strconv.Atoi(m[FieldAttempts])
	e.MessageLen, _ = strconv.ParseInt(m["messageLen"], 10, 64)
	e.Hits, _ = strconv.Atoi(m[FieldHits])
	if t := parseTime(m["createdAt"]); t != nil {
		e.CreatedAt = *t
	}
	_ = json.Unmarshal([]byte(m["tags"]), &e.Tags)
	_ = json.Unmarshal([]byte(m["metadata"]), &e.Metadata)
	_ = json.Unmarshal([]byte(m[FieldLinks]), &e.Links)
	return e
}

// LinksValue is the FieldLinks value of an email record whose tracked
// links go to links (in order): a JSON array, [] for none.
func LinksValue(links []string) string { return mustJSON(nonNilSlice(links)) }

func nonNilSlice(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// Event is one thing that happened to an email (delivered, opened, clicked ...).
// Every event is appended to the email's history and to two streams, the
// account's (for listing) and the global one (for webhook dispatch), in the
// same MULTI as the change it reports.
type Event struct {
	Type      EventType         `json:"type"`
	Timestamp time.Time         `json:"timestamp"`
	EmailID   string            `json:"emailId"`
	AccountID string            `json:"-"`
	Data      map[string]string `json:"data,omitempty"`
}
