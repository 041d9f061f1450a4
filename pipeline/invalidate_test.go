package pipeline

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// twoProcesses returns two Services on one Redis, as two pigeonpost
// processes would be, the second one listening for changes. Their caches
// keep entries for an hour, so only a published change explains that the
// second sees a change made through the first.
func twoProcesses(t *testing.T, r *testkit.Redis) (a, b *Service) {
	t.Helper()
	opt := Options{Hostname: "gw.test", PublicURL: "https://t.test", CacheTTL: time.Hour,
		RateLimit: RateLimit{PerSecond: 1000, Burst: 1000}}
	a = New(r.Client(t), []byte("secret"), opt)
	b = New(r.Client(t), []byte("secret"), opt)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { b.RunInvalidations(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	rdb := r.Client(t)
	testkit.WaitFor(t, "the second process subscribed", func() bool {
		n, err := rdb.PubSubNumSub(context.Background(), store.InvalidationChannel()).Result()
		return err == nil && n[store.InvalidationChannel()] == 1
	})
	return a, b
}

// keyCachedByB makes an account (its owner's key) and a sending key through
// a, and has b authenticate the sending key, so that b caches it.
func keyCachedByB(t *testing.T, a, b *Service) (owner, key *store.Key, secret string) {
	t.Helper()
	ctx := context.Background()
	owner, err := a.EnsureKey(ctx, "acme", "sp_live_invalidationtestkey00000001")
	if err != nil {
		t.Fatal(err)
	}
	key, secret, err = a.CreateKey(ctx, owner, KeyRequest{Name: "app", Mode: store.ModeLive, Permission: store.PermissionSending})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Authenticate(ctx, secret); err != nil {
		t.Fatal(err)
	}
	return owner, key, secret
}

func TestChangesReachOtherProcesses(t *testing.T) {
	a, b := twoProcesses(t, testkit.StartRedis(t))
	ctx := context.Background()
	// b caches a key, the absence of a domain and the tracking settings.
	owner, key, secret := keyCachedByB(t, a, b)
	if d, err := b.senderDomain(ctx, owner.AccountID, "acme.test"); err != nil || d.id != "" {
		t.Fatalf("domain before it is added: %+v %v", d, err)
	}
	st, err := b.trackingSettings(ctx, owner.AccountID, "acme.test")
	if err != nil || !st.Account.TrackingEnabled {
		t.Fatalf("tracking settings: %+v %v", st, err)
	}

	if err := a.DeleteKey(ctx, owner, key.ID); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "the revoked key refused by the other process", func() bool {
		_, err := b.Authenticate(ctx, secret)
		return err != nil && errors.Is(err, ErrAuthFailed)
	})

	if _, err := a.AddDomain(ctx, owner, "acme.test"); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "the new domain seen by the other process", func() bool {
		d, err := b.senderDomain(ctx, owner.AccountID, "acme.test")
		return err == nil && d.id != ""
	})

	off := false
	if _, err := a.UpdateTrackingDefaults(ctx, owner, TrackingDefaultsPatch{TrackingEnabled: &off}); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "the tracking settings seen by the other process", func() bool {
		st, err := b.trackingSettings(ctx, owner.AccountID, "acme.test")
		return err == nil && !st.Account.TrackingEnabled
	})
}

// TestResubscribeForgetsEverything: a process whose subscription broke may
// have missed changes, so it drops its caches when it is back.
func TestResubscribeForgetsEverything(t *testing.T) {
	r := testkit.StartRedis(t)
	if !r.Real() {
		t.Skip("CLIENT KILL needs redis-server; .ci/run installs it and sets PIGEONPOST_REQUIRE_REDIS")
	}
	a, b := twoProcesses(t, r)
	ctx := context.Background()
	owner, key, secret := keyCachedByB(t, a, b)
	// A change whose message b never gets: made in the store directly.
	if err := a.Store().DeleteKey(ctx, owner.AccountID, key.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Authenticate(ctx, secret); err != nil {
		t.Fatalf("the cached key should still pass before the reconnection: %v", err)
	}
	rdb := r.Client(t)
	if err := rdb.ClientKillByFilter(ctx, "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "the key refused after the subscription came back", func() bool {
		_, err := b.Authenticate(ctx, secret)
		return err != nil && errors.Is(err, ErrAuthFailed)
	})
}

// A message this version does not know is ignored, not misread.
func TestForgetUnknownChange(t *testing.T) {
	s := New(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}), []byte("secret"), Options{CacheTTL: time.Hour})
	for _, c := range []cacheChange{"", "key", "domain acct_1", "tracking a b", "account acct_1"} {
		if s.forget(c) {
			t.Errorf("forget(%q) = true", c)
		}
	}
	for _, c := range []cacheChange{keyChanged("key_1"), domainChanged("acct_1", "a.test"), trackingChanged("acct_1")} {
		if !s.forget(c) {
			t.Errorf("forget(%q) = false", c)
		}
	}
}
