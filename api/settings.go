package api

import (
	"net/http"

	"github.com/pigeonpost/pigeonpost/pipeline/engagement"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// ---- tracking settings: /v1/tracking/defaults, /v1/domains/:id/tracking ----

func (h *handler) getTrackingDefaults(w http.ResponseWriter, r *http.Request, k *store.Key) {
	ts, err := h.Engagement.TrackingDefaults(r.Context(), k)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toTrackingDefaultsJSON(ts))
}

func (h *handler) patchTrackingDefaults(w http.ResponseWriter, r *http.Request, k *store.Key) {
	var req struct {
		TrackingEnabled     *bool   `json:"trackingEnabled"`
		PrivacyMode         *bool   `json:"privacyMode"`
		WebhookOnEveryOpen  *bool   `json:"webhookOnEveryOpen"`
		WebhookOnEveryClick *bool   `json:"webhookOnEveryClick"`
		PixelPlacement      *string `json:"pixelPlacement"`
	}
	if err := h.decode(w, r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	ts, err := h.Engagement.UpdateTrackingDefaults(r.Context(), k, engagement.TrackingDefaultsPatch{
		TrackingEnabled: req.TrackingEnabled, PrivacyMode: req.PrivacyMode,
		WebhookOnEveryOpen: req.WebhookOnEveryOpen, WebhookOnEveryClick: req.WebhookOnEveryClick,
		PixelPlacement: req.PixelPlacement,
	})
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toTrackingDefaultsJSON(ts))
}

func (h *handler) getDomainTracking(w http.ResponseWriter, r *http.Request, k *store.Key) {
	dt, err := h.Engagement.DomainTracking(r.Context(), k, r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toDomainTrackingJSON(dt))
}

func (h *handler) putDomainTracking(w http.ResponseWriter, r *http.Request, k *store.Key) {
	var req struct {
		OpenTracking  *bool `json:"openTracking"`
		ClickTracking *bool `json:"clickTracking"`
		PrivacyMode   *bool `json:"privacyMode"`
	}
	if err := h.decode(w, r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	dt, err := h.Engagement.PutDomainTracking(r.Context(), k, r.PathValue("id"), engagement.DomainTrackingInput{
		OpenTracking: req.OpenTracking, ClickTracking: req.ClickTracking, PrivacyMode: req.PrivacyMode,
	})
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toDomainTrackingJSON(dt))
}

func (h *handler) setTrackingDomain(w http.ResponseWriter, r *http.Request, k *store.Key) {
	var req struct {
		TrackingDomain string `json:"trackingDomain"`
	}
	if err := h.decode(w, r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	dt, err := h.Engagement.SetTrackingDomain(r.Context(), k, r.PathValue("id"), req.TrackingDomain)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toDomainTrackingJSON(dt))
}

func (h *handler) verifyTrackingDomain(w http.ResponseWriter, r *http.Request, k *store.Key) {
	dt, err := h.Engagement.VerifyTrackingDomain(r.Context(), k, r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toDomainTrackingJSON(dt))
}
