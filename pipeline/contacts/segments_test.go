package contacts_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/contacts"
)

func TestFilterMatch(t *testing.T) {
	c := &contacts.Contact{Email: "Ada@Example.com", FirstName: "Ada", LastName: "Lovelace", Company: "Analytical Engines",
		Status: contacts.Subscribed, Tags: []string{"vip", "beta"}, Fields: map[string]string{"plan": "Pro"}}
	cond := func(field string, op contacts.Op, value string) contacts.Condition {
		return contacts.Condition{Field: field, Op: op, Value: value}
	}
	for _, tc := range []struct {
		name   string
		filter contacts.Filter
		want   bool
	}{
		{"empty filter", contacts.Filter{}, true},
		{"one tag", contacts.Filter{Tags: []string{"vip"}}, true},
		{"all tags", contacts.Filter{Tags: []string{"vip", "beta"}}, true},
		{"a missing tag", contacts.Filter{Tags: []string{"vip", "gold"}}, false},
		{"tags are exact", contacts.Filter{Tags: []string{"VIP"}}, false},
		{"status", contacts.Filter{Status: contacts.Subscribed}, true},
		{"other status", contacts.Filter{Status: contacts.Bounced}, false},
		{"custom equals, any case", contacts.Filter{Fields: []contacts.Condition{cond("plan", contacts.OpEquals, "pro")}}, true},
		{"custom equals other", contacts.Filter{Fields: []contacts.Condition{cond("plan", contacts.OpEquals, "free")}}, false},
		{"absent custom equals empty", contacts.Filter{Fields: []contacts.Condition{cond("city", contacts.OpEquals, "")}}, true},
		{"absent custom contains", contacts.Filter{Fields: []contacts.Condition{cond("city", contacts.OpContains, "x")}}, false},
		{"email equals", contacts.Filter{Fields: []contacts.Condition{cond("email", contacts.OpEquals, "ada@example.COM")}}, true},
		{"email contains domain", contacts.Filter{Fields: []contacts.Condition{cond("email", contacts.OpContains, "@example.com")}}, true},
		{"company contains", contacts.Filter{Fields: []contacts.Condition{cond("company", contacts.OpContains, "engine")}}, true},
		{"first_name", contacts.Filter{Fields: []contacts.Condition{cond("first_name", contacts.OpEquals, "ada")}}, true},
		{"last_name", contacts.Filter{Fields: []contacts.Condition{cond("last_name", contacts.OpContains, "babbage")}}, false},
		{"all conditions", contacts.Filter{Tags: []string{"vip"}, Status: contacts.Subscribed, Fields: []contacts.Condition{
			cond("plan", contacts.OpEquals, "pro"), cond("company", contacts.OpContains, "xyz")}}, false},
	} {
		if got := tc.filter.Match(c); got != tc.want {
			t.Errorf("%s: Match = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestSegmentValidation(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		filter contacts.Filter
		names  string // what the error must name
	}{
		{contacts.Filter{Tags: []string{""}}, "filter.tags[0]"},
		{contacts.Filter{Tags: []string{"ok", "a|b"}}, "filter.tags[1]"},
		{contacts.Filter{Status: "nope"}, "filter.status"},
		{contacts.Filter{Fields: []contacts.Condition{{Field: "", Op: "equals"}}}, "filter.fields[0].field"},
		{contacts.Filter{Fields: []contacts.Condition{{Field: "plan", Op: "equals"}, {Field: "9x", Op: "equals"}}}, "filter.fields[1].field"},
		{contacts.Filter{Fields: []contacts.Condition{{Field: "plan", Op: "startsWith", Value: "a"}}}, "filter.fields[0].op"},
		{contacts.Filter{Fields: []contacts.Condition{{Field: "plan", Op: "contains"}}}, "filter.fields[0].value"},
		{contacts.Filter{Fields: []contacts.Condition{{Field: "plan", Op: "equals", Value: strings.Repeat("x", 2000)}}}, "filter.fields[0].value"},
	} {
		_, err := f.svc.CreateSegment(ctx, f.key, contacts.SegmentFields{Name: ptr("s"), Filter: &tc.filter})
		if !errors.Is(err, pipeline.ErrInvalid) || !strings.HasPrefix(pipeline.AsError(err).Message, tc.names+":") {
			t.Errorf("%+v: %v, want an error naming %s", tc.filter, err, tc.names)
		}
	}
	if _, err := f.svc.CreateSegment(ctx, f.key, contacts.SegmentFields{Name: ptr(" ")}); !errors.Is(err, pipeline.ErrInvalid) {
		t.Errorf("no name: %v", err)
	}
}

func TestSegmentsAndEachInSegment(t *testing.T) {
	f := newFixture(t)
	// 1,203 contacts: every third is vip, every seventh unsubscribed.
	const n = 1203
	var rows strings.Builder
	rows.WriteString("email,tags,status,plan\n")
	wantVIP, wantSubscribedVIP := 0, 0
	for i := range n {
		tags, status := "", "subscribed"
		if i%3 == 0 {
			tags = "vip;news"
			wantVIP++
		}
		if i%7 == 0 {
			status = "unsubscribed"
		}
		if i%3 == 0 && i%7 != 0 {
			wantSubscribedVIP++
		}
		fmt.Fprintf(&rows, "u%04d@example.com,%s,%s,pro\n", i, tags, status)
	}
	res, err := f.svc.Import(ctx, f.key, contacts.CSV, strings.NewReader(rows.String()))
	if err != nil || res.Created != n {
		t.Fatalf("import: %+v %v", res, err)
	}

	sg, err := f.svc.CreateSegment(ctx, f.key, contacts.SegmentFields{Name: ptr("VIPs"),
		Filter: &contacts.Filter{Tags: []string{"vip"}, Fields: []contacts.Condition{{Field: "plan", Op: contacts.OpEquals, Value: "PRO"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sg.ID, "seg_") {
		t.Errorf("id %s", sg.ID)
	}
	if got, err := f.svc.CountSegment(ctx, f.key, sg); err != nil || got != wantVIP {
		t.Errorf("count: %d %v, want %d", got, err, wantVIP)
	}

	var chunks []int
	var last string
	total := 0
	err = f.svc.EachInSegment(ctx, f.key.AccountID, sg.ID, func(cs []*contacts.Contact) error {
		chunks = append(chunks, len(cs))
		for _, c := range cs {
			if c.Status != contacts.Subscribed || c.Email <= last {
				t.Fatalf("%+v after %s", c, last)
			}
			last = c.Email // created in order of address
		}
		total += len(cs)
		return nil
	})
	if err != nil || total != wantSubscribedVIP {
		t.Fatalf("EachInSegment: %d contacts, %v; want %d", total, err, wantSubscribedVIP)
	}
	for i, c := range chunks {
		if c > contacts.EachChunk || c == 0 || (i < len(chunks)-1 && c != contacts.EachChunk) {
			t.Errorf("chunks %v", chunks)
		}
	}
	stop := errors.New("stop")
	calls := 0
	if err := f.svc.EachInSegment(ctx, f.key.AccountID, sg.ID, func([]*contacts.Contact) error { calls++; return stop }); err != stop || calls != 1 {
		t.Errorf("fn's error: %v after %d calls", err, calls)
	}
	if err := f.svc.EachInSegment(ctx, f.key.AccountID, "seg_nope", nil); !errors.Is(err, pipeline.ErrNotFound) {
		t.Errorf("unknown segment: %v", err)
	}
	if err := f.svc.EachInSegment(ctx, f.other.AccountID, sg.ID, nil); !errors.Is(err, pipeline.ErrNotFound) {
		t.Errorf("another account's segment: %v", err)
	}

	// Update, list, delete.
	up, err := f.svc.UpdateSegment(ctx, f.key, sg.ID, contacts.SegmentFields{Filter: &contacts.Filter{Status: contacts.Unsubscribed}})
	if err != nil || up.Name != "VIPs" || up.Filter.Status != contacts.Unsubscribed || len(up.Filter.Tags) != 0 {
		t.Fatalf("update: %+v %v", up, err)
	}
	if got, _ := f.svc.CountSegment(ctx, f.key, up); got != (n+6)/7 {
		t.Errorf("unsubscribed: %d", got)
	}
	if _, err := f.svc.CreateSegment(ctx, f.key, contacts.SegmentFields{Name: ptr("second")}); err != nil {
		t.Fatal(err)
	}
	page, next, err := f.svc.Segments(ctx, f.key, "", 1)
	if err != nil || len(page) != 1 || page[0].Name != "second" || next == "" {
		t.Fatalf("first page: %v %q %v", page, next, err)
	}
	page, next, err = f.svc.Segments(ctx, f.key, next, 1)
	if err != nil || len(page) != 1 || page[0].ID != sg.ID || next != "" {
		t.Fatalf("second page: %v %q %v", page, next, err)
	}
	if err := f.svc.DeleteSegment(ctx, f.key, sg.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Segment(ctx, f.key, sg.ID); !errors.Is(err, pipeline.ErrNotFound) {
		t.Errorf("after delete: %v", err)
	}
}
