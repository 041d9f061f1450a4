package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/membudget"
	"github.com/pigeonpost/pigeonpost/pipeline/pipelinetest"
)

// TestLargeBodiesShareTheMemoryBudget: a send with a body over 64 KiB waits
// for its share of the message memory and, past the wait, is refused with
// 503 server_busy (nothing stored, the client retries); small bodies never
// wait.
func TestLargeBodiesShareTheMemoryBudget(t *testing.T) {
	p := pipelinetest.New(t, pipelinetest.Options{})
	const secret = "sp_test_budgettestkey00000000000001"
	p.Key(t, "acme", secret)
	budget := membudget.New(1<<20, 1<<20)
	srv := httptest.NewServer(Handler(Parts{Pipeline: p.Pipeline, Account: p.Account, Compose: p.Compose, Engagement: p.Engagement}, Options{MaxBodyBytes: 10 << 20, Budget: budget, BudgetWait: 50 * time.Millisecond}))
	defer srv.Close()

	send := func(htmlSize int, chunked bool) *http.Response {
		t.Helper()
		body, _ := json.Marshal(map[string]any{"from": "a@acme.test", "to": "b@example.test", "subject": "s",
			"html": "<p>" + strings.Repeat("x", htmlSize) + "</p>"})
		var rd io.Reader = bytes.NewReader(body)
		if chunked {
			rd = io.MultiReader(rd) // no length known: Transfer-Encoding chunked
		}
		req, _ := http.NewRequest("POST", srv.URL+"/v1/emails", rd)
		req.Header.Set("Authorization", "Bearer "+secret)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}

	held, err := budget.Acquire(context.Background(), 1<<20) // everything
	if err != nil {
		t.Fatal(err)
	}
	for _, chunked := range []bool{false, true} {
		if resp := send(100<<10, chunked); resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("large send (chunked %v) with the budget taken: %d, Retry-After %q", chunked, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		if resp := send(1<<10, chunked); resp.StatusCode != http.StatusOK {
			t.Fatalf("small send (chunked %v) with the budget taken: %d", chunked, resp.StatusCode)
		}
	}
	held.Release()
	for _, chunked := range []bool{false, true} {
		if resp := send(100<<10, chunked); resp.StatusCode != http.StatusOK {
			t.Fatalf("large send (chunked %v) with the budget free: %d", chunked, resp.StatusCode)
		}
	}
	if n := budget.InUse(); n != 0 {
		t.Errorf("%d bytes still reserved after the requests", n)
	}
}
