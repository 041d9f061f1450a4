package api

import (
	"errors"
	"html/template"
	"net/http"
	"strings"

	"github.com/pigeonpost/pigeonpost/pipeline"
)

// The unsubscribe link of a send's List-Unsubscribe header. A mail client
// that speaks RFC 8058 POSTs "List-Unsubscribe=One-Click" to it; a person
// who opens it gets a page with a button that POSTs the same form. The GET
// itself changes nothing: link scanners and previews fetch links, and
// must not unsubscribe anyone (RFC 8058 §1).

// unsubscribePageHTML is the landing page (GET) and the page after the
// form (POST from a browser).
var unsubscribePageHTML = template.Must(template.New("unsubscribe").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>Unsubscribe</title>
<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#222}
button{font-size:1rem;padding:.6rem 1.2rem;cursor:pointer}</style></head><body>
{{if .Invalid}}<h1>This link is not valid</h1><p>Use the unsubscribe link of the email itself, whole.</p>
{{else if .Done}}<h1>You are unsubscribed</h1><p>You will not receive these emails any more.</p>
{{else}}<h1>Unsubscribe</h1><p>Stop receiving these emails?</p>
<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click"><button type="submit">Unsubscribe</button></form>
{{end}}</body></html>
`))

// maxUnsubscribeBody bounds the form of a one-click POST.
const maxUnsubscribeBody = 4 << 10

// unsubscribePage: GET /v1/unsubscribe/:id, the landing page; a 404 page
// for an id that does not verify (a person reads it, not a program).
func (h *handler) unsubscribePage(w http.ResponseWriter, r *http.Request) {
	if !h.Sends.ValidUnsubscribeID(r.PathValue("id")) {
		writeUnsubscribePage(w, http.StatusNotFound, unsubscribeState{Invalid: true})
		return
	}
	writeUnsubscribePage(w, http.StatusOK, unsubscribeState{})
}

// unsubscribe: POST /v1/unsubscribe/:id, the one-click POST of RFC 8058
// (answered 200 with no body) or the landing page's form (answered with
// the page). Either marks the contact unsubscribed.
func (h *handler) unsubscribe(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxUnsubscribeBody)
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, r, pipeline.PayloadTooLarge(maxUnsubscribeBody))
			return
		}
		writeError(w, r, pipeline.ErrInvalid.With("the body is not a form: send List-Unsubscribe=One-Click"))
		return
	}
	if r.PostForm.Get("List-Unsubscribe") != "One-Click" {
		writeError(w, r, pipeline.ErrInvalid.With("List-Unsubscribe: must be One-Click (RFC 8058)"))
		return
	}
	if err := h.Sends.Unsubscribe(r.Context(), r.PathValue("id")); err != nil {
		writeError(w, r, err)
		return
	}
	if acceptsHTML(r) {
		writeUnsubscribePage(w, http.StatusOK, unsubscribeState{Done: true})
		return
	}
	w.WriteHeader(http.StatusOK)
}

// acceptsHTML reports a browser (the landing page's form) rather than a
// mail client's one-click POST.
func acceptsHTML(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

// unsubscribeState is what the page says.
type unsubscribeState struct{ Done, Invalid bool }

func writeUnsubscribePage(w http.ResponseWriter, status int, st unsubscribeState) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
	w.Header().Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	_ = unsubscribePageHTML.Execute(w, st)
}
