package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/membudget"
	"github.com/pigeonpost/pigeonpost/internal/testkit/resttest"
)

// TestLargeBodiesShareTheMemoryBudget: a send with a body over 64 KiB waits
// for its share of the message memory and, past the wait, is refused with
// 503 server_busy (nothing stored, the client retries); small bodies never
// wait.
func TestLargeBodiesShareTheMemoryBudget(t *testing.T) {
	budget := membudget.New(1<<20, 1<<20)
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
