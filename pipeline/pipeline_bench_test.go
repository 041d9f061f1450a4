package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline/dkim"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
	"github.com/pigeonpost/pigeonpost/tracking"
)

// Benchmarks of the submission hot path, on the message cmd/smtpload sends
// in `make bench`: a 7bit text/html body of 10 KB (or 1 MB) with 20 links.
// Those that need Redis run a real redis-server with appendfsync always
// (testkit.StartRedis), as production should.

const (
	benchLiveKey = "sp_live_benchbenchbenchbenchbench0001"
	benchTestKey = "sp_test_benchbenchbenchbenchbench0001"
	benchFrom    = "bench@bench.test"
	benchRcpt    = "rcpt@example.net"
)

var benchSizes = []struct {
	name string
	size int
}{{"10KB", 10240}, {"1MB", 1 << 20}}

// BenchmarkParseMessage: header parsing, X-SP-Track-* and Bcc stripping,
// From/Subject/Message-ID extraction (no Redis).
func BenchmarkParseMessage(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			raw := testkit.LoadMessage(sz.size, 20, "X-SP-Track-Opens: true", "X-SP-Track-Clicks: true")
			now := time.Now()
			newID := func() string { return store.NewID("msg") }
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := parseMessage(raw, "bench.localdomain", newID, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMessageBytes: writing the edited header and the body back out
// (one copy of the whole message).
func BenchmarkMessageBytes(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			raw := testkit.LoadMessage(sz.size, 20, "X-SP-Track-Opens: true", "X-SP-Track-Clicks: true")
			m, err := parseMessage(raw, "bench.localdomain", func() string { return "msg_x" }, time.Now())
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				_ = m.bytes()
			}
		})
	}
}

