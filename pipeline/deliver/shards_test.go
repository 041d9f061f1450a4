package deliver

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// TestShardedMailOnCluster: with redis.shards 3 on a 3-master Redis
// Cluster, submissions are persisted and enqueued each in one slot (the
// slot checker fails any MULTI or script across slots) on all three
// masters, and a worker delivers all of them. Then a process with 1 shard
// (the count lowered) still delivers the mail left in shards 1 and 2: the
// registry of shards in use names them.
func TestShardedMailOnCluster(t *testing.T) {
	cluster := testkit.StartRedisCluster(t, 3, 0)
	client := func() *redis.ClusterClient {
		c := cluster.Client(t)
		c.AddHook(testkit.NewSlotChecker(t.Errorf))
		return c
	}
	ctx := context.Background()
	three := store.New(client(), time.Now)
	three.SetShards(3)
	if err := three.RegisterShards(ctx); err != nil {
		t.Fatal(err)
	}
	sink := startDestination(t)

	// queue persists one submission of two recipients in shard k.
	masters := map[string]bool{}
	queue := func(k store.Shard, n int) {
		t.Helper()
		emails := []store.NewEmail{pendingEmail(k), pendingEmail(k)}
		for _, e := range emails {
			masters[cluster.MasterOf(store.EmailKey(e.Email.ID)).Addr] = true
		}
		if err := three.PersistWith(ctx, emails, store.PersistOptions{Enqueue: true}); err != nil {
			t.Fatalf("submission %d in shard %d: %v", n, k, err)
		}
	}

	for i := range 9 {
		queue(store.Shard(i%3), i)
	}
	if len(masters) != 3 {
		t.Errorf("the mail of 3 shards is on %d master(s), want one each", len(masters))
	}
	stop := sink.runWorker(t, three, "three")
	sink.Wait(t, 18, 20*time.Second)
	stop()

	// Mail left in shards 1 and 2, then the count lowered to 1.
	queue(1, 9)
	queue(2, 10)
	one := store.New(client(), time.Now)
	one.SetShards(1)
	if err := one.RegisterShards(ctx); err != nil {
		t.Fatal(err)
	}
	if got := one.ShardsInUse(ctx); len(got) != 3 {
		t.Fatalf("with 1 shard configured after 3, the shards in use are %v", got)
	}
	sink.runWorker(t, one, "one")
	sink.Wait(t, 22, 20*time.Second)
	testkit.WaitFor(t, "the queues of every shard to be empty", func() bool {
		queued, retrying, err := one.QueueDepth(ctx)
		return err == nil && queued == 0 && retrying == 0
	})
	if n := len(sink.Messages()); n != 22 {
		t.Errorf("%d deliveries of 22 emails", n)
	}
}

// TestDeadShardStallsOnlyItself: with 3 shards on 3 masters (the cluster
// serving what it can while a master is down, cluster-require-full-coverage
// no), the master of shard 2 is killed (one that holds no other key the
// test needs: the account's, the registry of shards). The submission that
// meets it fails; PickShard then passes shard 2 over, so the submissions that
// follow are stored in shards 0 and 1, the gateway stays ready
// (ProbeWrite), and the worker goes on delivering the mail of the other
// shards.
func TestDeadShardStallsOnlyItself(t *testing.T) {
	cluster := testkit.StartRedisClusterWith(t, testkit.RedisClusterOptions{Masters: 3, PartialCoverage: true})
	ctx := context.Background()
	st := store.New(cluster.Client(t), time.Now)
	st.SetShards(3)
	if err := st.RegisterShards(ctx); err != nil {
		t.Fatal(err)
	}
	sink := startDestination(t)
	submit := func(k store.Shard) error {
		return st.PersistWith(ctx, []store.NewEmail{pendingEmail(k)}, store.PersistOptions{Enqueue: true})
	}
	sink.runWorker(t, st, "w")
	for k := range store.Shard(3) {
		if err := submit(k); err != nil {
			t.Fatalf("shard %d: %v", k, err)
		}
	}
	sink.Wait(t, 3, 20*time.Second)

	victim := cluster.MasterOf(store.StreamKey(2))
	for _, key := range []string{store.AccountKey("acc_1"), store.ShardsKey(), store.StreamKey(0), store.StreamKey(1)} {
		if cluster.MasterOf(key) == victim {
			t.Fatalf("the master of shard 2 also holds %s: choose another account", key)
		}
	}
	victim.Kill()
	if err := submit(2); err == nil {
		t.Fatal("a submission to the shard whose master is down was stored")
	}
	delivered := 3
	for range 20 {
		k := st.PickShard()
		if k == 2 {
			t.Fatal("PickShard chose the shard that just failed")
		}
		if err := submit(k); err != nil {
			t.Fatalf("shard %d, with shard 2 down: %v", k, err)
		}
		delivered++
	}
	if err := st.ProbeWrite(ctx); err != nil {
		t.Errorf("not ready with 2 shards of 3 up: %v", err)
	}
	if k := st.PickShard(); k == 2 {
		t.Error("PickShard chose the shard that failed its readiness probe")
	}
	sink.Wait(t, delivered, 20*time.Second)
}

