package api_test

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
)

func TestRESTListEmailsFilters(t *testing.T) {
	s := newServer(t)
	from := "hello@" + senderDomain
	// send stores one email, then waits for the next millisecond: the list
	// is ordered by creation time in ms, and emails of the same ms would
	// come in the order of their ids.
	send := func(to, tag string, extra map[string]any) string {
		b := map[string]any{"from": from, "to": to, "subject": "s", "text": "t", "tags": []string{tag}}
		for k, v := range extra {
			b[k] = v
		}
		id := s.SendOK(liveKey, b, nil).ID
		stored := time.Now().Truncate(time.Millisecond)
		testkit.WaitFor(t, "the next millisecond", func() bool { return time.Now().Truncate(time.Millisecond).After(stored) })
		return id
	}
	var first []string
	for i := range 3 {
		first = append(first, send(fmt.Sprintf("a%d@%s", i, rcptDomain), "alpha", nil))
	}
	var last struct{ CreatedAt time.Time }
	s.JSON("GET", "/v1/emails/"+first[2], liveKey, nil, &last)
	testkit.WaitFor(t, "the clock to pass the first group", func() bool { return time.Now().After(last.CreatedAt.Add(2 * time.Millisecond)) })
	since := last.CreatedAt.Add(time.Millisecond)
	var second []string
	for i := range 2 {
		second = append(second, send(fmt.Sprintf("b%d@%s", i, rcptDomain), "beta", nil))
	}
	scheduled := send("c@"+rcptDomain, "beta", map[string]any{"scheduled_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)})
	s.markDelivered(append(first, second...)...)

	ids := func(list []map[string]any) string {
		var out []string
		for _, e := range list {
			out = append(out, e["id"].(string))
		}
		return strings.Join(out, ",")
	}
	rev := func(in ...string) string {
		var out []string
		for i := len(in) - 1; i >= 0; i-- {
			out = append(out, in[i])
		}
		return strings.Join(out, ",")
	}
	for name, c := range map[string]struct{ query, want string }{
		"all, newest first": {"limit=2", rev(append(append(first, second...), scheduled)...)},
		"status":            {"status=scheduled", scheduled},
		"status delivered":  {"status=delivered&limit=1", rev(append(first, second...)...)},
		"tag":               {"tag=alpha&limit=2", rev(first...)},
		"to":                {"to=" + url.QueryEscape("A1@"+rcptDomain), first[1]},
		"since":             {"since=" + url.QueryEscape(since.Format(time.RFC3339Nano)), rev(second[0], second[1], scheduled)},
		"until":             {"until=" + url.QueryEscape(last.CreatedAt.Format(time.RFC3339Nano)), rev(first...)},
		"since and tag":     {"tag=beta&status=delivered&since=" + url.QueryEscape(since.Format(time.RFC3339Nano)), rev(second...)},
	} {
		if got := ids(s.ListAll(liveKey, c.query)); got != c.want {
			t.Errorf("%s: got %s\nwant %s", name, got, c.want)
		}
	}
	for _, q := range []string{"status=nope", "since=yesterday", "limit=0", "limit=101", "cursor=notbase64!"} {
		if r := s.Call("GET", "/v1/emails?"+q, liveKey, nil, nil); r.Code != 400 {
			t.Errorf("%s: %d %s", q, r.Code, r.Body)
		}
	}
	var page struct {
		Data       []map[string]any
		NextCursor *string
		HasMore    bool
	}
	s.Call("GET", "/v1/emails?limit=100", liveKey, nil, nil).Decode(t, &page)
	if len(page.Data) != 6 || page.NextCursor != nil || page.HasMore {
		t.Errorf("one full page: %d %v %v", len(page.Data), page.NextCursor, page.HasMore)
	}
	if e := page.Data[0]; e["scheduledAt"] == nil || e["events"] != "/v1/emails/"+scheduled+"/events" {
		t.Errorf("scheduled email: %v", e)
	}
}

func TestRESTSuppressions(t *testing.T) {
	s := newServer(t)
	from := "hello@" + senderDomain
	bounced, ok := "bounced@"+rcptDomain, "ok@"+rcptDomain
	r := s.Call("POST", "/v1/suppressions", liveKey, nil, map[string]string{"email": "Bounced@" + rcptDomain, "reason": "manual"})
	if r.Code != http.StatusCreated {
		t.Fatalf("add: %d %s", r.Code, r.Body)
	}
	var list struct {
		Data []struct{ Email, Reason string }
	}
	s.JSON("GET", "/v1/suppressions", liveKey, nil, &list)
	if len(list.Data) != 1 || list.Data[0].Email != bounced || list.Data[0].Reason != "manual" {
		t.Fatalf("list: %+v", list)
	}
	sent := s.SendOK(liveKey, map[string]any{"from": from, "to": []string{ok, bounced}, "subject": "s", "text": "t"}, nil)
	if strings.Join(sent.Suppressed, ",") != bounced {
		t.Errorf("suppressed %v", sent.Suppressed)
	}
	if r := s.Call("POST", "/v1/emails", liveKey, nil, map[string]any{"from": from, "to": bounced, "subject": "s", "text": "t"}); r.Code != 422 ||
		r.ErrCode() != "recipients_suppressed" {
		t.Errorf("all suppressed: %d %s", r.Code, r.Body)
	}

	if r := s.Call("DELETE", "/v1/suppressions/"+bounced, liveKey, nil, nil); r.Code != 200 {
		t.Errorf("delete: %d %s", r.Code, r.Body)
	}
	if r := s.Call("DELETE", "/v1/suppressions/"+bounced, liveKey, nil, nil); r.Code != 404 {
		t.Errorf("delete again: %d %s", r.Code, r.Body)
	}
	if r := s.Call("POST", "/v1/suppressions", liveKey, nil, map[string]string{"email": "x@y.test\r\nBcc: z@y.test"}); r.Code != 400 {
		t.Errorf("bad address: %d %s", r.Code, r.Body)
	}
	sent = s.SendOK(liveKey, map[string]any{"from": from, "to": bounced, "subject": "s", "text": "t"}, nil)
	if len(sent.Suppressed) != 0 {
		t.Errorf("still suppressed: %v", sent.Suppressed)
	}
	// Pagination walks the whole list.
	for i := range 30 {
		s.JSON("POST", "/v1/suppressions", liveKey, map[string]string{"email": fmt.Sprintf("s%d@%s", i, rcptDomain)}, nil)
	}
	seen := map[string]bool{}
	cursor := ""
	for range 50 {
		var page struct {
			Data       []struct{ Email string }
			NextCursor *string
		}
		s.JSON("GET", "/v1/suppressions?limit=10&cursor="+cursor, liveKey, nil, &page)
		for _, d := range page.Data {
			seen[d.Email] = true
		}
		if page.NextCursor == nil {
			break
		}
		cursor = *page.NextCursor
	}
	if len(seen) != 30 {
		t.Errorf("walked %d suppressions, want 30", len(seen))
	}
}

// GET /v1/suppressions?q= and ?prefix= search the list: over its pages,
// exactly the addresses that contain the text or begin with it, in any
// case; a bad search is a 400 naming the parameters.
func TestRESTSuppressionSearch(t *testing.T) {
	s := newServer(t)
	for _, local := range []string{"alice", "bob", "alina", "carol.ali", "dave"} {
		if r := s.Call("POST", "/v1/suppressions", liveKey, nil, map[string]string{"email": local + "@" + rcptDomain}); r.Code != 201 {
			t.Fatalf("suppress %s: %d", local, r.Code)
		}
	}
	search := func(query string) []string {
		t.Helper()
		var got []string
		cursor := ""
		for range 100 {
			var page struct {
				Data       []struct{ Email string }
				NextCursor *string
				HasMore    bool
			}
			q := query + "&limit=2"
			if cursor != "" {
				q += "&cursor=" + url.QueryEscape(cursor)
			}
			if code := s.JSON("GET", "/v1/suppressions?"+q, liveKey, nil, &page); code != 200 {
				t.Fatalf("GET ?%s: %d", q, code)
			}
			for _, d := range page.Data {
				got = append(got, strings.TrimSuffix(d.Email, "@"+rcptDomain))
			}
			if !page.HasMore {
				slices.Sort(got)
				return slices.Compact(got)
			}
			cursor = *page.NextCursor
		}
		t.Fatalf("?%s: the pages do not end", query)
		return nil
	}
	for q, want := range map[string]string{"q=ALI": "[alice alina carol.ali]", "prefix=ali": "[alice alina]", "q=zed": "[]",
		"q=" + url.QueryEscape("*"): "[]", "prefix=" + url.QueryEscape("carol."): "[carol.ali]"} {
		if got := fmt.Sprint(search(q)); got != want {
			t.Errorf("?%s: %s, want %s", q, got, want)
		}
	}
	for _, q := range []string{"q=a&prefix=b", "q=" + strings.Repeat("a", 321)} {
		r := s.Call("GET", "/v1/suppressions?"+q, liveKey, nil, nil)
		if r.Code != 400 || !strings.Contains(string(r.Body), "q, prefix") {
			t.Errorf("?%.20s…: %d %s", q, r.Code, r.Body)
		}
	}
}
