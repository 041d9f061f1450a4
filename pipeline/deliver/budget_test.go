package deliver

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/membudget"
	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
	"github.com/pigeonpost/pigeonpost/tracking"
)

// TestWorkerReadsLargeBodyWithinBudget: a body over smallBody is read back
// only once its size is reserved; a small one never waits.
func TestWorkerReadsLargeBodyWithinBudget(t *testing.T) {
	rdb := testkit.StartRedis(t).Client(t)
	st := store.New(rdb, time.Now)
	sink := testkit.StartSink(t, testkit.SinkOptions{})
	budget := membudget.New(1<<20, 1<<20, 0)
	hold, err := budget.Acquire(context.Background(), budget.Size())
	if err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	queue := func(subject string, size int) []byte {
		var b bytes.Buffer
		b.WriteString("From: a@acme.test\r\nTo: b@dest.test\r\nSubject: " + subject + "\r\n\r\n")
		for b.Len() < size {
			b.WriteString(strings.Repeat("x", 76) + "\r\n")
		}
		e := &store.Email{ID: store.NewID("em"), AccountID: "acc_1", KeyID: "key_1", Mode: store.ModeLive,
			Status: store.StatusPending, Source: "smtp", FromAddress: "a@acme.test", EnvelopeFrom: "a@acme.test",
			ToAddress: "b@dest.test", Subject: subject, CreatedAt: time.Now().UTC()}
		if err := st.PersistWith(ctx, []store.NewEmail{{Email: e, Body: b.Bytes()}}, store.PersistOptions{Enqueue: true}); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	large := queue("large", 200_000)

	w := &Worker{
		Store:       st,
		Transport:   &Transport{Hostname: "pigeon.test", RelayHost: sink.Addr(), Timeout: 30 * time.Second},
		Concurrency: 2,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		Budget:      budget,
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	defer func() { stop(); <-done }()

	testkit.WaitFor(t, "the large body to wait for the budget", func() bool { return budget.Waiting() == 1 })
	small := queue("small", 1000)
	testkit.WaitFor(t, "the small message", func() bool { return len(sink.Messages()) == 1 })
	if got := sink.Messages()[0].Data; !bytes.Equal(got, small) {
		t.Fatalf("first delivery is not the small message: %.60q", got)
	}

	hold.Release()
	testkit.WaitFor(t, "the large message", func() bool { return len(sink.Messages()) == 2 })
	if got := sink.Messages()[1].Data; !bytes.Equal(got, large) {
		t.Errorf("large message: got %d bytes, want %d", len(got), len(large))
	}
	testkit.WaitFor(t, "the budget to be released", func() bool { return budget.InUse() == 0 })
}

// costlyRenderer renders a body as it is, but says rendering costs cost:
// what the worker must reserve before it reads a body it renders.
type costlyRenderer struct{ cost int64 }

func (r costlyRenderer) Render(_ *store.Email, stored []byte) ([]byte, tracking.Result) {
	return stored, tracking.Result{}
}

func (r costlyRenderer) RenderCost(*store.Email, int64) int64 { return r.cost }

// TestWorkerReservesTheRenderedSize: the memory reserved for an attempt is
// what rendering holds (Renderer.RenderCost: the stored body and its
// tracked copy), not the stored size alone: a small stored message whose
// render is large waits for the budget, and goes once it is free.
func TestWorkerReservesTheRenderedSize(t *testing.T) {
	rdb := testkit.StartRedis(t).Client(t)
	st := store.New(rdb, time.Now)
	sink := testkit.StartSink(t, testkit.SinkOptions{})
	budget := membudget.New(1<<20, 1<<20, 0)
	hold, err := budget.Acquire(context.Background(), budget.Size())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	mime := []byte("From: a@acme.test\r\nTo: b@dest.test\r\nSubject: small\r\n\r\nhi\r\n")
	m := store.NewMessage{ID: store.NewID("msg"), MIME: mime}
	e := &store.Email{ID: store.NewID("em"), AccountID: "acc_1", KeyID: "key_1", Mode: store.ModeLive,
		Status: store.StatusPending, Source: "smtp", FromAddress: "a@acme.test", EnvelopeFrom: "a@acme.test",
		ToAddress: "b@dest.test", CreatedAt: time.Now().UTC(), Message: m.ID, MessageLen: int64(len(mime)), TrackOpens: true}
	if err := st.PersistWith(ctx, []store.NewEmail{{Email: e}}, store.PersistOptions{Enqueue: true, Messages: []store.NewMessage{m}}); err != nil {
		t.Fatal(err)
	}
	w := &Worker{
		Store:       st,
		Transport:   &Transport{Hostname: "pigeon.test", RelayHost: sink.Addr(), Timeout: 30 * time.Second},
		Concurrency: 1,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		Budget:      budget,
		Renderer:    costlyRenderer{cost: 200_000},
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	defer func() { stop(); <-done }()

	testkit.WaitFor(t, "the attempt to wait for the rendered size", func() bool { return budget.Waiting() == 1 })
	hold.Release()
	testkit.WaitFor(t, "the message", func() bool { return len(sink.Messages()) == 1 })
	if got := sink.Messages()[0].Data; !bytes.Equal(got, mime) {
		t.Errorf("delivered %q, want %q", got, mime)
	}
	testkit.WaitFor(t, "the budget to be released", func() bool { return budget.InUse() == 0 })
}
