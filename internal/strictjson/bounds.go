package strictjson

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// Bounds limit the shape of a JSON document: how deeply its arrays and
// objects nest, and how many elements (or members) one of them holds.
//
// encoding/json decodes whatever fits in memory: a 2 MB array of a million
// {} becomes a million structs, hundreds of megabytes, before the handler
// can count them and refuse, and a route's own limits ("at most 100
// attachments") come only after that. Checking the shape first, on the
// raw bytes, refuses such a body for the cost of reading it once.
type Bounds struct {
	Depth    int // arrays and objects inside one another
	Elements int // elements of one array, members of one object
	// Total is the elements and members of all arrays and objects
	// together (0: no bound): many containers each under Elements still
	// decode to as many values.
	Total int
}

// frame is an array or object being scanned.
type frame struct {
	object bool
	n      int    // elements or members so far, the current one included
	key    []byte // the current member's name, as written (escapes kept)
}

// Check reads the JSON document raw, without decoding it, and returns what
// of it passes b, or "" when nothing does: "attachments: more than 10000
// elements", "variables.a: nested more than 32 deep". The path names the
// offending array or object as Unknown's paths do. A document that is not
// JSON is not reported (its decoding fails anyway), and Check stops at the
// first excess.
func Check(raw []byte, b Bounds) string {
	stack := make([]frame, 0, 16)
	wantKey := false // the next string is a member name
	total := 0       // elements and members of every container so far
	// value counts the first element of an array, the first member of
	// an object; the commas count the others.
	value := func() {
		if len(stack) > 0 && stack[len(stack)-1].n == 0 {
			stack[len(stack)-1].n = 1
			total++
		}
	}
	overTotal := func() bool { return b.Total > 0 && total > b.Total }
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; c {
		case '"':
			value()
			if overTotal() {
				return "the request body: more than " + strconv.Itoa(b.Total) + " values in all"
			}
			end := stringEnd(raw, i+1)
			if wantKey && len(stack) > 0 {
				stack[len(stack)-1].key = raw[i+1 : max(i+1, end-1)]
				wantKey = false
			}
			i = end - 1
		case '[', '{':
			value()
			if len(stack) == b.Depth {
				return pathOf(stack) + "nested more than " + strconv.Itoa(b.Depth) + " deep"
			}
			stack = append(stack, frame{object: c == '{'})
			wantKey = c == '{'
		case ']', '}':
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
			wantKey = false
		case ',':
			if len(stack) == 0 {
				continue
			}
			top := &stack[len(stack)-1]
			top.n++
			total++
			if top.n > b.Elements {
				return pathOf(stack[:len(stack)-1]) + "more than " + strconv.Itoa(b.Elements) + " elements"
			}
			if overTotal() {
				return "the request body: more than " + strconv.Itoa(b.Total) + " values in all"
			}
			wantKey = top.object
		case ' ', '\t', '\r', '\n', ':':
		default: // a number, true, false or null
			value()
		}
	}
	return ""
}

// stringEnd returns the offset just past the closing quote of the string
// whose content starts at i, or len(raw) if it has none.
func stringEnd(raw []byte, i int) int {
	for {
		j := bytes.IndexAny(raw[i:], `"\`)
		if j < 0 {
			return len(raw)
		}
		i += j
		if raw[i] == '"' {
			return i + 1
		}
		i += 2 // a backslash and the character it escapes
		if i >= len(raw) {
			return len(raw)
		}
	}
}

// pathOf names the value that stack's innermost frame is at, with a
// trailing ": ", or "the request body: " for the document itself.
func pathOf(stack []frame) string {
	if len(stack) == 0 {
		return "the request body: "
	}
	var p strings.Builder
	for _, f := range stack {
		if f.object {
			if p.Len() > 0 {
				p.WriteByte('.')
			}
			k := f.key
			if len(k) > 64 {
				k = k[:64]
			}
			p.Write(k)
		} else {
			fmt.Fprintf(&p, "[%d]", max(f.n-1, 0))
		}
	}
	if p.Len() > maxPath {
		return p.String()[:maxPath] + "…: "
	}
	return p.String() + ": "
}

// maxPath bounds the path in a message: a path 32 deep of long names is
// not read to its end.
const maxPath = 200
