package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
)

// POST /v1/emails takes Pigeon Perch's personalizations beside variables:
// both fill the template, and personalizations win for a key in both.
func TestRESTPersonalizations(t *testing.T) {
	s := newServer(t)
	var tpl templateResp
	if code := s.JSON("POST", "/v1/templates", liveKey, map[string]string{
		"name": "order", "subject": "{{a}}|{{b}}|{{c}}", "html": "<p>order</p>",
	}, &tpl); code != http.StatusCreated {
		t.Fatalf("create template: %d", code)
	}
	for _, tc := range []struct {
		name             string
		variables        map[string]any
		personalizations map[string]any
		subject          string
	}{
		{"variables only", map[string]any{"a": "v", "b": "v", "c": "v"}, nil, "v|v|v"},
		{"personalizations only", nil, map[string]any{"a": "p", "b": "p", "c": "p"}, "p|p|p"},
		{"disjoint", map[string]any{"a": "v"}, map[string]any{"b": "p", "c": "p"}, "v|p|p"},
		{"overlapping: personalizations win", map[string]any{"a": "v", "b": "v", "c": "v"}, map[string]any{"b": "p"}, "v|p|v"},
		{"scalars", nil, map[string]any{"a": 42, "b": true, "c": 1.5}, "42|true|1.5"},
		{"null personalization wins", map[string]any{"a": "v", "b": "v", "c": "v"}, map[string]any{"a": nil}, "|v|v"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := map[string]any{"from": s.From, "to": s.To, "templateId": tpl.ID}
			if tc.variables != nil {
				body["variables"] = tc.variables
			}
			if tc.personalizations != nil {
				body["personalizations"] = tc.personalizations
			}
			sent := s.SendOK(liveKey, body, nil)
			h, _ := testkit.MIMEParts(t, s.content(sent.ID))
			if subj, _ := h.Text("Subject"); subj != tc.subject {
				t.Errorf("subject %q, want %q", subj, tc.subject)
			}
		})
	}

	for _, tc := range []struct {
		name string
		body map[string]any
		want string // in the 400's message
	}{
		{"without templateId", map[string]any{"subject": "s", "html": "<p>x</p>", "personalizations": map[string]any{"a": "p"}}, "personalizations"},
		{"object value", map[string]any{"templateId": tpl.ID, "personalizations": map[string]any{"a": map[string]any{}}}, "personalizations.a"},
		{"array value", map[string]any{"templateId": tpl.ID, "personalizations": map[string]any{"a": []string{"x"}}}, "personalizations.a"},
		{"not an object", map[string]any{"templateId": tpl.ID, "personalizations": "a=p"}, "personalizations: must be an object"},
		{"CRLF into the subject", map[string]any{"templateId": tpl.ID, "personalizations": map[string]any{"a": "x\r\nBcc: v@victim.test", "b": "", "c": ""}}, "(used in the subject)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.body["from"], tc.body["to"] = s.From, s.To
			r := s.Call("POST", "/v1/emails", liveKey, nil, tc.body)
			if r.Code != http.StatusBadRequest || r.ErrCode() == "" || !strings.Contains(r.ErrMessage(), tc.want) {
				t.Errorf("%d %s, want 400 naming %q", r.Code, r.Body, tc.want)
			}
		})
	}
}
