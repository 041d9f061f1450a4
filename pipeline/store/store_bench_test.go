package store

import (
	"bytes"
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
)

// BenchmarkPersist: the persist-and-enqueue MULTI/EXEC that must be
// acknowledged before the 250 (email hash, body, account index, stream
// entry), against a real redis-server with appendfsync always, so every
// call waits for an fsync of the append-only file.
func BenchmarkPersist(b *testing.B) {
	for _, sz := range []struct {
		name string
		size int
	}{{"10KB", 10240 + 2048}, {"1MB", 1<<20 + 2048}} { // + room for the rewritten links
		b.Run(sz.name, func(b *testing.B) {
			s := New(testkit.StartRedis(b).Client(b), time.Now)
			body := bytes.Repeat([]byte("lorem ipsum dolor sit amet consectetur adipiscing elit\r\n"), sz.size/56+1)[:sz.size]
			ctx := context.Background()
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if err := s.Persist(ctx, []NewEmail{{Email: benchEmail(), Body: body}}, true); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPersistParallel: the same from 20 goroutines (the connections of
// workload a): Redis shares one fsync among the writes of an event-loop turn.
func BenchmarkPersistParallel(b *testing.B) {
	s := New(testkit.StartRedis(b).Client(b), time.Now)
	body := bytes.Repeat([]byte("lorem ipsum dolor sit amet consectetur adipiscing elit\r\n"), 12288/56+1)[:12288]
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((20 + procs - 1) / procs) // RunParallel starts parallelism × GOMAXPROCS goroutines
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if err := s.Persist(ctx, []NewEmail{{Email: benchEmail(), Body: body}}, true); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func benchEmail() *Email {
	return &Email{
		ID: NewID("em"), AccountID: "acct_bench", KeyID: "key_bench", Mode: ModeLive,
		Status: StatusPending, Source: "smtp", FromAddress: "bench@bench.test", EnvelopeFrom: "bench@bench.test",
		ToAddress: "rcpt@example.net", Subject: "loadgen message 1", MessageID: "1.2.3@loadgen.bench",
		TrackOpens: true, TrackClicks: true,
		Links: []string{
			"https://www.example.com/offer/0000?utm_source=bench", "https://www.example.com/offer/0001?utm_source=bench",
			"https://www.example.com/offer/0002?utm_source=bench", "https://www.example.com/offer/0003?utm_source=bench",
		},
		CreatedAt: time.Now().UTC(),
	}
}
