package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/engagement"
)

// pixel is a 43-byte transparent 1×1 GIF.
var pixel = []byte{
	0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
	0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
	0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
}

// trackTimeout bounds how long a tracking hit waits: for a click's link to
// be read, and for room in the recording queue when it is full (the hit is
// then dropped, and the pixel or the redirect answered anyway). Recording
// and webhooks are never waited on.
const trackTimeout = 2 * time.Second

// trackContext bounds a tracking hit by trackTimeout only: a visitor who
// goes away while its hit waits for room still made the hit.
func trackContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(r.Context()), trackTimeout)
}

// visitor is what the request says about who made it. The pipeline uses it
// to classify the hit and stores it only outside privacy mode; nothing here
// logs it.
func visitor(r *http.Request) engagement.Visitor {
	return engagement.Visitor{Method: r.Method, IP: clientIP(r), UserAgent: r.UserAgent(), Referer: r.Referer()}
}

// trackOpen always answers the pixel with no-cache headers, whatever
// happens inside; the open is recorded, after, when the id is known.
func (h *handler) trackOpen(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := trackContext(r)
	defer cancel()
	h.Engagement.RecordOpen(ctx, r.PathValue("emailId"), visitor(r))
	header := w.Header()
	for k, v := range pixelHeaders {
		header[k] = v
	}
	_, _ = w.Write(pixel)
}

// pixelHeaders keep the pixel out of every cache, so that each open reaches
// us. Shared, read-only: the pixel is the hottest path.
var pixelHeaders = http.Header{
	"Content-Type":  {"image/gif"},
	"Cache-Control": {"no-store, no-cache, must-revalidate, private"},
	"Pragma":        {"no-cache"},
	"Expires":       {"0"},
}

// trackClick redirects to the destination the mail held for a valid signed
// id. Unknown or tampered ids get 404: never an open redirect. The url
// query parameter of broadcast links is ignored: the destination is always
// the one stored for the id. Bots get the same redirect as people (a
// misclassified person must still reach the link); their hit is recorded
// as botFiltered.
func (h *handler) trackClick(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := trackContext(r)
	defer cancel()
	dest, err := h.Engagement.ResolveClick(ctx, r.PathValue("trackingId"), visitor(r))
	if err != nil {
		writeError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, dest, http.StatusFound)
}

func (h *handler) healthz(w http.ResponseWriter, r *http.Request) {
	status := healthJSON{Redis: "ok"}
	if err := h.Pipeline.Ready(r.Context()); errors.Is(err, pipeline.ErrStorageFull) {
		status.Redis = "refusing writes"
	} else if err != nil {
		status.Redis = "unreachable"
	}
	if h.opt.Ready != nil {
		status.Problems = h.opt.Ready(r.Context())
	}
	status.Ready = status.Redis == "ok" && len(status.Problems) == 0
	code := http.StatusOK
	if !status.Ready {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, status)
}
