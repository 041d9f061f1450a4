package api_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/membudget"
)

// The REST contract of contacts, their import and segments.

// otherAccountKey is a key of another account than liveKey's.
const otherAccountKey = "sp_live_contactsothertestkey0000000002"

type contactOut struct {
	ID, Email, FirstName, LastName, Company, Status string
	Tags                                            []string
	Fields                                          map[string]string
}

type contactPage struct {
	Data       []contactOut
	NextCursor *string
	HasMore    bool
}

func TestContactsREST(t *testing.T) {
	s := newServer(t)
	s.p.Key(t, "other", otherAccountKey)

	var ada contactOut
	if code := s.JSON("POST", "/v1/contacts", liveKey, map[string]any{"email": "Ada@" + rcptDomain, "firstName": "Ada",
		"tags": []string{"vip"}, "fields": map[string]string{"plan": "pro"}}, &ada); code != http.StatusCreated {
		t.Fatalf("create: %d %+v", code, ada)
	}
	if !strings.HasPrefix(ada.ID, "ct_") || ada.Status != "subscribed" || ada.Fields["plan"] != "pro" {
		t.Errorf("created %+v", ada)
	}
	for _, tc := range []struct {
		body       any
		status     int
		code, text string
	}{
		{map[string]any{"email": "ada@" + strings.ToUpper(rcptDomain)}, http.StatusConflict, "conflict", "email"},
		{map[string]any{"email": "not an address"}, http.StatusBadRequest, "invalid_address", "email"},
		{map[string]any{"firstName": "no address"}, http.StatusBadRequest, "validation_error", "email"},
		{map[string]any{"email": "x@" + rcptDomain, "status": "gone"}, http.StatusBadRequest, "validation_error", "status"},
		{map[string]any{"email": "x@" + rcptDomain, "tags": "vip"}, http.StatusBadRequest, "validation_error", "tags: must be an array"},
		{map[string]any{"email": "x@" + rcptDomain, "fields": map[string]string{"bad name": "x"}}, http.StatusBadRequest, "validation_error", "fields"},
	} {
		r := s.Call("POST", "/v1/contacts", liveKey, nil, tc.body)
		if r.Code != tc.status || r.ErrCode() != tc.code || !strings.HasPrefix(r.ErrMessage(), tc.text) {
			t.Errorf("create %v: %d %s", tc.body, r.Code, r.Body)
		}
	}

	// Another account sees none of it.
	for _, m := range []string{"GET", "PATCH", "DELETE"} {
		if r := s.Call(m, "/v1/contacts/"+ada.ID, otherAccountKey, nil, map[string]any{}); r.Code != http.StatusNotFound || r.ErrCode() != "not_found" {
			t.Errorf("%s another account's contact: %d %s", m, r.Code, r.Body)
		}
	}

	var up contactOut
	if code := s.JSON("PATCH", "/v1/contacts/"+ada.ID, liveKey, map[string]any{"lastName": "Lovelace", "status": "unsubscribed",
		"fields": map[string]any{"plan": nil, "city": "London"}}, &up); code != http.StatusOK {
		t.Fatalf("patch: %d", code)
	}
	if up.FirstName != "Ada" || up.LastName != "Lovelace" || up.Status != "unsubscribed" || len(up.Fields) != 1 || up.Fields["city"] != "London" ||
		len(up.Tags) != 1 {
		t.Errorf("patched %+v", up)
	}
	var got contactOut
	if code := s.JSON("GET", "/v1/contacts/"+ada.ID, liveKey, nil, &got); code != http.StatusOK || got.LastName != "Lovelace" {
		t.Errorf("get: %d %+v", code, got)
	}

	// Lists: filters and pages.
	for i := range 7 {
		body := map[string]any{"email": fmt.Sprintf("p%d@%s", i, rcptDomain)}
		if i%2 == 0 {
			body["tags"] = []string{"even"}
		}
		if r := s.Call("POST", "/v1/contacts", liveKey, nil, body); r.Code != http.StatusCreated {
			t.Fatal(r.Code, string(r.Body))
		}
	}
	all := listContacts(t, s, "limit=3")
	if len(all) != 8 || all[0].Email != "p6@"+rcptDomain || all[7].ID != ada.ID {
		t.Errorf("all: %d %+v", len(all), all)
	}
	if l := listContacts(t, s, "tag=even&limit=1"); len(l) != 4 {
		t.Errorf("tag=even: %d", len(l))
	}
	if l := listContacts(t, s, "status=unsubscribed"); len(l) != 1 || l[0].ID != ada.ID {
		t.Errorf("status=unsubscribed: %+v", l)
	}
	if l := listContacts(t, s, "email=ADA@"+rcptDomain); len(l) != 1 || l[0].ID != ada.ID {
		t.Errorf("email: %+v", l)
	}
	for _, q := range []string{"limit=0", "limit=101", "limit=x", "cursor=nope", "status=gone"} {
		if r := s.Call("GET", "/v1/contacts?"+q, liveKey, nil, nil); r.Code != http.StatusBadRequest || r.ErrCode() != "validation_error" {
			t.Errorf("%s: %d %s", q, r.Code, r.Body)
		}
	}

	// A sending key manages no contacts.
	sending, _ := s.CreateKey(map[string]any{"name": "send", "mode": "live", "permission": "sending"})
	if r := s.Call("GET", "/v1/contacts", sending, nil, nil); r.Code != http.StatusForbidden || r.ErrCode() != "forbidden" {
		t.Errorf("sending key: %d %s", r.Code, r.Body)
	}

	if r := s.Call("DELETE", "/v1/contacts/"+ada.ID, liveKey, nil, nil); r.Code != http.StatusOK {
		t.Fatalf("delete: %d %s", r.Code, r.Body)
	}
	if r := s.Call("GET", "/v1/contacts/"+ada.ID, liveKey, nil, nil); r.Code != http.StatusNotFound {
		t.Errorf("after delete: %d", r.Code)
	}
}

