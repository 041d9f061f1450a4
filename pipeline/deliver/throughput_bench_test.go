package deliver

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// BenchmarkWorkerThroughput: one Worker (8 attempts at once, the shipped
// default) delivers b.N queued 2 KB emails through MX routing to a sink,
// with Redis fsyncing every write, without traffic shaping and with it at
// the shipped limits (10 connections per destination): what each
// delivery's admission and release, two more fsynced writes, cost. It
// reports msgs/s. go test -run '^$' -bench BenchmarkWorkerThroughput
// -benchtime 2000x -count 3 ./pipeline/deliver/ (real redis-server).
func BenchmarkWorkerThroughput(b *testing.B) {
	for _, shaped := range []bool{false, true} {
		b.Run(fmt.Sprintf("shaping=%v", shaped), func(b *testing.B) {
			rs := testkit.StartRedis(b)
			st := store.New(rs.Client(b), time.Now)
			ctx := context.Background()
			if err := st.EnsureGroup(ctx, 0); err != nil {
				b.Fatal(err)
			}
			sink := testkit.StartSink(b, testkit.SinkOptions{})
			dns := testkit.StartDNS(b)
			dns.SetMX("dest.test", map[string]uint16{"mx.dest.test": 10})
			dns.SetA("mx.dest.test", "127.0.0.1")
			logger := slog.New(slog.NewTextHandler(io.Discard, nil))
			w := &Worker{Store: st,
				Transport: &Transport{Hostname: "pigeon.test", Port: sink.Port(), Timeout: 30 * time.Second, AllowPrivate: true,
					Resolver: &Resolver{Addr: dns.Addr(), Timeout: 5 * time.Second}},
				Concurrency: 8, RetryInitial: time.Minute, RetryMax: time.Hour, MaxAge: time.Hour, ClaimIdle: time.Hour,
				Logger: logger}
			if shaped {
				w.Shaping = &Shaping{Store: st, MaxConnections: 10, SuspendMin: time.Minute, SuspendMax: 30 * time.Minute, Logger: logger}
			}
			body := []byte("From: news@acme.test\r\nTo: u@dest.test\r\nSubject: hello\r\n\r\n" + strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n", 32))
			for i := 0; i < b.N; i += 500 {
				var emails []store.NewEmail
				for j := i; j < min(i+500, b.N); j++ {
					e := &store.Email{ID: store.NewID("em"), AccountID: "acc_1", KeyID: "key_1", Mode: store.ModeLive,
						Status: store.StatusPending, Source: "api", FromAddress: "news@acme.test", EnvelopeFrom: "news@acme.test",
						ToAddress: fmt.Sprintf("u%d@dest.test", j), Subject: "hello", CreatedAt: time.Now().UTC()}
					emails = append(emails, store.NewEmail{Email: e, Body: body})
				}
				if err := st.PersistWith(ctx, emails, store.PersistOptions{Enqueue: true}); err != nil {
					b.Fatal(err)
				}
			}
			runCtx, cancel := context.WithCancel(ctx)
			var running sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			running.Go(func() { _ = w.Run(runCtx) })
			deadline := time.Now().Add(5 * time.Minute)
			for sink.Stats().Messages < int64(b.N) {
				if time.Now().After(deadline) {
					b.Fatalf("%d of %d delivered in 5 minutes", sink.Stats().Messages, b.N)
				}
				time.Sleep(time.Millisecond)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			cancel()
			running.Wait()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
		})
	}
}
