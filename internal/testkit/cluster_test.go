package testkit

import (
	"context"
	"fmt"
	"testing"
)

// TestRedisCluster: three masters share the slots, so keys of different
// hash tags land on different masters, and a cluster client reads back
// what it wrote through every one of them.
func TestRedisCluster(t *testing.T) {
	c := StartRedisCluster(t, 3, 0)
	if len(c.Nodes) != 3 {
		t.Fatalf("%d nodes, want 3", len(c.Nodes))
	}
	rdb := c.Client(t)
	ctx := context.Background()
	masters := map[string]bool{}
	for i := range 30 {
		key := fmt.Sprintf("{k%d}", i)
		if err := rdb.Set(ctx, key, i, 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", key, err)
		}
		if got, err := rdb.Get(ctx, key).Int(); err != nil || got != i {
			t.Fatalf("GET %s = %d, %v", key, got, err)
		}
		masters[c.MasterOf(key).Addr] = true
	}
	if len(masters) != 3 {
		t.Fatalf("30 keys on %d masters, want all 3", len(masters))
	}
}

// TestRedisClusterFailover: with a replica per master, killing the master
// of a key hands its slots to that master's replica, which has the key.
func TestRedisClusterFailover(t *testing.T) {
	c := StartRedisCluster(t, 3, 1)
	rdb := c.Client(t)
	ctx := context.Background()
	if err := rdb.Set(ctx, "{f}", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// WAIT: the replica has the write before its master dies.
	if n, err := rdb.Do(ctx, "wait", 1, 5000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT 1 = %d, %v", n, err)
	}
	old := c.MasterOf("{f}")
	if old.Replica {
		t.Fatalf("%s serves {f} but was started as a replica", old.Addr)
	}
	old.Kill()
	c.WaitHealthy(t)
	now := c.MasterOf("{f}")
	if now == old || !now.Replica {
		t.Fatalf("after the kill {f} is served by %s (replica %v), want the old master's replica", now.Addr, now.Replica)
	}
	cl := now.client(t)
	if got, err := cl.Get(ctx, "{f}").Result(); err != nil || got != "v" {
		t.Fatalf("GET on the promoted replica = %q, %v", got, err)
	}
}

func TestRedisClusterRequired(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv(requireRedisEnv, "1")
	msg := runFake(t, func(tb testing.TB) { StartRedisCluster(tb, 3, 0) })
	if want := "redis-server not found: apt-get install -y redis-server"; msg != want {
		t.Fatalf("fatal = %q, want %q", msg, want)
	}
}