// BenchmarkNormalizeCRLF: reading DATA the way smtpd does
// (bytes.Buffer.ReadFrom over NormalizeCRLF).
func BenchmarkNormalizeCRLF(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			raw := testkit.LoadMessage(sz.size, 20)
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				var buf bytes.Buffer
				if _, err := buf.ReadFrom(NormalizeCRLF(bytes.NewReader(raw))); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchService returns a Service on a fresh redis-server with the live and
// test bootstrap keys, and bench.test verified for the live key's account
// (with an RSA-2048 DKIM key, so the domain record has its real size).
// mutate may change the options first.
func benchService(b testing.TB, cacheTTL time.Duration, mutate ...func(*Options)) (*Service, *store.Key, *store.Key) {
	b.Helper()
	rdb := testkit.StartRedis(b).Client(b)
	ctx := context.Background()
	opt := Options{
		Hostname:  "bench.localdomain",
		PublicURL: "http://127.0.0.1:8080",
		RateLimit: RateLimit{PerSecond: 1_000_000, Burst: 1_000_000},
		CacheTTL:  cacheTTL,
	}
	for _, m := range mutate {
		m(&opt)
	}
	st := store.New(rdb, time.Now)
	svc := New(st, tracking.NewSigner([]byte("bench-tracking-secret-0123456789abcdef")), opt)
	live := testKey(b, st, "default", benchLiveKey)
	test := testKey(b, st, "default-test", benchTestKey)
	priv, txt, err := dkim.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now().UTC()
	d := &store.Domain{
		ID: store.NewID("dom"), Name: "bench.test", Status: "verified", Selector: "pigeonpost",
		PrivateKeyPEM: priv, CreatedAt: now, VerifiedAt: &now,
		DNSRecords: []store.DNSRecord{
			{Type: "TXT", Name: "bench.test", Value: "v=spf1 include:_spf.bench.localdomain ~all", Status: "verified", Required: true},
			{Type: "TXT", Name: "pigeonpost._domainkey.bench.test", Value: txt, Status: "verified", Required: true},
			{Type: "TXT", Name: "_dmarc.bench.test", Value: "v=DMARC1; p=none;", Status: "verified"},
		},
	}
	if err := st.PutDomain(ctx, live.AccountID, d); err != nil {
		b.Fatal(err)
	}
	return svc, live, test
}

// BenchmarkAuthenticate: the API-key lookup of every AUTH and every MAIL.
// cached is the production setting (CacheTTL 5 s); uncached pays the
// Redis round trip each time.
func BenchmarkAuthenticate(b *testing.B) {
	for _, tc := range []struct {
		name string
		ttl  time.Duration
	}{{"cached", 5 * time.Second}, {"uncached", 0}} {
		b.Run(tc.name, func(b *testing.B) {
			svc, _, _ := benchService(b, tc.ttl)
			ctx := context.Background()
			if _, err := svc.Authenticate(ctx, benchLiveKey); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := svc.Authenticate(ctx, benchLiveKey); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCheckSender: the sending-domain check smtpd makes at MAIL (and
// Submit makes again): one HGET of the domain record and its JSON decode.
func BenchmarkCheckSender(b *testing.B) {
	svc, live, _ := benchService(b, 5*time.Second)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := svc.CheckSender(ctx, live, benchFrom); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSubmit: the whole Submit of one message to one recipient with
// open and click tracking, as smtpd calls it after DATA: sender checks,
// parsing, suppression lookup, rate limit, tracking rewrite, persist.
//   - test-key: a sp_test_ key (no domain check, not enqueued);
//   - live-key: a sp_live_ key on a verified domain, enqueued for delivery
//     (what `make bench` measures end to end);
//   - no-tracking: the same without tracking, to show its share.
func BenchmarkSubmit(b *testing.B) {
	svc, live, test := benchService(b, 5*time.Second)
	msg10K := testkit.LoadMessage(10240, 20)
	msg1M := testkit.LoadMessage(1<<20, 20)
	track := &Tracking{Opens: true, Clicks: true}
	ten := make([]string, 10)
	for i := range ten {
		ten[i] = fmt.Sprintf("rcpt%d@example.net", i)
	}
	for _, tc := range []struct {
		name  string
		key   *store.Key
		msg   []byte
		track *Tracking
		rcpts []string
	}{
		{"test-key/10KB-20links-tracking", test, msg10K, track, nil},
		{"live-key/10KB-20links-tracking", live, msg10K, track, nil},
		{"live-key/10KB-20links-no-tracking", live, msg10K, nil, nil},
		{"live-key/1MB-20links-tracking", live, msg1M, track, nil},
		{"live-key/1MB-20links-tracking-10rcpt", live, msg1M, track, ten},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			sub := Submission{Key: tc.key, Source: "smtp", EnvelopeFrom: benchFrom,
				Recipients: []string{benchRcpt}, Message: tc.msg, Tracking: tc.track}
			if tc.rcpts != nil {
				sub.Recipients = tc.rcpts
			}
			b.SetBytes(int64(len(tc.msg)))
			b.ReportAllocs()
			cpu := cpuTime()
			for b.Loop() {
				if _, err := svc.Submit(ctx, sub); err != nil {
					b.Fatal(err)
				}
			}
			// This process's CPU (Redis's is not counted), per message.
			b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/1000/float64(b.N), "cpu-ms/op")
		})
	}
}

// cpuTime is the CPU time this process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSubmitParallel: Submit from 20 goroutines (the 20 connections of
// workload a), live key, 10 KB with tracking. With appendfsync always Redis
// shares one fsync among the writes of an event-loop turn, so this shows
// how far concurrency hides the fsync latency.
func BenchmarkSubmitParallel(b *testing.B) {
	svc, live, _ := benchService(b, 5*time.Second)
	sub := Submission{Key: live, Source: "smtp", EnvelopeFrom: benchFrom,
		Recipients: []string{benchRcpt}, Message: testkit.LoadMessage(10240, 20),
		Tracking: &Tracking{Opens: true, Clicks: true}}
	b.SetBytes(int64(len(sub.Message)))
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((20 + procs - 1) / procs) // RunParallel starts parallelism × GOMAXPROCS goroutines
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if _, err := svc.Submit(ctx, sub); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkSubmitPhases splits one Submit, as smtpd makes it after the
// final dot (live key, one recipient, X-SP-Track-* headers, the longest
// line measured on the way in), into its steps, each timed on its own and
// reported per message: prepare (checks, parsing, tracking plan), admit
// (suppressions and the rate and usage charge: one Lua script, fsynced),
// emails (the records and the stored message's bytes) and persist (one
// MULTI, fsynced). ns/op is their sum plus the loop's bookkeeping.
// msgid=yes gives each message a Message-ID of its own, as cmd/smtpload
// and real clients do: prepare then claims its idempotency key (a hash
// of the whole message and a write, fsynced), and persist writes the
// receipt under WATCH of the key.
func BenchmarkSubmitPhases(b *testing.B) {
	svc, live, _ := benchService(b, 5*time.Second)
	for _, sz := range benchSizes {
		for _, msgid := range []bool{false, true} {
			name := sz.name + "/msgid=no"
			if msgid {
				name = sz.name + "/msgid=yes"
			}
			b.Run(name, func(b *testing.B) { benchSubmitPhases(b, svc, live, sz.size, msgid) })
		}
	}
}

func benchSubmitPhases(b *testing.B, svc *Service, live *store.Key, size int, msgid bool) {
	ctx := context.Background()
	msg := testkit.LoadMessage(size, 20, "X-SP-Track-Opens: true", "X-SP-Track-Clicks: true")
	sub := Submission{Key: live, Source: "smtp", EnvelopeFrom: benchFrom,
		Recipients: []string{benchRcpt}, Message: msg, LongestLine: 100}
	seq := 0
	var phase [4]time.Duration
	lap := func(i int, t0 time.Time) time.Time {
		t := time.Now()
		phase[i] += t.Sub(t0)
		return t
	}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if msgid {
			seq++
			sub.Message = append(fmt.Appendf(nil, "Message-ID: <%d.%d@bench.test>\r\n", time.Now().UnixNano(), seq), msg...)
		}
		t := time.Now()
		now := svc.opt.Now().UTC()
		p, err := svc.prepare(ctx, sub, true, now)
		if err != nil {
			b.Fatal(err)
		}
		t = lap(0, t)
		suppressed, err := svc.admit(ctx, live, []*prepared{p}, now, true)
		if err != nil {
			b.Fatal(err)
		}
		t = lap(1, t)
		emails, m, _, err := svc.emailsOf(p, suppressed[0], now)
		if err != nil {
			b.Fatal(err)
		}
		t = lap(2, t)
		opt := store.PersistOptions{Enqueue: true, Messages: []store.NewMessage{*m}}
		if p.claim != nil {
			opt.Idempotency = p.claim.done([]byte(`{"ids":["em_x"]}`))
		}
		if err := svc.persist(ctx, emails, opt); err != nil {
			b.Fatal(err)
		}
		lap(3, t)
	}
	for i, name := range []string{"prepare", "admit", "emails", "persist"} {
		b.ReportMetric(float64(phase[i].Microseconds())/float64(b.N), name+"-µs/op")
	}
}
