package api

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/account"
	"github.com/pigeonpost/pigeonpost/pipeline/compose"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// stringList accepts "a@x" or ["a@x", "b@x"], as the docs allow for to.
type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*l = []string{s}
		return nil
	}
	var s []string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	*l = s
	return nil
}

type sendRequest struct {
	From        string             `json:"from"`
	To          stringList         `json:"to"`
	Cc          stringList         `json:"cc"`
	Bcc         stringList         `json:"bcc"`
	ReplyTo     stringList         `json:"replyTo"`
	Subject     string             `json:"subject"`
	HTML        string             `json:"html"`
	Text        string             `json:"text"`
	Tags        []string           `json:"tags"`
	Metadata    map[string]string  `json:"metadata"`
	Headers     map[string]string  `json:"headers"`
	Attachments []attachmentJSON   `json:"attachments"`
	TemplateID  string             `json:"templateId"`
	Variables   map[string]any     `json:"variables"`
	ScheduledAt string             `json:"scheduled_at"`
	Scheduled2  string             `json:"scheduledAt"`
	Tracking    *requestedTracking `json:"tracking"`

	// Personalizations is Pigeon Perch's name for template values; with
	// variables, a key in both takes the personalizations value.
	Personalizations map[string]any `json:"personalizations"`
}

// requestedTracking is the tracking option of a send, with JSON names so
// that a wrong type names "tracking.opens", not the Go field. The tracking
// page spells them opens and clicks, the tracking endpoints page open and
// click: both are read. Tracking is opt-in per email, as the tracking
// page has it: an option left out is off, where the endpoints page's
// table says "default true" (docs/tracking.md).
type requestedTracking struct {
	Opens  *bool `json:"opens"`
	Clicks *bool `json:"clicks"`
	Open   *bool `json:"open"`
	Click  *bool `json:"click"`
}

// toPipeline reads both spellings; one given twice must agree.
func (t *requestedTracking) toPipeline() (*pipeline.Tracking, error) {
	if t == nil {
		return nil, nil
	}
	opens, err := either("tracking.opens", t.Opens, "tracking.open", t.Open)
	if err != nil {
		return nil, err
	}
	clicks, err := either("tracking.clicks", t.Clicks, "tracking.click", t.Click)
	if err != nil {
		return nil, err
	}
	return &pipeline.Tracking{Opens: opens, Clicks: clicks}, nil
}

// either is the value of a field that has two names; unset is false.
func either(name string, a *bool, alias string, b *bool) (bool, error) {
	switch {
	case a != nil && b != nil && *a != *b:
		return false, pipeline.ErrInvalid.Withf("%s, %s: the same option given twice, with different values", name, alias)
	case a != nil:
		return *a, nil
	case b != nil:
		return *b, nil
	}
	return false, nil
}

type attachmentJSON struct {
	Filename    string `json:"filename"`
	Content     string `json:"content"`
	Path        string `json:"path"`
	ContentType string `json:"contentType"`
	ContentID   string `json:"contentId"`
}

// toPipeline converts the request. Template values come from variables
// (SendPigeon) and personalizations (Pigeon Perch), each an object of JSON
// scalars (scalarValues); for a key in both, personalizations wins, as
// Pigeon Perch's personalizations override other values.
func (req *sendRequest) toPipeline() (compose.SendRequest, error) {
	out := compose.SendRequest{
		From: req.From, To: req.To, Cc: req.Cc, Bcc: req.Bcc, ReplyTo: req.ReplyTo,
		Subject: req.Subject, HTML: req.HTML, Text: req.Text, Headers: req.Headers,
		Tags: req.Tags, Metadata: req.Metadata, TemplateID: req.TemplateID,
		ScheduledAt: req.ScheduledAt,
	}
	var err error
	if out.Tracking, err = req.Tracking.toPipeline(); err != nil {
		return out, err
	}
	if req.Scheduled2 != "" {
		if req.ScheduledAt != "" && req.ScheduledAt != req.Scheduled2 {
			return out, pipeline.ErrInvalid.With("scheduled_at, scheduledAt: give one of them")
		}
		out.ScheduledAt = req.Scheduled2
	}
	for _, a := range req.Attachments {
		out.Attachments = append(out.Attachments, compose.Attachment(a))
	}
	vars, err := scalarValues("variables", req.Variables)
	if err != nil {
		return out, err
	}
	pers, err := scalarValues("personalizations", req.Personalizations)
	if err != nil {
		return out, err
	}
	if len(pers) > 0 && req.TemplateID == "" {
		// compose checks variables; once merged, it could not name this field.
		return out, pipeline.ErrInvalid.With("personalizations: only used with templateId")
	}
	if vars == nil {
		vars = pers
	} else {
		maps.Copy(vars, pers) // personalizations win
	}
	out.Variables = vars
	return out, nil
}

