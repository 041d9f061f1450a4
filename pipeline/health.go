package pipeline

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// DurabilityProblems reads the Redis settings that decide whether an
// acknowledged message survives a crash and lists every one that does not
// (anchors-reliability §2.6). An empty list means durable.
//
// On a Redis Cluster every node is read, masters and replicas (a replica
// that takes over must be as durable), and each problem names its node.
func DurabilityProblems(ctx context.Context, rdb redis.UniversalClient) ([]string, error) {
	cc, ok := rdb.(*redis.ClusterClient)
	if !ok {
		return nodeDurabilityProblems(ctx, rdb)
	}
	var mu sync.Mutex
	var problems []string
	err := cc.ForEachShard(ctx, func(ctx context.Context, node *redis.Client) error {
		ps, err := nodeDurabilityProblems(ctx, node)
		if err != nil {
			return fmt.Errorf("%s: %w", node.Options().Addr, err)
		}
		mu.Lock()
		defer mu.Unlock()
		for _, p := range ps {
			problems = append(problems, node.Options().Addr+": "+p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(problems)
	return problems, nil
}

// nodeDurabilityProblems is DurabilityProblems for one server.
func nodeDurabilityProblems(ctx context.Context, rdb redis.UniversalClient) ([]string, error) {
	get := func(name string) (string, error) {
		res, err := rdb.ConfigGet(ctx, name).Result()
		if err != nil {
			return "", fmt.Errorf("CONFIG GET %s: %w", name, err)
		}
		return res[name], nil
	}
	var problems []string
	aof, err := get("appendonly")
	if err != nil {
		return nil, err
	}
	if aof != "yes" {
		problems = append(problems, "appendonly is "+Quote(aof)+": acknowledged mail is lost when Redis restarts (set appendonly yes)")
	}
	fsync, err := get("appendfsync")
	if err != nil {
		return nil, err
	}
	// Only always makes an OK mean "on disk" on Redis 7.0 (no WAITAOF).
	if fsync != "always" && aof == "yes" {
		problems = append(problems, "appendfsync is "+Quote(fsync)+": up to a second of acknowledged mail is lost on a crash (set appendfsync always)")
	}
	policy, err := get("maxmemory-policy")
	if err != nil {
		return nil, err
	}
	if policy != "noeviction" {
		problems = append(problems, "maxmemory-policy is "+Quote(policy)+": Redis may evict queued mail under memory pressure (set maxmemory-policy noeviction)")
	}
	if v, err := get("no-appendfsync-on-rewrite"); err == nil && v == "yes" {
		problems = append(problems, "no-appendfsync-on-rewrite is yes: writes are not fsynced during AOF rewrites (set it to no)")
	}
	return problems, nil
}

// readyWait is how long Ready waits for Redis: a Redis slower than this
// is not ready, and a readiness check does not stall with it.
const readyWait = time.Second

// readiness is the probe in flight, which concurrent checks share: checks
// come from anyone (GET /healthz), and while Redis stalls each would
// otherwise hold a connection and a goroutine until it answers.
type readiness struct {
	mu  sync.Mutex
	run *probeRun
}

type probeRun struct {
	done chan struct{}
	err  error // set before done is closed
}

// Ready reports whether Redis takes writes now, as a submission needs: nil,
// ErrStorageFull when it refuses them (memory or disk full), or
// ErrUnavailable when it does not answer within readyWait.
func (s *Service) Ready(ctx context.Context) error {
	s.readiness.mu.Lock()
	run := s.readiness.run
	if run == nil {
		run = &probeRun{done: make(chan struct{})}
		s.readiness.run = run
		go func() {
			run.err = s.store.ProbeWrite(context.Background())
			s.readiness.mu.Lock()
			s.readiness.run = nil
			s.readiness.mu.Unlock()
			close(run.done)
		}()
	}
	s.readiness.mu.Unlock()
	timer := time.NewTimer(readyWait)
	defer timer.Stop()
	select {
	case <-run.done:
		if run.err != nil {
			return StorageError(run.err)
		}
		return nil
	case <-timer.C:
		return ErrUnavailable.WithCause(fmt.Errorf("redis did not answer within %v", readyWait))
	case <-ctx.Done():
		return ErrUnavailable.WithCause(ctx.Err())
	}
}
