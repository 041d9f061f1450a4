package compose

import (
	"context"
	"fmt"
	"strconv"

	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// MaxBatch is the number of emails one batch may hold.
const MaxBatch = 100

// CheckBatchSize refuses a batch of more than MaxBatch emails. The API
// calls it before decoding the items, since items that fail to decode never
// reach SendBatch.
func CheckBatchSize(n int) error {
	if n > MaxBatch {
		return pipeline.ErrInvalid.With(fmt.Sprintf("emails: at most %d emails per batch (got %d)", MaxBatch, n))
	}
	return nil
}

// BatchResult is the outcome of one email of a batch: a receipt or an error.
type BatchResult struct {
	Receipt *pipeline.Receipt
	Err     error
}

// SendBatch sends each email of reqs independently, in order: one failing
// does not stop the others. With an idempotencyKey, each email gets its own
// key derived from it and its index, so that a batch retried after a crash
// half-way sends only the emails that were not stored the first time.
func (s *Service) SendBatch(ctx context.Context, k *store.Key, reqs []SendRequest, idempotencyKey string) ([]BatchResult, error) {
	if len(reqs) == 0 {
		return nil, pipeline.ErrInvalid.With("emails: at least one email is required")
	}
	if err := CheckBatchSize(len(reqs)); err != nil {
		return nil, err
	}
	if idempotencyKey != "" {
		if err := pipeline.CheckIdempotencyKey(idempotencyKey); err != nil {
			return nil, err
		}
	}
	out := make([]BatchResult, len(reqs))
	for i, req := range reqs {
		if err := ctx.Err(); err != nil {
			out[i].Err = pipeline.ErrUnavailable.WithCause(err)
			continue
		}
		key := ""
		if idempotencyKey != "" {
			key = idempotencyKey + "#" + strconv.Itoa(i)
		}
		out[i].Receipt, out[i].Err = s.send(ctx, k, req, pipeline.ScopeBatchItem, key)
	}
	return out, nil
}
