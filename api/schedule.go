package api

import (
	"net/http"

	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// cancelSchedule: DELETE /v1/emails/:id/schedule → {id, status: "cancelled"},
// 409 once the email is being sent or was never scheduled.
func (h *handler) cancelSchedule(w http.ResponseWriter, r *http.Request, k *store.Key) {
	e, err := h.Account.CancelSchedule(r.Context(), k, r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, cancelledJSON{ID: e.ID, Status: e.Status, CancelledAt: e.CancelledAt})
}
