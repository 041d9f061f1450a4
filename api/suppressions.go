package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/account"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

type suppressionJSON struct {
	Email     string    `json:"email"`
	Reason    string    `json:"reason"`
	CreatedAt time.Time `json:"createdAt"`
}

func toSuppressionJSON(s store.Suppression) suppressionJSON {
	return suppressionJSON{Email: s.Address, Reason: s.Reason, CreatedAt: s.CreatedAt}
}

func (h *handler) listSuppressions(w http.ResponseWriter, r *http.Request, k *store.Key) {
	limit := 0
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeError(w, r, pipeline.ErrInvalid.With("limit: must be between 1 and 1000"))
			return
		}
		limit = n
	}
	q := r.URL.Query()
	list, next, err := h.Account.Suppressions(r.Context(), k, account.SuppressionQuery{Cursor: q.Get("cursor"), Limit: limit,
		Contains: q.Get("q"), Prefix: q.Get("prefix")})
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := make([]suppressionJSON, 0, len(list))
	for _, s := range list {
		out = append(out, toSuppressionJSON(s))
	}
	writeJSON(w, http.StatusOK, toPage(out, next))
}

func (h *handler) createSuppression(w http.ResponseWriter, r *http.Request, k *store.Key) {
	var req struct {
		Email  string `json:"email"`
		Reason string `json:"reason"`
	}
	if err := h.decode(w, r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	sp, err := h.Account.Suppress(r.Context(), k, req.Email, req.Reason)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, toSuppressionJSON(*sp))
}

func (h *handler) deleteSuppression(w http.ResponseWriter, r *http.Request, k *store.Key) {
	if err := h.Account.Unsuppress(r.Context(), k, r.PathValue("email")); err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, deletedAddressJSON{Email: r.PathValue("email"), Deleted: true})
}
