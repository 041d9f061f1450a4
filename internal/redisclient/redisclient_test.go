package redisclient

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pigeonpost/pigeonpost/config"
	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

var baseline = flag.Bool("failover.baseline", false,
	"also measure the write stall of a failover without ReloadOnNetworkError (takes about a minute)")

func TestOpen(t *testing.T) {
	c := testkit.StartRedisCluster(t, 3, 0)
	single := testkit.StartRedis(t)
	for _, tc := range []struct {
		name    string
		cfg     config.Redis
		cluster bool
	}{
		{"url", config.Redis{URL: single.URL()}, false},
		{"cluster url", config.Redis{URL: c.URL()}, true},
		{"cluster flag and one node", config.Redis{URL: "redis://" + c.Addrs()[1], Cluster: true}, true},
		{"addrs", config.Redis{Addrs: c.Addrs(), Cluster: true}, true},
		{"one addr", config.Redis{Addrs: c.Addrs()[:1], Cluster: true}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rdb, err := Open(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer rdb.Close()
			if _, ok := rdb.(*redis.ClusterClient); ok != tc.cluster {
				t.Fatalf("client %T, want a cluster client: %v", rdb, tc.cluster)
			}
			ctx := context.Background()
			// Keys on every master: the client knows the whole cluster.
			for i := range 20 {
				key := fmt.Sprintf("{k%d}", i)
				if err := rdb.Set(ctx, key, i, 0).Err(); err != nil {
					t.Fatalf("SET %s: %v", key, err)
				}
			}
		})
	}
}

// The pool has room for every blocking stream reader of every shard beside
// go-redis's default, unless the URL sets its size.
func TestPoolSize(t *testing.T) {
	want := 10*runtime.GOMAXPROCS(0) + 2*store.MaxShards
	for _, tc := range []struct {
		cfg  config.Redis
		want int
	}{
		{config.Redis{URL: "redis://127.0.0.1:1"}, want},
		{config.Redis{URL: "redis://127.0.0.1:1?pool_size=7"}, 7},
		{config.Redis{URL: "redis+cluster://127.0.0.1:1,127.0.0.1:2"}, want},
		{config.Redis{Addrs: []string{"127.0.0.1:1"}}, want},
	} {
		rdb, err := Open(tc.cfg)
		if err != nil {
			t.Fatal(err)
		}
		var got int
		switch c := rdb.(type) {
		case *redis.Client:
			got = c.Options().PoolSize
		case *redis.ClusterClient:
			got = c.Options().PoolSize
		}
		rdb.Close()
		if got != tc.want {
			t.Errorf("%+v: pool size %d, want %d", tc.cfg, got, tc.want)
		}
	}
}

func TestParseClusterURL(t *testing.T) {
	o, err := ParseClusterURL("rediss+cluster://u:pw@10.0.0.1:6379,10.0.0.2:6380,10.0.0.3:6381?dial_timeout=3s")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(o.Addrs) != "[10.0.0.1:6379 10.0.0.2:6380 10.0.0.3:6381]" || o.Username != "u" || o.Password != "pw" ||
		o.TLSConfig == nil || o.DialTimeout != 3*time.Second {
		t.Fatalf("options %+v", o)
	}
	if _, err := ParseClusterURL("redis+cluster://:secret@bad host:1"); err == nil || err.Error() != "invalid URL" {
		t.Fatalf("err = %v, want one without the URL", err)
	}
}

