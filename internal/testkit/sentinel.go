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

	"github.com/redis/go-redis/v9"
)

// RedisSentinel is a master, its replica and three Sentinels watching them,
// on loopback, for one test.
type RedisSentinel struct {
	Name      string // the master's name for the Sentinels: "mymaster"
	Master    *ClusterNode
	Replica   *ClusterNode
	Sentinels []*ClusterNode
}

// StartRedisSentinel starts a master and a replica (AOF fsynced on every
// write) and three Sentinels with a quorum of 2 that consider the master
// down after 1 s, and waits until every Sentinel knows the replica and the
// other Sentinels. The processes are killed on t.Cleanup. Without
// redis-server the test fails under PIGEONPOST_REQUIRE_REDIS=1 and is
// skipped otherwise.
func StartRedisSentinel(t testing.TB) *RedisSentinel {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv(requireRedisEnv) == "1" {
			t.Fatal("redis-server not found: apt-get install -y redis-server")
		}
		t.Skipf("redis-server not on PATH: Sentinel needs it (set %s=1 to require it)", requireRedisEnv)
	}
	s := &RedisSentinel{Name: "mymaster"}
	data := func(name string, extra ...string) *ClusterNode {
		n, err := startNode(t, bin, name, 1, func(dir string, ports []int) []string {
			return append([]string{"--bind", "127.0.0.1", "--port", strconv.Itoa(ports[0]), "--dir", dir,
				"--appendonly", "yes", "--appendfsync", "always", "--save", "",
				"--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"}, extra...)
		})
		if err != nil {
			t.Fatalf("testkit: %s: %v", name, err)
		}
		return n
	}
	s.Master = data("master")
	host, port, _ := net.SplitHostPort(s.Master.Addr)
	s.Replica = data("replica", "--replicaof", host, port)
	s.Replica.Replica = true
	for i := range 3 {
		n, err := startNode(t, bin, fmt.Sprintf("sentinel%d", i), 1, func(dir string, ports []int) []string {
			conf := filepath.Join(dir, "sentinel.conf")
			text := fmt.Sprintf("bind 127.0.0.1\nport %d\ndir %s\nsentinel monitor %s %s %s 2\n"+
				"sentinel down-after-milliseconds %s 1000\nsentinel failover-timeout %s 10000\n",
				ports[0], dir, s.Name, host, port, s.Name, s.Name)
			if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			return []string{conf, "--sentinel"}
		})
		if err != nil {
			t.Fatalf("testkit: sentinel %d: %v", i, err)
		}
		s.Sentinels = append(s.Sentinels, n)
	}
	ctx := context.Background()
	c := &RedisCluster{t: t, Nodes: append([]*ClusterNode{s.Master, s.Replica}, s.Sentinels...)}
	err = c.await("every Sentinel to know the replica and the other Sentinels", func() error {
		for _, n := range s.Sentinels {
			sc := redis.NewSentinelClient(&redis.Options{Addr: n.Addr, MaxRetries: -1})
			m, err := sc.Master(ctx, s.Name).Result()
			sc.Close()
			if err != nil {
				return err
			}
			if m["num-slaves"] != "1" || m["num-other-sentinels"] != "2" || strings.Contains(m["flags"], "down") {
				return fmt.Errorf("%s: replicas %s, other sentinels %s, flags %s", n.Addr, m["num-slaves"], m["num-other-sentinels"], m["flags"])
			}
		}
		repl, err := s.Replica.client(t).Info(ctx, "replication").Result()
		if err != nil {
			return err
		}
		if !strings.Contains(repl, "master_link_status:up") {
			return fmt.Errorf("replica not in sync: %s", infoLine(repl, "master_link_status"))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("testkit: %v", err)
	}
	return s
}

// SentinelAddrs returns the Sentinels' host:port.
func (s *RedisSentinel) SentinelAddrs() []string {
	out := make([]string, len(s.Sentinels))
	for i, n := range s.Sentinels {
		out[i] = n.Addr
	}
	return out
}
