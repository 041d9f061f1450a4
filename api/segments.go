package api

import (
	"net/http"
	"time"

	"github.com/pigeonpost/pigeonpost/pipeline/contacts"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// segmentJSON is a segment; GET /v1/segments/:id adds the live count.
type segmentJSON struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Filter    filterJSON `json:"filter"`
	Count     *int       `json:"count,omitempty"`
	CreatedAt time.Time  `json:"createdAt"`
	UpdatedAt time.Time  `json:"updatedAt"`
}

// filterJSON is a segment's filter: every tag, the status (null: any) and
// every field condition must hold.
type filterJSON struct {
	Tags   []string        `json:"tags"`
	Status *string         `json:"status"`
	Fields []conditionJSON `json:"fields"`
}

type conditionJSON struct {
	Field string `json:"field"`
	Op    string `json:"op"`
	Value string `json:"value"`
}

func toSegmentJSON(sg *contacts.Segment) segmentJSON {
	f := filterJSON{Tags: sg.Filter.Tags, Fields: listOf(sg.Filter.Fields, func(c contacts.Condition) conditionJSON {
		return conditionJSON{Field: c.Field, Op: string(c.Op), Value: c.Value}
	})}
	if f.Tags == nil {
		f.Tags = []string{}
	}
	if sg.Filter.Status != "" {
		st := string(sg.Filter.Status)
		f.Status = &st
	}
	return segmentJSON{ID: sg.ID, Name: sg.Name, Filter: f, CreatedAt: sg.CreatedAt, UpdatedAt: sg.UpdatedAt}
}

// segmentRequest is the body of create and PATCH: absent fields are not
// changed by PATCH; a filter given replaces the segment's.
type segmentRequest struct {
	Name   *string `json:"name"`
	Filter *struct {
		Tags   []string        `json:"tags"`
		Status *string         `json:"status"`
		Fields []conditionJSON `json:"fields"`
	} `json:"filter"`
}

func (req segmentRequest) fields() contacts.SegmentFields {
	out := contacts.SegmentFields{Name: req.Name}
	if f := req.Filter; f != nil {
		out.Filter = &contacts.Filter{Tags: f.Tags}
		if f.Status != nil {
			out.Filter.Status = contacts.Status(*f.Status)
		}
		for _, c := range f.Fields {
			out.Filter.Fields = append(out.Filter.Fields, contacts.Condition{Field: c.Field, Op: contacts.Op(c.Op), Value: c.Value})
		}
	}
	return out
}

func (h *handler) listSegments(w http.ResponseWriter, r *http.Request, k *store.Key) {
	limit, err := queryLimit(r.URL.Query())
	if err != nil {
		writeError(w, r, err)
		return
	}
	sgs, next, err := h.Contacts.Segments(r.Context(), k, r.URL.Query().Get("cursor"), limit)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toPage(listOf(sgs, toSegmentJSON), next))
}

func (h *handler) createSegment(w http.ResponseWriter, r *http.Request, k *store.Key) {
	var req segmentRequest
	if err := h.decode(w, r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	sg, err := h.Contacts.CreateSegment(r.Context(), k, req.fields())
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, toSegmentJSON(sg))
}

func (h *handler) getSegment(w http.ResponseWriter, r *http.Request, k *store.Key) {
	sg, err := h.Contacts.Segment(r.Context(), k, r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	n, err := h.Contacts.CountSegment(r.Context(), k, sg)
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := toSegmentJSON(sg)
	out.Count = &n
	writeJSON(w, http.StatusOK, out)
}

func (h *handler) updateSegment(w http.ResponseWriter, r *http.Request, k *store.Key) {
	var req segmentRequest
	if err := h.decode(w, r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	sg, err := h.Contacts.UpdateSegment(r.Context(), k, r.PathValue("id"), req.fields())
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toSegmentJSON(sg))
}

func (h *handler) deleteSegment(w http.ResponseWriter, r *http.Request, k *store.Key) {
	if err := h.Contacts.DeleteSegment(r.Context(), k, r.PathValue("id")); err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, deletedJSON{ID: r.PathValue("id"), Deleted: true})
}
