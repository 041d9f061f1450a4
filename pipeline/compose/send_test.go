package compose_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/account"
	"github.com/pigeonpost/pigeonpost/pipeline/compose"
	"github.com/pigeonpost/pigeonpost/pipeline/pipelinetest"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// parts returns the pipeline's parts on a fresh Redis and a test key of
// the account acme.
func parts(t *testing.T) (*pipelinetest.Parts, *store.Key) {
	t.Helper()
	p := pipelinetest.New(t, pipelinetest.Options{Pipeline: pipeline.Options{RateLimit: pipeline.RateLimit{PerSecond: 1000, Burst: 1000}}})
	return p, p.Key(t, "acme", "sp_test_pipelineunittestkey0000001")
}

func TestSendIdempotency(t *testing.T) {
	p, k := parts(t)
	ctx := context.Background()
	req := compose.SendRequest{From: "hello@acme.test", To: []string{"a@x.test"}, Subject: "s", Text: "t"}

	first, err := p.Compose.Send(ctx, k, req, "key-1")
	if err != nil || first.Replayed {
		t.Fatalf("%+v %v", first, err)
	}
	again, err := p.Compose.Send(ctx, k, req, "key-1")
	if err != nil || !again.Replayed || again.IDs[0] != first.IDs[0] {
		t.Fatalf("repeat: %+v %v", again, err)
	}
	other := req
	other.Subject = "different"
	if _, err := p.Compose.Send(ctx, k, other, "key-1"); pipeline.AsError(err).HTTPStatus != 422 {
		t.Fatalf("different body: %v", err)
	}
	// Another account with the same key is independent.
	k2 := p.Key(t, "other", "sp_test_pipelineunittestkey0000002")
	r2, err := p.Compose.Send(ctx, k2, req, "key-1")
	if err != nil || r2.Replayed || r2.IDs[0] == first.IDs[0] {
		t.Fatalf("other account: %+v %v", r2, err)
	}
	// A failed request releases its key: the corrected retry goes through.
	bad := req
	bad.To = []string{"not an address"}
	if _, err := p.Compose.Send(ctx, k, bad, "key-2"); pipeline.AsError(err).HTTPStatus != 400 {
		t.Fatalf("bad request: %v", err)
	}
	bad.To = req.To
	if r, err := p.Compose.Send(ctx, k, bad, "key-2"); err != nil || r.Replayed {
		t.Fatalf("retry after a failure: %+v %v", r, err)
	}
	page, err := p.Account.ListEmails(ctx, k, account.EmailFilter{})
	if err != nil || len(page.Emails) != 2 {
		t.Fatalf("account holds %d emails, want 2: %v", len(page.Emails), err)
	}
}

func TestSendIdempotencyConcurrent(t *testing.T) {
	p, k := parts(t)
	req := compose.SendRequest{From: "hello@acme.test", To: []string{"a@x.test"}, Subject: "s", Text: "t"}
	var wg sync.WaitGroup
	ids := make([]string, 20)
	errs := make([]error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := p.Compose.Send(context.Background(), k, req, "same")
			errs[i] = err
			if err == nil {
				ids[i] = r.IDs[0]
			}
		}()
	}
	wg.Wait()
	for i := range 20 {
		if errs[i] != nil || ids[i] != ids[0] {
			t.Fatalf("request %d: %s %v (first %s)", i, ids[i], errs[i], ids[0])
		}
	}
	page, _ := p.Account.ListEmails(context.Background(), k, account.EmailFilter{})
	if len(page.Emails) != 1 {
		t.Fatalf("%d emails stored, want 1", len(page.Emails))
	}
}

