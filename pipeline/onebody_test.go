package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
	"github.com/pigeonpost/pigeonpost/tracking"
)

// renderedContent returns the body stored for the email id and its copy
// as delivery renders it (Render), with what the rewrite reported.
func renderedContent(t testing.TB, svc *Service, id string) ([]byte, tracking.Result) {
	t.Helper()
	ctx := context.Background()
	e, err := svc.store.Email(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := svc.store.Body(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	return svc.Render(e, stored)
}

// storedContentBytes sums the sizes of every stored MIME in rdb: the
// messages (MessageKey) and the per-email bodies (BodyKey).
func storedContentBytes(t testing.TB, svc *Service) (total int64, keys int) {
	t.Helper()
	ctx := context.Background()
	for _, pattern := range []string{store.MessageKey("*"), store.BodyKey("*")} {
		iter := svc.rdb.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			if strings.HasSuffix(iter.Val(), ":refs") {
				continue
			}
			n, err := svc.rdb.StrLen(ctx, iter.Val()).Result()
			if err != nil {
				t.Fatal(err)
			}
			total += n
			keys++
		}
		if err := iter.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return total, keys
}

// TestOneBodyPerMessage: a tracked message of 1 MB to 100 recipients is
// stored once (100 tracked copies, as before, would be 100 MB and 100
// keys), counted by its recipients; each email renders its own pixel and
// click ids from it. Before, 100 copies of 1 MB were over the 64 MiB that
// the copies of one message could take, and the message went out
// untracked with a warning: nothing is held per recipient now, so it is
// tracked, without a warning.
func TestOneBodyPerMessage(t *testing.T) {
	svc, live, _ := benchService(t, time.Second)
	ctx := context.Background()
	msg := testkit.LoadMessage(1<<20, 5)
	rcpts := make([]string, 100)
	for i := range rcpts {
		rcpts[i] = fmt.Sprintf("r%d@example.net", i)
	}
	r, err := svc.Submit(ctx, Submission{Key: live, Source: "api", EnvelopeFrom: benchFrom, Recipients: rcpts,
		Message: msg, Tracking: &Tracking{Opens: true, Clicks: true}})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.IDs) != 100 || len(r.Warnings) != 0 {
		t.Fatalf("receipt: %d ids, warnings %q", len(r.IDs), r.Warnings)
	}
	total, keys := storedContentBytes(t, svc)
	if keys != 1 || total < int64(len(msg)) || total > int64(len(msg))+4096 {
		t.Errorf("%d bytes stored in %d keys for a %d-byte message to 100 recipients, want it once", total, keys, len(msg))
	}
	first, err := svc.store.Email(ctx, r.IDs[0])
	if err != nil {
		t.Fatal(err)
	}
	if refs, err := svc.rdb.Get(ctx, store.MessageRefsKey(first.Message)).Int(); err != nil || refs != 100 {
		t.Errorf("message counts %d recipients (%v), want 100", refs, err)
	}
	for _, id := range []string{r.IDs[0], r.IDs[99]} {
		e, err := svc.store.Email(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if e.Message != first.Message || !e.TrackOpens || !e.TrackClicks {
			t.Errorf("%s: message %q (want %q), opens %v clicks %v", id, e.Message, first.Message, e.TrackOpens, e.TrackClicks)
		}
		stored, err := svc.store.Body(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(stored, []byte("/v1/track/")) {
			t.Errorf("%s: the stored message is tracked", id)
		}
		out, res := svc.Render(e, stored)
		if cost := svc.RenderCost(e, int64(len(stored))); cost < int64(len(stored)+len(out)) {
			t.Errorf("%s: rendering reserves %d bytes, holds at least %d", id, cost, len(stored)+len(out))
		}
		if !bytes.Contains(out, []byte("/v1/track/open/"+id)) || len(res.Links) != 5 {
			t.Errorf("%s: the rendered copy has no pixel of its own, or %d links (want 5)", id, len(res.Links))
		}
		for _, m := range clickID.FindAllStringSubmatch(string(out), -1) {
			if m[1] != id {
				t.Errorf("%s: click id of %s in its copy", id, m[1])
			}
		}
	}
}

// TestRenderOldLayout: a record written before messages were stored once
// holds its own tracked copy (BodyKey): it is sent as it is, not tracked
// again.
func TestRenderOldLayout(t *testing.T) {
	svc, _, _ := benchService(t, 0)
	copyBody := []byte("Subject: x\r\nContent-Type: text/html\r\n\r\n<a href=\"https://t.test/v1/track/click/x\">x</a><img src=\"https://t.test/v1/track/open/em_old\">\r\n")
	e := &store.Email{ID: "em_old", AccountID: "acct", TrackOpens: true, TrackClicks: true}
	out, res := svc.Render(e, copyBody)
	if !bytes.Equal(out, copyBody) || res.Changed {
		t.Errorf("an old-layout copy was rendered again:\n%s", out)
	}
}
