package pipeline

import (
	"context"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pigeonpost/pigeonpost/internal/clock"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// Every process caches API keys, sender domains and tracking settings
// (internal/ttlcache). The process that changes one drops its own copies and
// publishes the change on store.InvalidationChannel; every process running
// RunInvalidations drops its copies as soon as the message arrives, so that
// a revoked key stops working everywhere at once rather than when the
// caches' TTL runs out. A process whose subscription broke may have missed
// changes: it drops everything when the subscription is back.

// cacheChange names what changed, as published: "key KEYID", "domain
// ACCOUNTID NAME" (which also drops the account's tracking settings) or
// "tracking ACCOUNTID".
type cacheChange string

func keyChanged(keyID string) cacheChange { return cacheChange("key " + keyID) }

func domainChanged(accountID, name string) cacheChange {
	return cacheChange("domain " + accountID + " " + name)
}

func trackingChanged(accountID string) cacheChange { return cacheChange("tracking " + accountID) }

// KeyChanged tells every process that the key changed (revoked): their
// cached copies go at once. The account package calls it after the change
// is stored; so do the other Changed methods.
func (s *Service) KeyChanged(ctx context.Context, keyID string) { s.changed(ctx, keyChanged(keyID)) }

// DomainChanged tells every process that the account's domain changed
// (added, verified, deleted); its tracking settings go with it.
func (s *Service) DomainChanged(ctx context.Context, accountID, name string) {
	s.changed(ctx, domainChanged(accountID, name))
}

// TrackingChanged tells every process that the account's tracking
// settings changed.
func (s *Service) TrackingChanged(ctx context.Context, accountID string) {
	s.changed(ctx, trackingChanged(accountID))
}

// changed drops what c makes stale here and tells the other processes. The
// change is already stored: a failed publish is logged, and the other
// processes catch up within the cache TTL.
func (s *Service) changed(ctx context.Context, c cacheChange) {
	s.forget(c)
	err := s.rdb.Publish(context.WithoutCancel(ctx), store.InvalidationChannel(), string(c)).Err()
	if err != nil {
		s.opt.Logger.Warn("telling the other processes about a change failed; their caches see it within the TTL",
			"change", string(c), "err", err)
	}
}

// forget drops the cache entries c makes stale; it reports false for a
// message it does not know.
func (s *Service) forget(c cacheChange) bool {
	f := strings.Fields(string(c))
	switch {
	case len(f) == 2 && f[0] == "key":
		s.keys.DropIf(func(k *store.Key) bool { return k.ID == f[1] })
	case len(f) == 3 && f[0] == "domain":
		s.domains.Drop(domainCacheKey(f[1], f[2]))
		s.forgetTrackingSettings(f[1])
	case len(f) == 2 && f[0] == "tracking":
		s.forgetTrackingSettings(f[1])
	default:
		return false
	}
	return true
}

// forgetTrackingSettings drops the account's cached tracking settings.
func (s *Service) forgetTrackingSettings(accountID string) {
	s.tracks.DropIf(func(c cachedTracking) bool { return c.accountID == accountID })
}

// forgetAll empties the caches of records that can change (links cannot).
func (s *Service) forgetAll() {
	s.keys.DropAll()
	s.domains.DropAll()
	s.tracks.DropAll()
}

// RunInvalidations applies the changes other processes publish until ctx is
// done. Run it once per serving process.
func (s *Service) RunInvalidations(ctx context.Context) error {
	sub := s.rdb.Subscribe(ctx, store.InvalidationChannel())
	defer sub.Close()
	// Receive waits for a message without watching ctx; closing the
	// subscription is what ends the wait.
	stop := context.AfterFunc(ctx, func() { sub.Close() })
	defer stop()
	for {
		msg, err := sub.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// The next Receive reconnects and subscribes again.
			s.opt.Logger.Warn("cache invalidation channel lost; retrying", "err", err)
			if !clock.Sleep(ctx, time.Second) {
				return nil
			}
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				// Changes made while not subscribed were missed.
				s.forgetAll()
			}
		case *redis.Message:
			if !s.forget(cacheChange(m.Payload)) {
				s.opt.Logger.Warn("unknown cache invalidation message", "message", m.Payload)
			}
		}
	}
}
