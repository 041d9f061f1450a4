package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/account"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// listEvents is GET /v1/events?type=&emailId=&since=&cursor=&limit=.
func (h *handler) listEvents(w http.ResponseWriter, r *http.Request, k *store.Key) {
	q := r.URL.Query()
	f := account.EventFilter{Type: q.Get("type"), EmailID: q.Get("emailId"), Cursor: q.Get("cursor")}
	if s := q.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			writeError(w, r, pipeline.ErrInvalid.With("since: must be an RFC 3339 timestamp"))
			return
		}
		f.Since = t
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			writeError(w, r, pipeline.ErrInvalid.With("limit: must be a number"))
			return
		}
		f.Limit = n
	}
	page, err := h.Account.ListEvents(r.Context(), k, f)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toEventPage(page))
}
