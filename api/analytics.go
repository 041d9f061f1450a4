package api

import (
	"net/http"

	"github.com/pigeonpost/pigeonpost/pipeline/engagement"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// getAnalytics is GET /v1/analytics?range=30d (or from=&to=, dates) with an
// optional domain or tag.
func (h *handler) getAnalytics(w http.ResponseWriter, r *http.Request, k *store.Key) {
	q := r.URL.Query()
	a, err := h.Engagement.Analytics(r.Context(), k, engagement.AnalyticsQuery{
		Range: q.Get("range"), From: q.Get("from"), To: q.Get("to"), Domain: q.Get("domain"), Tag: q.Get("tag"),
	})
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toAnalyticsJSON(a))
}
