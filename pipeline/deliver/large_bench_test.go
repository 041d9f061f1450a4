package deliver

import (
	"bufio"
	"context"
	"io"
	"net/textproto"
	"syscall"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/dkim"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
	"github.com/pigeonpost/pigeonpost/tracking"
)

// BenchmarkDeliverLarge is the delivery side of bench workload c in one
// process: a 1 MB tracked message stored in a real redis-server is read
// back (EmailWithBodyLen, Body, as Worker.attempt does), rendered for its
// recipient (stored=message: the message as submitted, rendered at each
// attempt by pipeline.Service.Render, as delivery does now; stored=copy:
// a copy tracked at submission, stored per email, as records from before
// are), DKIM-signed with an RSA-2048 key (the worker's signer cache warm)
// and written as dot-stuffed DATA (writeData) to a sink that discards.
// msg=load is cmd/smtpload's message (10 KB or 1 MB), msg=newsletter
// testkit.NewsletterMessage. cpu-ms/op is the CPU time of the process a
// message.
func BenchmarkDeliverLarge(b *testing.B) {
	for _, m := range []struct {
		name string
		msg  []byte
	}{
		{"load-10KB", testkit.LoadMessage(10240, 20)},
		{"load", testkit.LoadMessage(1<<20, 20)},
		{"newsletter", testkit.NewsletterMessage(1<<20, 20)},
	} {
		for _, layout := range []string{"copy", "message"} {
			b.Run("msg="+m.name+"/stored="+layout, func(b *testing.B) {
				benchDeliver(b, m.msg, layout == "message")
			})
		}
	}
}

func benchDeliver(b *testing.B, msg []byte, message bool) {
	ctx := context.Background()
	st := store.New(testkit.StartRedis(b).Client(b), time.Now)
	priv, _, err := dkim.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	domain := &store.Domain{Name: "bench.test", Selector: "pigeonpost", PrivateKeyPEM: priv}
	renderer := pipeline.New(st, tracking.NewSigner([]byte("bench-tracking-secret-0123456789abcdef")),
		pipeline.Options{PublicURL: "https://t.test"})
	e := &store.Email{ID: store.NewID("em"), AccountID: "acc_1", KeyID: "key_1", Mode: store.ModeLive,
		Status: store.StatusPending, Source: "smtp", FromAddress: "bench@bench.test", EnvelopeFrom: "bench@bench.test",
		ToAddress: "rcpt@example.net", CreatedAt: time.Now().UTC(), TrackOpens: true, TrackClicks: true}
	var opt store.PersistOptions
	ne := store.NewEmail{Email: e}
	if message {
		m := store.NewMessage{ID: store.NewID("msg"), MIME: msg}
		e.Message, e.MessageLen = m.ID, int64(len(msg))
		opt.Messages = []store.NewMessage{m}
	} else {
		copyEmail := *e
		copyEmail.Message = "x" // rendered as a message is, once, to store the copy
		ne.Body, _ = renderer.Render(&copyEmail, msg)
	}
	if err := st.PersistWith(ctx, []store.NewEmail{ne}, opt); err != nil {
		b.Fatal(err)
	}
	w := &Worker{Store: st, Renderer: renderer}
	tw := textproto.NewWriter(bufio.NewWriter(io.Discard))
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	cpu := cpuTime()
	for b.Loop() {
		got, _, err := st.EmailWithBodyLen(ctx, e.ID)
		if err != nil {
			b.Fatal(err)
		}
		data, err := st.Body(ctx, got)
		if err != nil {
			b.Fatal(err)
		}
		data, _ = w.Renderer.Render(got, data)
		sig, err := w.sign(got.AccountID, domain, data)
		if err != nil {
			b.Fatal(err)
		}
		if err := writeData(io.Discard, tw.DotWriter(), sig, data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/1000/float64(b.N), "cpu-ms/op")
}

// cpuTime is the CPU time, user and system, of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
