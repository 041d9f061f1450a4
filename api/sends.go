package api

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/sends"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// sendMessageJSON is what every recipient of a send shares: the body of
// POST /v1/sends less its recipient, and of POST /v1/sends/batch less its
// recipients.
type sendMessageJSON struct {
	TemplateID  string             `json:"templateId"`
	Subject     string             `json:"subject"`
	From        string             `json:"from"`
	ReplyTo     string             `json:"replyTo"`
	Tags        []string           `json:"tags"`
	Metadata    map[string]string  `json:"metadata"`
	Tracking    *requestedTracking `json:"tracking"`
	ScheduledAt string             `json:"scheduledAt"`
}

func (m sendMessageJSON) toSends() (sends.Message, error) {
	tracking, err := m.Tracking.toPipeline()
	return sends.Message{TemplateID: m.TemplateID, Subject: m.Subject, From: m.From, ReplyTo: m.ReplyTo,
		Tags: m.Tags, Metadata: m.Metadata, ScheduledAt: m.ScheduledAt, Tracking: tracking}, err
}

// sendRecipientJSON is one recipient: an address or a contact id, and its
// personalizations (JSON scalars).
type sendRecipientJSON struct {
	To               string         `json:"to"`
	Personalizations map[string]any `json:"personalizations"`
}

func (r sendRecipientJSON) toSends(field string) (sends.Recipient, error) {
	p, err := scalarValues(field, r.Personalizations)
	return sends.Recipient{To: r.To, Personalizations: p}, err
}

// sendJSON is one send: the answer to POST /v1/sends, an element of a
// batch's answer, and of GET /v1/sends.
type sendJSON struct {
	ID          string       `json:"id,omitempty"`
	To          string       `json:"to"`
	ContactID   string       `json:"contactId,omitempty"`
	Status      store.Status `json:"status"`
	ScheduledAt *time.Time   `json:"scheduledAt,omitempty"`
	Warnings    []string     `json:"warnings,omitempty"`
	Error       *errorJSON   `json:"error,omitempty"`
}

func toSendJSON(s sends.Sent) sendJSON {
	out := sendJSON{ID: s.ID, To: s.To, ContactID: s.ContactID, Status: s.Status, ScheduledAt: s.ScheduledAt, Warnings: s.Warnings}
	if s.Error != nil {
		out.Status, out.Error = "failed", &errorJSON{Code: string(s.Error.Code), Message: s.Error.Message}
	}
	return out
}

// segmentSendJSON answers a send to a segment (202): its sends are made in
// the background, grouped in the batch.
type segmentSendJSON struct {
	ID        string `json:"id"`
	BatchID   string `json:"batchId"`
	SegmentID string `json:"segmentId"`
	Count     int    `json:"count"`
}

