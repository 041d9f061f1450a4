package contacts_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/contacts"
	"github.com/pigeonpost/pigeonpost/pipeline/pipelinetest"
)

// The import parsers read untrusted bodies. Property: an import never
// fails but with a 400 naming what is wrong; it counts no more rows than
// the body has lines (CSV) or values (JSON); every contact it wrote has a
// valid address.
func fuzzImport(f *testing.F, format contacts.Format, rows func(string) int) {
	p := pipelinetest.New(f, pipelinetest.Options{})
	k := p.Key(f, "fuzz", "sp_live_contactsfuzzkey00000000000000001")
	f.Fuzz(func(t *testing.T, body string) {
		res, err := p.Contacts.Import(ctx, k, format, strings.NewReader(body))
		if err != nil && (!errors.Is(err, pipeline.ErrInvalid) && !errors.Is(err, pipeline.ErrUnknownField) || pipeline.AsError(err).HTTPStatus != http.StatusBadRequest) {
			t.Fatalf("%q: %v", body, err)
		}
		if n := res.Created + res.Updated + res.Failed; n > rows(body) {
			t.Fatalf("%q: %d rows counted, at most %d in the body", body, n, rows(body))
		}
		if res.Created+res.Updated > 0 {
			cs, _, err := p.Contacts.List(ctx, k, contacts.ListQuery{Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range cs {
				if _, err := pipeline.ParseAddress(c.Email); err != nil {
					t.Fatalf("%q: stored %q", body, c.Email)
				}
			}
		}
	})
}

func FuzzImportCSV(f *testing.F) {
	for _, s := range []string{"email\na@example.com\n", "email,tags,plan\n\"a@example.com\",\"x;y\",pro\nb@x.test,,\n",
		"\ufeffEMAIL,first_name\n\"unterminated,x\n", "email\n\"a\"b@example.com\n", "email,status\nA@example.com,BOUNCED\r\n"} {
		f.Add(s)
	}
	fuzzImport(f, contacts.CSV, func(b string) int { return strings.Count(b, "\n") + strings.Count(b, "\r") + 1 })
}

func FuzzImportJSON(f *testing.F) {
	for _, s := range []string{`[{"email":"a@example.com"}]`, `{"contacts":[{"email":"a@example.com","fields":{"x":null}}],"x":[{}]}`,
		`[1,"x",null,{"email":5}]`, `{"contacts":[`, `[{"email":"a@example.com","tags":["a;b"]}]`} {
		f.Add(s)
	}
	// Each row is a value: at least one character of the body.
	fuzzImport(f, contacts.JSON, func(b string) int { return len(b) })
}
