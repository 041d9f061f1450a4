package testkit

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisCluster is a Redis Cluster of redis-server processes on loopback for
// one test: masters that share the 16384 slots, each with its replicas.
type RedisCluster struct {
	t     testing.TB
	Nodes []*ClusterNode // masters first, then the replicas of each master in turn
}

// ClusterNode is one redis-server of a RedisCluster.
type ClusterNode struct {
	Addr    string // 127.0.0.1:port
	ID      string // the cluster's node id
	Replica bool   // started as a replica (roles change at a failover)

	process
	args []string
}

// RedisClusterOptions configures StartRedisClusterWith.
type RedisClusterOptions struct {
	Masters           int
	ReplicasPerMaster int
	// NodeTimeout is cluster-node-timeout: how long a master is unreachable
	// before its replica is promoted. 0: 2s.
	NodeTimeout time.Duration
	// PartialCoverage sets cluster-require-full-coverage no: the masters
	// that are up keep serving their slots while another is down.
	PartialCoverage bool
}

// StartRedisCluster starts a Redis Cluster of masters × (1 +
// replicasPerMaster) redis-server processes on 127.0.0.1, each with an
// append-only file fsynced on every write, joins them with CLUSTER
// ADDSLOTSRANGE, MEET and REPLICATE, and waits until every node reports
// cluster_state:ok and every replica is in sync. The processes are killed
// on t.Cleanup.
//
// Without redis-server on PATH the test fails when PIGEONPOST_REQUIRE_REDIS=1
// and is skipped otherwise: miniredis has no cluster mode.
func StartRedisCluster(t testing.TB, masters, replicasPerMaster int) *RedisCluster {
	t.Helper()
	return StartRedisClusterWith(t, RedisClusterOptions{Masters: masters, ReplicasPerMaster: replicasPerMaster})
}

// StartRedisClusterWith is StartRedisCluster with options.
func StartRedisClusterWith(t testing.TB, o RedisClusterOptions) *RedisCluster {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv(requireRedisEnv) == "1" {
			t.Fatal("redis-server not found: apt-get install -y redis-server")
		}
		t.Skipf("redis-server not on PATH: a Redis Cluster needs it (set %s=1 to require it)", requireRedisEnv)
	}
	if o.Masters < 1 {
		t.Fatalf("testkit: a cluster needs at least one master, got %d", o.Masters)
	}
	if o.NodeTimeout == 0 {
		o.NodeTimeout = 2 * time.Second
	}
	c := &RedisCluster{t: t}
	total := o.Masters * (1 + o.ReplicasPerMaster)
	for i := range total {
		n, err := startClusterNode(t, bin, i, o)
		if err != nil {
			t.Fatalf("testkit: cluster node %d: %v", i, err)
		}
		n.Replica = i >= o.Masters
		c.Nodes = append(c.Nodes, n)
	}
	if err := c.join(o); err != nil {
		t.Fatalf("testkit: join the cluster: %v", err)
	}
	return c
}

// startClusterNode starts one cluster-enabled redis-server on a free
// loopback port (and a free one for the cluster bus).
func startClusterNode(t testing.TB, bin string, i int, o RedisClusterOptions) (*ClusterNode, error) {
	coverage := "yes"
	if o.PartialCoverage {
		coverage = "no"
	}
	return startNode(t, bin, fmt.Sprintf("node%d", i), 2, func(dir string, ports []int) []string {
		return []string{
			"--bind", "127.0.0.1",
			"--port", strconv.Itoa(ports[0]),
			"--cluster-enabled", "yes",
			"--cluster-port", strconv.Itoa(ports[1]),
			"--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--cluster-node-timeout", strconv.FormatInt(o.NodeTimeout.Milliseconds(), 10),
			"--cluster-require-full-coverage", coverage,
			// A replica may always take over: the test decides when it is in sync.
			"--cluster-replica-validity-factor", "0",
			"--cluster-allow-replica-migration", "no",
			"--repl-diskless-sync", "yes",
			"--repl-diskless-sync-delay", "0",
			"--dir", dir,
			"--appendonly", "yes",
			"--appendfsync", "always",
			"--save", "",
		}
	})
}