// createSend: POST /v1/sends, to one recipient (to) or to a segment
// (segmentId).
func (h *handler) createSend(w http.ResponseWriter, r *http.Request, k *store.Key) {
	var req struct {
		sendMessageJSON
		sendRecipientJSON
		SegmentID string `json:"segmentId"`
	}
	if err := h.decode(w, r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	msg, err := req.sendMessageJSON.toSends()
	if err != nil {
		writeError(w, r, err)
		return
	}
	rcpt, err := req.sendRecipientJSON.toSends("personalizations")
	if err != nil {
		writeError(w, r, err)
		return
	}
	if req.SegmentID != "" {
		if req.To != "" {
			writeError(w, r, pipeline.ErrInvalid.With("to, segmentId: give one of them"))
			return
		}
		sent, err := h.Sends.SendToSegment(r.Context(), k, msg, req.SegmentID, rcpt.Personalizations,
			r.Header.Get(headerIdempotencyKey))
		if err != nil {
			writeError(w, r, err)
			return
		}
		if sent.Replayed {
			w.Header().Set(headerReplayed, "true")
		}
		writeJSON(w, http.StatusAccepted, segmentSendJSON{ID: sent.BatchID, BatchID: sent.BatchID, SegmentID: sent.SegmentID, Count: sent.Count})
		return
	}
	sent, err := h.Sends.Send(r.Context(), k, sends.Request{Message: msg, Recipient: rcpt},
		r.Header.Get(headerIdempotencyKey))
	if err != nil {
		writeError(w, r, err)
		return
	}
	if sent.Replayed {
		w.Header().Set(headerReplayed, "true")
	}
	writeJSON(w, http.StatusOK, toSendJSON(*sent))
}

// sendBatchJSON answers POST /v1/sends/batch: one send per recipient, in
// order, each with its id or its error.
type sendBatchJSON struct {
	BatchID string     `json:"batchId"`
	Data    []sendJSON `json:"data"`
}

// createSendBatch: POST /v1/sends/batch {templateId, ..., recipients:
// [{to, personalizations}]}, up to 1,000.
func (h *handler) createSendBatch(w http.ResponseWriter, r *http.Request, k *store.Key) {
	var req struct {
		sendMessageJSON
		Recipients []json.RawMessage `json:"recipients"`
	}
	if err := h.decode(w, r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	if err := sends.CheckBatchSize(len(req.Recipients)); err != nil {
		writeError(w, r, err)
		return
	}
	// Each recipient is decoded on its own: a wrong type fails it alone,
	// named as recipients[i].field, as a bad address does.
	msg, err := req.sendMessageJSON.toSends()
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := make([]sendJSON, len(req.Recipients))
	b := sends.Batch{Message: msg}
	var index []int // position in out of each of b.Recipients
	var firstErr error
	for i, raw := range req.Recipients {
		field := fmt.Sprintf("recipients[%d]", i)
		var rj sendRecipientJSON
		err := decodeBytes(raw, &rj, field+".")
		var rcpt sends.Recipient
		if err == nil {
			rcpt, err = rj.toSends(field + ".personalizations")
		}
		if err != nil {
			pe := pipeline.AsError(err)
			out[i] = sendJSON{To: rj.To, Status: "failed", Error: &errorJSON{Code: string(pe.Code), Message: pe.Message}}
			firstErr = cmp.Or(firstErr, err)
			continue
		}
		b.Recipients, index = append(b.Recipients, rcpt), append(index, i)
	}
	if len(b.Recipients) == 0 {
		writeError(w, r, firstErr) // nothing to send
		return
	}
	sent, err := h.Sends.SendBatch(r.Context(), k, b, r.Header.Get(headerIdempotencyKey))
	if err != nil {
		writeError(w, r, err)
		return
	}
	if sent.Replayed {
		w.Header().Set(headerReplayed, "true")
	}
	for j, s := range sent.Sends {
		out[index[j]] = toSendJSON(s)
	}
	writeJSON(w, http.StatusOK, sendBatchJSON{BatchID: sent.BatchID, Data: out})
}

// sendRecordJSON is a send as GET /v1/sends and /v1/sends/:id show it: the
// email it is, with what the sends API knows of it.
type sendRecordJSON struct {
	emailJSON
	TemplateID string      `json:"templateId"`
	ContactID  string      `json:"contactId"`
	BatchID    *string     `json:"batchId"`
	EventList  []eventJSON `json:"events,omitempty"`
}

func toSendRecordJSON(e *store.Email) sendRecordJSON {
	out := sendRecordJSON{emailJSON: toEmailJSON(e)}
	out.emailJSON.Events = ""
	if ref := e.Send; ref != nil {
		out.TemplateID, out.ContactID = ref.TemplateID, ref.ContactID
		if ref.BatchID != "" {
			out.BatchID = &ref.BatchID
		}
	}
	return out
}

// listSends: GET /v1/sends?status=&batchId=&templateId=&to=&since=&until=&limit=&cursor=
func (h *handler) listSends(w http.ResponseWriter, r *http.Request, k *store.Key) {
	f, err := emailFilterOf(r.URL.Query())
	if err != nil {
		writeError(w, r, err)
		return
	}
	f.Sends, f.BatchID, f.TemplateID = true, r.URL.Query().Get("batchId"), r.URL.Query().Get("templateId")
	page, err := h.Account.ListEmails(r.Context(), k, f)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toPage(listOf(page.Emails, toSendRecordJSON), page.Next))
}

// getSend: GET /v1/sends/:id, with its events.
func (h *handler) getSend(w http.ResponseWriter, r *http.Request, k *store.Key) {
	e, evs, err := h.Sends.Get(r.Context(), k, r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := toSendRecordJSON(e)
	out.EventList = listOf(evs, toEventJSON)
	writeJSON(w, http.StatusOK, out)
}

// batchStatusJSON is GET /v1/batches/:id: the batch and its sends counted by
// status.
type batchStatusJSON struct {
	ID         string               `json:"id"`
	TemplateID string               `json:"templateId"`
	SegmentID  *string              `json:"segmentId"`
	Total      int                  `json:"total"`
	InProgress bool                 `json:"inProgress"`
	Counts     map[store.Status]int `json:"counts"`
	CreatedAt  time.Time            `json:"createdAt"`
}

func (h *handler) getBatch(w http.ResponseWriter, r *http.Request, k *store.Key) {
	b, err := h.Sends.Batch(r.Context(), k, r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := batchStatusJSON{ID: b.ID, TemplateID: b.TemplateID, Total: b.Total, InProgress: b.FanningOut,
		Counts: b.Counts, CreatedAt: b.CreatedAt}
	if b.SegmentID != "" {
		out.SegmentID = &b.SegmentID
	}
	writeJSON(w, http.StatusOK, out)
}
