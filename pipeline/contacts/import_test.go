package contacts_test

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/contacts"
	"github.com/pigeonpost/pigeonpost/pipeline/pipelinetest"
)

func TestImportCSV(t *testing.T) {
	f := newFixture(t)
	existing := f.create("old@example.com", func(fs *contacts.Fields) {
		fs.FirstName, fs.Company = ptr("Olga"), ptr("Keep Ltd")
	})
	csv := "\ufeffEmail,firstName,last_name,Company,status,tags,plan\n" +
		"ada@example.com,Ada,Lovelace,Engines,,vip;beta|news,pro\n" +
		"OLD@example.com,,Older,,bounced,,\n" + // empty cells leave the stored values
		"not-an-address,X,,,,,\n" +
		"bob@example.com,Bob,,,weird,,\n" +
		"short@example.com,only\n" +
		"ADA@example.com,Ada2,,,,,\n" // the same address again: an update
	res, err := f.svc.Import(ctx, f.key, contacts.CSV, strings.NewReader(csv))
	if err != nil {
		t.Fatal(err)
	}
	if res.Created != 1 || res.Updated != 2 || res.Failed != 3 || len(res.Errors) != 3 {
		t.Fatalf("result %+v", res)
	}
	for i, want := range []struct {
		row  int
		text string
	}{{3, "email"}, {4, "status"}, {5, "cells"}} {
		if e := res.Errors[i]; e.Row != want.row || !strings.Contains(e.Message, want.text) {
			t.Errorf("error %d: %+v, want row %d about %s", i, e, want.row, want.text)
		}
	}
	list, _, err := f.svc.List(ctx, f.key, contacts.ListQuery{Email: "ada@example.com"})
	if err != nil || len(list) != 1 {
		t.Fatal(list, err)
	}
	ada := list[0]
	if ada.FirstName != "Ada2" || ada.LastName != "Lovelace" || ada.Company != "Engines" || ada.Status != contacts.Subscribed ||
		fmt.Sprint(ada.Tags) != "[vip beta news]" || ada.Fields["plan"] != "pro" {
		t.Errorf("ada: %+v", ada)
	}
	old, err := f.svc.Get(ctx, f.key, existing.ID)
	if err != nil || old.FirstName != "Olga" || old.LastName != "Older" || old.Company != "Keep Ltd" || old.Status != contacts.Bounced {
		t.Errorf("updated: %+v %v", old, err)
	}

	for _, bad := range []struct{ body, names string }{
		{"", "body"},
		{"first_name,plan\nA,b\n", "header"},
		{"email,bad column\n", "header column 2"},
		{"email,Email\n", "header column 2"},
	} {
		_, err := f.svc.Import(ctx, f.key, contacts.CSV, strings.NewReader(bad.body))
		if !errors.Is(err, pipeline.ErrInvalid) || !strings.HasPrefix(pipeline.AsError(err).Message, bad.names) {
			t.Errorf("%q: %v", bad.body, err)
		}
	}
}

