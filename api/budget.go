package api

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/membudget"
	"github.com/pigeonpost/pigeonpost/pipeline"
)

// A send's body is read whole, decoded, composed into MIME and rewritten
// for tracking: it takes memory in proportion to its size, like a message
// over SMTP, and draws from the same budget (Options.Budget), so that many
// large requests at once wait for each other instead of exhausting memory.

const (
	// smallBody is the size under which a body takes nothing from the
	// budget, as for SMTP (its first chunk).
	smallBody = 64 << 10
	// defaultBudgetWait is how long a request waits for its share.
	defaultBudgetWait = 30 * time.Second
)

// streamedRoutes read their body as a stream, a bounded piece at a time,
// under a limit of their own (POST /v1/contacts/import: Options.MaxImportBytes):
// their memory does not grow with the body, so they take no share of the
// budget, their chunked body is not peeked at, and Idempotency-Key, which
// needs the whole body, does not apply to them (idempotency.go).
var streamedRoutes = map[string]bool{
	"POST /v1/contacts/import": true,
}

// reserveBody takes the request's share of the budget: pipeline.MessageCost
// of its declared size or, when it declares none (chunked) and goes on past
// smallBody, of the largest body allowed. A request that cannot get it
// within Options.BudgetWait, or whose client leaves, gets pipeline.ErrBusy.
// The caller releases the reservation when the request is done.
func (h *handler) reserveBody(r *http.Request) (*membudget.Reservation, error) {
	if streamedRoutes[r.Pattern] {
		return h.opt.Budget.Reserve(), nil // holds nothing
	}
	n := r.ContentLength
	if n < 0 {
		// Read the start to learn whether the body is small; the handler
		// reads it again, then the rest (or the read's error).
		head, _ := io.ReadAll(io.LimitReader(r.Body, smallBody+1))
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(head), r.Body), r.Body}
		n = int64(len(head))
		if n > smallBody {
			n = h.opt.MaxBodyBytes
		}
	}
	if n <= smallBody {
		return h.opt.Budget.Reserve(), nil // holds nothing
	}
	n = min(n, h.opt.MaxBodyBytes) // a larger body is refused while it is read
	wait := h.opt.BudgetWait
	if wait <= 0 {
		wait = defaultBudgetWait
	}
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	res, err := h.opt.Budget.Acquire(ctx, pipeline.MessageCost(n))
	if err != nil {
		return nil, pipeline.ErrBusy
	}
	return res, nil
}
