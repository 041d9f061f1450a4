package api

import (
	"net/http"
	"time"

	"github.com/pigeonpost/pigeonpost/pipeline/compose"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// templateJSON is a template as GET /v1/templates/:id shows it; the list
// leaves out html and text.
type templateJSON struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Subject   string    `json:"subject"`
	HTML      *string   `json:"html,omitempty"`
	Text      *string   `json:"text,omitempty"`
	From      string    `json:"from,omitempty"`
	ReplyTo   string    `json:"replyTo,omitempty"`
	Variables []string  `json:"variables"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

func toTemplateJSON(t *store.Template, full bool) templateJSON {
	out := templateJSON{ID: t.ID, Name: t.Name, Subject: t.Subject, From: t.From, ReplyTo: t.ReplyTo, Variables: compose.TemplateVariables(t),
		CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt}
	if full {
		out.HTML, out.Text = &t.HTML, &t.Text
	}
	return out
}

// templateRequest is the body of create and PATCH: absent fields are not
// changed by PATCH.
type templateRequest struct {
	Name    *string `json:"name"`
	Subject *string `json:"subject"`
	HTML    *string `json:"html"`
	Text    *string `json:"text"`
	From    *string `json:"from"`
	ReplyTo *string `json:"replyTo"`
}

func (req templateRequest) fields() compose.TemplateFields {
	return compose.TemplateFields{Name: req.Name, Subject: req.Subject, HTML: req.HTML, Text: req.Text, From: req.From, ReplyTo: req.ReplyTo}
}

func (h *handler) listTemplates(w http.ResponseWriter, r *http.Request, k *store.Key) {
	limit, err := queryLimit(r.URL.Query())
	if err != nil {
		writeError(w, r, err)
		return
	}
	ts, next, err := h.Compose.Templates(r.Context(), k, r.URL.Query().Get("cursor"), limit)
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := make([]templateJSON, 0, len(ts))
	for _, t := range ts {
		out = append(out, toTemplateJSON(t, false))
	}
	writeJSON(w, http.StatusOK, toPage(out, next))
}

func (h *handler) createTemplate(w http.ResponseWriter, r *http.Request, k *store.Key) {
	var req templateRequest
	if err := h.decode(w, r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	t, err := h.Compose.CreateTemplate(r.Context(), k, req.fields())
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, toTemplateJSON(t, true))
}

func (h *handler) getTemplate(w http.ResponseWriter, r *http.Request, k *store.Key) {
	t, err := h.Compose.Template(r.Context(), k, r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toTemplateJSON(t, true))
}

func (h *handler) updateTemplate(w http.ResponseWriter, r *http.Request, k *store.Key) {
	var req templateRequest
	if err := h.decode(w, r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	t, err := h.Compose.UpdateTemplate(r.Context(), k, r.PathValue("id"), req.fields())
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toTemplateJSON(t, true))
}

func (h *handler) deleteTemplate(w http.ResponseWriter, r *http.Request, k *store.Key) {
	if err := h.Compose.DeleteTemplate(r.Context(), k, r.PathValue("id")); err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, deletedJSON{ID: r.PathValue("id"), Deleted: true})
}
