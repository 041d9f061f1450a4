package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/redis/go-redis/v9"

	"github.com/pigeonpost/pigeonpost/config"
	"github.com/pigeonpost/pigeonpost/internal/failpoint"
	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/internal/testkit/resttest"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// The integration tests start the real gateway on 127.0.0.1:0 against a real
// redis-server (embedded only when redis-server is missing and
// PIGEONPOST_REQUIRE_REDIS is unset), a loopback DNS server and a recording
// SMTP sink standing in for the destination MX.

const (
	liveKey      = "sp_live_integrationtestkey000000000001"
	senderDomain = "acme.test"
	rcptDomain   = "example.test"
)

type stack struct {
	*resttest.Client // of the running gateway's HTTP listener
	t                *testing.T
	redis            *testkit.Redis
	cluster          *testkit.RedisCluster // when the gateway runs on a cluster (onCluster) instead of redis
	dns              *testkit.DNS
	sink             *testkit.Sink
	cfg              config.Config
	addrs            boundAddrs
	stop             func()
	logs             lockedBuffer // what the gateway logged, at cfg.Log.Level ("debug", or info)
}

// lockedBuffer is a buffer safe for concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// stackConfig is the configuration every integration test starts from.
func stackConfig(t *testing.T, r *testkit.Redis, d *testkit.DNS, sink *testkit.Sink) config.Config {
	cfg := config.Default()
	cfg.SMTP.Listen = "127.0.0.1:0"
	cfg.SMTP.TLSListen = "127.0.0.1:0"
	cfg.SMTP.Hostname = "gateway.test"
	cfg.SMTP.MaxMessageBytes = 1 << 20
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.HTTP.PublicURL = "https://t.gateway.test"
	cfg.Redis.URL = r.URL()
	cfg.DNS.Resolver = d.Addr()
	cfg.Delivery.MXPort = sink.Port()
	cfg.Delivery.AllowPrivateDestinations = true // the sink is on loopback
	cfg.Delivery.Workers = 2
	cfg.Delivery.Timeout = 5 * time.Second
	cfg.Delivery.ClaimIdle = 6 * time.Second
	cfg.Delivery.RetryInitial = 200 * time.Millisecond
	cfg.Delivery.RetryMax = time.Second
	cfg.Auth.BootstrapKey = liveKey
	cfg.Auth.FailureDelay = 0
	cfg.Domains.SPFInclude = "_spf.gateway.test"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startStack starts Redis, DNS, the sink and the gateway, and verifies
// senderDomain for the bootstrap key's account.
func startStack(t *testing.T, mutate ...func(*config.Config)) *stack {
	t.Helper()
	s := &stack{t: t, redis: testkit.StartRedis(t), dns: testkit.StartDNS(t), sink: testkit.StartSink(t, testkit.SinkOptions{TLS: true})}
	if !s.redis.Real() {
		t.Log("redis-server not on PATH: using the embedded server")
	}
	s.dns.SetMX(rcptDomain, map[string]uint16{"mx." + rcptDomain: 10})
	s.dns.SetA("mx."+rcptDomain, "127.0.0.1")
	s.cfg = stackConfig(t, s.redis, s.dns, s.sink)
	for _, m := range mutate {
		m(&s.cfg)
	}
	s.start()
	s.VerifyDomain(s.dns, senderDomain)
	return s
}

// start runs the gateway in-process until the test ends or stop is called.
func (s *stack) start() {
	t := s.t
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan boundAddrs, 1)
	done := make(chan error, 1)
	level := slog.LevelInfo
	if s.cfg.Log.Level == "debug" {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(testWriter{t}, &s.logs), &slog.HandlerOptions{Level: level}))
	go func() {
		done <- serve(ctx, s.cfg, log, serveOptions{stdout: io.Discard, onReady: func(a boundAddrs) { ready <- a },
			// Every integration test also proves that what it made the gateway
			// do would run on Redis Cluster: no script or MULTI across slots.
			redisHook: testkit.NewSlotChecker(t.Errorf)})
	}()
	select {
	case a := <-ready:
		s.bind(a)
	case err := <-done:
		cancel()
		t.Fatalf("gateway did not start: %v", err)
	case <-time.After(20 * time.Second):
		cancel()
		t.Fatal("gateway did not start within 20s")
	}
	stopped := false
	s.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway stopped with: %v", err)
		}
	}
	t.Cleanup(s.stop)
}