// Cancel and release race on the same schedule entry: whichever runs first
// wins, and an email is never both released and cancelled.
func TestCancelAgainstRelease(t *testing.T) {
	p, k := parts(t)
	ctx := context.Background()
	now := time.Now()
	for round := range 50 {
		req := compose.SendRequest{From: "hello@acme.test", To: []string{"a@x.test", "b@x.test"}, Subject: "s", Text: "t",
			ScheduledAt: now.Add(time.Hour).Format(time.RFC3339)}
		r, err := p.Compose.Send(ctx, k, req, "")
		if err != nil || r.Status != store.StatusScheduled || len(r.IDs) != 2 {
			t.Fatalf("%+v %v", r, err)
		}
		var cancelErr error
		var released int
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, cancelErr = p.Account.CancelSchedule(ctx, k, r.IDs[round%2])
		}()
		go func() {
			defer wg.Done()
			released, _ = p.Store.ReleaseDue(ctx, 0, now.Add(2*time.Hour), 1000)
		}()
		wg.Wait()
		for _, id := range r.IDs {
			e, _ := p.Store.Email(ctx, id)
			switch {
			case cancelErr == nil && (e.Status != store.StatusCancelled || released != 0):
				t.Fatalf("round %d: cancelled, yet %s is %s and %d released", round, id, e.Status, released)
			case cancelErr != nil && (pipeline.AsError(cancelErr).HTTPStatus != 409 || released != 2 || e.Status != store.StatusScheduled):
				t.Fatalf("round %d: %v, %s is %s, %d released", round, cancelErr, id, e.Status, released)
			}
		}
		// Drain the stream so that the next round's release counts only its own.
		_ = p.Store.Redis().Del(ctx, store.StreamKey(0)).Err()
	}
}

// countingFetcher counts the attachments it is asked to fetch.
type countingFetcher struct {
	mu    sync.Mutex
	calls int
}

func (f *countingFetcher) Fetch(context.Context, string) ([]byte, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return []byte("%PDF"), "application/pdf", nil
}

// A send whose sender is refused fetches none of its attachments.
func TestRefusedSenderFetchesNothing(t *testing.T) {
	p, _ := parts(t)
	k := p.Key(t, "acme", "sp_live_composefetchtestkey00000001") // test keys may send from any domain
	f := &countingFetcher{}
	svc := compose.New(p.Store, p.Pipeline, compose.Options{Fetcher: f})
	req := compose.SendRequest{From: "hello@unverified.test", To: []string{"a@example.test"}, Subject: "s", Text: "t",
		Attachments: []compose.Attachment{{Filename: "a.pdf", Path: "https://files.example.test/a.pdf"}}}
	if _, err := svc.Send(context.Background(), k, req, ""); !errors.Is(err, pipeline.ErrUnverifiedDomain) {
		t.Fatalf("send: %v", err)
	}
	if f.calls != 0 {
		t.Errorf("%d attachments fetched for a refused sender", f.calls)
	}
}

// httpsFetcher fetches attachment paths from a loopback HTTPS test server
// with its client (the SSRF guard of safehttp is not what is tested here:
// when fetching happens is).
type httpsFetcher struct{ client *http.Client }

func (f httpsFetcher) Fetch(ctx context.Context, rawURL string) ([]byte, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, "", err
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, compose.MaxAttachmentBytes+1))
	return body, resp.Header.Get("Content-Type"), err
}

