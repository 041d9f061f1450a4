// Package strictjson finds the field of a JSON body that a Go type does
// not know, and the known field it most likely meant: the REST API and the
// contacts import refuse such a field by name ("tracking.open"; did you
// mean "tracking.opens"?) rather than ignore it. encoding/json's
// DisallowUnknownFields finds the field but not where it is; the body is
// walked again, only then, against the target's type.
package strictjson

import (
	"encoding/json"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// Unknown names the first field of the JSON object raw that the Go
// type t does not know, as a path from the body's root, and the known
// field it most likely meant ("" if none is near). path is "" when raw
// has no unknown field.
func Unknown(raw []byte, t reflect.Type) (path, meant string) {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return "", ""
	}
	return walkUnknown(v, t, "")
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

func walkUnknown(v any, t reflect.Type, path string) (string, string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return "", "" // the type reads its JSON itself
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			return "", ""
		}
		fields := jsonFields(t)
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			f, ok := fieldNamed(fields, k)
			if !ok {
				return path + k, nearest(k, fields)
			}
			if p, m := walkUnknown(obj[k], f.typ, path+f.name+"."); p != "" {
				return p, m
			}
		}
	case reflect.Map:
		obj, ok := v.(map[string]any)
		if !ok {
			return "", ""
		}
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if p, m := walkUnknown(obj[k], t.Elem(), path+k+"."); p != "" {
				return p, m
			}
		}
	case reflect.Slice, reflect.Array:
		list, ok := v.([]any)
		if !ok {
			return "", ""
		}
		for i, x := range list {
			if p, m := walkUnknown(x, t.Elem(), strings.TrimSuffix(path, ".")+"["+strconv.Itoa(i)+"]."); p != "" {
				return p, m
			}
		}
	}
	return "", ""
}

type jsonField struct {
	name string
	typ  reflect.Type
}

// jsonFields are the JSON fields of struct type t as encoding/json sees
// them: tagged names, untagged exported names, embedded structs' fields.
func jsonFields(t reflect.Type) []jsonField {
	var out []jsonField
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-":
			continue
		case f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct:
			out = append(out, jsonFields(f.Type)...)
			continue
		case !f.IsExported():
			continue
		case name == "":
			name = f.Name
		}
		out = append(out, jsonField{name, f.Type})
	}
	return out
}

// fieldNamed finds the field key sets: by its exact name, else, as
// encoding/json does, ignoring case.
func fieldNamed(fields []jsonField, key string) (jsonField, bool) {
	for _, f := range fields {
		if f.name == key {
			return f, true
		}
	}
	for _, f := range fields {
		if strings.EqualFold(f.name, key) {
			return f, true
		}
	}
	return jsonField{}, false
}

// nearest returns the field name key most likely meant: the same letters
// without '_' and '-' (scheduled_at, scheduledAt), a singular or plural
// (open, opens), or one a few edits away (one per three letters, at
// least one, at most two); "" when none is.
func nearest(key string, fields []jsonField) string {
	squash := func(s string) string {
		return strings.ToLower(strings.NewReplacer("_", "", "-", "").Replace(s))
	}
	best, bestDist := "", 3
	for _, f := range fields {
		a, b := squash(key), squash(f.name)
		if a == b || a+"s" == b || a == b+"s" {
			return f.name
		}
		if d := editDistance(a, b); d < bestDist && d <= max(1, len(b)/3) {
			best, bestDist = f.name, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance of two short
// names: Levenshtein's, with a swap of two neighbours one edit ("opnes").
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// IsUnknownField reports the error json.Decoder.DisallowUnknownFields
// makes (encoding/json has no type for it).
func IsUnknownField(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "json: unknown field ")
}

// Message says which field of the JSON object raw the value v does not
// know, its path after prefix ("emails[2]."), and the name it most likely
// meant; "unknown field" alone when the walk finds none.
func Message(raw []byte, v any, prefix string) string {
	path, meant := Unknown(raw, reflect.TypeOf(v))
	if path == "" {
		return "unknown field"
	}
	msg := "unknown field " + strconv.Quote(prefix+path)
	if meant != "" {
		parent := path[:strings.LastIndexByte("."+path, '.')]
		msg += "; did you mean " + strconv.Quote(prefix+parent+meant) + "?"
	}
	return msg
}
