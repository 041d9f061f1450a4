package api

import (
	"errors"
	"mime"
	"net/http"
	"time"

	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/contacts"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// DefaultMaxImportBytes is the body limit of POST /v1/contacts/import when
// Options.MaxImportBytes is 0: about 300,000 contacts of CSV.
const DefaultMaxImportBytes = 64 << 20

// contactJSON is a contact as the API shows it.
type contactJSON struct {
	ID        string            `json:"id"`
	Email     string            `json:"email"`
	FirstName string            `json:"firstName"`
	LastName  string            `json:"lastName"`
	Company   string            `json:"company"`
	Status    contacts.Status   `json:"status"`
	Tags      []string          `json:"tags"`
	Fields    map[string]string `json:"fields"`
	CreatedAt time.Time         `json:"createdAt"`
	UpdatedAt time.Time         `json:"updatedAt"`
}

func toContactJSON(c *contacts.Contact) contactJSON {
	out := contactJSON{ID: c.ID, Email: c.Email, FirstName: c.FirstName, LastName: c.LastName, Company: c.Company,
		Status: c.Status, Tags: c.Tags, Fields: c.Fields, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
	if out.Tags == nil {
		out.Tags = []string{}
	}
	if out.Fields == nil {
		out.Fields = map[string]string{}
	}
	return out
}

// contactRequest is the body of create and PATCH: absent fields are not
// changed by PATCH; fields are merged into the custom fields, null removing
// one; tags replace the contact's.
type contactRequest struct {
	Email     *string            `json:"email"`
	FirstName *string            `json:"firstName"`
	LastName  *string            `json:"lastName"`
	Company   *string            `json:"company"`
	Status    *contacts.Status   `json:"status"`
	Tags      *[]string          `json:"tags"`
	Fields    map[string]*string `json:"fields"`
}

func (req contactRequest) fields() contacts.Fields {
	return contacts.Fields{Email: req.Email, FirstName: req.FirstName, LastName: req.LastName, Company: req.Company,
		Status: req.Status, Tags: req.Tags, Fields: req.Fields}
}

// importJSON answers POST /v1/contacts/import.
type importJSON struct {
	Created int            `json:"created"`
	Updated int            `json:"updated"`
	Failed  int            `json:"failed"`
	Errors  []rowErrorJSON `json:"errors"`
}

type rowErrorJSON struct {
	Row     int    `json:"row"`
	Message string `json:"message"`
}

func (h *handler) listContacts(w http.ResponseWriter, r *http.Request, k *store.Key) {
	q := r.URL.Query()
	limit, err := queryLimit(q)
	if err != nil {
		writeError(w, r, err)
		return
	}
	cs, next, err := h.Contacts.List(r.Context(), k, contacts.ListQuery{Status: contacts.Status(q.Get("status")),
		Email: q.Get("email"), Tag: q.Get("tag"), Limit: limit, Cursor: q.Get("cursor")})
	if err != nil {
		writeError(w, r, err)
		return
	}
	// A filtered page may hold fewer than the limit (even none) and still
	// have a cursor: each request reads a bounded number of contacts.
	writeJSON(w, http.StatusOK, toPage(listOf(cs, toContactJSON), next))
}

func (h *handler) createContact(w http.ResponseWriter, r *http.Request, k *store.Key) {
	var req contactRequest
	if err := h.decode(w, r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	c, err := h.Contacts.Create(r.Context(), k, req.fields())
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, toContactJSON(c))
}

func (h *handler) getContact(w http.ResponseWriter, r *http.Request, k *store.Key) {
	c, err := h.Contacts.Get(r.Context(), k, r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toContactJSON(c))
}

func (h *handler) updateContact(w http.ResponseWriter, r *http.Request, k *store.Key) {
	var req contactRequest
	if err := h.decode(w, r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	c, err := h.Contacts.Update(r.Context(), k, r.PathValue("id"), req.fields())
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toContactJSON(c))
}

func (h *handler) deleteContact(w http.ResponseWriter, r *http.Request, k *store.Key) {
	if err := h.Contacts.Delete(r.Context(), k, r.PathValue("id")); err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, deletedJSON{ID: r.PathValue("id"), Deleted: true})
}

// importContacts streams the body into contacts.Service.Import: a streamed
// route (see streamedRoutes), with its own size limit and no share of the
// message memory budget, since it holds a chunk of rows at a time.
func (h *handler) importContacts(w http.ResponseWriter, r *http.Request, k *store.Key) {
	limit := h.opt.MaxImportBytes
	if limit <= 0 {
		limit = DefaultMaxImportBytes
	}
	if r.ContentLength > limit {
		writeError(w, r, pipeline.PayloadTooLarge(limit))
		return
	}
	var format contacts.Format
	switch ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct {
	case "text/csv":
		format = contacts.CSV
	case "application/json", "":
		format = contacts.JSON
	default:
		writeError(w, r, pipeline.ErrInvalid.With("Content-Type: must be text/csv or application/json"))
		return
	}
	res, err := h.Contacts.Import(r.Context(), k, format, http.MaxBytesReader(w, r.Body, limit))
	var tooBig *http.MaxBytesError
	var readErr *contacts.ReadError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, r, pipeline.ErrPayloadTooLarge.Withf(
			"request body exceeds the limit of %d bytes; the contacts before the limit were imported", limit))
		return
	case errors.As(err, &readErr):
		writeError(w, r, pipeline.ErrInvalid.With("could not read the request body"))
		return
	case err != nil:
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, importJSON{Created: res.Created, Updated: res.Updated, Failed: res.Failed,
		Errors: listOf(res.Errors, func(e contacts.RowError) rowErrorJSON { return rowErrorJSON(e) })})
}
