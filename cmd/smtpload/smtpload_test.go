package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/testkit/smtpsink"
)

// startSink runs an in-process sink (STARTTLS + AUTH) and keeps its stats
// file current until the test ends.
func startSink(t *testing.T) (addr, stats string, srv *smtpsink.Server) {
	t.Helper()
	srv, err := newSink(sinkOptions{addr: "127.0.0.1:0", starttls: true, user: "bench", pass: "benchpass"})
	if err != nil {
		t.Fatal(err)
	}
	stats = filepath.Join(t.TempDir(), "sink.json")
	start, done := time.Now(), make(chan struct{})
	write := func() {
		b, _ := json.Marshal(snapshot(srv.Stats(), start))
		_ = writeFileAtomic(stats, b)
	}
	write()
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
				write()
			}
		}
	}()
	t.Cleanup(func() { close(done); srv.Close() })
	return srv.Addr(), stats, srv
}

func TestLoadAgainstSink(t *testing.T) {
	addr, stats, c := startSink(t)
	out := filepath.Join(t.TempDir(), "out.json")
	rc := run([]string{"-addr", addr, "-starttls", "-user", "bench", "-pass", "benchpass",
		"-c", "4", "-n", "40", "-per-conn", "7", "-size", "4096", "-links", "5",
		"-header", "X-SP-Track-Opens: true", "-duration", "20s", "-q",
		"-pid", fmt.Sprintf("self=%d", os.Getpid()), "-sink-stats", stats, "-drain-timeout", "5s",
		"-json", out})
	if rc != 0 {
		t.Fatalf("run returned %d", rc)
	}
	var r result
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if r.Accepted != 40 || r.Failed != 0 || r.ReplyCodes["250"] != 40 || r.ErrorCount != 0 {
		t.Fatalf("accepted %d failed %d codes %v errors %v", r.Accepted, r.Failed, r.ReplyCodes, r.Errors)
	}
	if got := c.Stats().Messages; got != 40 {
		t.Fatalf("sink counted %d messages, want 40", got)
	}
	// 40 messages, at most 7 per connection: at least 6 connections.
	if r.Connections < 6 || r.SetupLat.N != r.Connections || r.DataLat.N != 40 || r.TLSLat.N != r.Connections {
		t.Fatalf("connections %d, setup n %d, data n %d, tls n %d", r.Connections, r.SetupLat.N, r.DataLat.N, r.TLSLat.N)
	}
	if r.Server == nil || r.Server.Delivery == nil || !r.Server.Delivery.Drained || r.Server.Delivery.Delivered != 40 {
		t.Fatalf("delivery report %+v", r.Server)
	}
	if p := r.Server.Procs; len(p) != 1 || p[0].Err != "" || p[0].VmHWMKB <= 0 {
		t.Fatalf("process report %+v", p)
	}
	if r.MessageBytes < 4096 {
		t.Fatalf("message bytes %d", r.MessageBytes)
	}

	var table bytes.Buffer
	if err := printReport(&table, []string{out}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "| 40 / 40 (") {
		t.Fatalf("report:\n%s", table.String())
	}
}

func TestAuthFailureIsCounted(t *testing.T) {
	addr, _, _ := startSink(t)
	out := filepath.Join(t.TempDir(), "out.json")
	rc := run([]string{"-addr", addr, "-starttls", "-user", "bench", "-pass", "wrong",
		"-c", "2", "-n", "4", "-duration", "10s", "-q", "-json", out})
	if rc != 1 {
		t.Fatalf("run returned %d, want 1 (nothing accepted)", rc)
	}
	var r result
	b, _ := os.ReadFile(out)
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if r.Accepted != 0 || r.SetupFailures != 4 || r.Errors["setup-auth 535"] != 4 {
		t.Fatalf("accepted %d, setup failures %d, errors %v", r.Accepted, r.SetupFailures, r.Errors)
	}
}

func TestBodyMatchesLoadgen(t *testing.T) {
	// Same construction as /work/shared/bench/loadgen: size within a line of
	// the request, every link present, lines at most 78 characters.
	for _, size := range []int{10240, 1 << 20} {
		b := buildBody(size, 20, true)
		if len(b) < size-80 || len(b) > size+80 {
			t.Errorf("size %d: body %d bytes", size, len(b))
		}
		if n := bytes.Count(b, []byte("<a href=")); n != 20 {
			t.Errorf("size %d: %d links", size, n)
		}
		for _, l := range bytes.Split(b, []byte("\r\n")) {
			if len(l) > 998 {
				t.Fatalf("size %d: line of %d bytes", size, len(l))
			}
		}
	}
}

func TestRefusesNonLoopback(t *testing.T) {
	if rc := run([]string{"-addr", "192.0.2.1:25", "-q"}); rc != 2 {
		t.Fatalf("run returned %d, want 2", rc)
	}
}
