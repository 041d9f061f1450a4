package deliver

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/textproto"
	"syscall"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline/dkim"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
	"github.com/pigeonpost/pigeonpost/tracking"
)

// BenchmarkDeliverLarge is the delivery side of bench workload c in one
// process: a 1 MB tracked message stored in a real redis-server is read
// back (EmailWithBodyLen, Body, as Worker.attempt does), DKIM-signed with
// an RSA-2048 key (the worker's signer cache warm) and written as
// dot-stuffed DATA (writeData) to a sink that discards. msg=load is
// cmd/smtpload's message, msg=newsletter testkit.NewsletterMessage.
// cpu-ms/op is the CPU time of the process a message.
func BenchmarkDeliverLarge(b *testing.B) {
	for _, m := range []struct {
		name string
		msg  []byte
	}{
		{"load", testkit.LoadMessage(1<<20, 20)},
		{"newsletter", testkit.NewsletterMessage(1<<20, 20)},
	} {
		b.Run("msg="+m.name, func(b *testing.B) {
			ctx := context.Background()
			st := store.New(testkit.StartRedis(b).Client(b), time.Now)
			priv, _, err := dkim.GenerateKey()
			if err != nil {
				b.Fatal(err)
			}
			domain := &store.Domain{Name: "bench.test", Selector: "pigeonpost", PrivateKeyPEM: priv}
			var body bytes.Buffer
			if _, err := tracking.Rewrite(&body, bytes.NewReader(m.msg), tracking.Options{
				Opens: true, Clicks: true, PixelURL: "https://t.test/v1/track/open/em_aaaaaaaaaaaaaaaaaaaaaaaaaa",
				ClickURL: func(i int, _ string) string {
					return fmt.Sprintf("https://t.test/v1/track/click/em_aaaaaaaaaaaaaaaaaaaaaaaaaa.%d.sigsigsigsigsigsigsig", i)
				},
			}); err != nil {
				b.Fatal(err)
			}
			e := &store.Email{ID: store.NewID("em"), AccountID: "acc_1", KeyID: "key_1", Mode: store.ModeLive,
				Status: store.StatusPending, Source: "smtp", FromAddress: "bench@bench.test", EnvelopeFrom: "bench@bench.test",
				ToAddress: "rcpt@example.net", CreatedAt: time.Now().UTC()}
			if err := st.Persist(ctx, []store.NewEmail{{Email: e, Body: body.Bytes()}}, false); err != nil {
				b.Fatal(err)
			}
			w := &Worker{Store: st}
			tw := textproto.NewWriter(bufio.NewWriter(io.Discard))
			b.SetBytes(int64(body.Len()))
			b.ReportAllocs()
			cpu := cpuTime()
			for b.Loop() {
				if _, _, err := st.EmailWithBodyLen(ctx, e.ID); err != nil {
					b.Fatal(err)
				}
				data, err := st.Body(ctx, e)
				if err != nil {
					b.Fatal(err)
				}
				sig, err := w.sign(e.AccountID, domain, data)
				if err != nil {
					b.Fatal(err)
				}
				if err := writeData(io.Discard, tw.DotWriter(), sig, data); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/1000/float64(b.N), "cpu-ms/op")
		})
	}
}

// cpuTime is the CPU time, user and system, of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
