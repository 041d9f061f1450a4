package pipeline_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/account"
	"github.com/pigeonpost/pigeonpost/pipeline/engagement"
	"github.com/pigeonpost/pigeonpost/pipeline/pipelinetest"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// twoProcesses returns two Services on one Redis (each with a client from
// newClient), as two pigeonpost processes would be, the second one
// listening for changes. Their caches keep entries for an hour, so only a
// published change explains that the second sees a change made through
// the first.
func twoProcesses(t *testing.T, newClient func(testing.TB) redis.UniversalClient) (a, b *pipelinetest.Parts) {
	t.Helper()
	opt := pipelinetest.Options{Pipeline: pipeline.Options{CacheTTL: time.Hour}}
	opt.Redis = newClient(t)
	a = pipelinetest.New(t, opt)
	opt.Redis = newClient(t)
	b = pipelinetest.New(t, opt)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { b.Pipeline.RunInvalidations(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	rdb := newClient(t)
	testkit.WaitFor(t, "the second process subscribed", func() bool {
		return subscribers(rdb, store.InvalidationChannel()) == 1
	})
	return a, b
}

// subscribers counts the subscribers of channel: on a cluster, on every
// master (PUBSUB NUMSUB answers for its own node only).
func subscribers(rdb redis.UniversalClient, channel string) int64 {
	ctx := context.Background()
	cl, ok := rdb.(*redis.ClusterClient)
	if !ok {
		n, err := rdb.PubSubNumSub(ctx, channel).Result()
		if err != nil {
			return -1
		}
		return n[channel]
	}
	var mu sync.Mutex
	var sum int64
	err := cl.ForEachShard(ctx, func(ctx context.Context, node *redis.Client) error {
		n, err := node.PubSubNumSub(ctx, channel).Result()
		mu.Lock()
		sum += n[channel]
		mu.Unlock()
		return err
	})
	if err != nil {
		return -1
	}
	return sum
}

// keyCachedByB makes an account (its owner's key) and a sending key through
// a, and has b authenticate the sending key, so that b caches it.
func keyCachedByB(t *testing.T, a, b *pipelinetest.Parts) (owner, key *store.Key, secret string) {
	t.Helper()
	ctx := context.Background()
	owner, err := a.Account.EnsureKey(ctx, "acme", "sp_live_invalidationtestkey00000001")
	if err != nil {
		t.Fatal(err)
	}
	key, secret, err = a.Account.CreateKey(ctx, owner, account.KeyRequest{Name: "app", Mode: store.ModeLive, Permission: store.PermissionSending})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Pipeline.Authenticate(ctx, secret); err != nil {
		t.Fatal(err)
	}
	return owner, key, secret
}

// TestChangesReachOtherProcesses, on one redis-server and on a 3-master
// Redis Cluster, where a PUBLISH on one node reaches the subscribers of
// every other.
func TestChangesReachOtherProcesses(t *testing.T) {
	t.Run("single", func(t *testing.T) {
		r := testkit.StartRedis(t)
		testChangesReachOtherProcesses(t, func(t testing.TB) redis.UniversalClient { return r.Client(t) })
	})
	t.Run("cluster", func(t *testing.T) {
		c := testkit.StartRedisCluster(t, 3, 0) // skipped without redis-server, unless required
		testChangesReachOtherProcesses(t, func(t testing.TB) redis.UniversalClient { return c.Client(t) })
	})
}

func testChangesReachOtherProcesses(t *testing.T, newClient func(testing.TB) redis.UniversalClient) {
	a, b := twoProcesses(t, newClient)
	ctx := context.Background()
	// b caches a key, the absence of a domain and the tracking settings.
	owner, key, secret := keyCachedByB(t, a, b)
	if d, err := b.Pipeline.SenderDomain(ctx, owner.AccountID, "acme.test"); err != nil || d != "" {
		t.Fatalf("domain before it is added: %+v %v", d, err)
	}
	st, err := b.Pipeline.TrackingSettings(ctx, owner.AccountID, "acme.test")
	if err != nil || !st.Account.TrackingEnabled {
		t.Fatalf("tracking settings: %+v %v", st, err)
	}

	if err := a.Account.DeleteKey(ctx, owner, key.ID); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "the revoked key refused by the other process", func() bool {
		_, err := b.Pipeline.Authenticate(ctx, secret)
		return err != nil && errors.Is(err, pipeline.ErrAuthFailed)
	})

	added, err := a.Account.AddDomain(ctx, owner, "acme.test")
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "the new domain seen by the other process", func() bool {
		d, err := b.Pipeline.SenderDomain(ctx, owner.AccountID, "acme.test")
		return err == nil && d != ""
	})
	// Delivery signs with the key b cached; once the domain is deleted, b
	// signs with it no more.
	if d, err := b.Pipeline.SigningDomain(ctx, owner.AccountID, "acme.test"); err != nil || d == nil || d.PrivateKeyPEM != added.PrivateKeyPEM {
		t.Fatalf("signing domain found %v (its key the one added: %v), %v", d != nil, d != nil && d.PrivateKeyPEM == added.PrivateKeyPEM, err)
	}
	if err := a.Account.DeleteDomain(ctx, owner, added.ID); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "the deleted domain's key dropped by the other process", func() bool {
		d, err := b.Pipeline.SigningDomain(ctx, owner.AccountID, "acme.test")
		return err == nil && d == nil
	})
	if _, err := a.Account.AddDomain(ctx, owner, "acme.test"); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "the domain added again seen by the other process", func() bool {
		d, err := b.Pipeline.SenderDomain(ctx, owner.AccountID, "acme.test")
		return err == nil && d != ""
	})

	off := false
	if _, err := a.Engagement.UpdateTrackingDefaults(ctx, owner, engagement.TrackingDefaultsPatch{TrackingEnabled: &off}); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "the tracking settings seen by the other process", func() bool {
		st, err := b.Pipeline.TrackingSettings(ctx, owner.AccountID, "acme.test")
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
	a, b := twoProcesses(t, func(t testing.TB) redis.UniversalClient { return r.Client(t) })
	ctx := context.Background()
	owner, key, secret := keyCachedByB(t, a, b)
	// A change whose message b never gets: made in the store directly.
	if err := a.Store.DeleteKey(ctx, owner.AccountID, key.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Pipeline.Authenticate(ctx, secret); err != nil {
		t.Fatalf("the cached key should still pass before the reconnection: %v", err)
	}
	rdb := r.Client(t)
	if err := rdb.ClientKillByFilter(ctx, "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "the key refused after the subscription came back", func() bool {
		_, err := b.Pipeline.Authenticate(ctx, secret)
		return err != nil && errors.Is(err, pipeline.ErrAuthFailed)
	})
}