// TestShardReadersShareFewAttempts: a worker with 2 attempts reads 3
// shards, and 2 emails arrive in each at once while the destination holds
// every message. The reader that wakes first takes both attempts; the
// two others take their entries while they wait without attempts. Then
// the destination lets go, and every email is delivered: a reader hands
// each entry over as soon as it has an attempt for it. (Readers once took
// an attempt for each entry before handing any over: each got one of the
// two freed, and they waited for each other for ever.)
func TestShardReadersShareFewAttempts(t *testing.T) {
	ctx := context.Background()
	rdb := testkit.RedisClient(t)
	st := store.New(rdb, time.Now)
	st.SetShards(3)
	if err := st.RegisterShards(ctx); err != nil {
		t.Fatal(err)
	}
	sink := startDestination(t)
	sink.runWorkerWith(t, st, "w", 2)
	testkit.WaitFor(t, "the worker reading every shard", func() bool {
		for k := range store.Shard(3) {
			if rdb.Exists(ctx, store.AliveKey(k, "w")).Val() == 0 {
				return false // its reader says so before it reads
			}
		}
		return true
	})
	persist := func(k store.Shard) {
		t.Helper()
		if err := st.PersistWith(ctx, []store.NewEmail{pendingEmail(k), pendingEmail(k)}, store.PersistOptions{Enqueue: true}); err != nil {
			t.Fatalf("shard %d: %v", k, err)
		}
	}
	held, release := sink.Hold("data")
	for k := range store.Shard(3) {
		persist(k)
	}
	<-held
	<-held // both attempts at the destination
	// The others are taken by their readers if these were waiting for mail
	// (a wait lasts a second) when it came; one that was not waits for an
	// attempt first, and the old fault does not show.
	read := func() bool {
		n := int64(0)
		for k := range store.Shard(3) {
			if p, err := rdb.XPending(ctx, store.StreamKey(k), store.GroupName).Result(); err == nil {
				n += p.Count
			}
		}
		return n == 6
	}
	for wait := time.Now().Add(2 * time.Second); !read() && time.Now().Before(wait); {
		time.Sleep(5 * time.Millisecond)
	}
	if !read() {
		t.Log("a reader was not waiting for mail: the case of interest did not arise")
	}
	release()
	sink.Wait(t, 6, 20*time.Second)
}

// destination is a sink that dest.test's MX (a loopback DNS server)
// names.
type destination struct {
	*testkit.Sink
	dns *testkit.DNS
}

func startDestination(t *testing.T) destination {
	d := destination{Sink: testkit.StartSink(t, testkit.SinkOptions{}), dns: testkit.StartDNS(t)}
	d.dns.SetMX("dest.test", map[string]uint16{"mx.dest.test": 10})
	d.dns.SetA("mx.dest.test", "127.0.0.1")
	return d
}

// runWorker runs a worker named name on st, delivering to d, until stop
// is called or the test ends.
func (d destination) runWorker(t *testing.T, st *store.Store, name string) (stop func()) {
	return d.runWorkerWith(t, st, name, 4)
}

// runWorkerWith is runWorker with concurrency attempts at once.
func (d destination) runWorkerWith(t *testing.T, st *store.Store, name string, concurrency int) (stop func()) {
	w := &Worker{
		Store: st,
		Transport: &Transport{Hostname: "pigeon.test", Port: d.Port(), Timeout: 30 * time.Second, AllowPrivate: true,
			Resolver: &Resolver{Addr: d.dns.Addr(), Timeout: 5 * time.Second}},
		Concurrency: concurrency, RetryInitial: time.Minute, RetryMax: time.Hour, MaxAge: time.Hour, ClaimIdle: time.Hour,
		Consumer: name, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	t.Cleanup(w.Transport.CloseIdle)
	ctx, cancel := context.WithCancel(context.Background())
	var running sync.WaitGroup
	running.Go(func() { _ = w.Run(ctx) })
	stop = func() { cancel(); running.Wait() }
	t.Cleanup(stop)
	return stop
}

// pendingEmail is a live email of shard k to rcpt@dest.test, pending.
func pendingEmail(k store.Shard) store.NewEmail {
	e := &store.Email{ID: store.NewIDIn("em", k), AccountID: "acc_1", KeyID: "key_1", Mode: store.ModeLive,
		Status: store.StatusPending, Source: "api", FromAddress: "news@acme.test", EnvelopeFrom: "news@acme.test",
		ToAddress: "rcpt@dest.test", Subject: "hello", CreatedAt: time.Now()}
	return store.NewEmail{Email: e, Body: []byte("From: news@acme.test\r\nSubject: hello\r\n\r\nhi\r\n")}
}
