package api_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"

	"github.com/pigeonpost/pigeonpost/internal/testkit/resttest"
)

// JSON bombs (docs/security.md): each is refused with the error shape,
// naming the limit, whether or not the request carries an Idempotency-Key
// (whose fingerprint decodes the body too), and in memory bounded by the
// body's own size: none is decoded into Go values before it is refused.
func TestRESTJSONBombs(t *testing.T) {
	s := newServer(t)
	head := fmt.Sprintf(`{"from":%q,"subject":"s","html":"<p>x</p>",`, s.From)
	to := fmt.Sprintf(`"to":%q,`, s.To)
	// list is n copies of el as a JSON array, or members "k<i>": el.
	list := func(n int, el string, object bool) string {
		var b strings.Builder
		b.WriteString("[")
		if object {
			b.Reset()
			b.WriteString("{")
		}
		for i := range n {
			if i > 0 {
				b.WriteString(",")
			}
			if object {
				fmt.Fprintf(&b, `"k%d":`, i)
			}
			b.WriteString(el)
		}
		if object {
			b.WriteString("}")
		} else {
			b.WriteString("]")
		}
		return b.String()
	}
	deep := strings.Repeat("[", 32) + strings.Repeat("]", 32) // the deepest allowed
	for _, c := range []struct {
		name, body, path string
		code             int
		errCode, message string
	}{
		{"nesting 10,000 deep", strings.Repeat("[", 10_000) + strings.Repeat("]", 10_000), "/v1/emails",
			400, "validation_error", strings.Repeat("[0]", 32) + ": nested more than 32 deep"},
		{"nesting 10,001 deep (past encoding/json's own limit)", strings.Repeat("[", 10_001) + strings.Repeat("]", 10_001), "/v1/emails",
			400, "validation_error", strings.Repeat("[0]", 32) + ": nested more than 32 deep"},
		{"nesting 10,000 deep in variables", head + to + `"templateId":"tpl_x","variables":{"a":` + strings.Repeat("[", 10_000) + strings.Repeat("]", 10_000) + "}}", "/v1/emails",
			400, "validation_error", "variables.a" + strings.Repeat("[0]", 30) + ": nested more than 32 deep"},
		{"1,000,000 recipients in to", head + `"to":` + list(1_000_000, fmt.Sprintf("%q", s.To), false) + "}", "/v1/emails",
			400, "validation_error", "to: more than 10000 elements"},
		{"1,000,000 attachments", head + to + `"attachments":` + list(1_000_000, "{}", false) + "}", "/v1/emails",
			400, "validation_error", "attachments: more than 10000 elements"},
		{"1,000,000 tags", head + to + `"tags":` + list(1_000_000, `"t"`, false) + "}", "/v1/emails",
			400, "validation_error", "tags: more than 10000 elements"},
		{"1,000,000 keys in variables", head + to + `"templateId":"tpl_x","variables":` + list(1_000_000, `"v"`, true) + "}", "/v1/emails",
			400, "validation_error", "variables: more than 10000 elements"},
		{"1,000,000 keys in metadata", head + to + `"metadata":` + list(1_000_000, `"v"`, true) + "}", "/v1/emails",
			400, "validation_error", "metadata: more than 10000 elements"},
		{"1,000,000 attachments in a batch's email", `{"emails":[` + head + to + `"attachments":` + list(1_000_000, "{}", false) + "}]}", "/v1/emails/batch",
			400, "validation_error", "emails[0].attachments: more than 10000 elements"},
		{"1,000,000 personalizations of a send", `{"templateId":"tpl_x","recipients":[{"to":"a@x.test","personalizations":` + list(1_000_000, "1", true) + "}]}", "/v1/sends/batch",
			400, "validation_error", "recipients[0].personalizations: more than 10000 elements"},
		{"1,600,000 personalizations over 200 recipients", `{"templateId":"tpl_x","recipients":` +
			list(200, `{"to":"a@x.test","personalizations":`+list(8000, "1", true)+"}", false) + "}", "/v1/sends/batch",
			400, "validation_error", "the request body: more than 1500000 values in all"},
		{"50 MB of whitespace", strings.Repeat(" ", 50<<20), "/v1/emails",
			413, "payload_too_large", "request body exceeds the limit of 36700160 bytes"},
		{"nesting 32 deep is only a wrong type", deep, "/v1/emails",
			400, "validation_error", "body: must be an object"},
	} {
		for _, idem := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s, idempotent %v", c.name, idem), func(t *testing.T) {
				headers := map[string]string{}
				if idem {
					headers["Idempotency-Key"] = "bomb-" + c.name
				}
				body := []byte(c.body)
				r, alloc := measured(func() resttest.Response { return s.Call("POST", c.path, liveKey, headers, body) })
				if r.Code != c.code || r.ErrCode() != c.errCode || r.ErrMessage() != c.message {
					t.Errorf("got %d %s %q, want %d %s %q", r.Code, r.ErrCode(), r.ErrMessage(), c.code, c.errCode, c.message)
				}
				// The body is read once, into a buffer of its declared
				// size (the race detector doubles that); a body declared
				// over the limit is not read at all. Decoded, each of
				// these took 10 to 400 times its size.
				limit := uint64(3*len(body) + 16<<20)
				if c.code == http.StatusRequestEntityTooLarge {
					limit = 16 << 20
				}
				if alloc > limit {
					t.Errorf("allocated %d MB for a %d MB body (limit %d MB)", alloc>>20, len(body)>>20, limit>>20)
				}
			})
		}
	}
}

// A body of unknown length (chunked) is read up to the limit, no further,
// and answered 413.
func TestRESTChunkedWhitespaceBomb(t *testing.T) {
	s := newServer(t, func(c *serverConfig) { c.api.MaxBodyBytes = 1 << 20 })
	spaces := bytes.Repeat([]byte(" "), 50<<20)
	r, alloc := measured(func() resttest.Response {
		return s.Call("POST", "/v1/emails", liveKey, nil, io.MultiReader(bytes.NewReader(spaces), strings.NewReader("{}")))
	})
	if r.Code != http.StatusRequestEntityTooLarge || r.ErrCode() != "payload_too_large" || !strings.Contains(r.ErrMessage(), "1048576 bytes") {
		t.Errorf("got %d %s", r.Code, r.Body)
	}
	if alloc > 16<<20 {
		t.Errorf("allocated %d MB for a body past a 1 MB limit", alloc>>20)
	}
}

// measured calls f and returns its answer and the bytes allocated meanwhile
// (by the server and the client both).
func measured(f func() resttest.Response) (resttest.Response, uint64) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r := f()
	runtime.ReadMemStats(&after)
	return r, after.TotalAlloc - before.TotalAlloc
}
