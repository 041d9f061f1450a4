package api

import (
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/pigeonpost/pigeonpost/pipeline"
)

func TestScalarValues(t *testing.T) {
	got, err := scalarValues("personalizations", map[string]any{
		"s": "text", "i": float64(42), "f": 1.5, "big": 1e21, "n": json.Number("12345678901234567890"),
		"t": true, "false": false, "null": nil, "empty": "",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"s": "text", "i": "42", "f": "1.5", "big": "1000000000000000000000", "n": "12345678901234567890",
		"t": "true", "false": "false", "null": "", "empty": ""}
	if !maps.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got, err := scalarValues("variables", nil); got != nil || err != nil {
		t.Errorf("nil: %v %v", got, err)
	}
	if got, err := scalarValues("variables", map[string]any{}); got != nil || err != nil {
		t.Errorf("empty: %v %v", got, err)
	}
	// The error names field.key, the first bad key in sorted order.
	for range 20 {
		_, err := scalarValues("personalizations", map[string]any{"ok": "x", "zeta": []any{}, "beta": map[string]any{}, "gamma": []any{1}})
		if !errors.Is(err, pipeline.ErrInvalid) || !strings.HasPrefix(pipeline.AsError(err).Message, "personalizations.beta: ") {
			t.Fatalf("got %v, want ErrInvalid naming personalizations.beta", err)
		}
	}
}

// personalizations win over variables for the same key; the rest of both
// is kept.
func TestToPipelinePersonalizationsPrecedence(t *testing.T) {
	for _, tc := range []struct {
		name             string
		variables        map[string]any
		personalizations map[string]any
		want             map[string]string // nil: no values
	}{
		{"neither", nil, nil, nil},
		{"variables only", map[string]any{"a": "v"}, nil, map[string]string{"a": "v"}},
		{"personalizations only", nil, map[string]any{"a": "p"}, map[string]string{"a": "p"}},
		{"disjoint", map[string]any{"a": "v"}, map[string]any{"b": "p"}, map[string]string{"a": "v", "b": "p"}},
		{"same key", map[string]any{"a": "v", "b": "v"}, map[string]any{"b": "p"}, map[string]string{"a": "v", "b": "p"}},
		{"null personalization wins", map[string]any{"a": "v"}, map[string]any{"a": nil}, map[string]string{"a": ""}},
		{"number personalization wins", map[string]any{"a": "v"}, map[string]any{"a": float64(7)}, map[string]string{"a": "7"}},
		{"empty personalizations", map[string]any{"a": "v"}, map[string]any{}, map[string]string{"a": "v"}},
		{"empty variables", map[string]any{}, map[string]any{"a": "p"}, map[string]string{"a": "p"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := sendRequest{TemplateID: "tpl_x", Variables: tc.variables, Personalizations: tc.personalizations}
			out, err := req.toPipeline()
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(out.Variables, tc.want) || (tc.want == nil) != (out.Variables == nil) {
				t.Errorf("variables %v, want %v", out.Variables, tc.want)
			}
		})
	}
}

func TestToPipelinePersonalizationsErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  sendRequest
		want string // prefix of the message
	}{
		{"without templateId", sendRequest{Personalizations: map[string]any{"a": "p"}}, "personalizations: "},
		{"object value", sendRequest{TemplateID: "tpl_x", Personalizations: map[string]any{"a": map[string]any{}}}, "personalizations.a: "},
		{"array value", sendRequest{TemplateID: "tpl_x", Personalizations: map[string]any{"a": []any{"x"}}}, "personalizations.a: "},
		{"bad variable beside good personalizations", sendRequest{TemplateID: "tpl_x",
			Variables: map[string]any{"v": []any{}}, Personalizations: map[string]any{"a": "p"}}, "variables.v: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.req.toPipeline()
			if !errors.Is(err, pipeline.ErrInvalid) || !strings.HasPrefix(pipeline.AsError(err).Message, tc.want) {
				t.Errorf("got %v, want ErrInvalid %q…", err, tc.want)
			}
		})
	}
	// Without templateId an empty object is accepted, as for variables.
	if _, err := (&sendRequest{Personalizations: map[string]any{}}).toPipeline(); err != nil {
		t.Errorf("empty personalizations without templateId: %v", err)
	}
}