func TestStaleTopology(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{redis.Nil, false},
		{redis.TxFailedErr, false},
		{context.Canceled, false},
		{io.EOF, true},
		{&net.OpError{Op: "dial", Err: errors.New("connection refused")}, true},
		{&net.OpError{Op: "dial", Err: context.DeadlineExceeded}, true},
	} {
		if got := StaleTopology(tc.err); got != tc.want {
			t.Errorf("StaleTopology(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
	// Replies from a real server.
	r := testkit.StartRedis(t).Client(t)
	ctx := context.Background()
	r.Set(ctx, "s", "x", 0)
	if err := r.LPush(ctx, "s", "x").Err(); err == nil || StaleTopology(err) {
		t.Errorf("WRONGTYPE (%v): stale = %v, want false", err, StaleTopology(err))
	}
}

// TestFailoverWritesResume: with a replica per master, SIGKILL the master
// of the mail's slot while writing to it. Writes fail until a replica has
// taken over, then resume: a client that waited for its periodic reload
// (60 s) would keep sending to the dead address, and would still fail 20
// attempts after the cluster is whole again.
func TestFailoverWritesResume(t *testing.T) {
	c := testkit.StartRedisClusterWith(t, testkit.RedisClusterOptions{Masters: 3, ReplicasPerMaster: 1, NodeTimeout: 2 * time.Second})
	rdb, err := Open(config.Redis{URL: c.URL()})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	stall := failoverStall(t, c, rdb, 20)
	t.Logf("writes to the killed master's slot stalled %v (cluster-node-timeout 2s)", stall.Round(time.Millisecond))
}

// TestFailoverStallBaseline measures the stall of a go-redis cluster client
// as it comes, without ReloadOnNetworkError (go test ... -args -failover.baseline).
func TestFailoverStallBaseline(t *testing.T) {
	if !*baseline {
		t.Skip("measurement only: go test -run TestFailoverStallBaseline ./internal/redisclient/ -args -failover.baseline")
	}
	c := testkit.StartRedisClusterWith(t, testkit.RedisClusterOptions{Masters: 3, ReplicasPerMaster: 1, NodeTimeout: 2 * time.Second})
	opts, err := ParseClusterURL(c.URL())
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClusterClient(opts)
	defer rdb.Close()
	stall := failoverStall(t, c, rdb, 0)
	t.Logf("without reload on network errors, writes stalled %v (cluster-node-timeout 2s)", stall.Round(time.Millisecond))
}

// failoverStall writes to the mail's hash tag, kills its master, and writes
// until a write succeeds; it returns how long after the kill that was. With
// healthyAttempts > 0 the test fails when that many writes fail once every
// live node sees the slot served again.
func failoverStall(t *testing.T, c *testkit.RedisCluster, rdb redis.UniversalClient, healthyAttempts int) time.Duration {
	t.Helper()
	ctx := context.Background()
	const key = "pp:{q}:failover-probe"
	if err := rdb.Set(ctx, key, "before", 0).Err(); err != nil {
		t.Fatal(err)
	}
	master := c.MasterOf(key)
	master.Kill()
	killed := time.Now()
	deadline := killed.Add(2 * time.Minute) // a hang, not a measurement
	failed, afterHealthy := 0, 0
	var lastErr error
	for {
		err := rdb.Set(ctx, key, "after", 0).Err()
		if err == nil {
			break
		}
		failed, lastErr = failed+1, err
		if healthyAttempts > 0 && c.Healthy() {
			afterHealthy++
			if afterHealthy > healthyAttempts {
				t.Fatalf("%d writes failed after the cluster had failed over (last: %v): the client still writes to the dead master", afterHealthy-1, lastErr)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("writes still fail %v after the kill: %v", time.Since(killed), lastErr)
		}
	}
	stall := time.Since(killed)
	t.Logf("%d writes failed (last: %v) before one succeeded on %s", failed, lastErr, c.MasterOf(key).Addr)
	if got, err := rdb.Get(ctx, key).Result(); err != nil || got != "after" {
		t.Fatalf("GET after the failover = %q, %v", got, err)
	}
	return stall
}

// TestSentinelFailover: redis.sentinel_master with the Sentinels in
// redis.addrs gives a client of the master; when the master is killed, the
// Sentinels promote its replica and writes resume on it, with what the
// replica had confirmed (WAIT) before the kill.
func TestSentinelFailover(t *testing.T) {
	s := testkit.StartRedisSentinel(t)
	rdb, err := Open(config.Redis{Addrs: s.SentinelAddrs(), SentinelMaster: s.Name})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	if _, ok := rdb.(*redis.Client); !ok {
		t.Fatalf("client %T, want a Sentinel failover client", rdb)
	}
	ctx := context.Background()
	// WAIT counts against its connection's last write: write on that one.
	conn := rdb.(*redis.Client).Conn()
	if err := conn.Set(ctx, "confirmed", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := conn.Wait(ctx, 1, 10*time.Second).Result(); err != nil || n != 1 {
		t.Fatalf("WAIT 1 = %d, %v", n, err)
	}
	conn.Close()

	s.Master.Kill()
	killed := time.Now()
	failed := 0
	var lastErr error
	for {
		err := rdb.Set(ctx, "after", "v", 0).Err()
		if err == nil {
			break
		}
		failed, lastErr = failed+1, err
		if time.Since(killed) > 2*time.Minute { // a hang, not a measurement
			t.Fatalf("writes still fail %v after the kill: %v", time.Since(killed), err)
		}
	}
	t.Logf("Sentinel failover: %d writes failed (last: %v), writes stalled %v (down-after 1s)", failed, lastErr, time.Since(killed).Round(time.Millisecond))
	if got, err := rdb.Get(ctx, "confirmed").Result(); err != nil || got != "v" {
		t.Fatalf("GET of the confirmed write on the promoted replica = %q, %v", got, err)
	}
}
