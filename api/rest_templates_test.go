package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
)

type templateResp struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	Subject   string   `json:"subject"`
	HTML      *string  `json:"html"`
	Text      *string  `json:"text"`
	Variables []string `json:"variables"`
}

// content returns the stored message of an email (GET /v1/emails/:id/content).
func (s *server) content(id string) []byte {
	s.t.Helper()
	r := s.Call("GET", "/v1/emails/"+id+"/content", liveKey, nil, nil)
	if r.Code != http.StatusOK {
		s.t.Fatalf("content of %s: %d %s", id, r.Code, r.Body)
	}
	return r.Body
}

func TestRESTTemplates(t *testing.T) {
	s := newServer(t)
	// The documented calls.
	var tpl templateResp
	if code := s.JSON("POST", "/v1/templates", liveKey, map[string]string{
		"name": "welcome-email", "subject": "Welcome {{name}}!", "html": "<p>Hello {{name}} from {{company | default: \"us\"}}</p>",
	}, &tpl); code != http.StatusCreated || !strings.HasPrefix(tpl.ID, "tpl_") {
		t.Fatalf("create: %d %+v", code, tpl)
	}
	if strings.Join(tpl.Variables, ",") != "company,name" {
		t.Errorf("variables %v", tpl.Variables)
	}
	var got templateResp
	if code := s.JSON("GET", "/v1/templates/"+tpl.ID, liveKey, nil, &got); code != 200 || got.HTML == nil || got.Subject != "Welcome {{name}}!" {
		t.Fatalf("get: %d %+v", code, got)
	}
	if code := s.JSON("PATCH", "/v1/templates/"+tpl.ID, liveKey, map[string]string{"subject": "Welcome aboard, {{name}}"}, &got); code != 200 ||
		got.Subject != "Welcome aboard, {{name}}" || got.Name != "welcome-email" || !strings.Contains(*got.HTML, "Hello {{name}}") {
		t.Fatalf("patch: %d %+v", code, got)
	}

	// Send with templateId + variables: substituted, escaped in HTML, in
	// the message as stored for delivery.
	from, to := "hello@"+senderDomain, "user@"+rcptDomain
	sent := s.SendOK(liveKey, map[string]any{"from": from, "to": to, "templateId": tpl.ID,
		"variables": map[string]any{"name": "John <b>", "company": "Acme Inc"}}, nil)
	h, leaves := testkit.MIMEParts(t, s.content(sent.ID))
	if subj, _ := h.Text("Subject"); subj != "Welcome aboard, John <b>" {
		t.Errorf("subject %q", subj)
	}
	var html, text string
	for _, l := range leaves {
		switch l.ContentType {
		case "text/html":
			html = string(l.Body)
		case "text/plain":
			text = string(l.Body)
		}
	}
	if html != "<p>Hello John &lt;b&gt; from Acme Inc</p>" || !strings.Contains(text, "Hello John <b> from Acme Inc") {
		t.Errorf("html %q text %q", html, text)
	}

	// A default fills a missing variable; a missing one without default is named.
	second := s.SendOK(liveKey, map[string]any{"from": from, "to": to, "templateId": tpl.ID, "variables": map[string]string{"name": "Ann"}}, nil)
	if m := s.content(second.ID); !strings.Contains(string(m), "from us") {
		t.Errorf("default not used:\n%s", m)
	}
	for name, c := range map[string]struct {
		body map[string]any
		want string
	}{
		"missing variable":  {map[string]any{"templateId": tpl.ID}, `"name"`},
		"unknown template":  {map[string]any{"templateId": "tpl_nope", "variables": map[string]string{"name": "x"}}, "templateId"},
		"html and template": {map[string]any{"templateId": tpl.ID, "html": "<p>x</p>", "variables": map[string]string{"name": "x"}}, "templateId"},
		"object variable":   {map[string]any{"templateId": tpl.ID, "variables": map[string]any{"name": map[string]string{}}}, "variables.name"},
		"CRLF via subject":  {map[string]any{"templateId": tpl.ID, "variables": map[string]string{"name": "x\r\nBcc: v@victim.test"}}, "variables.name"},
	} {
		c.body["from"], c.body["to"] = from, to
		r := s.Call("POST", "/v1/emails", liveKey, nil, c.body)
		if r.Code != 400 || !strings.Contains(r.ErrMessage(), c.want) {
			t.Errorf("%s: %d %s", name, r.Code, r.Body)
		}
	}

	// Validation on create and update: position of an unclosed tag.
	r := s.Call("POST", "/v1/templates", liveKey, nil, map[string]string{"name": "bad", "html": "<p>\nHi {{name</p>"})
	if r.Code != 400 || !strings.Contains(r.ErrMessage(), "line 2, column 4") {
		t.Errorf("unclosed: %d %s", r.Code, r.Body)
	}
	r = s.Call("PATCH", "/v1/templates/"+tpl.ID, liveKey, nil, map[string]string{"text": "{{ a b }}"})
	if r.Code != 400 || !strings.Contains(r.ErrMessage(), "invalid placeholder") {
		t.Errorf("patch invalid: %d %s", r.Code, r.Body)
	}
	if r := s.Call("POST", "/v1/templates", liveKey, nil, map[string]any{"name": "x", "html": 5}); r.Code != 400 || !strings.Contains(r.ErrMessage(), "html") {
		t.Errorf("wrong type: %d %s", r.Code, r.Body)
	}

	// Paginated list, newest first.
	for i := range 4 {
		s.JSON("POST", "/v1/templates", liveKey, map[string]string{"name": fmt.Sprint("t", i), "text": "x"}, nil)
	}
	var names []string
	cursor := ""
	for pages := 0; ; pages++ {
		var page struct {
			Data       []templateResp
			NextCursor *string
			HasMore    bool
		}
		q := "/v1/templates?limit=2"
		if cursor != "" {
			q += "&cursor=" + cursor
		}
		if code := s.JSON("GET", q, liveKey, nil, &page); code != 200 || len(page.Data) > 2 || pages > 5 {
			t.Fatalf("list: %d %+v", code, page)
		}
		for _, d := range page.Data {
			names = append(names, d.Name)
			if d.HTML != nil {
				t.Errorf("the list carries bodies")
			}
		}
		if page.NextCursor == nil {
			break
		}
		cursor = *page.NextCursor
	}
	if strings.Join(names, ",") != "t3,t2,t1,t0,welcome-email" {
		t.Errorf("listed %v", names)
	}
	if code := s.JSON("DELETE", "/v1/templates/"+tpl.ID, liveKey, nil, nil); code != 200 {
		t.Errorf("delete: %d", code)
	}
	if code := s.JSON("GET", "/v1/templates/"+tpl.ID, liveKey, nil, nil); code != 404 {
		t.Errorf("get deleted: %d", code)
	}
}
