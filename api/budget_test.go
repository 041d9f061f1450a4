package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/membudget"
	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/internal/testkit/resttest"
	"github.com/pigeonpost/pigeonpost/pipeline"
)

// TestLargeBodiesShareTheMemoryBudget: a send with a body over 64 KiB waits
// for its share of the message memory and, past the wait, is refused with
// 503 server_busy (nothing stored, the client retries); small bodies never
// wait.
func TestLargeBodiesShareTheMemoryBudget(t *testing.T) {
	budget := membudget.New(1<<20, 1<<20, 0)
	s := newServer(t, withBudget(budget, 50*time.Millisecond))

	send := func(htmlSize int, chunked bool) resttest.Response {
		t.Helper()
		body, _ := json.Marshal(map[string]any{"from": "a@" + senderDomain, "to": "b@" + rcptDomain, "subject": "s",
			"html": "<p>" + strings.Repeat("x", htmlSize) + "</p>"})
		var rd io.Reader = bytes.NewReader(body)
		if chunked {
			rd = io.MultiReader(rd) // no length known: Transfer-Encoding chunked
		}
		return s.Call("POST", "/v1/emails", liveKey, nil, rd)
	}

	held, err := budget.Acquire(context.Background(), 1<<20) // everything
	if err != nil {
		t.Fatal(err)
	}
	for _, chunked := range []bool{false, true} {
		if resp := send(100<<10, chunked); resp.Code != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("large send (chunked %v) with the budget taken: %d, Retry-After %q", chunked, resp.Code, resp.Header.Get("Retry-After"))
		}
		if resp := send(1<<10, chunked); resp.Code != http.StatusOK {
			t.Fatalf("small send (chunked %v) with the budget taken: %d", chunked, resp.Code)
		}
	}
	held.Release()
	for _, chunked := range []bool{false, true} {
		if resp := send(100<<10, chunked); resp.Code != http.StatusOK {
			t.Fatalf("large send (chunked %v) with the budget free: %d", chunked, resp.Code)
		}
	}
	if n := budget.InUse(); n != 0 {
		t.Errorf("%d bytes still reserved after the requests", n)
	}
}

// TestBodyReservesWhatHasArrived: a body reserves its share of the budget
// as it arrives, not for the Content-Length it declares, so a client that
// declares a large body and trickles it holds little (the red-team's slow
// bodies held the whole budget with a few requests).
func TestBodyReservesWhatHasArrived(t *testing.T) {
	budget := membudget.New(pipeline.MessageCost(4<<20), pipeline.MessageCost(2<<20), 0)
	s := newServer(t, withBudget(budget, time.Second))

	const declared = 2 << 20
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", s.URL+"/v1/emails", pr)
	req.ContentLength = declared
	req.Header.Set("Authorization", "Bearer "+liveKey)
	answered := make(chan int, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			answered <- 0
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	if _, err := pw.Write(bytes.Repeat([]byte(" "), 80<<10)); err != nil { // past the first 64 KiB, which take nothing
		t.Fatal(err)
	}
	testkit.WaitFor(t, "the body to take a share", func() bool { return budget.InUse() > 0 })
	if held := budget.InUse(); held >= pipeline.MessageCost(declared)/2 {
		t.Fatalf("80 KiB of a declared %d bytes hold %d bytes of the budget: reserved for what it declared", declared, held)
	}
	pw.CloseWithError(errors.New("client gone"))
	<-answered
	testkit.WaitFor(t, "the reservation to be released", func() bool { return budget.InUse() == 0 })
}

// TestAccountShareOfBudget: an account whose messages in progress hold its
// share of the budget (smtp.data_memory_per_account) gets 503 at once for
// its next large body, with Retry-After and a message saying why, while
// another account's large body goes through and small bodies never wait.
func TestAccountShareOfBudget(t *testing.T) {
	share := pipeline.MessageCost(1 << 20)
	budget := membudget.New(4*share, share, share)
	s := newServer(t, withBudget(budget, time.Minute)) // a wait would hang the test: the refusal is at once
	const otherKey = "sp_live_integrationtestkey000000000002"
	s.p.Key(t, "other", otherKey)

	held := budget.ReserveFor(s.accountID)
	if err := held.Grow(context.Background(), share); err != nil {
		t.Fatal(err)
	}
	defer held.Release()
	large := map[string]any{"from": "a@" + senderDomain, "to": "b@" + rcptDomain, "subject": "s",
		"html": "<p>" + strings.Repeat("x", 100<<10) + "</p>"}
	resp := s.Call("POST", "/v1/emails", liveKey, nil, large)
	if resp.Code != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
		resp.ErrCode() != "server_busy" || !strings.Contains(resp.ErrMessage(), "this account") {
		t.Fatalf("large send over the account's share: %d %s, Retry-After %q", resp.Code, resp.Body, resp.Header.Get("Retry-After"))
	}
	small := map[string]any{"from": "a@" + senderDomain, "to": "b@" + rcptDomain, "subject": "s", "text": "hi"}
	if resp := s.Call("POST", "/v1/emails", liveKey, nil, small); resp.Code != http.StatusOK {
		t.Fatalf("small send over the account's share: %d %s", resp.Code, resp.Body)
	}
	// The other account has verified no domain: a 403 says its body was
	// read whole and judged, which is all this needs.
	if resp := s.Call("POST", "/v1/emails", otherKey, nil, large); resp.Code == http.StatusServiceUnavailable {
		t.Fatalf("another account's large send: %d %s", resp.Code, resp.Body)
	}
}
