package contacts_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/contacts"
	"github.com/pigeonpost/pigeonpost/pipeline/pipelinetest"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// The contacts over a test Redis (pipelinetest), with two accounts' keys.

type fixture struct {
	t     *testing.T
	p     *pipelinetest.Parts
	svc   *contacts.Service
	key   *store.Key // account "one"
	other *store.Key // account "two"
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	p := pipelinetest.New(t, pipelinetest.Options{})
	return &fixture{t: t, p: p, svc: p.Contacts,
		key:   p.Key(t, "one", "sp_live_contactstestkey0000000000000001"),
		other: p.Key(t, "two", "sp_live_contactstestkey0000000000000002")}
}

func ptr[T any](v T) *T { return &v }

var ctx = context.Background()

func (f *fixture) create(email string, mod func(*contacts.Fields)) *contacts.Contact {
	f.t.Helper()
	fs := contacts.Fields{Email: &email}
	if mod != nil {
		mod(&fs)
	}
	c, err := f.svc.Create(ctx, f.key, fs)
	if err != nil {
		f.t.Fatalf("create %s: %v", email, err)
	}
	return c
}

func TestCreateGetUpdateDelete(t *testing.T) {
	f := newFixture(t)
	c := f.create("Ada@Example.com", func(fs *contacts.Fields) {
		fs.FirstName, fs.Tags = ptr("Ada"), ptr([]string{"vip", " beta ", "vip"})
		fs.Fields = map[string]*string{"plan": ptr("pro")}
	})
	if !strings.HasPrefix(c.ID, "ct_") || c.Status != contacts.Subscribed || c.Email != "Ada@Example.com" ||
		fmt.Sprint(c.Tags) != "[vip beta]" || c.Fields["plan"] != "pro" || c.CreatedAt.IsZero() {
		t.Fatalf("created %+v", c)
	}
	got, err := f.svc.Get(ctx, f.key, c.ID)
	if err != nil || got.Email != c.Email || got.FirstName != "Ada" || fmt.Sprint(got.Tags) != "[vip beta]" || got.Fields["plan"] != "pro" {
		t.Fatalf("get: %+v %v", got, err)
	}

	// The address is unique case-insensitively.
	_, err = f.svc.Create(ctx, f.key, contacts.Fields{Email: ptr("ada@EXAMPLE.com")})
	if !errors.Is(err, pipeline.ErrConflict) {
		t.Errorf("second contact of one address: %v", err)
	}
	// Another account has its own.
	if _, err := f.svc.Create(ctx, f.other, contacts.Fields{Email: ptr("ada@example.com")}); err != nil {
		t.Errorf("the same address in another account: %v", err)
	}
	if _, err := f.svc.Get(ctx, f.other, c.ID); !errors.Is(err, pipeline.ErrNotFound) {
		t.Errorf("another account's contact: %v", err)
	}

	// PATCH: given fields only; custom fields merged, nil removes.
	up, err := f.svc.Update(ctx, f.key, c.ID, contacts.Fields{LastName: ptr("Lovelace"), Email: ptr("ada@lovelace.test"),
		Fields: map[string]*string{"plan": nil, "city": ptr("London")}})
	if err != nil {
		t.Fatal(err)
	}
	if up.FirstName != "Ada" || up.LastName != "Lovelace" || up.Email != "ada@lovelace.test" ||
		!maps.Equal(up.Fields, map[string]string{"city": "London"}) || fmt.Sprint(up.Tags) != "[vip beta]" {
		t.Errorf("updated: %+v", up)
	}
	// The old address is free, the new one taken.
	if _, err := f.svc.Create(ctx, f.key, contacts.Fields{Email: ptr("ada@example.com")}); err != nil {
		t.Errorf("the old address after the change: %v", err)
	}
	other := f.create("bob@example.com", nil)
	if _, err := f.svc.Update(ctx, f.key, other.ID, contacts.Fields{Email: ptr("ADA@lovelace.test")}); !errors.Is(err, pipeline.ErrConflict) {
		t.Errorf("moving to a taken address: %v", err)
	}

	for _, bad := range []contacts.Fields{
		{Email: ptr("not an address")},
		{Status: ptr(contacts.Status("gone"))},
		{Tags: ptr([]string{"a;b"})},
		{Fields: map[string]*string{"1bad": ptr("x")}},
		{FirstName: ptr("line\nbreak")},
	} {
		if _, err := f.svc.Update(ctx, f.key, c.ID, bad); err == nil {
			t.Errorf("update %+v accepted", bad)
		}
	}

	st, err := f.svc.SetStatus(ctx, f.key.AccountID, c.ID, contacts.Unsubscribed)
	if err != nil || st.Status != contacts.Unsubscribed {
		t.Errorf("SetStatus: %+v %v", st, err)
	}
	if _, err := f.svc.SetStatus(ctx, f.key.AccountID, "ct_nope", contacts.Bounced); !errors.Is(err, pipeline.ErrNotFound) {
		t.Errorf("SetStatus of no contact: %v", err)
	}

	if err := f.svc.Delete(ctx, f.other, c.ID); !errors.Is(err, pipeline.ErrNotFound) {
		t.Errorf("delete from another account: %v", err)
	}
	if err := f.svc.Delete(ctx, f.key, c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Get(ctx, f.key, c.ID); !errors.Is(err, pipeline.ErrNotFound) {
		t.Errorf("get after delete: %v", err)
	}
	if _, err := f.svc.Create(ctx, f.key, contacts.Fields{Email: ptr("ada@lovelace.test")}); err != nil {
		t.Errorf("the address of a deleted contact: %v", err)
	}
}

func TestTokens(t *testing.T) {
	c := &contacts.Contact{Email: "a@example.com", FirstName: "Ada", Company: "",
		Fields: map[string]string{"plan": "pro", "first_name": "Eve", "email": "x@y", "empty": ""}}
	want := map[string]string{"email": "a@example.com", "first_name": "Ada", "plan": "pro"}
	if got := c.Tokens(); !maps.Equal(got, want) {
		t.Errorf("Tokens = %v, want %v", got, want)
	}
}

func TestResolve(t *testing.T) {
	f := newFixture(t)
	known := f.create("known@example.com", func(fs *contacts.Fields) { fs.FirstName = ptr("Kim") })
	unsub := f.create("gone@example.com", func(fs *contacts.Fields) { fs.Status = ptr(contacts.Unsubscribed) })
	otherAcct, err := f.svc.Create(ctx, f.other, contacts.Fields{Email: ptr("theirs@example.com")})
	if err != nil {
		t.Fatal(err)
	}
	to := []string{"KNOWN@example.com", "new@example.com", known.ID, "bad address", "ct_unknown", otherAcct.ID,
		"New@Example.com", unsub.ID}
	cs, errs, err := f.svc.Resolve(ctx, f.key.AccountID, to)
	if err != nil {
		t.Fatal(err)
	}
	if cs[0] == nil || cs[0].ID != known.ID || cs[0].FirstName != "Kim" || cs[2] == nil || cs[2].ID != known.ID {
		t.Errorf("known: %+v %+v", cs[0], cs[2])
	}
	if cs[1] == nil || !strings.HasPrefix(cs[1].ID, "ct_") || cs[1].Status != contacts.Subscribed || cs[1].Email != "new@example.com" ||
		cs[6] == nil || cs[6].ID != cs[1].ID {
		t.Errorf("new: %+v %+v", cs[1], cs[6])
	}
	if !errors.Is(errs[3], pipeline.ErrBadAddress) || cs[3] != nil {
		t.Errorf("bad address: %v", errs[3])
	}
	for _, i := range []int{4, 5} {
		if !errors.Is(errs[i], pipeline.ErrInvalid) || !strings.Contains(pipeline.AsError(errs[i]).Message, to[i]) || cs[i] != nil {
			t.Errorf("%s: %v", to[i], errs[i])
		}
	}
	if cs[7] == nil || cs[7].Status != contacts.Unsubscribed || errs[7] != nil {
		t.Errorf("unsubscribed contact: %+v %v", cs[7], errs[7])
	}
	for _, i := range []int{0, 1, 2, 6, 7} {
		if errs[i] != nil {
			t.Errorf("%s: %v", to[i], errs[i])
		}
	}
	// The created contact is stored.
	if got, err := f.svc.Get(ctx, f.key, cs[1].ID); err != nil || got.Email != "new@example.com" {
		t.Errorf("created by Resolve: %+v %v", got, err)
	}
}

func TestResolveConcurrentCreatesOnce(t *testing.T) {
	f := newFixture(t)
	const n = 8
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cs, errs, err := f.svc.Resolve(ctx, f.key.AccountID, []string{"race@example.com", fmt.Sprintf("r%d@example.com", i)})
			if err != nil || errs[0] != nil {
				t.Errorf("resolve: %v %v", err, errs[0])
				return
			}
			ids[i] = cs[0].ID
		}()
	}
	wg.Wait()
	for i := range ids {
		if ids[i] != ids[0] || ids[i] == "" {
			t.Fatalf("concurrent Resolve made several contacts: %v", ids)
		}
	}
	list, _, err := f.svc.List(ctx, f.key, contacts.ListQuery{Email: "race@example.com"})
	if err != nil || len(list) != 1 {
		t.Errorf("contacts of the address: %d %v", len(list), err)
	}
}

