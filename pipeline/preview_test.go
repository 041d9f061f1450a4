package pipeline

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
	"github.com/pigeonpost/pigeonpost/tracking"
)

// previewHTML has a link of each kind: tracked, a reset link (secret), the
// List-Unsubscribe target, one marked data-sp-notrack and a mailto: link.
const previewHTML = `<html><body><p><a href="https://shop.example.net/a?x=1&amp;y=2">shop</a>` + "\r\n" +
	`<a href="https://example.net/reset?token=s3cret">reset</a>` + "\r\n" +
	`<a href="https://example.net/unsub?u=1">unsubscribe</a>` + "\r\n" +
	`<a data-sp-notrack href="https://example.net/private">private</a>` + "\r\n" +
	`<a href="mailto:help@bench.test">help</a></p></body></html>` + "\r\n"

// previewMessage is a 7bit message (the click ids of a preview and of a
// send differ in length: quoted-printable would wrap them differently)
// with a Message-ID and a Date, so that a preview and a send of it have
// the same header.
func previewMessage(extra ...string) []byte {
	h := "From: Bench <bench@bench.test>\r\nTo: a@example.net, b@example.net\r\nSubject: Preview\r\n" +
		"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <preview-1@bench.test>\r\nMIME-Version: 1.0\r\n" +
		"List-Unsubscribe: <https://example.net/unsub?u=1>\r\n"
	for _, x := range extra {
		h += x + "\r\n"
	}
	return []byte(h + "Content-Type: multipart/alternative; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n" +
		"Shop at https://shop.example.net/text or unsubscribe: https://example.net/unsub?u=1\r\n" +
		"--b\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n" + previewHTML +
		"--b--\r\n")
}