// bind points the stack's clients at a gateway listening on a.
func (s *stack) bind(a boundAddrs) {
	s.addrs = a
	s.Client = resttest.New(s.t, "http://"+a.HTTP, liveKey)
	s.From, s.To = "hello@"+senderDomain, "user@"+rcptDomain
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

type emailResp struct {
	ID          string     `json:"id"`
	Status      string     `json:"status"`
	Attempts    int        `json:"attempts"`
	LastError   string     `json:"lastError"`
	DeliveredAt *time.Time `json:"deliveredAt"`
}

// waitStatus polls GET /v1/emails/:id until the status is want; each
// status seen on the way is logged, so that a test that fails here says
// where the email stopped.
func (s *stack) waitStatus(id, want string) emailResp {
	s.t.Helper()
	var e emailResp
	seen := ""
	testkit.WaitFor(s.t, "email "+id+" to be "+want, func() bool {
		e = emailResp{}
		s.JSON("GET", "/v1/emails/"+id, liveKey, nil, &e)
		if e.Status != seen {
			seen = e.Status
			s.t.Logf("email %s: status %q (last error %q)", id, e.Status, e.LastError)
		}
		return e.Status == want
	})
	return e
}

// deliveryIdle waits until the delivery queue is empty: every entry of the
// stream read and acknowledged, none pending, none waiting for a retry or
// its scheduled time. After it nothing more reaches the sink for what was
// submitted before.
func (s *stack) deliveryIdle() {
	s.t.Helper()
	rdb := s.redisClient()
	ctx := context.Background()
	testkit.WaitFor(s.t, "the delivery queue to be idle", func() bool {
		if !groupsIdle(ctx, rdb, store.StreamKey, store.GroupName) {
			return false
		}
		for k := range store.Shard(store.MaxShards) {
			if n, err := rdb.ZCard(ctx, store.RetryKey(k)).Result(); err != nil || n != 0 {
				return false
			}
		}
		return true
	})
}

// groupsIdle reports whether group has read and acknowledged every entry
// of the stream of each shard in use (stream names it): with redis.shards,
// an email's entries are in its shard's.
func groupsIdle(ctx context.Context, rdb redis.UniversalClient, stream func(store.Shard) string, group string) bool {
	for k := range store.Shard(store.MaxShards) {
		groups, err := rdb.XInfoGroups(ctx, stream(k)).Result()
		if err != nil && k > 0 && strings.Contains(err.Error(), "no such key") {
			continue // a shard not in use
		}
		if err != nil {
			return false
		}
		for _, g := range groups {
			if g.Name == group && (g.Pending != 0 || g.Lag != 0) {
				return false
			}
		}
	}
	return true
}

// redisClient returns a client of the Redis the gateway runs on.
func (s *stack) redisClient() redis.UniversalClient {
	if s.cluster != nil {
		return s.cluster.Client(s.t)
	}
	return s.redis.Client(s.t)
}

// smtpClient dials the STARTTLS listener (or, with startTLS false, greets
// it without TLS) and authenticates with key unless it is "".
func (s *stack) smtpClient(startTLS bool, key string) *smtp.Client {
	s.t.Helper()
	mode := testkit.SMTPGreeted
	if startTLS {
		mode = testkit.SMTPStartTLS
	}
	return testkit.DialSMTP(s.t, s.addrs.SMTP, mode, key)
}

// queuedID extracts em_… from "Ok: queued as em_…".
func queuedID(t *testing.T, reply string) string {
	t.Helper()
	_, id, ok := strings.Cut(reply, "queued as ")
	if !ok || !strings.HasPrefix(id, "em_") {
		t.Fatalf("reply %q has no queued id", reply)
	}
	return id
}

func TestMain(m *testing.M) {
	// The kill-and-restart test runs the real binary's main in a child
	// process: the test binary re-executes itself with this variable set.
	if args := os.Getenv("PIGEONPOST_TEST_MAIN_ARGS"); args != "" {
		os.Args = append([]string{"pigeonpost"}, strings.Fields(args)...)
		if point := os.Getenv("PIGEONPOST_TEST_KILL_AT"); point != "" {
			// The crash tests: die as kill -9 does the first time the
			// process reaches point.
			failpoint.Arm(point, func(string) { _ = syscall.Kill(os.Getpid(), syscall.SIGKILL) })
		}
		main()
		return
	}
	os.Exit(m.Run())
}
