package pipeline

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
)

// TestTrackedCopiesBounded: each tracked recipient gets its own rewritten
// copy, all held until stored; past Options.MaxTrackedBytes the message goes
// out untracked, with a warning on the receipt and on each email.
func TestTrackedCopiesBounded(t *testing.T) {
	msg := testkit.LoadMessage(10240, 5)
	// Room for two copies, with the header fields Submit adds.
	svc, live, _ := benchService(t, time.Second, func(o *Options) { o.MaxTrackedBytes = int64(2*len(msg) + 1024) })
	ctx := context.Background()
	submit := func(n int) *Receipt {
		t.Helper()
		rcpts := []string{"a@example.net", "b@example.net", "c@example.net"}[:n]
		r, err := svc.Submit(ctx, Submission{Key: live, Source: "api", EnvelopeFrom: benchFrom, Recipients: rcpts,
			Message: msg, Tracking: &Tracking{Opens: true, Clicks: true}})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	tracked := func(id string) bool {
		t.Helper()
		e, err := svc.store.Email(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		body, err := svc.store.Body(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		pixel := bytes.Contains(body, []byte("/v1/track/open/"+id))
		if pixel != (e.TrackOpens && e.TrackClicks) {
			t.Errorf("%s: record says opens %v clicks %v, body has the pixel: %v", id, e.TrackOpens, e.TrackClicks, pixel)
		}
		return pixel
	}

	r := submit(2) // two copies: at the bound
	if len(r.Warnings) != 0 || !tracked(r.IDs[0]) || !tracked(r.IDs[1]) {
		t.Fatalf("two recipients: warnings %q", r.Warnings)
	}

	r = submit(3)
	if len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "tracking was skipped") {
		t.Fatalf("three recipients: warnings %q", r.Warnings)
	}
	for _, id := range r.IDs {
		if tracked(id) {
			t.Errorf("%s tracked past the bound", id)
		}
		evs, err := svc.store.Events(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 || evs[0].Type != "warning" || !strings.Contains(evs[0].Data["message"], "tracking was skipped") {
			t.Errorf("%s: events %+v, want the warning", id, evs)
		}
	}
}
