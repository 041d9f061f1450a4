package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// Idempotency-Key on POST endpoints other than the sends (which the
// pipeline handles with the emails, see pipeline.Send): the rule is
// pipeline.Service.Idempotent; here the handler's response is recorded so
// that a repeat can get it back byte for byte.

const headerIdempotencyKey = "Idempotency-Key"

// headerReplayed marks a response that repeats a stored one.
const headerReplayed = "Idempotent-Replayed"

type keyedHandler func(http.ResponseWriter, *http.Request, *store.Key)

// idempotentPOST gives every authenticated POST route Idempotency-Key
// support (auth calls it): the sends (selfIdempotent) handle it themselves,
// storing their response in the MULTI of their emails; a new API key's secret is
// shown once, so its response is not stored and a repeat is a 409. A
// streamed route (streamedRoutes) ignores the header: its body is never
// held whole, and the contact import it serves is an upsert, safe to repeat.
// So does a preview, which stores nothing.
func (h *handler) idempotentPOST(next keyedHandler) keyedHandler {
	return func(w http.ResponseWriter, r *http.Request, k *store.Key) {
		switch {
		case r.Method != http.MethodPost || r.Header.Get(headerIdempotencyKey) == "" || selfIdempotent[r.Pattern] ||
			streamedRoutes[r.Pattern] || r.Pattern == previewPattern:
			next(w, r, k)
		case r.Pattern == "POST /v1/api-keys":
			h.idempotent(next, false)(w, r, k)
		default:
			h.idempotent(next, true)(w, r, k)
		}
	}
}

// selfIdempotent are the routes whose service takes the Idempotency-Key
// itself (pipeline.ClaimSend, ClaimResponse).
var selfIdempotent = map[string]bool{"POST /v1/emails": true, "POST /v1/sends": true, "POST /v1/sends/batch": true}

// storedResponse is what is kept under an idempotency key.
type storedResponse struct {
	Status int    `json:"status"`
	Body   []byte `json:"body"`
}

// failedResponse carries a response that must not be stored (not 2xx)
// through Idempotent, which then releases the key.
type failedResponse struct{ rec *recorder }

func (f *failedResponse) Error() string { return "request failed; not stored" }

func (h *handler) idempotent(next keyedHandler, replayable bool) keyedHandler {
	return func(w http.ResponseWriter, r *http.Request, k *store.Key) {
		key := r.Header.Get(headerIdempotencyKey)
		if key == "" {
			next(w, r, k)
			return
		}
		body, err := h.readBody(w, r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		// The fingerprint: the route with its path values, and the body in
		// a canonical form (insignificant whitespace and key order ignored).
		fp := append([]byte(r.Method+" "+r.URL.Path+"\n"), canonicalJSON(body)...)
		resp, replayed, err := h.Pipeline.Idempotent(r.Context(), k, r.Pattern, key, fp, func(ctx context.Context) ([]byte, error) {
			rec := &recorder{header: http.Header{}, status: http.StatusOK}
			r2 := r.WithContext(ctx)
			r2.Body = io.NopCloser(bytes.NewReader(body))
			next(rec, r2, k)
			if rec.status < 200 || rec.status >= 300 {
				return nil, &failedResponse{rec: rec}
			}
			rec.copyTo(w) // the first request's own answer
			if !replayable {
				return nil, nil
			}
			return json.Marshal(storedResponse{Status: rec.status, Body: rec.body.Bytes()})
		})
		var failed *failedResponse
		switch {
		case errors.As(err, &failed):
			failed.rec.copyTo(w)
		case err != nil:
			writeError(w, r, err)
		case replayed:
			var sr storedResponse
			if json.Unmarshal(resp, &sr) != nil || sr.Status == 0 {
				writeError(w, r, errors.New("undecodable idempotent response"))
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set(headerReplayed, "true")
			w.WriteHeader(sr.Status)
			_, _ = w.Write(sr.Body)
		}
	}
}

// readBody reads the request body under the size cap: one declared over
// it is refused unread. The buffer grows as the body arrives, not to the
// size it declares: a client that declares a large body and sends little
// must not make the server allocate it (budget.go).
func (h *handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.ContentLength > h.opt.MaxBodyBytes {
		return nil, pipeline.PayloadTooLarge(h.opt.MaxBodyBytes)
	}
	body, err := readGrowing(http.MaxBytesReader(w, r.Body, h.opt.MaxBodyBytes), r.ContentLength)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, pipeline.PayloadTooLarge(h.opt.MaxBodyBytes)
	}
	var refused *pipeline.Error
	if errors.As(err, &refused) {
		return nil, refused // no share of the memory budget (budget.go)
	}
	if err != nil {
		return nil, pipeline.ErrInvalid.With("could not read the request body")
	}
	return body, nil
}

// readGrowing reads r to its end into a buffer that doubles only when what
// has arrived fills it, up to declared when the size is known (-1: not).
// It allocates about twice the body in all, where io.ReadAll's smaller
// steps allocate five times, and never more than has been sent: a client
// that declares a large body and sends little gets no large buffer.
func readGrowing(r io.Reader, declared int64) ([]byte, error) {
	const first = 64 << 10
	size := int64(first)
	if declared >= 0 {
		size = min(size, declared+1) // +1: room for the read that meets the end
	}
	buf := make([]byte, 0, size)
	for {
		if len(buf) == cap(buf) {
			next := 2 * int64(cap(buf))
			if declared >= int64(len(buf)) {
				next = min(next, declared+1)
			}
			buf = append(make([]byte, 0, next), buf...)
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// canonicalJSON re-encodes a JSON body with sorted keys and no
// insignificant whitespace; a body that is not JSON, or is past
// jsonBounds (which the route's decoding refuses), is used as it is.
func canonicalJSON(b []byte) []byte {
	if checkShape(b) != nil {
		return b
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return b
	}
	out, err := json.Marshal(v)
	if err != nil {
		return b
	}
	return out
}

// recorder is an http.ResponseWriter that keeps the response.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
	wrote  bool
}

func (rec *recorder) Header() http.Header { return rec.header }

func (rec *recorder) WriteHeader(status int) {
	if !rec.wrote {
		rec.status, rec.wrote = status, true
	}
}

func (rec *recorder) Write(b []byte) (int, error) {
	rec.wrote = true
	return rec.body.Write(b)
}

func (rec *recorder) copyTo(w http.ResponseWriter) {
	for k, v := range rec.header {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.status)
	_, _ = w.Write(rec.body.Bytes())
}
