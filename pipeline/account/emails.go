package account

import (
	"context"
	"errors"
	"fmt"

	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// Email returns one of the account's emails. A sending key reads (and
// cancels) only what it sent itself: its permission is to send, not to
// read the account's mail.
func (s *Service) Email(ctx context.Context, k *store.Key, id string) (*store.Email, error) {
	e, err := s.store.Email(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (e.AccountID != k.AccountID || !pipeline.MayRead(k, e))) {
		return nil, pipeline.NotFound("email")
	}
	if err != nil {
		return nil, pipeline.StorageError(err)
	}
	return e, nil
}

// EmailContent returns the MIME of one of the account's emails as it goes
// out (before the DKIM signature, which is added at delivery): rendered
// from its stored body as delivery renders it (Renderer), its tracking
// the recipient's own. The first render records the destinations of its
// links, which a click on its copy needs.
func (s *Service) EmailContent(ctx context.Context, k *store.Key, id string) ([]byte, error) {
	e, err := s.Email(ctx, k, id)
	if err != nil {
		return nil, err
	}
	b, err := s.store.Body(ctx, e)
	if errors.Is(err, store.ErrNotFound) {
		return nil, pipeline.NotFound("email content")
	}
	if err != nil {
		return nil, pipeline.StorageError(err)
	}
	if s.render == nil {
		return b, nil
	}
	out, res := s.render.Render(e, b)
	if e.Message != "" && e.TrackClicks && e.Links == nil {
		if err := s.store.SetLinksOnce(ctx, e.ID, res.Links); err != nil {
			return nil, pipeline.StorageError(err)
		}
	}
	return out, nil
}

// EmailEvents returns the events of one of the account's emails.
func (s *Service) EmailEvents(ctx context.Context, k *store.Key, id string) ([]store.Event, error) {
	if _, err := s.Email(ctx, k, id); err != nil {
		return nil, err
	}
	evs, err := s.store.Events(ctx, id)
	if err != nil {
		return nil, pipeline.StorageError(err)
	}
	return evs, nil
}

// CancelSchedule cancels a scheduled email, and the other emails of its
// submission (one per recipient) with it. It is atomic against the release
// of due emails: either every one is cancelled and none is ever sent, or
// they have been released already and the answer is ErrConflict. Cancelling
// a cancelled email again succeeds.
func (s *Service) CancelSchedule(ctx context.Context, k *store.Key, id string) (*store.Email, error) {
	e, err := s.Email(ctx, k, id)
	if err != nil {
		return nil, err
	}
	if e.Status != store.StatusScheduled && e.Status != store.StatusCancelled {
		return nil, pipeline.ErrConflict.With(fmt.Sprintf("email %s is not scheduled (status %q); only a scheduled email can be cancelled", id, e.Status))
	}
	ids, err := s.store.ScheduleGroup(ctx, id)
	if err != nil {
		return nil, pipeline.StorageError(err)
	}
	res, err := s.store.CancelScheduled(ctx, ids, s.opt.Now().UTC())
	if err != nil {
		return nil, pipeline.StorageError(err)
	}
	if !res.Cancelled {
		if res.Status == store.StatusScheduled {
			return nil, pipeline.ErrConflict.With(fmt.Sprintf("email %s is already being sent; it can no longer be cancelled", res.EmailID))
		}
		return nil, pipeline.ErrConflict.With(fmt.Sprintf("email %s is not scheduled (status %q); only a scheduled email can be cancelled", res.EmailID, res.Status))
	}
	e, err = s.store.Email(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, pipeline.NotFound("email")
	}
	if err != nil {
		return nil, pipeline.StorageError(err)
	}
	return e, nil
}