// redisSnapshot is every key of the database with its value (DUMP).
func redisSnapshot(t *testing.T, rdb redis.UniversalClient) map[string]string {
	t.Helper()
	ctx := context.Background()
	keys := testkit.RedisKeys(t, rdb, "*")
	out := map[string]string{}
	for _, k := range keys {
		v, err := rdb.Dump(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		out[k] = v
	}
	if n, err := rdb.DBSize(ctx).Result(); err != nil || n != int64(len(out)) {
		t.Fatalf("DBSIZE %d (%v), %d keys", n, err, len(out))
	}
	return out
}

// wantUnchanged fails the test unless Redis holds what before held.
func wantUnchanged(t *testing.T, rdb redis.UniversalClient, before map[string]string) {
	t.Helper()
	after := redisSnapshot(t, rdb)
	if maps.Equal(before, after) {
		return
	}
	for k, v := range after {
		if old, ok := before[k]; !ok {
			t.Errorf("written: %s", k)
		} else if old != v {
			t.Errorf("changed: %s", k)
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			t.Errorf("deleted: %s", k)
		}
	}
}

// TestPreviewStoresNothing: a preview, tracked, of a REST-like
// submission and of a raw message with an Idempotency-Key, writes nothing
// to Redis: no email, body, stream entry, idempotency key, rate or count.
func TestPreviewStoresNothing(t *testing.T) {
	svc, live, test := benchService(t, 0)
	ctx := context.Background()
	before := redisSnapshot(t, svc.rdb)
	for _, k := range []*store.Key{live, test} {
		p, err := svc.Preview(ctx, Submission{Key: k, Source: "api", EnvelopeFrom: benchFrom,
			Recipients: []string{"a@example.net", "b@example.net"}, Message: previewMessage(),
			Tracking: &Tracking{Opens: true, Clicks: true}}, "")
		if err != nil {
			t.Fatalf("%s: %v", k.Mode, err)
		}
		if p.EmailID != PreviewEmailID || p.To != "a@example.net" || !p.Tracking.Opens || !p.Tracking.Clicks {
			t.Errorf("%s: %+v", k.Mode, p)
		}
		raw := strings.ReplaceAll(string(previewMessage("Idempotency-Key: order-7", "X-SP-Track-Opens: true")), "\r\n", "\n")
		p, err = svc.PreviewMessage(ctx, k, []byte(raw), "B@example.net")
		if err != nil {
			t.Fatalf("%s, raw: %v", k.Mode, err)
		}
		if p.To != "b@example.net" || !p.Tracking.Opens || p.Tracking.Clicks || p.Links != nil {
			t.Errorf("%s, raw: %+v", k.Mode, p)
		}
		for _, gone := range []string{"Idempotency-Key", "X-SP-Track", "\n\n", "\r\r"} {
			if strings.Contains(string(p.Message), gone) {
				t.Errorf("%s, raw: the preview holds %q", k.Mode, gone)
			}
		}
	}
	wantUnchanged(t, svc.rdb, before)
}

// clickID matches the click URLs of a message.
var clickID = regexp.MustCompile(`/v1/track/click/([A-Za-z0-9_-]+)\.(\d+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)`)

// TestPreviewIsWhatSubmitStores: the preview of a submission is the copy
// that delivery renders for its first recipient from what Submit stores,
// but for the email id (in the pixel and the click ids) and the click ids'
// MACs, with delivery's X-Pigeonpost-Id first; its tracked links are the
// email's.
func TestPreviewIsWhatSubmitStores(t *testing.T) {
	svc, live, _ := benchService(t, 0)
	ctx := context.Background()
	sub := Submission{Key: live, Source: "api", EnvelopeFrom: benchFrom,
		Recipients: []string{"a@example.net", "b@example.net"}, Message: previewMessage(),
		Tracking: &Tracking{Opens: true, Clicks: true}}
	p, err := svc.Preview(ctx, sub, "")
	if err != nil {
		t.Fatal(err)
	}
	r, err := svc.Submit(ctx, sub)
	if err != nil {
		t.Fatal(err)
	}
	id := r.IDs[0]
	stored, rendered := renderedContent(t, svc, id)

	field, body, ok := strings.Cut(string(p.Message), "\r\n")
	if !ok || field != tracking.FeedbackHeader+": "+svc.signer.FeedbackID(PreviewEmailID) {
		t.Errorf("the preview does not start with delivery's field: %q", field)
	}
	signer := svc.signer
	norm := func(msg, emailID string) string {
		return clickID.ReplaceAllStringFunc(msg, func(m string) string {
			parts := clickID.FindStringSubmatch(m)
			if parts[1] != emailID {
				t.Errorf("click id %s is not of %s", m, emailID)
			}
			return fmt.Sprintf("/v1/track/click/<%s %s %s>", parts[2], parts[3], parts[4])
		})
	}
	got := norm(strings.ReplaceAll(body, PreviewEmailID, id), id)
	if want := norm(string(stored), id); got != want {
		t.Errorf("preview:\n%s\nstored:\n%s", got, want)
	}
	for _, m := range clickID.FindAllString(string(p.Message), -1) {
		if c, ok := signer.ParseClick(strings.TrimPrefix(m, "/v1/track/click/")); ok {
			t.Errorf("the preview's click id %s verifies: %+v", m, c)
		}
	}
	if n := len(clickID.FindAllString(string(stored), -1)); n != 2 {
		t.Errorf("%d click URLs stored, want 2", n)
	}

	links := rendered.Links
	var tracked []string
	for _, l := range p.Links {
		if l.Reason == "" {
			tracked = append(tracked, l.URL)
		}
	}
	if !slices.Equal(tracked, links) {
		t.Errorf("tracked links %q, the email's %q", tracked, links)
	}
	if p.From != "bench@bench.test" || p.Subject != "Preview" || len(p.Warnings) != 0 || len(r.Warnings) != 0 {
		t.Errorf("preview %+v, receipt %+v", p, r)
	}
}

// TestPreviewLinks: the links of the rewritten parts, the skipped ones
// with why.
func TestPreviewLinks(t *testing.T) {
	svc, live, _ := benchService(t, 0)
	p, err := svc.Preview(context.Background(), Submission{Key: live, Source: "api", EnvelopeFrom: benchFrom,
		Recipients: []string{"a@example.net"}, Message: previewMessage(),
		Tracking: &Tracking{Clicks: true}}, "")
	if err != nil {
		t.Fatal(err)
	}
	want := []tracking.Link{
		{URL: "https://shop.example.net/text", Index: 0},
		{URL: "https://example.net/unsub?u=1", Index: -1, Reason: tracking.ReasonUnsubscribe},
		{URL: "https://shop.example.net/a?x=1&y=2", Index: 1},
		{URL: "https://example.net/reset?token=s3cret", Index: -1, Reason: tracking.ReasonSecret},
		{URL: "https://example.net/unsub?u=1", Index: -1, Reason: tracking.ReasonUnsubscribe},
		{URL: "https://example.net/private", Index: -1, Reason: tracking.ReasonNoTrack},
		{URL: "mailto:help@bench.test", Index: -1, Reason: "a mailto: link"},
	}
	if !slices.Equal(p.Links, want) {
		t.Errorf("links:\n%+v\nwant\n%+v", p.Links, want)
	}
	if strings.Contains(string(p.Message), "/v1/track/open/") || !strings.Contains(string(p.Message), `href="http://127.0.0.1:8080/v1/track/click/em_preview.1.`) {
		t.Errorf("clicks only:\n%s", p.Message)
	}
}

// TestPreviewErrors: a preview is refused as the send would be, and
// reaches neither limit; its recipient's suppression is a warning.
func TestPreviewErrors(t *testing.T) {
	svc, live, test := benchService(t, 0, func(o *Options) { o.RateLimit = RateLimit{PerSecond: 1, Burst: 1, Monthly: 1} })
	ctx := context.Background()
	sub := func(k *store.Key, from string, rcpts ...string) Submission {
		msg := strings.Replace(string(previewMessage()), "bench@bench.test", from, 1)
		return Submission{Key: k, Source: "api", EnvelopeFrom: from, Recipients: rcpts, Message: []byte(msg)}
	}
	// The one send the limits allow.
	if _, err := svc.Submit(ctx, sub(live, benchFrom, "a@example.net")); err != nil {
		t.Fatal(err)
	}
	if err := svc.store.Suppress(ctx, live.AccountID, "gone@example.net", "bounce"); err != nil {
		t.Fatal(err)
	}
	before := redisSnapshot(t, svc.rdb)

	p, err := svc.Preview(ctx, sub(live, benchFrom, "gone@example.net", "a@example.net"), "")
	if err != nil || p.To != "gone@example.net" || !slices.Contains(p.Warnings, "gone@example.net is on the suppression list: a send would not deliver to it") {
		t.Errorf("over the limits, to a suppressed recipient: %+v, %v", p, err)
	}
	for _, tc := range []struct {
		name string
		sub  Submission
		to   string
		want *Error
	}{
		{"unverified domain", sub(live, "x@other.test", "a@example.net"), "", ErrUnverifiedDomain},
		{"bad recipient", sub(live, benchFrom, "not an address"), "", ErrBadAddress},
		{"not a recipient", sub(live, benchFrom, "a@example.net"), "b@example.net", ErrInvalid},
		{"all suppressed", sub(live, benchFrom, "gone@example.net"), "", ErrAllSuppressed},
		{"test key, bad recipient", sub(test, "x@other.test", "a@"), "", ErrBadAddress},
	} {
		if _, err := svc.Preview(ctx, tc.sub, tc.to); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := svc.Preview(ctx, sub(test, "x@other.test", "a@example.net"), ""); err != nil {
		t.Errorf("a test key sends from any domain: %v", err)
	}
	for name, raw := range map[string]string{
		"no recipient":  "From: bench@bench.test\r\nSubject: x\r\n\r\nhi\r\n",
		"no From":       "To: a@example.net\r\n\r\nhi\r\n",
		"bad header":    "From: bench@bench.test\r\nTo: a@example.net\r\nIdempotency-Key: \x01\r\n\r\nhi\r\n",
		"no header end": "From: bench@bench.test",
	} {
		if _, err := svc.PreviewMessage(ctx, live, []byte(raw), ""); AsError(err).HTTPStatus != 400 {
			t.Errorf("raw, %s: %v", name, err)
		}
	}
	wantUnchanged(t, svc.rdb, before)

	if _, err := svc.store.PauseAccount(ctx, live.AccountID, store.Pause{At: time.Now(), Reason: "manual"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Preview(ctx, sub(live, benchFrom, "a@example.net"), ""); !errors.Is(err, ErrAccountPaused) {
		t.Errorf("paused: %v", err)
	}
}