func TestImportJSON(t *testing.T) {
	f := newFixture(t)
	for _, body := range []string{
		`[{"email":"a@example.com","firstName":"A","tags":["x"],"fields":{"plan":"pro"}},
		  {"email":5},
		  {"email":"b@example.com","status":"complained"},
		  "nope",
		  {"firstName":"no address"}]`,
		`{"contacts":[{"email":"a@example.com","lastName":"Z"},{"email":"c@example.com"},{"email":"d@example.com","frist_name":"D"}]}`,
	} {
		res, err := f.svc.Import(ctx, f.key, contacts.JSON, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%+v", res)
	}
	// A field an import does not know: the body's is refused whole, a
	// contact's fails that contact, named, with the name meant.
	_, err := f.svc.Import(ctx, f.key, contacts.JSON, strings.NewReader(`{"source":{"deep":[1]},"contacts":[]}`))
	if !errors.Is(err, pipeline.ErrUnknownField) || pipeline.AsError(err).Message != `unknown field "source"` {
		t.Errorf("an unknown field of the body: %v", err)
	}
	res, err := f.svc.Import(ctx, f.key, contacts.JSON, strings.NewReader(`[{"email":"e@example.com","frist_name":"E"}]`))
	if err != nil || res.Failed != 1 || res.Errors[0].Message != `unknown field "contacts[0].frist_name"; did you mean "contacts[0].firstName"?` {
		t.Errorf("an unknown field of a contact: %+v %v", res, err)
	}
	list, _, err := f.svc.List(ctx, f.key, contacts.ListQuery{})
	if err != nil || len(list) != 3 {
		t.Fatalf("%d contacts, %v", len(list), err)
	}
	a := list[2]
	if a.Email != "a@example.com" || a.FirstName != "A" || a.LastName != "Z" || a.Fields["plan"] != "pro" || fmt.Sprint(a.Tags) != "[x]" {
		t.Errorf("a: %+v", a)
	}
	if list[1].Status != contacts.Complained {
		t.Errorf("b: %+v", list[1])
	}

	res, err = f.svc.Import(ctx, f.key, contacts.JSON, strings.NewReader(`[{"email":5},"x",{"firstName":"n"},{"email":"d@example.com"}]`))
	if err != nil || res.Created != 1 || res.Failed != 3 {
		t.Fatalf("%+v %v", res, err)
	}
	for i, want := range []string{"contacts[0].email: must be a string", "contacts[1]: must be an object", "email: "} {
		if e := res.Errors[i]; e.Row != i+1 || !strings.HasPrefix(e.Message, want) {
			t.Errorf("error %d: %+v, want %q", i, e, want)
		}
	}

	for _, bad := range []struct{ body, names string }{
		{`{"contacts":{"email":"x@example.com"}}`, "contacts: must be an array"},
		{`{}`, "contacts: is required"},
		{`"x"`, "body: must be"},
		{`not json`, "body: "},
		{`[{"email":"e@example.com"}, {"email": `, "contacts[1]: "},
	} {
		_, err := f.svc.Import(ctx, f.key, contacts.JSON, strings.NewReader(bad.body))
		if !errors.Is(err, pipeline.ErrInvalid) || !strings.HasPrefix(pipeline.AsError(err).Message, bad.names) {
			t.Errorf("%q: %v", bad.body, err)
		}
	}
	// The row before the broken one was imported.
	if l, _, _ := f.svc.List(ctx, f.key, contacts.ListQuery{Email: "e@example.com"}); len(l) != 1 {
		t.Error("the contact before the broken JSON was not imported")
	}
}

func TestImportReadError(t *testing.T) {
	f := newFixture(t)
	broken := errors.New("connection reset")
	r := io.MultiReader(strings.NewReader("email\na@example.com\nb@exa"), errReader{broken})
	res, err := f.svc.Import(ctx, f.key, contacts.CSV, r)
	var re *contacts.ReadError
	if !errors.As(err, &re) || !errors.Is(err, broken) || res.Created != 1 {
		t.Errorf("%+v %v", res, err)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// csvRows streams a CSV of n contacts without holding it.
func csvRows(n int) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		_, _ = io.WriteString(pw, "email,first_name,last_name,company,status,tags,plan,city\n")
		for i := range n {
			if _, err := fmt.Fprintf(pw, "user%06d@example.com,First%d,Last,Company %d,subscribed,vip;news,pro,Paris\n", i, i, i%100); err != nil {
				return
			}
		}
		pw.Close()
	}()
	return pr
}

func TestImportChunks(t *testing.T) {
	f := newFixture(t)
	const n = 2*contacts.ImportChunk + 17
	res, err := f.svc.Import(ctx, f.key, contacts.CSV, csvRows(n))
	if err != nil || res.Created != n || res.Failed != 0 {
		t.Fatalf("%+v %v", res, err)
	}
	res, err = f.svc.Import(ctx, f.key, contacts.CSV, csvRows(n))
	if err != nil || res.Updated != n || res.Created != 0 {
		t.Fatalf("again: %+v %v", res, err)
	}
}

// BenchmarkImport100k imports 100,000 contacts per iteration (into a fresh
// account each time): go test -run - -bench Import100k -benchmem ./pipeline/contacts
func BenchmarkImport100k(b *testing.B) {
	p := pipelinetest.New(b, pipelinetest.Options{})
	for i := 0; b.Loop(); i++ {
		k := p.Key(b, fmt.Sprintf("bench%d", i), fmt.Sprintf("sp_live_contactsbenchkey%016d", i))
		res, err := p.Contacts.Import(ctx, k, contacts.CSV, csvRows(100_000))
		if err != nil || res.Created != 100_000 {
			b.Fatalf("%+v %v", res, err)
		}
	}
}
