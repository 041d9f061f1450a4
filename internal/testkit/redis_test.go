package testkit

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestRedis(t *testing.T) {
	r := StartRedis(t)
	if _, err := redis.ParseURL(r.URL()); err != nil {
		t.Fatalf("URL %q: %v", r.URL(), err)
	}
	if r.Real() != strings.HasPrefix(r.URL(), "unix:///") {
		t.Fatalf("Real() = %v but URL %q", r.Real(), r.URL())
	}
	exerciseRedis(t, r)
}

// TestRedisEmbedded forces the miniredis fallback by hiding redis-server.
func TestRedisEmbedded(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv(requireRedisEnv, "")
	r := StartRedis(t)
	if r.Real() {
		t.Fatal("Real() = true without redis-server on PATH")
	}
	if !strings.HasPrefix(r.URL(), "redis://127.0.0.1:") || !strings.HasSuffix(r.URL(), "/0") {
		t.Fatalf("URL() = %q", r.URL())
	}
	exerciseRedis(t, r)
}

func TestRedisRequired(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv(requireRedisEnv, "1")
	msg := runFake(t, func(tb testing.TB) { StartRedis(tb) })
	if want := "redis-server not found: apt-get install -y redis-server"; msg != want {
		t.Fatalf("fatal = %q, want %q", msg, want)
	}
}

func exerciseRedis(t *testing.T, r *Redis) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := r.Client(t)
	if err := c.Set(ctx, "greeting", "hello", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if got, err := c.Get(ctx, "greeting").Result(); err != nil || got != "hello" {
		t.Fatalf("GET = %q, %v", got, err)
	}

	r.Kill()
	r.Kill() // idempotent
	killedCtx, killedCancel := context.WithTimeout(ctx, 5*time.Second)
	err := c.Get(killedCtx, "greeting").Err()
	killedCancel()
	if err == nil {
		t.Fatal("GET after Kill succeeded")
	}
	t.Logf("GET after Kill: %v", err)

	r.Restart()
	got, err := c.Get(ctx, "greeting").Result()
	if err != nil || got != "hello" {
		t.Fatalf("GET after Restart = %q, %v (want the value to survive)", got, err)
	}
	if err := r.Client(t).Incr(ctx, "n").Err(); err != nil {
		t.Fatalf("INCR on a new client: %v", err)
	}

	// Restart without Kill restarts a running server.
	r.Restart()
	if n, err := c.Get(ctx, "n").Int(); err != nil || n != 1 {
		t.Fatalf("GET n after second Restart = %d, %v", n, err)
	}
}

// TestRedisStartFailure checks that a redis-server that dies at start fails
// the test with its output.
func TestRedisStartFailure(t *testing.T) {
	bin := t.TempDir()
	script := "#!/bin/sh\necho \"fake redis-server: bad config $*\"\nexit 1\n"
	if err := os.WriteFile(filepath.Join(bin, "redis-server"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin)
	msg := runFake(t, func(tb testing.TB) { StartRedis(tb) })
	t.Log(msg)
	if !strings.Contains(msg, "exited before answering PING") || !strings.Contains(msg, "fake redis-server: bad config --port 0") {
		t.Fatalf("fatal = %q", msg)
	}
}
