package api

import (
	"net/http"
	"time"

	"github.com/pigeonpost/pigeonpost/pipeline/reputation"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// reputationJSON is GET /v1/reputation: whether the account may send, why
// not, and the figures the guard reads.
type reputationJSON struct {
	Status string     `json:"status"` // active or paused
	Pause  *pauseJSON `json:"pause"`  // null while active
	Window windowJSON `json:"window"` // the figures now
	Held   int64      `json:"held"`   // emails held back from delivery by the pause
	Limits limitsJSON `json:"limits"`
}

type pauseJSON struct {
	Reason   string      `json:"reason"` // bounce_rate, complaint_rate or manual
	PausedAt time.Time   `json:"pausedAt"`
	Window   *windowJSON `json:"window"` // the figures that caused it; null for a manual pause
}

type windowJSON struct {
	Hours         int     `json:"hours"`
	Sends         int64   `json:"sends"`
	Delivered     int64   `json:"delivered"`
	Bounced       int64   `json:"bounced"`
	Complained    int64   `json:"complained"`
	BounceRate    float64 `json:"bounceRate"`
	ComplaintRate float64 `json:"complaintRate"`
}

type limitsJSON struct {
	AutoPause        bool    `json:"autoPause"`
	MinVolume        int64   `json:"minVolume"`
	MaxBounceRate    float64 `json:"maxBounceRate"`
	MaxComplaintRate float64 `json:"maxComplaintRate"`
}

func toWindowJSON(w reputation.Window) windowJSON {
	return windowJSON{Hours: w.Hours, Sends: w.Sends, Delivered: w.Figures.Delivered, Bounced: w.Figures.Bounced,
		Complained: w.Figures.Complained, BounceRate: w.BounceRate, ComplaintRate: w.ComplaintRate}
}

func toReputationJSON(s *reputation.State) reputationJSON {
	out := reputationJSON{Status: "active", Window: toWindowJSON(s.Window), Held: s.Held, Limits: limitsJSON{
		AutoPause: s.Limits.AutoPause, MinVolume: s.Limits.MinVolume,
		MaxBounceRate: s.Limits.MaxBounceRate, MaxComplaintRate: s.Limits.MaxComplaintRate,
	}}
	if p := s.Pause; p != nil {
		out.Status = "paused"
		out.Pause = &pauseJSON{Reason: p.Reason, PausedAt: p.At}
		if p.Reason != reputation.ReasonManual {
			w := toWindowJSON(reputation.NewWindow(p.Figures, p.Hours))
			out.Pause.Window = &w
		}
	}
	return out
}

// getReputation is GET /v1/reputation. Any key of the account may read
// it; lifting a pause is the operator's (the admin API, the CLI).
func (h *handler) getReputation(w http.ResponseWriter, r *http.Request, k *store.Key) {
	s, err := h.Reputation.State(r.Context(), k.AccountID)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toReputationJSON(s))
}