// startNode starts a redis-server on 127.0.0.1 with the arguments args
// gives for its directory and n free ports (the first is the one clients
// use), trying other ports when one was taken in between.
func startNode(t testing.TB, bin, name string, n int, args func(dir string, ports []int) []string) (*ClusterNode, error) {
	dir := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	var lastErr error
	for range 5 {
		ports, err := freePorts(n)
		if err != nil {
			return nil, err
		}
		node := &ClusterNode{
			Addr:    net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0])),
			process: process{bin: bin, dir: dir, logPath: filepath.Join(dir, "redis.log")},
			args:    args(dir, ports),
		}
		if lastErr = node.start(); lastErr == nil {
			t.Cleanup(node.Kill)
			return node, nil
		}
	}
	return nil, lastErr
}

// freePorts returns n ports that were free on 127.0.0.1 a moment ago. A
// cluster node needs a fixed TCP port (its peers and clients are told it),
// so this is the one place the tests pick ports; startNode retries
// when one has been taken since.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func (n *ClusterNode) start() error {
	return n.process.start(n.args, func() error { return redisPing("tcp", n.Addr) })
}

// Kill SIGKILLs the node, if running, and waits until it is reaped.
func (n *ClusterNode) Kill() { n.kill() }

// node returns a plain client of one node, closed on t.Cleanup.
func (n *ClusterNode) client(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: n.Addr, MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { c.Close() })
	return c
}

