package strictjson

import (
	"encoding/json"
	"io"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	b := Bounds{Depth: 4, Elements: 3}
	for doc, want := range map[string]string{
		`{"to":["a","b","c"],"x":{"a":1,"b":2,"c":3}}`: "",
		`[[[[]]]]`:                         "",
		`[[[[[]]]]]`:                       "[0][0][0][0]: nested more than 4 deep",
		`{"v":{"a":[{"b":[]}]}}`:           "v.a[0].b: nested more than 4 deep",
		`{"to":["a","b","c","d"]}`:         "to: more than 3 elements",
		`{"to":["a,b,c,d"]}`:               "",
		`{"a\",\"b":1,"c":2,"d":[1,2]}`:    "",
		`{"a":1,"b":2,"c":3,"d":4}`:        "the request body: more than 3 elements",
		`{"e":[{},{"x":[1,2,3,4]}]}`:       "e[1].x: more than 3 elements",
		`{"e":[{},{},{"k\"q":[1,2,3,4]}]}`: `e[2].k\"q: more than 3 elements`,
		`[1,2,3,4]`:                        "the request body: more than 3 elements",
		`   `:                              "",
		`]]]],,,,}}}`:                      "",
		`{"unterminated`:                   "",
		`"\`:                               "",
	} {
		if got := Check([]byte(doc), b); got != want {
			t.Errorf("Check(%s) = %q, want %q", doc, got, want)
		}
	}
}

// The bombs of docs/security.md (S11's JSON kin): each is found, named,
// with a path no longer than maxPath.
func TestCheckBombs(t *testing.T) {
	b := Bounds{Depth: 32, Elements: 10_000}
	array := "[" + strings.Repeat(`"a",`, 1_000_000) + `"a"]`
	object := "{" + strings.Repeat(`"k":1,`, 1_000_000) + `"k":1}`
	for doc, want := range map[string]string{
		strings.Repeat("[", 10_000) + strings.Repeat("]", 10_000): "[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0]: nested more than 32 deep",
		`{"to":` + array + `}`:                                 "to: more than 10000 elements",
		`{"variables":` + object + `}`:                         "variables: more than 10000 elements",
		strings.Repeat(`{"`+strings.Repeat("k", 100)+`":`, 40): strings.Repeat("k", 64) + "." + strings.Repeat("k", 64) + "." + strings.Repeat("k", 64) + "." + "kkkkk…: nested more than 32 deep",
	} {
		if got := Check([]byte(doc), b); got != want {
			t.Errorf("Check(%.40s…) = %q, want %q", doc, got, want)
		}
	}
}

// TestCheckTotal: many containers each within the width are refused
// together past the total, counted across the whole document.
func TestCheckTotal(t *testing.T) {
	b := Bounds{Depth: 4, Elements: 100, Total: 1000}
	inner := "[" + strings.Repeat("1,", 99) + "1]"
	for n, want := range map[int]string{
		9:  "",
		10: "the request body: more than 1000 values in all", // 10 × 100 + 10 arrays
		11: "the request body: more than 1000 values in all",
	} {
		doc := "[" + strings.Repeat(inner+",", n-1) + inner + "]"
		if got := Check([]byte(doc), b); got != want {
			t.Errorf("%d arrays of 100: %q, want %q", n, got, want)
		}
	}
	if got := Check([]byte("["+strings.Repeat(inner+",", 20)+inner+"]"), Bounds{Depth: 4, Elements: 100}); got != "" {
		t.Errorf("no total: %q", got)
	}
}

// FuzzCheck: Check never panics, and passes whatever encoding/json reads
// within the bounds: a document it refuses is one that is deeper or wider
// than them (members counted as written, a repeated name too).
func FuzzCheck(f *testing.F) {
	f.Add(`{"to":["a","b"],"v":{"a":[1,{"b":null}]}}`)
	f.Add(`[[[["\"]\\"]]]]`)
	f.Add(`{"a":1,"b":2,"c":3,"d":4}`)
	f.Fuzz(func(t *testing.T, doc string) {
		b := Bounds{Depth: 3, Elements: 3}
		msg := Check([]byte(doc), b)
		if !json.Valid([]byte(doc)) {
			return
		}
		depth, width := shape(t, doc)
		if fits := depth <= b.Depth && width <= b.Elements; fits != (msg == "") {
			t.Fatalf("depth %d, width %d, Check says %q", depth, width, msg)
		}
	})
}

// shape returns the nesting depth of the JSON document doc and the most
// elements or members one of its arrays or objects has, read as tokens.
func shape(t *testing.T, doc string) (depth, width int) {
	type level struct {
		object bool
		n      int
		key    bool // an object's next token is a member name
	}
	var stack []level
	d := json.NewDecoder(strings.NewReader(doc))
	d.UseNumber()
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return depth, width
		}
		if err != nil {
			t.Fatalf("%q: %v", doc, err)
		}
		if delim, ok := tok.(json.Delim); ok && (delim == ']' || delim == '}') {
			stack = stack[:len(stack)-1]
			continue
		}
		if len(stack) > 0 {
			top := &stack[len(stack)-1]
			if !top.object || top.key {
				top.n++
				width = max(width, top.n)
			}
			if top.object {
				top.key = !top.key
			}
		}
		if delim, ok := tok.(json.Delim); ok {
			stack = append(stack, level{object: delim == '{', key: delim == '{'})
			depth = max(depth, len(stack))
		}
	}
}
