package engagement

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/account"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
	"github.com/pigeonpost/pigeonpost/tracking"
)

const testBrowserUA = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"

// testEnv is an engagement Service with the submission and account
// services beside it on the same store, as cmd builds them.
type testEnv struct {
	*Service
	sub  *pipeline.Service
	acct *account.Service
}

// trackingService returns a Service on a fresh Redis, recording tracking
// hits, and an account with a live key.
func trackingService(t *testing.T, opt Options) (*testEnv, *store.Key) {
	t.Helper()
	rdb := testkit.StartRedis(t).Client(t)
	svc := recordingService(t, rdb, opt)
	k, _, err := svc.acct.CreateAccount(context.Background(), "acme", store.ModeLive)
	if err != nil {
		t.Fatal(err)
	}
	return svc, k
}

// newEnv returns the services over rdb.
func newEnv(rdb redis.UniversalClient, opt Options) *testEnv {
	st := store.New(rdb, time.Now)
	signer := tracking.NewSigner([]byte("secret"))
	sub := pipeline.New(st, signer, pipeline.Options{Hostname: "gw.test", PublicURL: "https://t.gw.test"})
	opt.PublicURL = "https://t.gw.test"
	acct := account.New(st, sub, account.Options{})
	return &testEnv{Service: New(st, sub, acct, signer, opt), sub: sub, acct: acct}
}

// recordingService returns a Service over rdb whose hit recorders run
// until the test ends.
func recordingService(t *testing.T, rdb redis.UniversalClient, opt Options) *testEnv {
	t.Helper()
	svc := newEnv(rdb, opt)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = svc.RecordHits(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return svc
}

// settleHits waits until every hit queued on svc is recorded.
func settleHits(t *testing.T, svc *testEnv) {
	t.Helper()
	testkit.WaitFor(t, "the queued tracking hits to be recorded", func() bool {
		return testutil.ToFloat64(svc.metrics.hitsQueued) == 0
	})
}

// deliveredEmail stores a live email from acme.test, delivered an hour ago,
// with two links.
func deliveredEmail(t *testing.T, svc *testEnv, k *store.Key) *store.Email {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	e := &store.Email{
		ID: store.NewID("em"), AccountID: k.AccountID, KeyID: k.ID, Mode: store.ModeLive, Status: store.StatusSent,
		FromAddress: "hello@acme.test", ToAddress: "user@example.test", Tags: []string{"welcome"},
		TrackOpens: true, TrackClicks: true, Links: []string{"https://e.test/a", "https://e.test/b"}, CreatedAt: now,
	}
	if err := svc.store.Persist(ctx, []store.NewEmail{{Email: e, Body: []byte("x")}}, false); err != nil {
		t.Fatal(err)
	}
	delivered := now.Add(-time.Hour)
	if err := svc.store.UpdateEmail(ctx, e.ID, map[string]any{store.FieldStatus: store.StatusDelivered, store.FieldDeliveredAt: store.FormatTime(delivered)},
		&store.Event{Type: "delivered", Timestamp: now, AccountID: k.AccountID}); err != nil {
		t.Fatal(err)
	}
	return e
}

// Of many simultaneous opens exactly one is the first: one event marked
// first, one unique open counted, openedAt set once. The opens come
// through two processes' recorders on the same Redis, mixed with hits of
// an unknown email that must not spoil their batches.
func TestRecordOpenFirstOnceUnderConcurrency(t *testing.T) {
	svc, k := trackingService(t, Options{BotWindow: 3 * time.Second})
	other := recordingService(t, svc.store.Redis(), Options{BotWindow: 3 * time.Second})
	e := deliveredEmail(t, svc, k)
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			via := []*testEnv{svc, other}[i%2]
			via.RecordOpen(ctx, "em_unknown", Visitor{Method: "GET"})
			via.RecordOpen(ctx, e.ID, Visitor{Method: "GET", IP: "192.0.2.1", UserAgent: testBrowserUA})
		}()
	}
	wg.Wait()
	settleHits(t, svc)
	settleHits(t, other)
	evs, err := svc.store.Events(ctx, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	first := 0
	for _, ev := range evs {
		if ev.Type == "opened" && ev.Data[store.DataFirst] == "true" {
			first++
		}
	}
	if len(evs) != 21 || first != 1 {
		t.Errorf("%d events, %d first opens", len(evs), first)
	}
	a, err := svc.Analytics(ctx, k, AnalyticsQuery{Range: "1d"})
	if err != nil {
		t.Fatal(err)
	}
	if a.Opens != 20 || a.UniqueOpens != 1 || a.Delivered != 1 || a.OpenRate != 1 {
		t.Errorf("analytics %+v", a.Counts)
	}
	if tagged, _ := svc.Analytics(ctx, k, AnalyticsQuery{Range: "1d", Tag: "welcome"}); tagged.UniqueOpens != 1 {
		t.Errorf("tag counters %+v", tagged.Counts)
	}
	if byDomain, _ := svc.Analytics(ctx, k, AnalyticsQuery{Range: "1d", Domain: "ACME.test"}); byDomain.UniqueOpens != 1 {
		t.Errorf("domain counters %+v", byDomain.Counts)
	}
}

