package store

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
)

// A search of the suppression list finds, over its pages, exactly the
// addresses that contain the text (or begin with it), whatever its case
// and glob characters; each page reads a bounded part of the list, so a
// search that matches nothing still answers with a cursor to go on from.
func TestSearchSuppressions(t *testing.T) {
	rdb := testkit.RedisClient(t)
	s := New(rdb, time.Now)
	ctx := context.Background()
	const n = 2000
	var needles, starts []string
	for i := range n {
		addr := fmt.Sprintf("user%04d@example.com", i)
		switch {
		case i%97 == 0:
			addr = fmt.Sprintf("x-needle-%04d@example.com", i)
			needles = append(needles, addr)
		case i%101 == 0:
			addr = fmt.Sprintf("needle%04d@example.net", i)
			needles = append(needles, addr)
			starts = append(starts, addr)
		}
		if err := s.Suppress(ctx, "acct_a", addr, "manual"); err != nil {
			t.Fatal(err)
		}
	}
	for _, addr := range []string{"star*@example.com", "q?mark@example.com", "br[a]ce@example.com"} {
		if err := s.Suppress(ctx, "acct_a", addr, "manual"); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Suppress(ctx, "acct_b", "needle-of-b@example.com", "manual"); err != nil {
		t.Fatal(err)
	}

	all := func(match string) ([]string, int) {
		t.Helper()
		var got []string
		var cursor uint64
		calls := 0
		for {
			page, next, err := s.ListSuppressions(ctx, "acct_a", match, cursor, 20)
			if err != nil {
				t.Fatal(err)
			}
			calls++
			for _, sp := range page {
				got = append(got, sp.Address)
			}
			if next == 0 {
				break
			}
			cursor = next
			if calls > n {
				t.Fatalf("%q: the scan does not end", match)
			}
		}
		slices.Sort(got)
		return slices.Compact(got), calls
	}
	slices.Sort(needles)
	slices.Sort(starts)
	for _, c := range []struct {
		q      string
		prefix bool
		want   []string
	}{
		{"NEEDLE", false, needles},
		{"needle", true, starts},
		{"*", false, []string{"star*@example.com"}},
		{"?", false, []string{"q?mark@example.com"}},
		{"[a]", false, []string{"br[a]ce@example.com"}},
		{"nothing-like-this", false, nil},
	} {
		got, calls := all(SuppressionGlob(c.q, c.prefix))
		if !slices.Equal(got, c.want) {
			t.Errorf("search %q (prefix %v): %d addresses %v, want %d", c.q, c.prefix, len(got), got, len(c.want))
		}
		if calls < 2 {
			t.Errorf("search %q: the whole list of %d in one page: the search is not bounded", c.q, n)
		}
	}
	// One page of a search that matches nothing stops early, with a cursor.
	page, next, err := s.ListSuppressions(ctx, "acct_a", SuppressionGlob("nothing-like-this", false), 0, 20)
	if err != nil || len(page) != 0 || next == 0 {
		t.Errorf("one page of a search with no match: %v, next %d, %v; want none and a cursor", page, next, err)
	}
	// Without a match, a page is one HSCAN of about count.
	page, _, _ = s.ListSuppressions(ctx, "acct_a", "", 0, 20)
	if len(page) == 0 || len(page) > 100 {
		t.Errorf("a page of the list without a search: %d entries", len(page))
	}
}
