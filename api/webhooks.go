package api

import (
	"net/http"
	"time"

	"github.com/pigeonpost/pigeonpost/pipeline/account"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

func (h *handler) createWebhook(w http.ResponseWriter, r *http.Request, k *store.Key) {
	var req struct {
		URL           string   `json:"url"`
		Events        []string `json:"events"`
		MachineEvents bool     `json:"machineEvents"`
	}
	if err := h.decode(w, r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	wh, err := h.Account.CreateWebhook(r.Context(), k, account.WebhookInput{URL: req.URL, Events: req.Events, MachineEvents: req.MachineEvents})
	if err != nil {
		writeError(w, r, err)
		return
	}
	created := toWebhookJSON(wh)
	created.Secret = wh.Secret
	writeJSON(w, http.StatusCreated, created)
}

func (h *handler) listWebhooks(w http.ResponseWriter, r *http.Request, k *store.Key) {
	ws, err := h.Account.Webhooks(r.Context(), k)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, listJSON[webhookJSON]{Data: listOf(ws, toWebhookJSON)})
}

func (h *handler) deleteWebhook(w http.ResponseWriter, r *http.Request, k *store.Key) {
	if err := h.Account.DeleteWebhook(r.Context(), k, r.PathValue("id")); err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, deletedJSON{ID: r.PathValue("id"), Deleted: true})
}

// listFailedWebhooks is GET /v1/webhooks/failed: deliveries given up after
// retrying for webhooks.max_age, newest first (the last 100).
func (h *handler) listFailedWebhooks(w http.ResponseWriter, r *http.Request, k *store.Key) {
	fs, err := h.Account.FailedWebhooks(r.Context(), k)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, listJSON[failedWebhookJSON]{Data: listOf(fs, toFailedWebhookJSON)})
}

// listWebhookDeliveries is GET /v1/webhooks/{id}/deliveries: the latest
// attempts at the endpoint's deliveries, successes and failures, newest
// first (the last 50, kept a week).
func (h *handler) listWebhookDeliveries(w http.ResponseWriter, r *http.Request, k *store.Key) {
	limit, err := queryLimit(r.URL.Query())
	if err != nil {
		writeError(w, r, err)
		return
	}
	as, err := h.Account.WebhookAttempts(r.Context(), k, r.PathValue("id"), limit)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, listJSON[webhookAttemptJSON]{Data: listOf(as, toWebhookAttemptJSON)})
}

// webhookAttemptJSON is one attempt at a webhook delivery.
type webhookAttemptJSON struct {
	DeliveryID string    `json:"deliveryId"`
	Event      string    `json:"event"`
	Attempt    int       `json:"attempt"`
	At         time.Time `json:"at"`
	Outcome    string    `json:"outcome"`
	HTTPStatus int       `json:"httpStatus"`
	LatencyMs  int64     `json:"latencyMs"`
	Response   string    `json:"response"`
	Body       string    `json:"body,omitempty"`
}

func toWebhookAttemptJSON(a store.WebhookAttempt) webhookAttemptJSON {
	return webhookAttemptJSON{DeliveryID: a.DeliveryID, Event: a.Event, Attempt: a.Attempt, At: a.At, Outcome: a.Outcome,
		HTTPStatus: a.HTTPStatus, LatencyMs: a.LatencyMs, Response: a.Response, Body: a.Body}
}
