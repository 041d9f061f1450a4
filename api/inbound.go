package api

import (
	"bytes"
	"net/http"

	"github.com/pigeonpost/pigeonpost/pipeline/feedback"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// reportOutcomeJSON answers POST /v1/inbound/fbl: what the report did.
type reportOutcomeJSON struct {
	EmailID    string        `json:"emailId"`
	Kind       feedback.Kind `json:"kind"`   // complaint or delivery-status
	Result     string        `json:"result"` // complained, bounced, failed or ignored
	Reason     string        `json:"reason,omitempty"`
	Suppressed bool          `json:"suppressed"`
}

// receiveReport is POST /v1/inbound/fbl (and /v1/inbound/bounces): the
// body is a report as mail (raw MIME), an ARF complaint or a DSN, as a
// feedback loop or a remote server sent it.
func (h *handler) receiveReport(w http.ResponseWriter, r *http.Request, k *store.Key) {
	body, err := h.readBody(w, r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	o, err := h.Feedback.ReceiveFor(r.Context(), k, bytes.NewReader(body))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, reportOutcomeJSON{EmailID: o.EmailID, Kind: o.Kind, Result: o.Result, Reason: o.Reason, Suppressed: o.Suppressed})
}
