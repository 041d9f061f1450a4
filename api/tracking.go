package api

import (
	"net/http"

	"github.com/pigeonpost/pigeonpost/pipeline"
)

// pixel is a 43-byte transparent 1×1 GIF.
var pixel = []byte{
	0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
	0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
	0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
}

func visitor(r *http.Request) pipeline.Visitor {
	return pipeline.Visitor{IP: clientIP(r), UserAgent: r.UserAgent(), Referer: r.Referer()}
}

// trackOpen always answers the pixel with no-cache headers, whatever
// happens inside; the open is recorded when the id is known.
func (h *handler) trackOpen(w http.ResponseWriter, r *http.Request) {
	if err := h.svc.RecordOpen(r.Context(), r.PathValue("emailId"), visitor(r)); err != nil {
		h.opt.Logger.Warn("recording open failed", "err", err)
	}
	w.Header().Set("Content-Type", "image/gif")
	w.Header().Set("Cache-Control", "no-store, no-cache, must-revalidate, private")
	w.Header().Set("Pragma", "no-cache")
	w.Header().Set("Expires", "0")
	_, _ = w.Write(pixel)
}

// trackClick redirects to the destination the mail held for a valid signed
// id. Unknown or tampered ids get 404: never an open redirect.
func (h *handler) trackClick(w http.ResponseWriter, r *http.Request) {
	dest, err := h.svc.ResolveClick(r.Context(), r.PathValue("trackingId"), visitor(r))
	if err != nil {
		writeError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, dest, http.StatusFound)
}

func (h *handler) healthz(w http.ResponseWriter, r *http.Request) {
	status := map[string]any{"redis": "ok"}
	code := http.StatusOK
	if err := h.svc.Ping(r.Context()); err != nil {
		status["redis"] = "unreachable"
		code = http.StatusServiceUnavailable
	}
	if h.opt.Ready != nil {
		if problems := h.opt.Ready(r.Context()); len(problems) > 0 {
			status["problems"] = problems
			code = http.StatusServiceUnavailable
		}
	}
	status["ready"] = code == http.StatusOK
	writeJSON(w, code, status)
}
