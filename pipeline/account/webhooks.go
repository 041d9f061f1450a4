package account

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"

	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
	"github.com/pigeonpost/pigeonpost/pipeline/webhooks"
)

// maxWebhooks bounds the endpoints of one account.
const maxWebhooks = 20

// WebhookInput is the body of POST /v1/webhooks.
type WebhookInput struct {
	URL    string
	Events []string
	// MachineEvents subscribes the endpoint to machines' opens and clicks
	// too (store.MachineEvent).
	MachineEvents bool
}

// CreateWebhook registers an endpoint for the caller's account and returns
// it with its signing secret, which is shown only here.
func (s *Service) CreateWebhook(ctx context.Context, k *store.Key, in WebhookInput) (*store.Webhook, error) {
	if err := pipeline.RequirePermission(k, store.PermissionFull); err != nil {
		return nil, err
	}
	var lookup func(context.Context, string) ([]string, error)
	if s.opt.Lookup != nil {
		lookup = s.opt.Lookup.LookupHost
	}
	if err := webhooks.CheckURL(ctx, strings.TrimSpace(in.URL), s.opt.WebhookURLs, lookup); err != nil {
		return nil, pipeline.ErrInvalid.With("url: " + err.Error())
	}
	if len(in.Events) == 0 {
		return nil, pipeline.ErrInvalid.With("events: at least one event is required, from " + strings.Join(webhooks.Events, ", "))
	}
	var events []string
	for _, e := range in.Events {
		if !webhooks.ValidEvent(e) {
			return nil, pipeline.ErrInvalid.With("events: " + pipeline.Quote(e) + " is not an event; use " + strings.Join(webhooks.Events, ", "))
		}
		if !slices.Contains(events, e) {
			events = append(events, e)
		}
	}
	w := &store.Webhook{
		ID: store.NewID("wh"), URL: strings.TrimSpace(in.URL), Events: events,
		Secret: webhooks.NewSecret(), CreatedAt: s.opt.Now().UTC(), MachineEvents: in.MachineEvents,
	}
	err := s.store.AddWebhook(ctx, k.AccountID, w, maxWebhooks)
	if errors.Is(err, store.ErrLimit) {
		return nil, pipeline.ErrConflict.With("an account may have at most 20 webhook endpoints; delete one first")
	}
	if err != nil {
		return nil, pipeline.StorageError(err)
	}
	return w, nil
}

// Webhooks lists the caller's account's endpoints (with their secrets, which
// the api package leaves out).
func (s *Service) Webhooks(ctx context.Context, k *store.Key) ([]*store.Webhook, error) {
	if err := pipeline.RequirePermission(k, store.PermissionFull); err != nil {
		return nil, err
	}
	ws, err := s.store.Webhooks(ctx, k.AccountID)
	if err != nil {
		return nil, pipeline.StorageError(err)
	}
	return ws, nil
}

// DeleteWebhook removes an endpoint of the caller's account; its pending
// deliveries are dropped.
func (s *Service) DeleteWebhook(ctx context.Context, k *store.Key, id string) error {
	if err := pipeline.RequirePermission(k, store.PermissionFull); err != nil {
		return err
	}
	err := s.store.DeleteWebhook(ctx, k.AccountID, id)
	if errors.Is(err, store.ErrNotFound) {
		return pipeline.NotFound("webhook")
	}
	if err != nil {
		return pipeline.StorageError(err)
	}
	return nil
}

// FailedWebhooks lists the caller's account's deliveries that were given up.
func (s *Service) FailedWebhooks(ctx context.Context, k *store.Key) ([]store.FailedWebhook, error) {
	if err := pipeline.RequirePermission(k, store.PermissionFull); err != nil {
		return nil, err
	}
	fs, err := s.store.FailedWebhooks(ctx, k.AccountID)
	if err != nil {
		return nil, pipeline.StorageError(err)
	}
	return fs, nil
}

// WebhookAttempts lists the latest attempts at deliveries to one endpoint
// of the caller's account, newest first (at most store.MaxWebhookAttempts;
// limit 0 for all kept).
func (s *Service) WebhookAttempts(ctx context.Context, k *store.Key, endpointID string, limit int) ([]store.WebhookAttempt, error) {
	if err := pipeline.RequirePermission(k, store.PermissionFull); err != nil {
		return nil, err
	}
	if limit < 0 || limit > store.MaxWebhookAttempts {
		return nil, pipeline.ErrInvalid.With("limit: must be between 1 and " + strconv.Itoa(store.MaxWebhookAttempts))
	}
	if _, err := s.store.Webhook(ctx, k.AccountID, endpointID); errors.Is(err, store.ErrNotFound) {
		return nil, pipeline.NotFound("webhook")
	} else if err != nil {
		return nil, pipeline.StorageError(err)
	}
	as, err := s.store.WebhookAttempts(ctx, k.AccountID, endpointID, limit)
	if err != nil {
		return nil, pipeline.StorageError(err)
	}
	return as, nil
}
