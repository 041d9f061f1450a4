package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/membudget"
	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// A send's body is read whole, decoded, composed into MIME and rewritten
// for tracking: it takes memory in proportion to its size, like a message
// over SMTP, and draws from the same budget (Options.Budget), so that many
// large requests at once wait for each other instead of exhausting memory.
// As over SMTP, a body reserves its share as it arrives, not for the size it
// declares: a client that declares a large Content-Length and then sends
// slowly holds only what it has sent. The reservation counts against the
// account's share of the budget (smtp.data_memory_per_account), so that one
// account cannot take it all.

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
// budget, and Idempotency-Key, which needs the whole body, does not apply to
// them (idempotency.go).
var streamedRoutes = map[string]bool{
	"POST /v1/contacts/import": true,
}

// budgetBody makes r's body reserve its share of the budget as it is read,
// for k's account, and returns r with that reservation in its context
// (membudget.NewContext), where attachments fetched by URL grow it too.
// The caller releases the reservation when the request is done.
func (h *handler) budgetBody(r *http.Request, k *store.Key) (*http.Request, *membudget.Reservation) {
	res := h.opt.Budget.ReserveFor(k.AccountID)
	r = r.WithContext(membudget.NewContext(r.Context(), res))
	if r.Body != nil && r.Body != http.NoBody && !streamedRoutes[r.Pattern] {
		r.Body = &budgetedBody{ReadCloser: r.Body, h: h, ctx: r.Context(), res: res, key: k}
	}
	return r, res
}

// budgetedBody grows its reservation to pipeline.MessageCost of what it is
// about to read, once past smallBody. Only its first wait can be long: a
// reservation that had to wait holds the largest share at once.
type budgetedBody struct {
	io.ReadCloser
	h    *handler
	ctx  context.Context
	res  *membudget.Reservation
	key  *store.Key
	read int64
}

func (b *budgetedBody) Read(p []byte) (int, error) {
	if next := b.read + int64(len(p)); next > smallBody {
		if err := b.grow(min(next, b.h.opt.MaxBodyBytes)); err != nil {
			return 0, err
		}
	}
	n, err := b.ReadCloser.Read(p)
	b.read += int64(n)
	return n, err
}

// grow reserves for n bytes of body, or says why it cannot: the account
// holds its share (ErrAccountBusy, at once) or the budget stayed taken for
// Options.BudgetWait (ErrBusy).
func (b *budgetedBody) grow(n int64) error {
	wait := b.h.opt.BudgetWait
	if wait <= 0 {
		wait = defaultBudgetWait
	}
	ctx, cancel := context.WithTimeout(b.ctx, wait)
	defer cancel()
	err := b.res.Grow(ctx, pipeline.MessageCost(n))
	switch {
	case err == nil:
		return nil
	case errors.Is(err, membudget.ErrOverShare):
		b.h.opt.Logger.Info("request refused: the account holds its share of the memory budget", "key", b.key.ID, "read", b.read)
		return pipeline.ErrAccountBusy
	default:
		b.h.opt.Logger.Info("request refused: no memory budget in time", "key", b.key.ID, "read", b.read)
		return pipeline.ErrBusy
	}
}