func TestResolveClick(t *testing.T) {
	svc, k := trackingService(t, Options{})
	e := deliveredEmail(t, svc, k)
	ctx := context.Background()
	v := Visitor{Method: "GET", IP: "192.0.2.1", UserAgent: testBrowserUA}
	dest, err := svc.ResolveClick(ctx, svc.signer.ClickID(e.ID, 1), v)
	if err != nil || dest != "https://e.test/b" {
		t.Fatalf("got %q, %v", dest, err)
	}
	for _, id := range []string{svc.signer.ClickID(e.ID, 2), svc.signer.ClickID("em_unknown", 0), "x", e.ID + ".0.AAAAAAAAAAAAAAAAAAAAAA"} {
		if _, err := svc.ResolveClick(ctx, id, v); !errors.Is(err, pipeline.ErrNotFound) {
			t.Errorf("%q: %v", id, err)
		}
	}
	// Unknown and malformed pixel ids are ignored.
	for _, id := range []string{"em_unknown", "nope", strings.Repeat("em_", 100)} {
		svc.RecordOpen(ctx, id, v)
	}
	settleHits(t, svc)
	evs, err := svc.store.Events(ctx, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	if last := evs[len(evs)-1]; len(evs) != 2 || last.Type != "clicked" || last.Data[store.DataLinkURL] != "https://e.test/b" || last.Data[store.DataFirst] != "true" {
		t.Errorf("events %+v", evs)
	}
	if got := testutil.ToFloat64(svc.metrics.hits.WithLabelValues("unknown")); got != 1 {
		t.Errorf("%v hits of unknown emails recorded as such, want 1 (em_unknown)", got)
	}
}

// The hits queued when the recorders stop are recorded before RecordHits
// returns; a hit that finds the queue full waits only as long as its
// context, then is dropped and counted.
func TestHitQueueAtShutdownAndWhenFull(t *testing.T) {
	rdb := testkit.StartRedis(t).Client(t)
	svc := newEnv(rdb, Options{})
	k, _, err := svc.acct.CreateAccount(context.Background(), "acme", store.ModeLive)
	if err != nil {
		t.Fatal(err)
	}
	e := deliveredEmail(t, svc, k)
	ctx := context.Background()
	for range hitQueueSize { // all to e's recorder
		svc.RecordOpen(ctx, e.ID, Visitor{Method: "GET", UserAgent: testBrowserUA})
	}
	expired, cancel := context.WithCancel(ctx)
	cancel()
	svc.RecordOpen(expired, e.ID, Visitor{Method: "GET", UserAgent: testBrowserUA})
	if got := testutil.ToFloat64(svc.metrics.hits.WithLabelValues("dropped")); got != 1 {
		t.Errorf("%v hits dropped, want 1", got)
	}
	if err := svc.RecordHits(expired); err != nil { // stopped already: drains and returns
		t.Fatal(err)
	}
	// Every hit was taken off the queue; the email kept its first
	// maxHitEvents, and the others were counted capped.
	if n, _ := rdb.LLen(ctx, store.EventsKey(e.ID)).Result(); n != maxHitEvents+1 {
		t.Errorf("%d events, want %d opens and the delivery", n, maxHitEvents+1)
	}
	recorded, capped := testutil.ToFloat64(svc.metrics.hits.WithLabelValues("recorded")), testutil.ToFloat64(svc.metrics.hits.WithLabelValues("capped"))
	if recorded != maxHitEvents || capped != hitQueueSize-maxHitEvents {
		t.Errorf("%v hits recorded, %v capped; want %d and %d", recorded, capped, maxHitEvents, hitQueueSize-maxHitEvents)
	}
	if q := testutil.ToFloat64(svc.metrics.hitsQueued); q != 0 {
		t.Errorf("%v hits still counted as queued", q)
	}
}

func TestAnalyticsDays(t *testing.T) {
	now := time.Date(2025, 3, 2, 15, 0, 0, 0, time.UTC)
	tests := []struct {
		q        AnalyticsQuery
		from, to string
		n        int
		bad      bool
	}{
		{AnalyticsQuery{}, "2025-02-01", "2025-03-02", 30, false},
		{AnalyticsQuery{Range: "1d"}, "2025-03-02", "2025-03-02", 1, false},
		{AnalyticsQuery{Range: "7d"}, "2025-02-24", "2025-03-02", 7, false},
		{AnalyticsQuery{From: "2024-02-28", To: "2024-03-01"}, "2024-02-28", "2024-03-01", 3, false},
		{AnalyticsQuery{From: "2024-01-01", To: "2024-12-31"}, "2024-01-01", "2024-12-31", 366, false},
		{AnalyticsQuery{From: "2024-01-01", To: "2025-01-01"}, "", "", 0, true},
		{AnalyticsQuery{Range: "367d"}, "", "", 0, true},
		{AnalyticsQuery{Range: "-1d"}, "", "", 0, true},
		{AnalyticsQuery{Range: "week"}, "", "", 0, true},
		{AnalyticsQuery{From: "2025-03-03", To: "2025-03-02"}, "", "", 0, true},
		{AnalyticsQuery{To: "03/02/2025"}, "", "", 0, true},
	}
	for _, tt := range tests {
		days, from, to, err := analyticsDays(tt.q, now)
		if tt.bad {
			if !errors.Is(err, pipeline.ErrInvalid) {
				t.Errorf("%+v: %v", tt.q, err)
			}
			continue
		}
		if err != nil || from != tt.from || to != tt.to || len(days) != tt.n || days[0] != from || days[len(days)-1] != to {
			t.Errorf("%+v: %s..%s (%d days), %v", tt.q, from, to, len(days), err)
		}
	}
}

// The counting script runs inside the MULTI that records an event: it must
// not fail whatever the email record looks like, or the event's recording
// would fail for its caller.
func TestCountingSurvivesOddRecords(t *testing.T) {
	svc, k := trackingService(t, Options{})
	ctx := context.Background()
	rdb := svc.store.Redis()
	rdb.HSet(ctx, store.EmailKey("em_oddtags"), "accountId", k.AccountID, "mode", "live", "fromAddress", "no-at-sign", "tags", "{not json")
	rdb.HSet(ctx, store.EmailKey("em_numtags"), "accountId", k.AccountID, "mode", "live", "fromAddress", "a@b.test", "tags", "[1, null, {}]")
	for _, id := range []string{"em_oddtags", "em_numtags", "em_missing"} {
		if err := svc.store.AddEvent(ctx, store.Event{Type: "delivered", Timestamp: time.Now(), EmailID: id, AccountID: k.AccountID}); err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
	a, err := svc.Analytics(ctx, k, AnalyticsQuery{Range: "1d"})
	if err != nil || a.Delivered != 3 {
		t.Errorf("delivered %d, %v", a.Delivered, err)
	}
	// Test-mode mail is not counted.
	rdb.HSet(ctx, store.EmailKey("em_test"), "accountId", k.AccountID, "mode", "test")
	_ = svc.store.AddEvent(ctx, store.Event{Type: "delivered", Timestamp: time.Now(), EmailID: "em_test", AccountID: k.AccountID})
	if a, _ := svc.Analytics(ctx, k, AnalyticsQuery{Range: "1d"}); a.Delivered != 3 {
		t.Errorf("test mode counted: %d", a.Delivered)
	}
	if _, err := svc.Analytics(ctx, k, AnalyticsQuery{Domain: "dom_unknown"}); !errors.Is(err, pipeline.ErrNotFound) {
		t.Errorf("unknown domain id: %v", err)
	}
}

// Overrides belong to one domain record: a domain deleted and added again
// starts without them.
func TestDomainOverridesFollowTheDomainRecord(t *testing.T) {
	svc, k := trackingService(t, Options{})
	ctx := context.Background()
	d, _ := svc.acct.AddDomain(ctx, k, "acme.test")
	no := false
	if _, err := svc.PutDomainTracking(ctx, k, d.ID, DomainTrackingInput{OpenTracking: &no, PrivacyMode: &no}); err != nil {
		t.Fatal(err)
	}
	if st, err := svc.sub.TrackingSettings(ctx, k.AccountID, "acme.test"); err != nil || st.Domain == nil || st.Domain.OpenTracking {
		t.Fatalf("override not applied: %+v %v", st, err)
	}
	if err := svc.acct.DeleteDomain(ctx, k, d.ID); err != nil {
		t.Fatal(err)
	}
	d2, _ := svc.acct.AddDomain(ctx, k, "acme.test")
	if st, err := svc.sub.TrackingSettings(ctx, k.AccountID, "acme.test"); err != nil || (st.Domain != nil && !st.Domain.OpenTracking) {
		t.Errorf("old override applied to the new domain: %+v %v", st, err)
	}
	dt, err := svc.DomainTracking(ctx, k, d2.ID)
	if err != nil || !dt.OpenTracking || dt.PrivacyMode != nil || dt.TrackingDomain != nil {
		t.Errorf("new domain's tracking %+v, %v", dt, err)
	}
}

// TestHitsSurviveARedisRestart: a batch that Redis refuses is tried again,
// so the hits of a restart are recorded once it is back, not lost.
func TestHitsSurviveARedisRestart(t *testing.T) {
	r := testkit.StartRedis(t)
	svc := recordingService(t, r.Client(t), Options{})
	k, _, err := svc.acct.CreateAccount(context.Background(), "acme", store.ModeLive)
	if err != nil {
		t.Fatal(err)
	}
	e := deliveredEmail(t, svc, k)
	ctx := context.Background()

	r.Kill()
	svc.RecordOpen(ctx, e.ID, Visitor{Method: "GET", UserAgent: testBrowserUA})
	testkit.WaitFor(t, "a refused batch to be tried again", func() bool {
		return testutil.ToFloat64(svc.metrics.hitRetries) > 0
	})
	r.Restart()
	settleHits(t, svc)
	if got := testutil.ToFloat64(svc.metrics.hits.WithLabelValues("recorded")); got != 1 {
		t.Errorf("%v hits recorded, want 1 (failed: %v)", got, testutil.ToFloat64(svc.metrics.hits.WithLabelValues("failed")))
	}
	got, err := svc.acct.Email(ctx, k, e.ID)
	if err != nil || got.OpenedAt == nil {
		t.Fatalf("after the restart: %+v %v", got, err)
	}
}

// What anyone may send a tracking endpoint is bounded in what it stores:
// a 200 KB User-Agent or Referer keeps its first 256 / 512 bytes.
func TestHitVisitorIsBounded(t *testing.T) {
	svc, k := trackingService(t, Options{})
	e := deliveredEmail(t, svc, k)
	ctx := context.Background()
	huge := strings.Repeat("Mozilla/5.0 é", 200<<10/14)
	if _, err := svc.ResolveClick(ctx, svc.signer.ClickID(e.ID, 0), Visitor{Method: "GET", IP: "192.0.2.1", UserAgent: huge, Referer: huge}); err != nil {
		t.Fatal(err)
	}
	settleHits(t, svc)
	evs, err := svc.store.Events(ctx, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	last := evs[len(evs)-1]
	if ua, ref := last.Data["userAgent"], last.Data["referer"]; len(ua) == 0 || len(ua) > maxAgentBytes || len(ref) == 0 || len(ref) > maxRefererBytes ||
		!utf8.ValidString(ua) || !utf8.ValidString(ref) {
		t.Errorf("stored a %d-byte User-Agent and a %d-byte Referer", len(ua), len(ref))
	}
}