func listContacts(t *testing.T, s *server, query string) []contactOut {
	t.Helper()
	var all []contactOut
	cursor := ""
	for range 100 {
		q := query
		if cursor != "" {
			q += "&cursor=" + cursor
		}
		var page contactPage
		if code := s.JSON("GET", "/v1/contacts?"+q, liveKey, nil, &page); code != http.StatusOK {
			t.Fatalf("list %s: %d", q, code)
		}
		all = append(all, page.Data...)
		if page.NextCursor == nil || page.HasMore != (page.NextCursor != nil) {
			return all
		}
		cursor = *page.NextCursor
	}
	t.Fatal("listing did not end")
	return nil
}

type importOut struct {
	Created, Updated, Failed int
	Errors                   []struct {
		Row     int
		Message string
	}
}

// csvBody is a CSV of n contacts, streamed.
func csvBody(n int) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		_, _ = io.WriteString(pw, "email,first_name,tags,plan\n")
		for i := range n {
			if _, err := fmt.Fprintf(pw, "user%05d@%s,User %d,a;b,pro\n", i, rcptDomain, i); err != nil {
				return
			}
		}
		pw.Close()
	}()
	return pr
}

func TestContactImportREST(t *testing.T) {
	// The whole message memory budget is taken: a streamed import does not
	// wait for a share of it.
	budget := membudget.New(1<<20, 1<<20, 0)
	held, err := budget.Acquire(context.Background(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()
	s := newServer(t, withBudget(budget, time.Millisecond), func(c *serverConfig) {
		c.api.MaxBodyBytes = 64 << 10 // the import's body is above it
		c.api.MaxImportBytes = 256 << 10
	})

	// Chunked (no Content-Length), over MaxBodyBytes, with an
	// Idempotency-Key that does not apply.
	csvHeaders := map[string]string{"Content-Type": "text/csv; charset=utf-8", "Idempotency-Key": "import-1"}
	const n = 3000
	var out importOut
	r := s.Call("POST", "/v1/contacts/import", liveKey, csvHeaders, csvBody(n))
	r.Decode(t, &out)
	if r.Code != http.StatusOK || out.Created != n || out.Failed != 0 || out.Errors == nil {
		t.Fatalf("import: %d %s", r.Code, r.Body)
	}
	r = s.Call("POST", "/v1/contacts/import", liveKey, csvHeaders, csvBody(n))
	out = importOut{}
	r.Decode(t, &out)
	if r.Code != http.StatusOK || out.Updated != n || r.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("import again: %d %s", r.Code, r.Body)
	}
	if l := listContacts(t, s, "email=user00042@"+rcptDomain); len(l) != 1 || l[0].FirstName != "User 42" || l[0].Fields["plan"] != "pro" ||
		strings.Join(l[0].Tags, ",") != "a,b" {
		t.Errorf("imported: %+v", l)
	}

	// JSON, with bad rows reported.
	r = s.Call("POST", "/v1/contacts/import", liveKey, nil, []byte(`{"contacts":[{"email":"j@`+rcptDomain+`","tags":["x"]},{"email":"bad"},{"email":7}]}`))
	out = importOut{}
	r.Decode(t, &out)
	if r.Code != http.StatusOK || out.Created != 1 || out.Failed != 2 || len(out.Errors) != 2 || out.Errors[0].Row != 2 ||
		!strings.HasPrefix(out.Errors[1].Message, "contacts[2].email: must be a string") {
		t.Errorf("json: %d %s", r.Code, r.Body)
	}

	for _, tc := range []struct {
		headers map[string]string
		body    any
		status  int
		code    string
	}{
		{map[string]string{"Content-Type": "application/xml"}, []byte(`<x/>`), http.StatusBadRequest, "validation_error"},
		{map[string]string{"Content-Type": "text/csv"}, []byte("name\nx\n"), http.StatusBadRequest, "validation_error"},
		{nil, []byte(`{"contacts":"x"}`), http.StatusBadRequest, "validation_error"},
		{map[string]string{"Content-Type": "text/csv"}, []byte("email\n" + strings.Repeat("x", 300<<10)), http.StatusRequestEntityTooLarge, "payload_too_large"},
		{map[string]string{"Content-Type": "text/csv"}, io.MultiReader(strings.NewReader("email\n"), strings.NewReader(strings.Repeat("y", 300<<10))), // chunked
			http.StatusRequestEntityTooLarge, "payload_too_large"},
	} {
		r := s.Call("POST", "/v1/contacts/import", liveKey, tc.headers, tc.body)
		if r.Code != tc.status || r.ErrCode() != tc.code {
			t.Errorf("%v: %d %.200s", tc.headers, r.Code, r.Body)
		}
	}
	if budget.InUse() != 1<<20 {
		t.Errorf("budget in use: %d", budget.InUse())
	}
}

type segmentOut struct {
	ID, Name string
	Filter   struct {
		Tags   []string
		Status *string
		Fields []struct{ Field, Op, Value string }
	}
	Count *int
}

func TestSegmentsREST(t *testing.T) {
	s := newServer(t)
	s.p.Key(t, "other", otherAccountKey)
	for i := range 5 {
		body := map[string]any{"email": fmt.Sprintf("s%d@%s", i, rcptDomain), "company": fmt.Sprintf("Acme %d", i)}
		if i < 3 {
			body["tags"] = []string{"vip"}
		}
		if r := s.Call("POST", "/v1/contacts", liveKey, nil, body); r.Code != http.StatusCreated {
			t.Fatal(r.Code, string(r.Body))
		}
	}
	var sg segmentOut
	r := s.Call("POST", "/v1/segments", liveKey, nil, map[string]any{"name": "vip",
		"filter": map[string]any{"tags": []string{"vip"}, "fields": []map[string]string{{"field": "company", "op": "contains", "value": "acme"}}}})
	r.Decode(t, &sg)
	if r.Code != http.StatusCreated || !strings.HasPrefix(sg.ID, "seg_") || sg.Count != nil || sg.Filter.Status != nil || len(sg.Filter.Fields) != 1 {
		t.Fatalf("create: %d %s", r.Code, r.Body)
	}
	var got segmentOut
	if code := s.JSON("GET", "/v1/segments/"+sg.ID, liveKey, nil, &got); code != http.StatusOK || got.Count == nil || *got.Count != 3 {
		t.Errorf("get: %d %+v", code, got)
	}
	if code := s.JSON("PATCH", "/v1/segments/"+sg.ID, liveKey, map[string]any{"filter": map[string]any{"status": "subscribed"}}, &got); code != http.StatusOK ||
		got.Name != "vip" || got.Filter.Status == nil || len(got.Filter.Tags) != 0 {
		t.Errorf("patch: %d %+v", code, got)
	}
	if code := s.JSON("GET", "/v1/segments/"+sg.ID, liveKey, nil, &got); code != http.StatusOK || *got.Count != 5 {
		t.Errorf("count after patch: %+v", got)
	}

	for _, tc := range []struct {
		body any
		text string
	}{
		{map[string]any{"filter": map[string]any{}}, "name:"},
		{map[string]any{"name": "x", "filter": map[string]any{"status": "gone"}}, "filter.status:"},
		{map[string]any{"name": "x", "filter": map[string]any{"tags": []string{""}}}, "filter.tags[0]:"},
		{map[string]any{"name": "x", "filter": map[string]any{"fields": []map[string]string{{"field": "plan", "op": "like", "value": "a"}}}}, "filter.fields[0].op:"},
		{map[string]any{"name": "x", "filter": map[string]any{"fields": []map[string]string{{"op": "equals"}}}}, "filter.fields[0].field:"},
		{map[string]any{"name": "x", "filter": map[string]any{"fields": "plan"}}, "filter.fields: must be an array"},
	} {
		r := s.Call("POST", "/v1/segments", liveKey, nil, tc.body)
		if r.Code != http.StatusBadRequest || r.ErrCode() != "validation_error" || !strings.HasPrefix(r.ErrMessage(), tc.text) {
			t.Errorf("%v: %d %s", tc.body, r.Code, r.Body)
		}
	}

	for _, m := range []string{"GET", "PATCH", "DELETE"} {
		if r := s.Call(m, "/v1/segments/"+sg.ID, otherAccountKey, nil, map[string]any{}); r.Code != http.StatusNotFound || r.ErrCode() != "not_found" {
			t.Errorf("%s another account's segment: %d %s", m, r.Code, r.Body)
		}
	}
	var page struct {
		Data       []segmentOut
		NextCursor *string
	}
	if code := s.JSON("GET", "/v1/segments", liveKey, nil, &page); code != http.StatusOK || len(page.Data) != 1 || page.NextCursor != nil {
		t.Errorf("list: %d %+v", code, page)
	}
	if r := s.Call("DELETE", "/v1/segments/"+sg.ID, liveKey, nil, nil); r.Code != http.StatusOK {
		t.Errorf("delete: %d %s", r.Code, r.Body)
	}
	if r := s.Call("GET", "/v1/segments/"+sg.ID, liveKey, nil, nil); r.Code != http.StatusNotFound {
		t.Errorf("after delete: %d", r.Code)
	}
}
