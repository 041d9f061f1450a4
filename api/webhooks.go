package api

import (
	"net/http"
	"time"

	"github.com/pigeonpost/pigeonpost/pipeline/account"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// webhookJSON is an endpoint as the API shows it: the secret only in the
// answer to its creation.
type webhookJSON struct {
	ID        string    `json:"id"`
	URL       string    `json:"url"`
	Events    []string  `json:"events"`
	CreatedAt time.Time `json:"createdAt"`
	Secret    string    `json:"secret,omitempty"`
}

func (h *handler) createWebhook(w http.ResponseWriter, r *http.Request, k *store.Key) {
	var req struct {
		URL    string   `json:"url"`
		Events []string `json:"events"`
	}
	if err := h.decode(w, r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	wh, err := h.Account.CreateWebhook(r.Context(), k, account.WebhookInput{URL: req.URL, Events: req.Events})
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, webhookJSON{ID: wh.ID, URL: wh.URL, Events: wh.Events, CreatedAt: wh.CreatedAt, Secret: wh.Secret})
}

func (h *handler) listWebhooks(w http.ResponseWriter, r *http.Request, k *store.Key) {
	ws, err := h.Account.Webhooks(r.Context(), k)
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := make([]webhookJSON, 0, len(ws))
	for _, wh := range ws {
		out = append(out, webhookJSON{ID: wh.ID, URL: wh.URL, Events: wh.Events, CreatedAt: wh.CreatedAt})
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": out})
}

func (h *handler) deleteWebhook(w http.ResponseWriter, r *http.Request, k *store.Key) {
	if err := h.Account.DeleteWebhook(r.Context(), k, r.PathValue("id")); err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": r.PathValue("id"), "deleted": true})
}

// listFailedWebhooks is GET /v1/webhooks/failed: deliveries given up after
// retrying for webhooks.max_age, newest first (the last 100).
func (h *handler) listFailedWebhooks(w http.ResponseWriter, r *http.Request, k *store.Key) {
	fs, err := h.Account.FailedWebhooks(r.Context(), k)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": fs})
}
