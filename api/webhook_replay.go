package api

import (
	"net/http"
	"time"

	"github.com/pigeonpost/pigeonpost/pipeline/store"
	"github.com/pigeonpost/pigeonpost/pipeline/webhooks"
)

// replayWebhook is POST /v1/webhooks/{id}/replay: the account's events of a
// window sent to the endpoint again, under their original delivery ids
// (webhooks.Replayer).
func (h *handler) replayWebhook(w http.ResponseWriter, r *http.Request, k *store.Key) {
	var req struct {
		Since  string   `json:"since"`
		Until  string   `json:"until"`
		Events []string `json:"events"`
	}
	if err := h.decode(w, r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	res, err := h.Webhooks.Replay(r.Context(), k, r.PathValue("id"), webhooks.ReplayInput{Since: req.Since, Until: req.Until, Events: req.Events})
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, webhookReplayJSON{ReplayID: res.ID, EndpointID: res.EndpointID, Since: res.Since, Until: res.Until,
		Queued: res.Queued, Pending: res.Pending, Unavailable: res.Unavailable, Truncated: res.Truncated})
}

// redeliverWebhook is POST /v1/webhooks/deliveries/{id}/redeliver: one
// delivery sent again under its id.
func (h *handler) redeliverWebhook(w http.ResponseWriter, r *http.Request, k *store.Key) {
	res, err := h.Webhooks.Redeliver(r.Context(), k, r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, webhookRedeliveryJSON{ID: res.ID, EndpointID: res.EndpointID, Event: res.Event, Status: "queued"})
}

// webhookReplayJSON is the answer to a replay.
type webhookReplayJSON struct {
	ReplayID    string    `json:"replayId"`
	EndpointID  string    `json:"endpointId"`
	Since       time.Time `json:"since"`
	Until       time.Time `json:"until"`
	Queued      int       `json:"queued"`
	Pending     int       `json:"pending"`
	Unavailable int       `json:"unavailable"`
	Truncated   bool      `json:"truncated"`
}

// webhookRedeliveryJSON is the answer to a redelivery.
type webhookRedeliveryJSON struct {
	ID         string `json:"id"`
	EndpointID string `json:"endpointId"`
	Event      string `json:"event"`
	Status     string `json:"status"`
}