// join assigns the slots to the masters in equal ranges, introduces every
// node to the first, attaches the replicas, and waits for the cluster to be
// whole.
func (c *RedisCluster) join(o RedisClusterOptions) error {
	ctx := context.Background()
	clients := make([]*redis.Client, len(c.Nodes))
	for i, n := range c.Nodes {
		clients[i] = n.client(c.t)
		id, err := clients[i].ClusterMyID(ctx).Result()
		if err != nil {
			return fmt.Errorf("%s: CLUSTER MYID: %w", n.Addr, err)
		}
		n.ID = id
	}
	for i := range o.Masters {
		lo, hi := i*16384/o.Masters, (i+1)*16384/o.Masters-1
		if err := clients[i].Do(ctx, "cluster", "addslotsrange", lo, hi).Err(); err != nil {
			return fmt.Errorf("%s: CLUSTER ADDSLOTSRANGE %d %d: %w", c.Nodes[i].Addr, lo, hi, err)
		}
	}
	first := c.Nodes[0]
	host, port, _ := net.SplitHostPort(first.Addr)
	bus := first.args[indexOf(first.args, "--cluster-port")+1]
	for i := 1; i < len(c.Nodes); i++ {
		if err := clients[i].Do(ctx, "cluster", "meet", host, port, bus).Err(); err != nil {
			return fmt.Errorf("%s: CLUSTER MEET: %w", c.Nodes[i].Addr, err)
		}
	}
	if err := c.await("every node to know every other", func() error {
		for i, cl := range clients {
			nodes, err := cl.ClusterNodes(ctx).Result()
			if err != nil {
				return err
			}
			if got := strings.Count(strings.TrimSpace(nodes), "\n") + 1; got != len(c.Nodes) {
				return fmt.Errorf("%s knows %d nodes of %d", c.Nodes[i].Addr, got, len(c.Nodes))
			}
		}
		return nil
	}); err != nil {
		return err
	}
	for i := o.Masters; i < len(c.Nodes); i++ {
		master := c.Nodes[(i-o.Masters)/o.ReplicasPerMaster]
		if err := clients[i].ClusterReplicate(ctx, master.ID).Err(); err != nil {
			return fmt.Errorf("%s: CLUSTER REPLICATE %s: %w", c.Nodes[i].Addr, master.Addr, err)
		}
	}
	if err := c.await("cluster_state:ok on every node, every replica in sync", func() error {
		for i, cl := range clients {
			info, err := cl.ClusterInfo(ctx).Result()
			if err != nil {
				return err
			}
			if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_slots_ok:16384") {
				return fmt.Errorf("%s: %s", c.Nodes[i].Addr, infoLine(info, "cluster_state"))
			}
			if !c.Nodes[i].Replica {
				continue
			}
			repl, err := cl.Info(ctx, "replication").Result()
			if err != nil {
				return err
			}
			if !strings.Contains(repl, "master_link_status:up") || strings.Contains(repl, "master_sync_in_progress:1") {
				return fmt.Errorf("replica %s not in sync: %s", c.Nodes[i].Addr, infoLine(repl, "master_link_status"))
			}
		}
		// Every node must also see the replicas as replicas, or a
		// failover could not be voted for.
		for i, cl := range clients {
			nodes, err := cl.ClusterNodes(ctx).Result()
			if err != nil {
				return err
			}
			if got := strings.Count(nodes, "slave"); got != len(c.Nodes)-o.Masters {
				return fmt.Errorf("%s sees %d replicas of %d", c.Nodes[i].Addr, got, len(c.Nodes)-o.Masters)
			}
		}
		return nil
	}); err != nil || o.ReplicasPerMaster == 0 {
		return err
	}
	// CLUSTER SLOTS, which clients route by, leaves out a replica until
	// it has replicated something (repl_offset 0): write to every master.
	for i := range o.Masters {
		lo := i * 16384 / o.Masters
		hi := (i+1)*16384/o.Masters - 1
		for k := 0; ; k++ {
			key := fmt.Sprintf("testkit:{warm%d}", k)
			if slot := int(Slot(key)); slot >= lo && slot <= hi {
				if err := clients[i].Set(ctx, key, 1, 0).Err(); err != nil {
					return fmt.Errorf("%s: SET %s: %w", c.Nodes[i].Addr, key, err)
				}
				if err := clients[i].Del(ctx, key).Err(); err != nil {
					return fmt.Errorf("%s: DEL %s: %w", c.Nodes[i].Addr, key, err)
				}
				break
			}
		}
	}
	return c.await("CLUSTER SLOTS on every node to list every replica", func() error {
		for i, cl := range clients {
			//lint:ignore SA1019 go-redis routes by CLUSTER SLOTS: wait for what it will see
			slots, err := cl.ClusterSlots(ctx).Result()
			if err != nil {
				return err
			}
			replicas := 0
			for _, s := range slots {
				replicas += max(len(s.Nodes)-1, 0)
			}
			if want := len(c.Nodes) - o.Masters; replicas != want {
				return fmt.Errorf("%s lists %d replicas of %d", c.Nodes[i].Addr, replicas, want)
			}
		}
		return nil
	})
}

