package api

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/pigeonpost/pigeonpost/pipeline"
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
	From     string            `json:"from"`
	To       stringList        `json:"to"`
	Cc       stringList        `json:"cc"`
	Bcc      stringList        `json:"bcc"`
	ReplyTo  stringList        `json:"replyTo"`
	Subject  string            `json:"subject"`
	HTML     string            `json:"html"`
	Text     string            `json:"text"`
	Tags     []string          `json:"tags"`
	Metadata map[string]string `json:"metadata"`
	Headers  map[string]string `json:"headers"`
	Tracking *struct {
		Opens  bool `json:"opens"`
		Clicks bool `json:"clicks"`
	} `json:"tracking"`
}

type sendResponse struct {
	ID         string   `json:"id"`
	Status     string   `json:"status"`
	Suppressed []string `json:"suppressed"`
	Warnings   []string `json:"warnings,omitempty"`
}

func (h *handler) sendEmail(w http.ResponseWriter, r *http.Request, k *store.Key) {
	var req sendRequest
	if err := h.decode(w, r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	composed, err := pipeline.ComposeMessage(pipeline.Compose{
		From: req.From, To: req.To, Cc: req.Cc, Bcc: req.Bcc, ReplyTo: req.ReplyTo,
		Subject: req.Subject, HTML: req.HTML, Text: req.Text, Headers: req.Headers,
	}, h.opt.Now())
	if err != nil {
		writeError(w, r, err)
		return
	}
	sub := pipeline.Submission{
		Key: k, Source: "api", EnvelopeFrom: composed.EnvelopeFrom, Recipients: composed.Recipients,
		Message: composed.Message, Tags: req.Tags, Metadata: req.Metadata, Tracking: &pipeline.Tracking{},
	}
	if req.Tracking != nil {
		sub.Tracking = &pipeline.Tracking{Opens: req.Tracking.Opens, Clicks: req.Tracking.Clicks}
	}
	receipt, err := h.svc.Submit(r.Context(), sub)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sendResponse{
		ID: receipt.IDs[0], Status: receipt.Status, Suppressed: nonNil(receipt.Suppressed), Warnings: receipt.Warnings,
	})
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
	Status      string            `json:"status"`
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
	Events      string            `json:"events"`
}

func toEmailJSON(e *store.Email) emailJSON {
	return emailJSON{
		ID: e.ID, Status: e.Status, FromAddress: e.FromAddress, ToAddress: e.ToAddress, Subject: e.Subject,
		Tags: nonNil(e.Tags), Metadata: e.Metadata, MessageID: e.MessageID, TestMode: e.Mode == store.ModeTest,
		Attempts: e.Attempts, LastError: e.LastError, CreatedAt: e.CreatedAt, SentAt: e.SentAt,
		DeliveredAt: e.DeliveredAt, BouncedAt: e.BouncedAt, FailedAt: e.FailedAt,
		OpenedAt: e.OpenedAt, ClickedAt: e.ClickedAt, Events: "/v1/emails/" + e.ID + "/events",
	}
}

func (h *handler) getEmail(w http.ResponseWriter, r *http.Request, k *store.Key) {
	e, err := h.svc.Email(r.Context(), k, r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toEmailJSON(e))
}

func (h *handler) listEmails(w http.ResponseWriter, r *http.Request, k *store.Key) {
	var before time.Time
	if c := r.URL.Query().Get("before"); c != "" {
		t, err := time.Parse(time.RFC3339Nano, c)
		if err != nil {
			writeError(w, r, pipeline.ErrInvalid("before: must be an RFC 3339 timestamp"))
			return
		}
		before = t
	}
	es, err := h.svc.Emails(r.Context(), k, before, 50)
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := make([]emailJSON, 0, len(es))
	for _, e := range es {
		out = append(out, toEmailJSON(e))
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": out})
}

func (h *handler) getEmailContent(w http.ResponseWriter, r *http.Request, k *store.Key) {
	b, err := h.svc.EmailContent(r.Context(), k, r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "message/rfc822")
	_, _ = w.Write(b)
}

func (h *handler) getEmailEvents(w http.ResponseWriter, r *http.Request, k *store.Key) {
	evs, err := h.svc.EmailEvents(r.Context(), k, r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": evs})
}

// ---- domains ----

func (h *handler) listDomains(w http.ResponseWriter, r *http.Request, k *store.Key) {
	ds, err := h.svc.Domains(r.Context(), k)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": ds})
}

func (h *handler) createDomain(w http.ResponseWriter, r *http.Request, k *store.Key) {
	var req struct {
		Name string `json:"name"`
	}
	if err := h.decode(w, r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	d, err := h.svc.AddDomain(r.Context(), k, req.Name)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, d)
}

func (h *handler) getDomain(w http.ResponseWriter, r *http.Request, k *store.Key) {
	d, err := h.svc.Domain(r.Context(), k, r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (h *handler) verifyDomain(w http.ResponseWriter, r *http.Request, k *store.Key) {
	d, err := h.svc.VerifyDomain(r.Context(), k, r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (h *handler) deleteDomain(w http.ResponseWriter, r *http.Request, k *store.Key) {
	if err := h.svc.DeleteDomain(r.Context(), k, r.PathValue("id")); err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": r.PathValue("id"), "deleted": true})
}

// ---- API keys ----

func (h *handler) listKeys(w http.ResponseWriter, r *http.Request, k *store.Key) {
	ks, err := h.svc.Keys(r.Context(), k)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": ks})
}

func (h *handler) createKey(w http.ResponseWriter, r *http.Request, k *store.Key) {
	var req struct {
		Name       string `json:"name"`
		Mode       string `json:"mode"`
		Permission string `json:"permission"`
	}
	if err := h.decode(w, r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	nk, secret, err := h.svc.CreateKey(r.Context(), k, pipeline.KeyRequest{Name: req.Name, Mode: req.Mode, Permission: req.Permission})
	if err != nil {
		writeError(w, r, err)
		return
	}
	// The key itself is in this response only: it is stored hashed.
	writeJSON(w, http.StatusCreated, createdKey{ID: nk.ID, Name: nk.Name, Mode: nk.Mode,
		Permission: nk.Permission, CreatedAt: nk.CreatedAt, Key: secret})
}

func (h *handler) deleteKey(w http.ResponseWriter, r *http.Request, k *store.Key) {
	if err := h.svc.DeleteKey(r.Context(), k, r.PathValue("id")); err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": r.PathValue("id"), "deleted": true})
}

type createdKey struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	Mode       string    `json:"mode"`
	Permission string    `json:"permission"`
	CreatedAt  time.Time `json:"createdAt"`
	Key        string    `json:"key"`
}