func TestResolveThousand(t *testing.T) {
	f := newFixture(t)
	to := make([]string, 1000)
	for i := range to {
		to[i] = fmt.Sprintf("user%d@example.com", i)
	}
	f.create("user7@example.com", nil)
	cs, errs, err := f.svc.Resolve(ctx, f.key.AccountID, to)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i, c := range cs {
		if errs[i] != nil || c == nil || c.Email != to[i] || seen[c.ID] {
			t.Fatalf("%d: %+v %v", i, c, errs[i])
		}
		seen[c.ID] = true
	}
	// Again: the same contacts, none created.
	again, _, err := f.svc.Resolve(ctx, f.key.AccountID, to)
	if err != nil {
		t.Fatal(err)
	}
	for i := range again {
		if again[i].ID != cs[i].ID {
			t.Fatalf("%d: %s then %s", i, cs[i].ID, again[i].ID)
		}
	}
}

func TestListFiltersAndPages(t *testing.T) {
	f := newFixture(t)
	var all []*contacts.Contact
	for i := range 25 {
		all = append(all, f.create(fmt.Sprintf("p%02d@example.com", i), func(fs *contacts.Fields) {
			if i%3 == 0 {
				fs.Tags = ptr([]string{"vip"})
			}
			if i%5 == 0 {
				fs.Status = ptr(contacts.Bounced)
			}
		}))
	}
	if _, err := f.svc.Create(ctx, f.other, contacts.Fields{Email: ptr("p00@example.com")}); err != nil {
		t.Fatal(err)
	}

	// Every page, newest first, without repeats.
	var got []string
	cursor := ""
	for range 10 {
		page, next, err := f.svc.List(ctx, f.key, contacts.ListQuery{Limit: 10, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range page {
			got = append(got, c.Email)
		}
		if cursor = next; cursor == "" {
			break
		}
	}
	if len(got) != 25 || got[0] != "p24@example.com" || got[24] != "p00@example.com" {
		t.Errorf("pages: %d %v", len(got), got)
	}

	count := func(q contacts.ListQuery) int {
		t.Helper()
		n := 0
		for range 50 {
			page, next, err := f.svc.List(ctx, f.key, q)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range page {
				if (q.Tag != "" && !slices.Contains(c.Tags, q.Tag)) || (q.Status != "" && c.Status != q.Status) {
					t.Errorf("%+v does not match %+v", c, q)
				}
			}
			n += len(page)
			if q.Cursor = next; next == "" {
				return n
			}
		}
		t.Fatal("no last page")
		return 0
	}
	if n := count(contacts.ListQuery{Tag: "vip", Limit: 2}); n != 9 {
		t.Errorf("tag vip: %d", n)
	}
	if n := count(contacts.ListQuery{Status: contacts.Bounced, Limit: 3}); n != 5 {
		t.Errorf("bounced: %d", n)
	}
	if n := count(contacts.ListQuery{Status: contacts.Bounced, Tag: "vip"}); n != 2 {
		t.Errorf("bounced vip: %d", n)
	}
	page, next, err := f.svc.List(ctx, f.key, contacts.ListQuery{Email: "P03@EXAMPLE.COM"})
	if err != nil || len(page) != 1 || page[0].ID != all[3].ID || next != "" {
		t.Errorf("by email: %v %q %v", page, next, err)
	}
	for _, q := range []contacts.ListQuery{{Limit: 101}, {Limit: -1}, {Cursor: "abc"}, {Status: "nope"}} {
		if _, _, err := f.svc.List(ctx, f.key, q); !errors.Is(err, pipeline.ErrInvalid) {
			t.Errorf("%+v: %v", q, err)
		}
	}
}