// await polls check until it returns nil, or fails after a generous
// deadline with check's last error.
func (c *RedisCluster) await(what string, check func() error) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			var logs strings.Builder
			for _, n := range c.Nodes {
				fmt.Fprintf(&logs, "--- %s (%s):\n%s\n", n.Addr, n.logPath, n.log())
			}
			return fmt.Errorf("still waiting for %s: %v\n%s", what, err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func infoLine(info, field string) string {
	for line := range strings.SplitSeq(info, "\n") {
		if strings.HasPrefix(line, field+":") {
			return strings.TrimSpace(line)
		}
	}
	return field + " missing"
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// Addrs returns every node's host:port, masters first.
func (c *RedisCluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr
	}
	return out
}

// URL returns the cluster as a redis.url: redis+cluster://h1:p1,h2:p2,….
func (c *RedisCluster) URL() string {
	return "redis+cluster://" + strings.Join(c.Addrs(), ",")
}

// Client returns a cluster client seeded with every node, closed on
// t.Cleanup.
func (c *RedisCluster) Client(t testing.TB) *redis.ClusterClient {
	t.Helper()
	cl := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	t.Cleanup(func() { cl.Close() })
	return cl
}

// MasterOf returns the node that serves key's slot now, as the live nodes
// see it.
func (c *RedisCluster) MasterOf(key string) *ClusterNode {
	c.t.Helper()
	slot := int(Slot(key))
	ctx := context.Background()
	for _, n := range c.Nodes {
		if !n.running() {
			continue
		}
		cl := redis.NewClient(&redis.Options{Addr: n.Addr, MaxRetries: -1})
		owners, err := slotMasters(ctx, cl)
		cl.Close()
		if err != nil {
			continue
		}
		for _, o := range owners {
			if slot >= o.start && slot <= o.end {
				for _, m := range c.Nodes {
					if m.Addr == o.addr {
						return m
					}
				}
			}
		}
	}
	c.t.Fatalf("testkit: no live node knows the master of slot %d", slot)
	return nil
}

// WaitHealthy waits until every running node reports cluster_state:ok and
// sees every slot served by a running master (after a master was killed:
// its replica has taken over).
func (c *RedisCluster) WaitHealthy(t testing.TB) {
	t.Helper()
	if err := c.await("every running node to see all slots served by running masters", c.health); err != nil {
		t.Fatalf("testkit: %v", err)
	}
}

// Healthy reports, once, what WaitHealthy waits for.
func (c *RedisCluster) Healthy() bool { return c.health() == nil }

func (c *RedisCluster) health() error {
	ctx := context.Background()
	running := map[string]bool{}
	for _, n := range c.Nodes {
		running[n.Addr] = n.running()
	}
	for _, n := range c.Nodes {
		if !running[n.Addr] {
			continue
		}
		cl := redis.NewClient(&redis.Options{Addr: n.Addr, MaxRetries: -1})
		info, err := cl.ClusterInfo(ctx).Result()
		var owners []slotOwner
		if err == nil {
			owners, err = slotMasters(ctx, cl)
		}
		cl.Close()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_slots_ok:16384") {
			return fmt.Errorf("%s: %s", n.Addr, infoLine(info, "cluster_state"))
		}
		for _, o := range owners {
			if !running[o.addr] {
				return fmt.Errorf("%s: slots %d-%d not served by a running master", n.Addr, o.start, o.end)
			}
		}
	}
	return nil
}

// slotOwner is a range of slots and the address of its master.
type slotOwner struct {
	start, end int
	addr       string // "" when the shard has no master
}

// slotMasters returns the slot ranges and their masters as cl's node sees
// them (CLUSTER SHARDS).
func slotMasters(ctx context.Context, cl *redis.Client) ([]slotOwner, error) {
	shards, err := cl.ClusterShards(ctx).Result()
	if err != nil {
		return nil, err
	}
	var out []slotOwner
	for _, sh := range shards {
		addr := ""
		for _, n := range sh.Nodes {
			if n.Role == "master" {
				addr = net.JoinHostPort(n.IP, strconv.FormatInt(n.Port, 10))
			}
		}
		for _, r := range sh.Slots {
			out = append(out, slotOwner{start: int(r.Start), end: int(r.End), addr: addr})
		}
	}
	return out, nil
}

// testRedisEnv chooses the backend of RedisClient.
const testRedisEnv = "PIGEONPOST_TEST_REDIS"

// RedisClient returns a client of a fresh Redis for one test: a
// redis-server (StartRedis), or, with PIGEONPOST_TEST_REDIS=cluster, a
// 3-master RedisCluster, with a SlotChecker that fails the test on any
// script or MULTI across slots. Tests written against it run unchanged on
// both: PIGEONPOST_TEST_REDIS=cluster go test ./pipeline/store/.
func RedisClient(t testing.TB) redis.UniversalClient {
	t.Helper()
	switch os.Getenv(testRedisEnv) {
	case "", "single":
		return StartRedis(t).Client(t)
	case "cluster":
		c := StartRedisCluster(t, 3, 0).Client(t)
		c.AddHook(NewSlotChecker(t.Errorf))
		return c
	default:
		t.Fatalf("testkit: %s=%q: want single or cluster", testRedisEnv, os.Getenv(testRedisEnv))
		return nil
	}
}
