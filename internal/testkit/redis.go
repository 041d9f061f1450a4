package testkit

import (
	"bufio"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// Redis is a redis-server (or, when redis-server is not on PATH, an
// in-process miniredis) for one test.
type Redis struct {
	t testing.TB

	// miniredis fallback; nil for redis-server.
	mini *miniredis.Miniredis

	// redis-server.
	process
	sock string // unix socket
}

const (
	requireRedisEnv  = "PIGEONPOST_REQUIRE_REDIS"
	redisStartBudget = 10 * time.Second
)

// StartRedis starts redis-server listening only on a unix socket in
// t.TempDir() (--port 0), with an append-only file fsynced on every write, and
// waits until it answers PING. It is killed on t.Cleanup.
//
// If redis-server is not on PATH, StartRedis fails the test when
// PIGEONPOST_REQUIRE_REDIS=1 and otherwise starts an in-process miniredis on
// 127.0.0.1 (Real reports false).
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv(requireRedisEnv) == "1" {
			t.Fatal("redis-server not found: apt-get install -y redis-server")
		}
		m := miniredis.NewMiniRedis()
		if err := m.StartAddr("127.0.0.1:0"); err != nil {
			t.Fatalf("testkit: start miniredis: %v", err)
		}
		t.Cleanup(m.Close)
		t.Logf("testkit: redis-server not on PATH, using the embedded miniredis on %s (set %s=1 to require redis-server)", m.Addr(), requireRedisEnv)
		return &Redis{t: t, mini: m}
	}

	dir := t.TempDir()
	sockDir := dir
	// A unix socket path must fit in sun_path (108 bytes on Linux).
	if len(filepath.Join(dir, "redis.sock")) > 100 {
		short, err := os.MkdirTemp("/tmp", "pp-redis-")
		if err != nil {
			t.Fatalf("testkit: socket dir: %v", err)
		}
		t.Cleanup(func() { os.RemoveAll(short) })
		sockDir = short
	}
	r := &Redis{
		t:       t,
		process: process{bin: bin, dir: dir, logPath: filepath.Join(dir, "redis.log")},
		sock:    filepath.Join(sockDir, "redis.sock"),
	}
	t.Cleanup(r.kill)
	if err := r.start(); err != nil {
		t.Fatalf("testkit: %v", err)
	}
	return r
}

// URL returns the address for go-redis ParseURL: "unix:///path/redis.sock"
// for redis-server, "redis://127.0.0.1:port/0" for miniredis.
func (r *Redis) URL() string {
	if r.mini != nil {
		return "redis://" + r.mini.Addr() + "/0"
	}
	return (&url.URL{Scheme: "unix", Path: r.sock}).String()
}

// Real reports whether this is a real redis-server (false: miniredis).
func (r *Redis) Real() bool { return r.mini == nil }

// Kill stops the server abruptly: SIGKILL for redis-server (waiting until
// the process has exited), Close for miniredis. Clients get errors until
// Restart. Killing a stopped server does nothing.
func (r *Redis) Kill() {
	if r.mini != nil {
		r.mini.Close()
		return
	}
	r.kill()
}

// Restart starts the server again on the same socket and directory, so
// redis-server reloads its append-only file, and waits until it answers
// PING. miniredis restarts on the same port with its data. A server that is
// still running is killed first.
func (r *Redis) Restart() {
	r.t.Helper()
	if r.mini != nil {
		r.mini.Close()
		if err := r.mini.Restart(); err != nil {
			r.t.Fatalf("testkit: restart miniredis: %v", err)
		}
		if err := redisPing("tcp", r.mini.Addr()); err != nil {
			r.t.Fatalf("testkit: restarted miniredis: %v", err)
		}
		return
	}
	r.kill()
	if err := r.start(); err != nil {
		r.t.Fatalf("testkit: restart: %v", err)
	}
}

// DiskFull makes every later write of redis-server to its files fail as on
// a full disk (EFBIG: its file size limit is set to one byte), until
// DiskFreed. Under appendfsync always Redis then exits at its next write;
// under everysec it refuses writes with MISCONF. The limit dies with the
// process: Restart starts one without it.
func (r *Redis) DiskFull() { r.setFileSizeLimit(1) }

// DiskFreed lifts what DiskFull set; Redis retries its AOF write within a
// second and takes writes again.
func (r *Redis) DiskFreed() { r.setFileSizeLimit(0) }

func (r *Redis) setFileSizeLimit(max uint64) {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		r.t.Fatal("testkit: DiskFull and DiskFreed need a running redis-server (not miniredis)")
	}
	if err := limitFileSize(r.cmd.Process.Pid, max); err != nil {
		r.t.Fatalf("testkit: file size limit of redis-server: %v", err)
	}
}

// Client returns a go-redis client for URL(), closed on t.Cleanup.
func (r *Redis) Client(t testing.TB) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(r.URL())
	if err != nil {
		t.Fatalf("testkit: redis URL %q: %v", r.URL(), err)
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	return c
}

func (r *Redis) args() []string {
	return []string{
		"--port", "0",
		"--unixsocket", r.sock,
		"--unixsocketperm", "700",
		"--dir", r.dir,
		"--appendonly", "yes",
		"--appendfsync", "always",
		"--save", "",
		"--enable-debug-command", "local", // DEBUG SLEEP: a slow Redis
	}
}

// start runs redis-server on its socket and waits for PING.
func (r *Redis) start() error {
	// redis-server unlinks a stale socket itself; removing it here too means
	// PING cannot reach anything but the new process.
	os.Remove(r.sock)
	return r.process.start(r.args(), func() error { return redisPing("unix", r.sock) })
}

// redisPing sends one RESP PING and expects +PONG.
func redisPing(network, addr string) error {
	c, err := net.DialTimeout(network, addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second)) //nolint:errcheck
	if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line = strings.TrimRight(line, "\r\n"); line != "+PONG" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}
