// Package redisclient opens the Redis client the configuration names: one
// server, a Redis Cluster, or a master found through Sentinel; and it makes
// a cluster client notice a failover as soon as a node stops answering.
package redisclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"runtime"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/pigeonpost/pigeonpost/config"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// Open returns a client for r (validated; r.URL or r.Addrs set): a
// *redis.Client, a *redis.ClusterClient (with ReloadOnNetworkError) or a
// Sentinel failover client.
func Open(r config.Redis) (redis.UniversalClient, error) {
	var rdb redis.UniversalClient
	switch scheme, _, _ := strings.Cut(r.URL, "://"); {
	case r.URL == "":
		rdb = redis.NewUniversalClient(&redis.UniversalOptions{
			Addrs:         r.Addrs,
			IsClusterMode: r.Cluster,
			MasterName:    r.SentinelMaster,
			Password:      r.Password,
			PoolSize:      poolSize(0),
		})
	case strings.HasSuffix(scheme, "+cluster") || r.Cluster:
		opts, err := ParseClusterURL(r.URL)
		if err != nil {
			return nil, fmt.Errorf("redis.url: %w", err)
		}
		opts.PoolSize = poolSize(opts.PoolSize)
		rdb = redis.NewClusterClient(opts)
	default:
		opts, err := redis.ParseURL(r.URL)
		if err != nil {
			return nil, fmt.Errorf("redis.url: %w", err)
		}
		opts.PoolSize = poolSize(opts.PoolSize)
		rdb = redis.NewClient(opts)
	}
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		ReloadOnNetworkError(cc)
	}
	return rdb, nil
}

// poolSize is the connection pool's size (per node): set (the URL's
// pool_size) or go-redis's default, 10 per CPU, plus a connection for
// each reader that blocks on a stream: a delivery worker's and a webhook
// dispatcher's in each mail shard, so that they never hold all the pool
// while the submissions wait.
func poolSize(set int) int {
	if set > 0 {
		return set
	}
	return 10*runtime.GOMAXPROCS(0) + 2*store.MaxShards
}

// ParseClusterURL parses redis+cluster://[user:password@]h1:p1,h2:p2[?opts]
// (rediss+cluster:// for TLS), or a plain redis:// or rediss:// URL naming
// one node of the cluster, into go-redis cluster options.
func ParseClusterURL(s string) (*redis.ClusterOptions, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, errors.New("invalid URL") // the URL may hold a password
	}
	u.Scheme = strings.TrimSuffix(u.Scheme, "+cluster")
	hosts := strings.Split(u.Host, ",")
	u.Host = hosts[0]
	q := u.Query()
	for _, h := range hosts[1:] {
		q.Add("addr", h)
	}
	u.RawQuery = q.Encode()
	u.Path = ""
	return redis.ParseClusterURL(u.String())
}

// ReloadOnNetworkError makes c re-read the cluster's slot map whenever a
// command or pipeline fails without an answer from Redis (a refused or
// dropped connection, a timeout) or with CLUSTERDOWN.
//
// go-redis reloads the map on MOVED and ASK replies, and otherwise every
// ClusterStateReloadInterval (60 s). A killed master sends neither: until
// the next periodic reload every write to its slots goes to the dead
// address, long after a replica has taken over (redis/go-redis#3979).
// Reloads are coalesced by go-redis (one at a time, 200 ms apart).
func ReloadOnNetworkError(c *redis.ClusterClient) {
	c.AddHook(reloadHook{c})
}

type reloadHook struct{ c *redis.ClusterClient }

func (h reloadHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h reloadHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.check(ctx, err)
		return err
	}
}

func (h reloadHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		h.check(ctx, err)
		return err
	}
}

func (h reloadHook) check(ctx context.Context, err error) {
	if StaleTopology(err) && ctx.Err() == nil {
		h.c.ReloadState(ctx)
	}
}

// StaleTopology reports whether err says that the node a command went to
// may no longer serve its slot: no answer from Redis at all, or
// CLUSTERDOWN. A reply such as WRONGTYPE, redis.Nil or a failed
// transaction is an answer, and says nothing about the topology.
func StaleTopology(err error) bool {
	if err == nil || errors.Is(err, redis.Nil) || errors.Is(err, redis.TxFailedErr) {
		return false
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return true // a dial timeout wraps context.DeadlineExceeded too
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		return strings.HasPrefix(rerr.Error(), "CLUSTERDOWN")
	}
	return true
}
