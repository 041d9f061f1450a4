package api

import (
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// The operator's API, served on http.admin_listen beside pprof. It takes
// no API key: whoever reaches the listener is the operator, as with
// Caddy's admin endpoint, so the listener belongs on loopback or a
// management network. It does what a tenant's key must not do for itself:
// lift the pause of its sending, set its plan's monthly limit. Accounts
// are named as the CLI names them.

// AdminHandler returns the handler of the operator's API under /admin/v1/.
func AdminHandler(p Parts, opt Options) http.Handler {
	opt.MaxBodyBytes = adminMaxBody
	if opt.Now == nil {
		opt.Now = time.Now
	}
	h := &handler{Parts: p, opt: opt}
	mux := http.NewServeMux()
	for _, rt := range h.adminRoutes() {
		mux.Handle(rt.pattern, rt.handler)
	}
	mux.HandleFunc("/admin/", routeNotFound)
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	return withLogger(opt.Logger, mux)
}

func (h *handler) adminRoutes() []route {
	return []route{
		{"GET /admin/v1/accounts/{name}/reputation", h.operator(h.getReputation)},
		{"POST /admin/v1/accounts/{name}/pause", h.operator(h.adminPause)},
		{"POST /admin/v1/accounts/{name}/resume", h.operator(h.adminResume)},
		{"GET /admin/v1/accounts/{name}/usage", h.operator(h.getUsage)},
		{"PUT /admin/v1/accounts/{name}/monthly-limit", h.operator(h.adminMonthlyLimit)},
		{"GET /admin/v1/destinations", http.HandlerFunc(h.adminDestinations)},
	}
}

// destinationJSON is one destination traffic shaping suspended or limited.
type destinationJSON struct {
	Name           string     `json:"name"` // an MX host, or a provider group
	Suspended      bool       `json:"suspended"`
	SuspendedUntil *time.Time `json:"suspendedUntil,omitempty"`
	Suspensions    int        `json:"suspensions"` // in a row, 0 once it went a while without
	Reason         string     `json:"reason,omitempty"`
	Connections    int        `json:"connections"` // held now, all processes
	Waiting        int        `json:"waiting"`     // emails deferred for it, their next attempt still to come
	LastLimitedAt  time.Time  `json:"lastLimitedAt"`
}

// adminDestinations lists the destinations suspended, limited or
// deferring mail (with the emails waiting for each) in the
// last ?within= (default 1h, at most 168h), the most recent first, at
// most ?limit= (default 100, at most 1000). These are the gateway's,
// over every account: the operator's to see, not a tenant's.
func (h *handler) adminDestinations(w http.ResponseWriter, r *http.Request) {
	within, limit := time.Hour, 100
	q := r.URL.Query()
	if v := q.Get("within"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > 168*time.Hour {
			writeError(w, r, pipeline.ErrInvalid.With("within must be a duration between 1s and 168h"))
			return
		}
		within = d
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, r, pipeline.ErrInvalid.With("limit must be between 1 and 1000"))
			return
		}
		limit = n
	}
	out := []destinationJSON{}
	if h.Destinations != nil {
		list, err := h.Destinations.ListDestinations(r.Context(), h.opt.Now(), within, limit)
		if err != nil {
			writeError(w, r, err)
			return
		}
		for _, d := range list {
			out = append(out, destinationJSON{Name: d.Name, Suspended: d.SuspendedUntil != nil, SuspendedUntil: d.SuspendedUntil,
				Suspensions: d.Level, Reason: d.Reason, Connections: d.Connections, Waiting: d.Waiting, LastLimitedAt: d.LastLimited})
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"destinations": out})
}

// adminMaxBody bounds the operator's requests: small JSON objects.
const adminMaxBody = 1 << 20

// AdminRoutes lists the pattern of every route AdminHandler registers.
func AdminRoutes() []string {
	var out []string
	for _, rt := range (&handler{}).adminRoutes() {
		out = append(out, rt.pattern)
	}
	return out
}

// operator passes next the account named in the path, as a full key of it.
func (h *handler) operator(next func(http.ResponseWriter, *http.Request, *store.Key)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := h.Account.AccountID(r.Context(), r.PathValue("name"))
		if err != nil {
			writeError(w, r, err)
			return
		}
		next(w, r, &store.Key{AccountID: id, Permission: store.PermissionFull, Mode: store.ModeLive})
	}
}

// pauseChangeJSON answers a pause or a resume: the state after it, and
// whether it changed anything.
type pauseChangeJSON struct {
	Changed bool `json:"changed"`
	reputationJSON
}

func (h *handler) adminPause(w http.ResponseWriter, r *http.Request, k *store.Key) {
	changed, err := h.Reputation.Pause(r.Context(), k.AccountID)
	h.writePauseChange(w, r, k, changed, err)
}

func (h *handler) adminResume(w http.ResponseWriter, r *http.Request, k *store.Key) {
	changed, err := h.Reputation.Resume(r.Context(), k.AccountID)
	h.writePauseChange(w, r, k, changed, err)
}

func (h *handler) writePauseChange(w http.ResponseWriter, r *http.Request, k *store.Key, changed bool, err error) {
	if err != nil {
		writeError(w, r, err)
		return
	}
	s, err := h.Reputation.State(r.Context(), k.AccountID)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, pauseChangeJSON{Changed: changed, reputationJSON: toReputationJSON(s)})
}

type monthlyLimitRequest struct {
	MonthlyLimit *int64 `json:"monthlyLimit"` // 0: limits.monthly_emails
}

func (h *handler) adminMonthlyLimit(w http.ResponseWriter, r *http.Request, k *store.Key) {
	var req monthlyLimitRequest
	if err := h.decode(w, r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	if req.MonthlyLimit == nil {
		writeError(w, r, pipeline.ErrInvalid.With("monthlyLimit: required (0 returns the account to limits.monthly_emails)"))
		return
	}
	if err := h.Account.SetMonthlyLimit(r.Context(), k.AccountID, *req.MonthlyLimit); err != nil {
		writeError(w, r, err)
		return
	}
	h.getUsage(w, r, k)
}
