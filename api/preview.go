package api

import (
	"mime"
	"net/http"
	"unicode/utf8"

	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
	"github.com/pigeonpost/pigeonpost/tracking"
)

// previewPattern is the route of previews (see routes): it takes no
// Idempotency-Key (idempotency.go), a preview storing nothing that a
// repeat could find.
const previewPattern = "POST /v1/emails/preview"

// previewJSON answers POST /v1/emails/preview: one email as it would go out.
type previewJSON struct {
	MIME     string            `json:"mime"`
	From     string            `json:"from"`
	To       string            `json:"to"`
	Subject  string            `json:"subject"`
	Size     int               `json:"size"` // of mime, in bytes
	Tracking previewTracking   `json:"tracking"`
	Links    []previewLinkJSON `json:"links"`
	Warnings []string          `json:"warnings"`
}

type previewTracking struct {
	Opens  bool `json:"opens"`
	Clicks bool `json:"clicks"`
}

// previewLinkJSON is a link of the preview: tracked, with the index its
// clicks are recorded with (linkIndex), or not, with the reason.
type previewLinkJSON struct {
	Index   *int    `json:"index"`
	URL     string  `json:"url"`
	Tracked bool    `json:"tracked"`
	Reason  *string `json:"reason"`
}

// warnNotUTF8 is the warning of a message JSON cannot carry as it is.
const warnNotUTF8 = "the message holds bytes that are not UTF-8 (an 8bit part in another charset): mime shows each as U+FFFD"

func toPreviewJSON(p *pipeline.Preview) previewJSON {
	out := previewJSON{
		MIME: string(p.Message), From: p.From, To: p.To, Subject: p.Subject, Size: len(p.Message),
		Tracking: previewTracking{Opens: p.Tracking.Opens, Clicks: p.Tracking.Clicks},
		Links: listOf(p.Links, func(l tracking.Link) previewLinkJSON {
			j := previewLinkJSON{URL: l.URL, Tracked: l.Reason == ""}
			if j.Tracked {
				j.Index = &l.Index
			} else {
				j.Reason = &l.Reason
			}
			return j
		}),
		Warnings: nonNil(p.Warnings),
	}
	if !utf8.Valid(p.Message) {
		out.Warnings = append(out.Warnings, warnNotUTF8)
	}
	return out
}

// previewEmail is POST /v1/emails/preview[?to=]: the body of a send
// (JSON), or a message as an SMTP client sends it (Content-Type:
// message/rfc822), answered with its email to its first recipient (or to
// to) as it would go out. Nothing is stored, sent or charged.
func (h *handler) previewEmail(w http.ResponseWriter, r *http.Request, k *store.Key) {
	p, err := h.preview(w, r, k)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toPreviewJSON(p))
}

func (h *handler) preview(w http.ResponseWriter, r *http.Request, k *store.Key) (*pipeline.Preview, error) {
	to := r.URL.Query().Get("to")
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "message/rfc822" {
		body, err := h.readBody(w, r)
		if err != nil {
			return nil, err
		}
		return h.Pipeline.PreviewMessage(r.Context(), k, body, to)
	}
	var req sendRequest
	if err := h.decode(w, r, &req); err != nil {
		return nil, err
	}
	sr, err := req.toPipeline()
	if err != nil {
		return nil, err
	}
	return h.Compose.Preview(r.Context(), k, sr, to)
}
