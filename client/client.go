// Package client is a Go client for pigeonpost's REST API (the SendPigeon
// API): sending, batches, scheduling, templates, domains, API keys,
// contacts (and their import), segments, and the sends of templates to
// contacts (the Pigeon Perch API); webhook replays and redeliveries.
// Errors from the server are *Error values carrying the API's error code.
//
//	c := client.New("https://mail.example.com", os.Getenv("PIGEONPOST_API_KEY"))
//	res, err := c.Send(ctx, client.Email{From: "hello@acme.com", To: []string{"user@example.com"},
//		Subject: "Welcome!", HTML: "<h1>Hello</h1>"})
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client calls one pigeonpost server with one API key.
type Client struct {
	baseURL string
	key     string
	http    *http.Client
}

// New returns a client for the server at baseURL (e.g. "http://localhost:8080").
func New(baseURL, apiKey string) *Client {
	return &Client{baseURL: strings.TrimSuffix(baseURL, "/"), key: apiKey, http: &http.Client{Timeout: 60 * time.Second}}
}

// WithHTTPClient returns a copy of c that uses hc.
func (c *Client) WithHTTPClient(hc *http.Client) *Client {
	cp := *c
	cp.http = hc
	return &cp
}

// Error is an error answer of the API.
type Error struct {
	Status  int    // HTTP status
	Code    string // stable machine-readable code, e.g. "domain_not_verified"
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("pigeonpost: %d %s: %s", e.Status, e.Code, e.Message)
}

// RequestOption adjusts one request.
type RequestOption func(*http.Request)

// IdempotencyKey makes a POST safe to retry: the same key and body within
// 24 hours returns the first response and sends nothing again.
func IdempotencyKey(key string) RequestOption {
	return func(r *http.Request) { r.Header.Set("Idempotency-Key", key) }
}

// rawBody is a request body sent as it is, with its Content-Type.
type rawBody struct {
	contentType string
	r           io.Reader
}

