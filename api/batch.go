package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/pigeonpost/pigeonpost/internal/strictjson"

	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/compose"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

type batchItem struct {
	Index  int          `json:"index"`
	Status store.Status `json:"status"`
	ID     string       `json:"id,omitempty"`
	Error  *errorJSON   `json:"error,omitempty"`
}

type errorJSON struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type batchSummary struct {
	Total  int `json:"total"`
	Sent   int `json:"sent"`
	Failed int `json:"failed"`
}

// sendBatch: POST /v1/emails/batch {emails: [...]}, up to 100, each
// processed on its own. An item's status is "sent" (accepted for delivery),
// "scheduled", or "failed" with its error; summary.sent counts the accepted.
// Each email is decoded on its own too, so that a wrong type fails only it.
func (h *handler) sendBatch(w http.ResponseWriter, r *http.Request, k *store.Key) {
	var req struct {
		Emails []json.RawMessage `json:"emails"`
	}
	if err := h.decode(w, r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	if err := compose.CheckBatchSize(len(req.Emails)); err != nil {
		writeError(w, r, err)
		return
	}
	items := make([]batchItem, len(req.Emails))
	var reqs []compose.SendRequest
	var index []int // position in items of each element of reqs
	for i, raw := range req.Emails {
		items[i].Index = i
		var sr sendRequest
		err := decodeBytes(raw, &sr, fmt.Sprintf("emails[%d].", i))
		var p compose.SendRequest
		if err == nil {
			p, err = sr.toPipeline()
		}
		if err != nil {
			items[i].fail(err)
			continue
		}
		reqs = append(reqs, p)
		index = append(index, i)
	}
	if len(reqs) > 0 {
		results, err := h.Compose.SendBatch(r.Context(), k, reqs, r.Header.Get(headerIdempotencyKey))
		if err != nil {
			writeError(w, r, err)
			return
		}
		for j, res := range results {
			it := &items[index[j]]
			if res.Err != nil {
				it.fail(res.Err)
				continue
			}
			it.ID, it.Status = res.Receipt.IDs[0], store.StatusSent
			if res.Receipt.Status == store.StatusScheduled {
				it.Status = store.StatusScheduled
			}
		}
	} else if len(req.Emails) == 0 {
		writeError(w, r, pipeline.ErrInvalid.With("emails: at least one email is required"))
		return
	}
	sum := batchSummary{Total: len(items)}
	for _, it := range items {
		if it.Status == "failed" {
			sum.Failed++
		} else {
			sum.Sent++
		}
	}
	writeJSON(w, http.StatusOK, batchJSON{Data: items, Summary: sum})
}

func (it *batchItem) fail(err error) {
	pe := pipeline.AsError(err)
	it.Status, it.Error = "failed", &errorJSON{Code: string(pe.Code), Message: pe.Message}
}

// decodeBytes is decode for one element of a request: a wrong type is a
// 400 naming the field with prefix (e.g. "emails[3].subject").
func decodeBytes(b []byte, v any, prefix string) error {
	if err := strictDecoder(b).Decode(v); err != nil {
		if strictjson.IsUnknownField(err) {
			return unknownFieldError(b, v, prefix)
		}
		var typeErr *json.UnmarshalTypeError
		// prefix ends with a dot: it is dropped when the element itself is wrong.
		if errors.As(err, &typeErr) {
			return pipeline.ErrInvalid.With(strings.TrimSuffix(prefix+fieldPath(typeErr), ".") + ": must be " + jsonType(typeErr.Type.Kind().String()))
		}
		return pipeline.ErrInvalid.With(strings.TrimSuffix(prefix, ".") + ": not a valid JSON object")
	}
	return nil
}
