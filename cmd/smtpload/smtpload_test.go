package main

import (
	"bytes"
	"context"
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

func TestAddrListIsRoundRobin(t *testing.T) {
	a1, _, s1 := startSink(t)
	a2, _, s2 := startSink(t)
	// 20 messages, 5 a connection, one connection at a time: connections
	// 0 and 2 go to the first sink, 1 and 3 to the second.
	rc := run([]string{"-addr", a1 + "," + a2, "-starttls", "-user", "bench", "-pass", "benchpass",
		"-c", "1", "-n", "20", "-per-conn", "5", "-size", "1024", "-duration", "20s", "-q"})
	if rc != 0 {
		t.Fatalf("run returned %d", rc)
	}
	if n1, n2 := s1.Stats().Messages, s2.Stats().Messages; n1 != 10 || n2 != 10 {
		t.Fatalf("sinks received %d and %d messages, want 10 each", n1, n2)
	}
	if rc := run([]string{"-addr", a1 + ",192.0.2.1:25", "-q"}); rc != 2 {
		t.Fatalf("a non-loopback address in the list: run returned %d, want 2", rc)
	}
}

func TestLedgerFindsLostAndDuplicated(t *testing.T) {
	dir := t.TempDir()
	delivered, acked := filepath.Join(dir, "delivered"), filepath.Join(dir, "acked")
	sink, err := startLedgerSink("127.0.0.1:0", delivered)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Shutdown(context.Background())
	rc := run([]string{"-addr", sink.Addr(), "-c", "3", "-n", "30", "-per-conn", "4", "-size", "2048",
		"-duration", "20s", "-q", "-ledger", acked})
	if rc != 0 {
		t.Fatalf("run returned %d", rc)
	}
	if err := sink.Flush(); err != nil {
		t.Fatal(err)
	}
	c, err := checkLedgers(acked, delivered)
	if err != nil {
		t.Fatal(err)
	}
	if c != (ledgerCheck{Acked: 30, Delivered: 30}) {
		t.Fatalf("check %v, want 30 acknowledged and delivered once", c)
	}

	// One message lost, one delivered twice, one never acknowledged, and
	// one of another run (not counted).
	ids, _ := readLines(delivered)
	run0, _, _ := strings.Cut(ids[0], ".")
	forged := append(append([]string{}, ids[1:]...), ids[1], run0+".999", "otherrun.0")
	if err := os.WriteFile(delivered, []byte(strings.Join(forged, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, _ = checkLedgers(acked, delivered)
	if c != (ledgerCheck{Acked: 30, Delivered: 29, Lost: 1, Dup: 1, Unacked: 1}) {
		t.Fatalf("check %v", c)
	}
	if rc := run([]string{"-ledger-check", acked, delivered}); rc != 1 {
		t.Fatalf("-ledger-check with a lost message returned %d, want 1", rc)
	}
}

func TestReadLedgerID(t *testing.T) {
	long := "X-Long: " + strings.Repeat("a", 10000) + "\r\n"
	msg := "DKIM-Signature: v=1; a=rsa-sha256;\r\n\tb=abc\r\n" + long + "x-smtpload-id:  r1.7 \r\n\r\nX-Smtpload-Id: body.1\r\n" + strings.Repeat("b", 5000)
	id, n, err := readLedgerID(strings.NewReader(msg))
	if err != nil || id != "r1.7" || n != int64(len(msg)) {
		t.Fatalf("id %q, %d bytes (want %d), err %v", id, n, len(msg), err)
	}
}