// scalarValues converts a JSON object of template values to strings: a
// string as is, a number as JSON writes it (float64, or json.Number from a
// decoder with UseNumber), a boolean as true or false, null as "". Any other
// value (object, array) is a 400 naming field.key (the first such key in
// sorted order, so that the answer does not vary). An empty m is nil.
func scalarValues(field string, m map[string]any) (map[string]string, error) {
	if len(m) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(m))
	bad := ""
	for name, v := range m {
		switch v := v.(type) {
		case string:
			out[name] = v
		case float64:
			out[name] = strconv.FormatFloat(v, 'f', -1, 64)
		case json.Number:
			out[name] = v.String()
		case bool:
			out[name] = strconv.FormatBool(v)
		case nil:
			out[name] = ""
		default:
			if bad == "" || name < bad {
				bad = name
			}
		}
	}
	if bad != "" {
		return nil, pipeline.ErrInvalid.With(field + "." + bad + ": must be a string, a number, a boolean or null")
	}
	return out, nil
}

// sendResponse is the answer to POST /v1/emails: one email per recipient
// not suppressed. ID is the first (SendPigeon's answer has only it); IDs
// are all of them, in the order of to, cc, then bcc.
type sendResponse struct {
	ID          string       `json:"id"`
	IDs         []string     `json:"ids"`
	Status      store.Status `json:"status"`
	Suppressed  []string     `json:"suppressed"`
	Warnings    []string     `json:"warnings,omitempty"`
	ScheduledAt *time.Time   `json:"scheduledAt,omitempty"`
}

func toSendResponse(r *pipeline.Receipt) sendResponse {
	return sendResponse{ID: r.IDs[0], IDs: r.IDs, Status: r.Status, Suppressed: nonNil(r.Suppressed), Warnings: r.Warnings,
		ScheduledAt: r.ScheduledAt}
}

func (h *handler) sendEmail(w http.ResponseWriter, r *http.Request, k *store.Key) {
	var req sendRequest
	if err := h.decode(w, r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	sr, err := req.toPipeline()
	if err != nil {
		writeError(w, r, err)
		return
	}
	receipt, err := h.Compose.Send(r.Context(), k, sr, r.Header.Get(headerIdempotencyKey))
	if err != nil {
		writeError(w, r, err)
		return
	}
	if receipt.Replayed {
		w.Header().Set(headerReplayed, "true")
	}
	writeJSON(w, http.StatusOK, toSendResponse(receipt))
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// emailJSON is the documented shape of GET /v1/emails/:id.
type emailJSON struct {
	ID          string            `json:"id"`
	Status      store.Status      `json:"status"`
	FromAddress string            `json:"fromAddress"`
	ToAddress   string            `json:"toAddress"`
	Subject     string            `json:"subject"`
	Tags        []string          `json:"tags"`
	Metadata    map[string]string `json:"metadata"`
	MessageID   string            `json:"messageId"`
	TestMode    bool              `json:"testMode"`
	Attempts    int               `json:"attempts"`
	LastError   string            `json:"lastError,omitempty"`
	CreatedAt   time.Time         `json:"createdAt"`
	SentAt      *time.Time        `json:"sentAt"`
	DeliveredAt *time.Time        `json:"deliveredAt"`
	BouncedAt   *time.Time        `json:"bouncedAt,omitempty"`
	FailedAt    *time.Time        `json:"failedAt,omitempty"`
	OpenedAt    *time.Time        `json:"openedAt"`
	ClickedAt   *time.Time        `json:"clickedAt"`
	ScheduledAt *time.Time        `json:"scheduledAt,omitempty"`
	CancelledAt *time.Time        `json:"cancelledAt,omitempty"`
	Events      string            `json:"events"`
}

func toEmailJSON(e *store.Email) emailJSON {
	return emailJSON{
		ID: e.ID, Status: e.Status, FromAddress: e.FromAddress, ToAddress: e.ToAddress, Subject: e.Subject,
		Tags: nonNil(e.Tags), Metadata: e.Metadata, MessageID: e.MessageID, TestMode: e.Mode == store.ModeTest,
		Attempts: e.Attempts, LastError: e.LastError, CreatedAt: e.CreatedAt, SentAt: e.SentAt,
		DeliveredAt: e.DeliveredAt, BouncedAt: e.BouncedAt, FailedAt: e.FailedAt,
		OpenedAt: e.OpenedAt, ClickedAt: e.ClickedAt, Events: "/v1/emails/" + e.ID + "/events",
		ScheduledAt: e.ScheduledAt, CancelledAt: e.CancelledAt,
	}
}

func (h *handler) getEmail(w http.ResponseWriter, r *http.Request, k *store.Key) {
	e, err := h.Account.Email(r.Context(), k, r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toEmailJSON(e))
}

// listEmails: GET /v1/emails?status=&tag=&to=&since=&until=&limit=&cursor=
// (before= is the older spelling of until, exclusive).
func (h *handler) listEmails(w http.ResponseWriter, r *http.Request, k *store.Key) {
	f, err := emailFilterOf(r.URL.Query())
	if err != nil {
		writeError(w, r, err)
		return
	}
	page, err := h.Account.ListEmails(r.Context(), k, f)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toPage(listOf(page.Emails, toEmailJSON), page.Next))
}

// emailFilterOf reads the filter of a list of emails or sends:
// status, tag, to, since, until (before: the older, exclusive spelling of
// until), limit and cursor.
func emailFilterOf(q url.Values) (account.EmailFilter, error) {
	f := account.EmailFilter{Status: store.Status(q.Get("status")), Tag: q.Get("tag"), To: q.Get("to"), Cursor: q.Get("cursor")}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}, {"before", &f.Until}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return f, pipeline.ErrInvalid.With(p.name + ": must be an ISO 8601 (RFC 3339) time, e.g. 2025-01-15T10:00:00Z")
			}
			if p.name == "before" {
				t = t.Add(-time.Millisecond)
			}
			*p.dst = t
		}
	}
	var err error
	f.Limit, err = queryLimit(q)
	return f, err
}