// A send refused by the rate limit, the monthly limit or the account's
// pause, and the emails of a batch so refused, fetch none of their
// attachment paths: the loopback HTTPS server that serves them counts no
// request for them. An admitted send fetches each of its paths once.
func TestRefusedSendFetchesNothing(t *testing.T) {
	var requests atomic.Int64
	files := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		requests.Add(1)
		w.Header().Set("Content-Type", "application/pdf")
		_, _ = w.Write([]byte("%PDF-1.4"))
	}))
	t.Cleanup(files.Close)
	p := pipelinetest.New(t, pipelinetest.Options{
		Pipeline: pipeline.Options{RateLimit: pipeline.RateLimit{PerSecond: 0.001, Burst: 2}},
		Compose:  compose.Options{Fetcher: httpsFetcher{files.Client()}},
	})
	ctx := context.Background()
	req := func(to ...string) compose.SendRequest {
		return compose.SendRequest{From: "hello@acme.test", To: to, Subject: "s", Text: "t", Attachments: []compose.Attachment{
			{Filename: "a.pdf", Path: files.URL + "/a.pdf"}, {Filename: "b.pdf", Path: files.URL + "/b.pdf"}}}
	}
	wantRequests := func(what string, want int64) {
		t.Helper()
		if n := requests.Swap(0); n != want {
			t.Errorf("%s: %d requests to the attachment server, want %d", what, n, want)
		}
	}

	k := p.Key(t, "acme", "sp_test_composefetchtestkey00000001")
	if _, err := p.Compose.Send(ctx, k, req("a@example.test"), ""); err != nil {
		t.Fatalf("admitted send: %v", err)
	}
	wantRequests("an admitted send", 2)
	// The burst has one send left: the batch's first email takes it, the
	// others are refused by the rate and fetch nothing.
	results, err := p.Compose.SendBatch(ctx, k, []compose.SendRequest{req("b@example.test"), req("c@example.test"), req("d@example.test")}, "")
	if err != nil || results[0].Err != nil || !errors.Is(results[1].Err, pipeline.ErrRateLimited) || !errors.Is(results[2].Err, pipeline.ErrRateLimited) {
		t.Fatalf("batch: %v %+v", err, results)
	}
	wantRequests("a batch of which one email is admitted", 2)
	if _, err := p.Compose.Send(ctx, k, req("e@example.test"), ""); !errors.Is(err, pipeline.ErrRateLimited) {
		t.Fatalf("over the rate: %v", err)
	}
	wantRequests("a rate-limited send", 0)
	results, err = p.Compose.SendBatch(ctx, k, []compose.SendRequest{req("f@example.test"), req("g@example.test")}, "")
	if err != nil || !errors.Is(results[0].Err, pipeline.ErrRateLimited) || !errors.Is(results[1].Err, pipeline.ErrRateLimited) {
		t.Fatalf("refused batch: %v %+v", err, results)
	}
	wantRequests("a refused batch", 0)

	m := p.Key(t, "monthly", "sp_test_composefetchtestkey00000002")
	if err := p.Store.SetMonthlyLimit(ctx, m.AccountID, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Compose.Send(ctx, m, req("a@example.test", "b@example.test"), ""); !errors.Is(err, pipeline.ErrMonthlyLimit) {
		t.Fatalf("over the monthly limit: %v", err)
	}
	wantRequests("a send over the monthly limit", 0)

	paused := p.Key(t, "paused", "sp_test_composefetchtestkey00000003")
	if _, err := p.Store.PauseAccount(ctx, paused.AccountID, store.Pause{At: time.Now(), Reason: "manual"}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Compose.Send(ctx, paused, req("a@example.test"), ""); !errors.Is(err, pipeline.ErrAccountPaused) {
		t.Fatalf("paused: %v", err)
	}
	if _, err := p.Compose.Preview(ctx, paused, req("a@example.test"), ""); !errors.Is(err, pipeline.ErrAccountPaused) {
		t.Fatalf("preview while paused: %v", err)
	}
	wantRequests("a paused account's send and preview", 0)

	if err := p.Store.Suppress(ctx, k.AccountID, "gone@example.test", "bounce"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Compose.Preview(ctx, k, req("gone@example.test"), ""); !errors.Is(err, pipeline.ErrAllSuppressed) {
		t.Fatalf("every recipient suppressed: %v", err)
	}
	bad := req("a@example.test")
	bad.Headers = map[string]string{"X-A": "1\r\nBcc: v@victim.test"}
	if _, err := p.Compose.Preview(ctx, k, bad, ""); pipeline.AsError(err).HTTPStatus != http.StatusBadRequest {
		t.Fatalf("bad header: %v", err)
	}
	bad = req("a@example.test")
	bad.Attachments = append(bad.Attachments, compose.Attachment{Filename: "c.txt", Content: "not base64!"})
	if _, err := p.Compose.Preview(ctx, k, bad, ""); pipeline.AsError(err).HTTPStatus != http.StatusBadRequest {
		t.Fatalf("bad base64 after the paths: %v", err)
	}
	wantRequests("previews refused for their recipients, a header or an attachment", 0)
	// A preview is not held to the rate: it fetches.
	if _, err := p.Compose.Preview(ctx, k, req("a@example.test"), ""); err != nil {
		t.Fatalf("preview over the rate: %v", err)
	}
	wantRequests("a preview over the rate", 2)
}