func (c *Client) do(ctx context.Context, method, path string, in, out any, opts ...RequestOption) error {
	var body io.Reader
	contentType := "application/json"
	if raw, ok := in.(rawBody); ok {
		body, contentType = raw.r, raw.contentType
	} else if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.baseURL+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	if in != nil {
		req.Header.Set("Content-Type", contentType)
	}
	for _, o := range opts {
		o(req)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(raw, &e) != nil || e.Error.Code == "" {
			return &Error{Status: resp.StatusCode, Code: "http_error", Message: strings.TrimSpace(string(raw))}
		}
		return &Error{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message}
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(raw, out)
}

// Attachment is a file sent with an email: Content (raw bytes, sent as
// base64) or Path (an HTTPS URL the server fetches).
type Attachment struct {
	Filename    string `json:"filename"`
	Content     []byte `json:"content,omitempty"`
	Path        string `json:"path,omitempty"`
	ContentType string `json:"contentType,omitempty"`
	ContentID   string `json:"contentId,omitempty"`
}

// Tracking asks for open and click tracking.
type Tracking struct {
	Opens  bool `json:"opens"`
	Clicks bool `json:"clicks"`
}

// Email is a message to send.
type Email struct {
	From        string            `json:"from"`
	To          []string          `json:"to"`
	Cc          []string          `json:"cc,omitempty"`
	Bcc         []string          `json:"bcc,omitempty"`
	ReplyTo     []string          `json:"replyTo,omitempty"`
	Subject     string            `json:"subject,omitempty"`
	HTML        string            `json:"html,omitempty"`
	Text        string            `json:"text,omitempty"`
	Tags        []string          `json:"tags,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	Headers     map[string]string `json:"headers,omitempty"`
	Attachments []Attachment      `json:"attachments,omitempty"`
	TemplateID  string            `json:"templateId,omitempty"`
	Variables   map[string]string `json:"variables,omitempty"`
	Tracking    *Tracking         `json:"tracking,omitempty"`
	ScheduledAt *time.Time        `json:"scheduled_at,omitempty"`
}

// SendResult is the answer to a send.
type SendResult struct {
	// ID is the email of the first recipient; IDs are the emails of every
	// recipient not suppressed (to, cc, then bcc), ID first.
	ID         string   `json:"id"`
	IDs        []string `json:"ids"`
	Status     string   `json:"status"`
	Suppressed []string `json:"suppressed"`
	Warnings   []string `json:"warnings,omitempty"`
}

// Send sends one email.
func (c *Client) Send(ctx context.Context, e Email, opts ...RequestOption) (*SendResult, error) {
	var out SendResult
	return &out, c.do(ctx, http.MethodPost, "/v1/emails", e, &out, opts...)
}

// BatchItem is the result of one email of a batch.
type BatchItem struct {
	Index  int    `json:"index"`
	Status string `json:"status"`
	ID     string `json:"id,omitempty"`
	Error  *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

// BatchResult is the answer to a batch send.
type BatchResult struct {
	Data    []BatchItem `json:"data"`
	Summary struct {
		Total  int `json:"total"`
		Sent   int `json:"sent"`
		Failed int `json:"failed"`
	} `json:"summary"`
}

// SendBatch sends up to 100 emails, each processed on its own.
func (c *Client) SendBatch(ctx context.Context, emails []Email, opts ...RequestOption) (*BatchResult, error) {
	var out BatchResult
	return &out, c.do(ctx, http.MethodPost, "/v1/emails/batch", map[string]any{"emails": emails}, &out, opts...)
}

// Preview is an email as it would go out (POST /v1/emails/preview).
type Preview struct {
	MIME     string        `json:"mime"` // as delivery sends it, without the DKIM-Signature it adds
	From     string        `json:"from"`
	To       string        `json:"to"` // the recipient previewed
	Subject  string        `json:"subject"`
	Size     int           `json:"size"` // of MIME, in bytes
	Tracking Tracking      `json:"tracking"`
	Links    []PreviewLink `json:"links"` // with click tracking
	Warnings []string      `json:"warnings"`
}

// PreviewLink is a link of a preview: tracked, with the index its clicks
// are recorded with (linkIndex), or not, with the reason.
type PreviewLink struct {
	Index   *int   `json:"index"`
	URL     string `json:"url"`
	Tracked bool   `json:"tracked"`
	Reason  string `json:"reason"`
}

// Preview returns the email e would send to its first recipient (or to
// the one PreviewFor names) as it would go out, tracking included, after
// the checks of a send, whose errors it returns. Nothing is stored, sent
// or counted, and its tracking links record nothing.
func (c *Client) Preview(ctx context.Context, e Email, opts ...RequestOption) (*Preview, error) {
	var out Preview
	return &out, c.do(ctx, http.MethodPost, "/v1/emails/preview", e, &out, opts...)
}

// PreviewMIME is Preview of a message as an SMTP client sends it (raw
// MIME): its From, To, Cc and Bcc headers are the envelope, and
// X-SP-Track-Opens and X-SP-Track-Clicks ask for tracking.
func (c *Client) PreviewMIME(ctx context.Context, msg io.Reader, opts ...RequestOption) (*Preview, error) {
	var out Preview
	return &out, c.do(ctx, http.MethodPost, "/v1/emails/preview", rawBody{r: msg, contentType: "message/rfc822"}, &out, opts...)
}

// PreviewFor makes a preview show the email of recipient addr.
func PreviewFor(addr string) RequestOption {
	return func(r *http.Request) {
		q := r.URL.Query()
		q.Set("to", addr)
		r.URL.RawQuery = q.Encode()
	}
}

// EmailStatus is an email as GET /v1/emails/:id shows it.
type EmailStatus struct {
	ID          string            `json:"id"`
	Status      string            `json:"status"`
	FromAddress string            `json:"fromAddress"`
	ToAddress   string            `json:"toAddress"`
	Subject     string            `json:"subject"`
	Tags        []string          `json:"tags"`
	Metadata    map[string]string `json:"metadata"`
	CreatedAt   time.Time         `json:"createdAt"`
	SentAt      *time.Time        `json:"sentAt"`
	DeliveredAt *time.Time        `json:"deliveredAt"`
	OpenedAt    *time.Time        `json:"openedAt"`
	ClickedAt   *time.Time        `json:"clickedAt"`
	LastError   string            `json:"lastError,omitempty"`
}

// Get returns one email.
func (c *Client) Get(ctx context.Context, id string) (*EmailStatus, error) {
	var out EmailStatus
	return &out, c.do(ctx, http.MethodGet, "/v1/emails/"+url.PathEscape(id), nil, &out)
}

// Cancel cancels a scheduled email (409 once it has been sent).
func (c *Client) Cancel(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/emails/"+url.PathEscape(id)+"/schedule", nil, nil)
}

// Template is a stored email template with {{variables}}. From and
// ReplyTo are the sender and Reply-To of a send from it (CreateSend) that
// names none.
type Template struct {
	ID      string `json:"id,omitempty"`
	Name    string `json:"name"`
	Subject string `json:"subject,omitempty"`
	HTML    string `json:"html,omitempty"`
	Text    string `json:"text,omitempty"`
	From    string `json:"from,omitempty"`
	ReplyTo string `json:"replyTo,omitempty"`
}

// CreateTemplate stores a template.
func (c *Client) CreateTemplate(ctx context.Context, t Template) (*Template, error) {
	var out Template
	return &out, c.do(ctx, http.MethodPost, "/v1/templates", t, &out)
}

// GetTemplate returns a template.
func (c *Client) GetTemplate(ctx context.Context, id string) (*Template, error) {
	var out Template
	return &out, c.do(ctx, http.MethodGet, "/v1/templates/"+url.PathEscape(id), nil, &out)
}

// UpdateTemplate changes the given fields of a template (PATCH).
func (c *Client) UpdateTemplate(ctx context.Context, id string, fields map[string]string) (*Template, error) {
	var out Template
	return &out, c.do(ctx, http.MethodPatch, "/v1/templates/"+url.PathEscape(id), fields, &out)
}

// DeleteTemplate removes a template.
func (c *Client) DeleteTemplate(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/templates/"+url.PathEscape(id), nil, nil)
}

// DNSRecord is a record a domain owner publishes.
type DNSRecord struct {
	Type   string `json:"type"`
	Name   string `json:"name"`
	Value  string `json:"value"`
	Status string `json:"status"`
}

// Domain is a sending domain.
type Domain struct {
	ID         string      `json:"id"`
	Name       string      `json:"name"`
	Status     string      `json:"status"`
	DNSRecords []DNSRecord `json:"dnsRecords"`
}

// CreateDomain adds a sending domain; publish its DNSRecords, then VerifyDomain.
func (c *Client) CreateDomain(ctx context.Context, name string) (*Domain, error) {
	var out Domain
	return &out, c.do(ctx, http.MethodPost, "/v1/domains", map[string]string{"name": name}, &out)
}

// GetDomain returns a domain with its DNS records.
func (c *Client) GetDomain(ctx context.Context, id string) (*Domain, error) {
	var out Domain
	return &out, c.do(ctx, http.MethodGet, "/v1/domains/"+url.PathEscape(id), nil, &out)
}

// VerifyDomain checks the domain's DNS records now.
func (c *Client) VerifyDomain(ctx context.Context, id string) (*Domain, error) {
	var out Domain
	return &out, c.do(ctx, http.MethodPost, "/v1/domains/"+url.PathEscape(id)+"/verify", nil, &out)
}

// DeleteDomain removes a domain.
func (c *Client) DeleteDomain(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/domains/"+url.PathEscape(id), nil, nil)
}

// APIKey is an API key as listed (never the key itself, except once on create).
type APIKey struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Mode       string     `json:"mode"`
	Permission string     `json:"permission"`
	Prefix     string     `json:"prefix,omitempty"`
	LastFour   string     `json:"lastFour,omitempty"`
	LastUsedAt *time.Time `json:"lastUsedAt,omitempty"`
	Key        string     `json:"key,omitempty"` // only in CreateKey's answer
}

// CreateKey makes an API key: mode "live" or "test", permission "full" or "sending".
func (c *Client) CreateKey(ctx context.Context, name, mode, permission string) (*APIKey, error) {
	var out APIKey
	return &out, c.do(ctx, http.MethodPost, "/v1/api-keys", map[string]string{"name": name, "mode": mode, "permission": permission}, &out)
}

// ListKeys lists the account's keys.
func (c *Client) ListKeys(ctx context.Context) ([]APIKey, error) {
	var out struct {
		Data []APIKey `json:"data"`
	}
	return out.Data, c.do(ctx, http.MethodGet, "/v1/api-keys", nil, &out)
}

// DeleteKey revokes a key at once.
func (c *Client) DeleteKey(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/api-keys/"+url.PathEscape(id), nil, nil)
}

// Contact is a contact of the account.
type Contact struct {
	ID        string            `json:"id,omitempty"`
	Email     string            `json:"email"`
	FirstName string            `json:"firstName,omitempty"`
	LastName  string            `json:"lastName,omitempty"`
	Company   string            `json:"company,omitempty"`
	Status    string            `json:"status,omitempty"` // subscribed, unsubscribed, bounced, complained
	Tags      []string          `json:"tags,omitempty"`
	Fields    map[string]string `json:"fields,omitempty"` // custom fields
	CreatedAt *time.Time        `json:"createdAt,omitempty"`
	UpdatedAt *time.Time        `json:"updatedAt,omitempty"`
}

// ContactQuery filters ListContacts; zero fields do not filter.
type ContactQuery struct {
	Status string
	Email  string // exact, case-insensitive
	Tag    string
	Limit  int    // 1–100; 0: 20
	Cursor string // NextCursor of the previous page
}

// ContactPage is a page of contacts; NextCursor is "" after the last. A
// filtered page may be short, even empty, and still have a NextCursor.
type ContactPage struct {
	Data       []Contact
	NextCursor string
}

// CreateContact adds a contact (a 409 conflict if its address exists).
func (c *Client) CreateContact(ctx context.Context, ct Contact) (*Contact, error) {
	var out Contact
	return &out, c.do(ctx, http.MethodPost, "/v1/contacts", ct, &out)
}

// GetContact returns a contact.
func (c *Client) GetContact(ctx context.Context, id string) (*Contact, error) {
	var out Contact
	return &out, c.do(ctx, http.MethodGet, "/v1/contacts/"+url.PathEscape(id), nil, &out)
}

// UpdateContact changes the given fields of a contact (PATCH): a body such
// as {"lastName": "King", "fields": {"plan": null}} (null removes a custom
// field; tags replace the contact's).
func (c *Client) UpdateContact(ctx context.Context, id string, fields map[string]any) (*Contact, error) {
	var out Contact
	return &out, c.do(ctx, http.MethodPatch, "/v1/contacts/"+url.PathEscape(id), fields, &out)
}

// DeleteContact removes a contact.
func (c *Client) DeleteContact(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/contacts/"+url.PathEscape(id), nil, nil)
}

// ListContacts returns a page of contacts, newest first.
func (c *Client) ListContacts(ctx context.Context, q ContactQuery) (*ContactPage, error) {
	v := url.Values{}
	for name, val := range map[string]string{"status": q.Status, "email": q.Email, "tag": q.Tag, "cursor": q.Cursor} {
		if val != "" {
			v.Set(name, val)
		}
	}
	if q.Limit > 0 {
		v.Set("limit", fmt.Sprint(q.Limit))
	}
	path := "/v1/contacts"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var out struct {
		Data       []Contact `json:"data"`
		NextCursor *string   `json:"nextCursor"`
	}
	if err := c.do(ctx, http.MethodGet, path, nil, &out); err != nil {
		return nil, err
	}
	p := &ContactPage{Data: out.Data}
	if out.NextCursor != nil {
		p.NextCursor = *out.NextCursor
	}
	return p, nil
}

// ImportResult is the answer to an import.
type ImportResult struct {
	Created int `json:"created"`
	Updated int `json:"updated"`
	Failed  int `json:"failed"`
	Errors  []struct {
		Row     int    `json:"row"`
		Message string `json:"message"`
	} `json:"errors"` // the first 100
}

// ImportContacts creates or updates contacts from body, streamed as it is
// read: contentType "text/csv" (a header row: email, first_name, last_name,
// company, status, tags, then custom fields) or "application/json" (an
// array of contacts or {"contacts": [...]}). Up to 64 MiB by default.
func (c *Client) ImportContacts(ctx context.Context, contentType string, body io.Reader) (*ImportResult, error) {
	var out ImportResult
	return &out, c.do(ctx, http.MethodPost, "/v1/contacts/import", rawBody{contentType, body}, &out)
}

// Segment selects contacts: every tag of Filter.Tags, Filter.Status (if
// set), and every condition of Filter.Fields.
type Segment struct {
	ID        string        `json:"id,omitempty"`
	Name      string        `json:"name"`
	Filter    SegmentFilter `json:"filter"`
	Count     *int          `json:"count,omitempty"` // GetSegment only: the contacts that match now
	CreatedAt *time.Time    `json:"createdAt,omitempty"`
	UpdatedAt *time.Time    `json:"updatedAt,omitempty"`
}

// SegmentFilter is what a contact of a segment satisfies.
type SegmentFilter struct {
	Tags   []string           `json:"tags,omitempty"`
	Status string             `json:"status,omitempty"`
	Fields []SegmentCondition `json:"fields,omitempty"`
}

// SegmentCondition compares a field (email, first_name, last_name,
// company or a custom field) with Value: Op "equals" or "contains",
// ignoring case.
type SegmentCondition struct {
	Field string `json:"field"`
	Op    string `json:"op"`
	Value string `json:"value"`
}

// UnmarshalJSON reads a filter whose status may be null.
func (f *SegmentFilter) UnmarshalJSON(b []byte) error {
	var raw struct {
		Tags   []string           `json:"tags"`
		Status *string            `json:"status"`
		Fields []SegmentCondition `json:"fields"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	f.Tags, f.Fields, f.Status = raw.Tags, raw.Fields, ""
	if raw.Status != nil {
		f.Status = *raw.Status
	}
	return nil
}

// CreateSegment stores a segment.
func (c *Client) CreateSegment(ctx context.Context, s Segment) (*Segment, error) {
	var out Segment
	return &out, c.do(ctx, http.MethodPost, "/v1/segments", s, &out)
}

// GetSegment returns a segment with the number of contacts it holds now.
func (c *Client) GetSegment(ctx context.Context, id string) (*Segment, error) {
	var out Segment
	return &out, c.do(ctx, http.MethodGet, "/v1/segments/"+url.PathEscape(id), nil, &out)
}

// ListSegments returns the account's segments, newest first, following
// every page.
func (c *Client) ListSegments(ctx context.Context) ([]Segment, error) {
	var all []Segment
	cursor := ""
	for {
		path := "/v1/segments?limit=100"
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		var out struct {
			Data       []Segment `json:"data"`
			NextCursor *string   `json:"nextCursor"`
		}
		if err := c.do(ctx, http.MethodGet, path, nil, &out); err != nil {
			return nil, err
		}
		all = append(all, out.Data...)
		if out.NextCursor == nil {
			return all, nil
		}
		cursor = *out.NextCursor
	}
}

// UpdateSegment changes the given fields of a segment (PATCH): name, and
// filter (which replaces the segment's).
func (c *Client) UpdateSegment(ctx context.Context, id string, fields map[string]any) (*Segment, error) {
	var out Segment
	return &out, c.do(ctx, http.MethodPatch, "/v1/segments/"+url.PathEscape(id), fields, &out)
}

// DeleteSegment removes a segment (not its contacts).
func (c *Client) DeleteSegment(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/segments/"+url.PathEscape(id), nil, nil)
}

// SendRequest is a send of a template (POST /v1/sends) to one recipient,
// To (an address or a contact id), or to every subscribed contact of a
// segment, SegmentID. Personalizations override the contact's fields
// (first_name, last_name, email, company and custom fields) in the
// template.
type SendRequest struct {
	TemplateID       string            `json:"templateId"`
	To               string            `json:"to,omitempty"`
	SegmentID        string            `json:"segmentId,omitempty"`
	Personalizations map[string]string `json:"personalizations,omitempty"`
	Subject          string            `json:"subject,omitempty"` // default: the template's
	From             string            `json:"from,omitempty"`    // default: the template's, else noreply@ the only verified domain
	ReplyTo          string            `json:"replyTo,omitempty"` // default: the template's
	Tags             []string          `json:"tags,omitempty"`
	Metadata         map[string]string `json:"metadata,omitempty"`
	Tracking         *Tracking         `json:"tracking,omitempty"`
	ScheduledAt      *time.Time        `json:"scheduledAt,omitempty"`
}

// SendRecipient is one recipient of a batch: an address or a contact id,
// and its personalizations.
type SendRecipient struct {
	To               string            `json:"to"`
	Personalizations map[string]string `json:"personalizations,omitempty"`
}

// SendBatchRequest is a template sent to up to 1,000 recipients
// (POST /v1/sends/batch), each processed on its own.
type SendBatchRequest struct {
	TemplateID  string            `json:"templateId"`
	Recipients  []SendRecipient   `json:"recipients"`
	Subject     string            `json:"subject,omitempty"`
	From        string            `json:"from,omitempty"`
	ReplyTo     string            `json:"replyTo,omitempty"`
	Tags        []string          `json:"tags,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	Tracking    *Tracking         `json:"tracking,omitempty"`
	ScheduledAt *time.Time        `json:"scheduledAt,omitempty"`
}

// SendResponse is the answer to CreateSend. For one recipient: the send
// (ID, an email id), its contact and its Status: "sent", "scheduled", or
// "suppressed" (recorded, not delivered: the contact is not subscribed).
// For a segment: BatchID (ID too), SegmentID and Count, the contacts whose
// sends are made in the background (GetBatch shows the progress).
type SendResponse struct {
	ID          string     `json:"id"`
	To          string     `json:"to,omitempty"`
	ContactID   string     `json:"contactId,omitempty"`
	Status      string     `json:"status,omitempty"`
	ScheduledAt *time.Time `json:"scheduledAt,omitempty"`
	Warnings    []string   `json:"warnings,omitempty"`
	BatchID     string     `json:"batchId,omitempty"`
	SegmentID   string     `json:"segmentId,omitempty"`
	Count       int        `json:"count,omitempty"`
}

// CreateSend sends a template to one recipient or to a segment.
func (c *Client) CreateSend(ctx context.Context, req SendRequest, opts ...RequestOption) (*SendResponse, error) {
	var out SendResponse
	return &out, c.do(ctx, http.MethodPost, "/v1/sends", req, &out, opts...)
}

// SendBatchItem is the outcome of one recipient of a batch: its send, or
// Error (and Status "failed").
type SendBatchItem struct {
	ID          string     `json:"id,omitempty"`
	To          string     `json:"to"`
	ContactID   string     `json:"contactId,omitempty"`
	Status      string     `json:"status"`
	ScheduledAt *time.Time `json:"scheduledAt,omitempty"`
	Warnings    []string   `json:"warnings,omitempty"`
	Error       *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

// SendBatchResult is the answer to CreateSendBatch: one item per
// recipient, in order.
type SendBatchResult struct {
	BatchID string          `json:"batchId"`
	Data    []SendBatchItem `json:"data"`
}

// CreateSendBatch sends a template to up to 1,000 recipients, each on its
// own: a refused recipient gets its error while the others are sent.
func (c *Client) CreateSendBatch(ctx context.Context, b SendBatchRequest, opts ...RequestOption) (*SendBatchResult, error) {
	var out SendBatchResult
	return &out, c.do(ctx, http.MethodPost, "/v1/sends/batch", b, &out, opts...)
}

// SendEvent is one event of a send: sent, delivered, opened, clicked,
// bounced, complained, unsubscribed ...
type SendEvent struct {
	Type      string            `json:"type"`
	Timestamp time.Time         `json:"timestamp"`
	Data      map[string]string `json:"data,omitempty"`
}

// Send is a send as GetSend and ListSends show it: the email it is, with
// its template, contact and batch ("" for a single send: the API's null
// reads as ""). Events are set by GetSend only.
type Send struct {
	EmailStatus
	TemplateID string      `json:"templateId"`
	ContactID  string      `json:"contactId"`
	BatchID    string      `json:"batchId"`
	Events     []SendEvent `json:"events,omitempty"`
}

// GetSend returns a send with its events.
func (c *Client) GetSend(ctx context.Context, id string) (*Send, error) {
	var out Send
	return &out, c.do(ctx, http.MethodGet, "/v1/sends/"+url.PathEscape(id), nil, &out)
}

// SendQuery filters ListSends; zero fields do not filter.
type SendQuery struct {
	Status     string // e.g. "delivered", "suppressed"
	BatchID    string
	TemplateID string
	To         string
	Tag        string
	Limit      int    // 1–100
	Cursor     string // NextCursor of the previous page
}

// SendPage is a page of sends; NextCursor is "" after the last.
type SendPage struct {
	Data       []Send
	NextCursor string
}

// ListSends returns a page of sends, newest first.
func (c *Client) ListSends(ctx context.Context, q SendQuery) (*SendPage, error) {
	v := url.Values{}
	for name, val := range map[string]string{"status": q.Status, "batchId": q.BatchID, "templateId": q.TemplateID,
		"to": q.To, "tag": q.Tag, "cursor": q.Cursor} {
		if val != "" {
			v.Set(name, val)
		}
	}
	if q.Limit > 0 {
		v.Set("limit", fmt.Sprint(q.Limit))
	}
	path := "/v1/sends"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var out struct {
		Data       []Send  `json:"data"`
		NextCursor *string `json:"nextCursor"`
	}
	if err := c.do(ctx, http.MethodGet, path, nil, &out); err != nil {
		return nil, err
	}
	p := &SendPage{Data: out.Data}
	if out.NextCursor != nil {
		p.NextCursor = *out.NextCursor
	}
	return p, nil
}

// BatchStatus is a batch (CreateSendBatch, or a send to a segment) with
// its sends counted by status. InProgress is true while a segment's sends
// are still being made; SegmentID is "" for a batch request.
type BatchStatus struct {
	ID         string         `json:"id"`
	TemplateID string         `json:"templateId"`
	SegmentID  string         `json:"segmentId"` // null reads as ""
	Total      int            `json:"total"`
	InProgress bool           `json:"inProgress"`
	Counts     map[string]int `json:"counts"`
	CreatedAt  time.Time      `json:"createdAt"`
}

// GetBatch returns a batch with its sends counted by status.
func (c *Client) GetBatch(ctx context.Context, id string) (*BatchStatus, error) {
	var out BatchStatus
	return &out, c.do(ctx, http.MethodGet, "/v1/batches/"+url.PathEscape(id), nil, &out)
}

// Usage is this month's emails against the account's monthly limit.
type Usage struct {
	Month     string `json:"month"`     // YYYY-MM, UTC
	Used      int64  `json:"used"`      // one per recipient not suppressed
	Limit     *int64 `json:"limit"`     // nil: no limit
	Remaining *int64 `json:"remaining"` // nil: no limit
}

// Usage returns this month's emails against the monthly limit; over it, a
// send fails with the code monthly_limit_reached.
func (c *Client) Usage(ctx context.Context) (*Usage, error) {
	var out Usage
	return &out, c.do(ctx, http.MethodGet, "/v1/usage", nil, &out)
}

// Reputation is whether the account may send, and the bounce and
// complaint rates the reputation guard reads.
type Reputation struct {
	Status string `json:"status"` // active or paused
	Pause  *struct {
		Reason   string            `json:"reason"` // bounce_rate, complaint_rate or manual
		PausedAt time.Time         `json:"pausedAt"`
		Window   *ReputationWindow `json:"window"` // the figures that caused it; nil for a manual pause
	} `json:"pause"` // nil while sending
	Window ReputationWindow `json:"window"`
	Held   int64            `json:"held"` // emails held back by the pause
}

// ReputationWindow is an account's figures over the guard's window.
type ReputationWindow struct {
	Hours         int     `json:"hours"`
	Sends         int64   `json:"sends"`
	Delivered     int64   `json:"delivered"`
	Bounced       int64   `json:"bounced"`
	Complained    int64   `json:"complained"`
	BounceRate    float64 `json:"bounceRate"`
	ComplaintRate float64 `json:"complaintRate"`
}

// Reputation returns the account's reputation; while it is paused, a send
// fails with the code account_paused.
func (c *Client) Reputation(ctx context.Context) (*Reputation, error) {
	var out Reputation
	return &out, c.do(ctx, http.MethodGet, "/v1/reputation", nil, &out)
}

// ReportOutcome is what a report did to the email it names.
type ReportOutcome struct {
	EmailID    string `json:"emailId"`
	Kind       string `json:"kind"`   // complaint or delivery-status
	Result     string `json:"result"` // complained, bounced, failed or ignored
	Reason     string `json:"reason"` // why it was ignored
	Suppressed bool   `json:"suppressed"`
}

// PostReport hands the gateway a report received as mail (raw MIME): a
// feedback loop's complaint (ARF) or a late bounce (DSN). A program that
// reads the mailbox reports go to calls it for each; the key needs full
// permission.
func (c *Client) PostReport(ctx context.Context, report io.Reader) (*ReportOutcome, error) {
	var out ReportOutcome
	return &out, c.do(ctx, http.MethodPost, "/v1/inbound/fbl", rawBody{r: report, contentType: "message/rfc822"}, &out)
}

// ReplayRequest is the window (and the events) of a webhook replay.
type ReplayRequest struct {
	Since  time.Time `json:"since"`            // required; at most 7 days before Until
	Until  time.Time `json:"until,omitzero"`   // zero: now
	Events []string  `json:"events,omitempty"` // none: every event the endpoint subscribes to
}

// Replay is what a webhook replay queued.
type Replay struct {
	ID         string    `json:"replayId"`
	EndpointID string    `json:"endpointId"`
	Since      time.Time `json:"since"`
	Until      time.Time `json:"until"` // when Truncated, the Since of the next replay
	Queued     int       `json:"queued"`
	// Pending events have their first delivery still queued: it goes out
	// on its own schedule, under the same id.
	Pending int `json:"pending"`
	// Unavailable events were recorded before the gateway kept the id
	// their delivery was derived from: they are not sent.
	Unavailable int  `json:"unavailable"`
	Truncated   bool `json:"truncated"` // 10,000 events reached: replay again from Until
}

// ReplayWebhook sends the account's events of a window to the webhook
// endpoint id again, oldest first, each under its original
// X-Pigeonpost-Webhook-Id, through the delivery queue. One replay per
// endpoint at a time: a 409 conflict until the last one's deliveries are
// delivered or given up.
func (c *Client) ReplayWebhook(ctx context.Context, id string, r ReplayRequest) (*Replay, error) {
	var out Replay
	return &out, c.do(ctx, http.MethodPost, "/v1/webhooks/"+url.PathEscape(id)+"/replay", r, &out)
}

// Redelivery is what a webhook redelivery queued.
type Redelivery struct {
	ID         string `json:"id"`
	EndpointID string `json:"endpointId"`
	Event      string `json:"event"`
	Status     string `json:"status"` // queued
}

// RedeliverWebhook sends one webhook delivery again under its id (whmsg_…):
// one given up (listed by GET /v1/webhooks/failed) or delivered in the last
// 7 days. A 409 conflict while it is still queued; 404 for an id the
// account never had.
func (c *Client) RedeliverWebhook(ctx context.Context, deliveryID string) (*Redelivery, error) {
	var out Redelivery
	return &out, c.do(ctx, http.MethodPost, "/v1/webhooks/deliveries/"+url.PathEscape(deliveryID)+"/redeliver", nil, &out)
}