// queryLimit reads the limit of a page (0 when not given: the list's
// default); each list refuses one over its own maximum.
func queryLimit(q url.Values) (int, error) {
	v := q.Get("limit")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, pipeline.ErrInvalid.With("limit: must be between 1 and 100")
	}
	return n, nil
}

func (h *handler) getEmailContent(w http.ResponseWriter, r *http.Request, k *store.Key) {
	b, err := h.Account.EmailContent(r.Context(), k, r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "message/rfc822")
	_, _ = w.Write(b)
}

func (h *handler) getEmailEvents(w http.ResponseWriter, r *http.Request, k *store.Key) {
	evs, err := h.Account.EmailEvents(r.Context(), k, r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, listJSON[eventJSON]{Data: listOf(evs, toEventJSON)})
}

// ---- domains ----

func (h *handler) listDomains(w http.ResponseWriter, r *http.Request, k *store.Key) {
	ds, err := h.Account.Domains(r.Context(), k)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, listJSON[domainJSON]{Data: listOf(ds, toDomainJSON)})
}

func (h *handler) createDomain(w http.ResponseWriter, r *http.Request, k *store.Key) {
	var req struct {
		Name string `json:"name"`
	}
	if err := h.decode(w, r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	d, err := h.Account.AddDomain(r.Context(), k, req.Name)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, toDomainJSON(d))
}

func (h *handler) getDomain(w http.ResponseWriter, r *http.Request, k *store.Key) {
	d, err := h.Account.Domain(r.Context(), k, r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toDomainJSON(d))
}

func (h *handler) verifyDomain(w http.ResponseWriter, r *http.Request, k *store.Key) {
	d, err := h.Account.VerifyDomain(r.Context(), k, r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toDomainJSON(d))
}

func (h *handler) deleteDomain(w http.ResponseWriter, r *http.Request, k *store.Key) {
	if err := h.Account.DeleteDomain(r.Context(), k, r.PathValue("id")); err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, deletedJSON{ID: r.PathValue("id"), Deleted: true})
}

// ---- API keys ----

func (h *handler) listKeys(w http.ResponseWriter, r *http.Request, k *store.Key) {
	ks, err := h.Account.Keys(r.Context(), k)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, listJSON[keyJSON]{Data: listOf(ks, toKeyJSON)})
}

func (h *handler) createKey(w http.ResponseWriter, r *http.Request, k *store.Key) {
	var req struct {
		Name       string `json:"name"`
		Mode       string `json:"mode"`
		Permission string `json:"permission"`
		DomainID   string `json:"domainId"`
	}
	if err := h.decode(w, r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	nk, secret, err := h.Account.CreateKey(r.Context(), k, account.KeyRequest{Name: req.Name, Mode: req.Mode,
		Permission: req.Permission, DomainID: req.DomainID})
	if err != nil {
		writeError(w, r, err)
		return
	}
	// The key itself is in this response only: it is stored hashed.
	writeJSON(w, http.StatusCreated, createdKeyJSON{ID: nk.ID, Name: nk.Name, Mode: nk.Mode,
		Permission: nk.Permission, DomainID: nk.DomainID, CreatedAt: nk.CreatedAt, Key: secret})
}

func (h *handler) deleteKey(w http.ResponseWriter, r *http.Request, k *store.Key) {
	if err := h.Account.DeleteKey(r.Context(), k, r.PathValue("id")); err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, deletedJSON{ID: r.PathValue("id"), Deleted: true})
}

// usageJSON is GET /v1/usage: this month's emails against the limit.
type usageJSON struct {
	Month     string `json:"month"`
	Used      int64  `json:"used"`
	Limit     *int64 `json:"limit"`     // null: no limit
	Remaining *int64 `json:"remaining"` // null: no limit
}

func (h *handler) getUsage(w http.ResponseWriter, r *http.Request, k *store.Key) {
	u, err := h.Account.Usage(r.Context(), k)
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := usageJSON{Month: u.Month, Used: u.Used}
	if u.Limit > 0 {
		remaining := max(u.Limit-u.Used, 0)
		out.Limit, out.Remaining = &u.Limit, &remaining
	}
	writeJSON(w, http.StatusOK, out)
}
