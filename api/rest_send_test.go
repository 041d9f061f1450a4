package api_test

import (
	"encoding/base64"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/pigeonpost/pigeonpost/internal/testkit/resttest"
)

func TestRESTErrors(t *testing.T) {
	s := newServer(t)
	from, to := "hello@"+senderDomain, "user@"+rcptDomain
	cases := []struct {
		name     string
		method   string
		path     string
		key      string
		body     any
		wantCode int
		wantErr  string
	}{
		{"no key", "GET", "/v1/emails/em_x", "", nil, 401, "unauthorized"},
		{"bad key", "GET", "/v1/emails/em_x", "sp_live_nope", nil, 401, "unauthorized"},
		{"unknown email", "GET", "/v1/emails/em_x", liveKey, nil, 404, "not_found"},
		{"wrong type names the field", "POST", "/v1/emails", liveKey, map[string]any{"from": from, "to": to, "subject": 5, "text": "x"}, 400, "validation_error"},
		{"CR/LF in subject is refused", "POST", "/v1/emails", liveKey, map[string]any{"from": from, "to": to, "subject": "hi\r\nBcc: x@evil.test", "text": "x"}, 400, "validation_error"},
		{"CR/LF in a custom header is refused", "POST", "/v1/emails", liveKey, map[string]any{"from": from, "to": to, "subject": "hi", "text": "x", "headers": map[string]string{"X-A": "1\r\nBcc: x@evil.test"}}, 400, "validation_error"},
		{"non X-/List- header is refused", "POST", "/v1/emails", liveKey, map[string]any{"from": from, "to": to, "subject": "hi", "text": "x", "headers": map[string]string{"Bcc": "x@evil.test"}}, 400, "validation_error"},
		{"unverified from", "POST", "/v1/emails", liveKey, map[string]any{"from": "a@unverified.test", "to": to, "subject": "hi", "text": "x"}, 403, "domain_not_verified"},
		{"bad recipient", "POST", "/v1/emails", liveKey, map[string]any{"from": from, "to": "not an address", "subject": "hi", "text": "x"}, 400, "invalid_address"},
		{"no body", "POST", "/v1/emails", liveKey, map[string]any{"from": from, "to": to, "subject": "hi"}, 400, "validation_error"},
		{"unknown route", "GET", "/v1/nothing", liveKey, nil, 404, "not_found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var e resttest.APIError
			code := s.JSON(c.method, c.path, c.key, c.body, &e)
			if code != c.wantCode || e.Error.Code != c.wantErr || e.Error.Message == "" {
				t.Errorf("got %d %+v, want %d %s", code, e, c.wantCode, c.wantErr)
			}
		})
	}
	var e resttest.APIError
	s.JSON("POST", "/v1/emails", liveKey, map[string]any{"from": from, "to": to, "subject": 5, "text": "x"}, &e)
	if !strings.Contains(e.Error.Message, "subject") {
		t.Errorf("type error does not name the field: %q", e.Error.Message)
	}
	if n := len(s.ListAll(liveKey, "")); n != 0 {
		t.Errorf("%d refused messages were stored", n)
	}
}

// Size limits of tags and metadata are a clear 400 naming what is over.
func TestRESTTagsAndMetadataLimits(t *testing.T) {
	s := newServer(t)
	from := "hello@" + senderDomain
	big := map[string]string{}
	for i := range 51 {
		big[strings.Repeat("k", i%40+1)+string(rune('a'+i%26))+string(rune('a'+i/26))] = "v"
	}
	for name, body := range map[string]map[string]any{
		"metadata keys":      {"metadata": big},
		"metadata value":     {"metadata": map[string]string{"k": strings.Repeat("v", 501)}},
		"metadata not a map": {"metadata": []string{"x"}},
		"metadata number":    {"metadata": map[string]any{"k": 5}},
		"tags":               {"tags": make([]string, 21)},
	} {
		body["from"], body["to"], body["subject"], body["text"] = from, "x@"+rcptDomain, "s", "t"
		r := s.Call("POST", "/v1/emails", liveKey, nil, body)
		if r.Code != 400 || r.ErrCode() != "validation_error" || !strings.Contains(r.ErrMessage(), strings.Fields(name)[0]) {
			t.Errorf("%s: %d %s", name, r.Code, r.Body)
		}
	}
}

// A bad attachment is a 400 naming it; nothing is stored.
func TestRESTAttachmentValidation(t *testing.T) {
	s := newServer(t)
	from, to := "hello@"+senderDomain, "user@"+rcptDomain
	for name, c := range map[string]struct {
		att  []map[string]string
		want string
	}{
		"7 MB + 1":                     {[]map[string]string{{"filename": "a.bin", "content": base64.StdEncoding.EncodeToString(make([]byte, 7<<20+1))}}, "attachments[0]"},
		"bad base64":                   {[]map[string]string{{"filename": "a.txt", "content": "eA=="}, {"filename": "b.txt", "content": "@@@"}}, "attachments[1].content"},
		"no filename":                  {[]map[string]string{{"content": "eA=="}}, "attachments[0].filename"},
		"both":                         {[]map[string]string{{"filename": "a", "content": "eA==", "path": "https://files.test/a"}}, "not both"},
		"neither":                      {[]map[string]string{{"filename": "a"}}, "attachments[0]"},
		"bad type":                     {[]map[string]string{{"filename": "a", "content": "eA==", "contentType": "not a type"}}, "attachments[0].contentType"},
		"path with dirs":               {[]map[string]string{{"filename": "../../etc/passwd", "content": "eA=="}}, "attachments[0].filename"},
		"10,000 files":                 {slices.Repeat([]map[string]string{{"filename": "a.txt", "content": "eA=="}}, 10_000), "at most 100 attachments"},
		"bad base64 in a wrapped line": {[]map[string]string{{"filename": "a.txt", "content": "eHh4\r\neH@4\r\n"}}, "attachments[0].content"},
	} {
		r := s.Call("POST", "/v1/emails", liveKey, nil, map[string]any{"from": from, "to": to, "subject": "s", "text": "t", "attachments": c.att})
		if r.Code != 400 || !strings.Contains(r.ErrMessage(), c.want) {
			t.Errorf("%s: %d %s", name, r.Code, r.Body)
		}
	}
	if n := len(s.ListAll(liveKey, "")); n != 0 {
		t.Errorf("%d refused messages were stored", n)
	}
}

// 25 MB of attachments in all is accepted; one byte more is a 400. The
// request (base64) stays under http.max_body_bytes (35 MiB, the default).
func TestRESTAttachmentsTotalLimit(t *testing.T) {
	s := newServer(t)
	testKey, _ := s.CreateKey(map[string]any{"name": "t", "mode": "test"})
	files := func(extra int) []map[string]string {
		sizes := []int{7 << 20, 7 << 20, 7 << 20, 4<<20 + extra}
		var out []map[string]string
		for i, n := range sizes {
			out = append(out, map[string]string{"filename": string(rune('a'+i)) + ".bin", "content": base64.StdEncoding.EncodeToString(make([]byte, n))})
		}
		return out
	}
	body := map[string]any{"from": "hello@" + senderDomain, "to": "user@" + rcptDomain, "subject": "big", "text": "t"}
	body["attachments"] = files(0)
	if r := s.Call("POST", "/v1/emails", testKey, nil, body); r.Code != http.StatusOK {
		t.Fatalf("25 MB: %d %s", r.Code, r.Body)
	}
	body["attachments"] = files(1)
	r := s.Call("POST", "/v1/emails", testKey, nil, body)
	if r.Code != 400 || !strings.Contains(r.ErrMessage(), "25 MB") {
		t.Fatalf("25 MB + 1: %d %s", r.Code, r.Body)
	}
}

// CR or LF in any field of a send is refused with a 400 naming the field,
// and nothing is stored, so nothing can reach a destination (no header injection).
func TestRESTHeaderInjection(t *testing.T) {
	s := newServer(t)
	from, to := "hello@"+senderDomain, "user@"+rcptDomain
	var tpl struct{ ID string }
	if code := s.JSON("POST", "/v1/templates", liveKey, map[string]string{"name": "t", "subject": "Hi {{name}}", "text": "x"}, &tpl); code != 201 {
		t.Fatalf("template: %d", code)
	}
	inj := "x\r\nBcc: v@victim.test"
	// Each case: the fields to set (nil removes one) and what the error
	// message names.
	cases := map[string]struct {
		fields map[string]any
		want   string
	}{
		"from display name": {map[string]any{"from": "Acme\r\nBcc: v@victim.test <" + from + ">"}, "from"},
		"from encoded name": {map[string]any{"from": "=?utf-8?q?Acme=0D=0ABcc:_v@victim.test?= <" + from + ">"}, "from"},
		"from address":      {map[string]any{"from": from + "\r\nBcc: v@victim.test"}, "from"},
		"to":                {map[string]any{"to": to + "\r\nBcc: v@victim.test"}, "to"},
		"to list":           {map[string]any{"to": []string{to, "a@" + rcptDomain + "\nBcc: v@victim.test"}}, "to"},
		"cc":                {map[string]any{"cc": "c@" + rcptDomain + "\r\nBcc: v@victim.test"}, "cc"},
		"bcc":               {map[string]any{"bcc": "d@" + rcptDomain + "\r\nX-Evil: 1"}, "bcc"},
		"replyTo":           {map[string]any{"replyTo": "r@" + senderDomain + "\nBcc: v@victim.test"}, "replyTo"},
		"subject":           {map[string]any{"subject": "Hi" + "\r\nBcc: v@victim.test"}, "subject"},
		"subject LF":        {map[string]any{"subject": "Hi\nBcc: v@victim.test"}, "subject"},
		"subject NUL":       {map[string]any{"subject": "Hi\x00there"}, "subject"},
		"subject U+2028":    {map[string]any{"subject": "Hi\u2028Bcc: v@victim.test"}, "subject"},
		"header value":      {map[string]any{"headers": map[string]string{"X-A": inj}}, `headers: the value of "X-A"`},
		"header value NUL":  {map[string]any{"headers": map[string]string{"X-A": "a\x00b"}}, `headers: the value of "X-A"`},
		"header U+2028":     {map[string]any{"headers": map[string]string{"X-A": "a\u2028b"}}, `headers: the value of "X-A"`},
		"header name":       {map[string]any{"headers": map[string]string{"X-A:\r\nBcc": "v@victim.test"}}, `headers: "X-A:\r\nBcc"`},
		"header Bcc":        {map[string]any{"headers": map[string]string{"Bcc": "v@victim.test"}}, `headers: "Bcc"`},
		"header Received":   {map[string]any{"headers": map[string]string{"Received": "from evil"}}, `headers: "Received"`},
		"header DKIM":       {map[string]any{"headers": map[string]string{"DKIM-Signature": "v=1"}}, `headers: "DKIM-Signature"`},
		"header type":       {map[string]any{"headers": map[string]string{"Content-Type": "text/html"}}, `headers: "Content-Type"`},
		"header tracking":   {map[string]any{"headers": map[string]string{"X-SP-Track-Opens": "true"}}, `headers: "X-SP-Track-Opens"`},
		"tag":               {map[string]any{"tags": []string{inj}}, "tags"},
		"metadata value":    {map[string]any{"metadata": map[string]string{"k": inj}}, "metadata"},
		"metadata key":      {map[string]any{"metadata": map[string]string{inj: "v"}}, "metadata"},
		"filename":          {map[string]any{"attachments": []map[string]string{{"filename": "a.txt\r\nBcc: v@victim.test", "content": "eA=="}}}, "attachments[0].filename"},
		"contentType":       {map[string]any{"attachments": []map[string]string{{"filename": "a.txt", "content": "eA==", "contentType": "text/plain\r\nBcc: v@victim.test"}}}, "attachments[0].contentType"},
		"contentId":         {map[string]any{"attachments": []map[string]string{{"filename": "a.txt", "content": "eA==", "contentId": "x\r\nBcc: v@victim.test"}}}, "attachments[0].contentId"},
		"path":              {map[string]any{"attachments": []map[string]string{{"filename": "a.txt", "path": "https://files.test/\r\nBcc: v@victim.test"}}}, "attachments[0].path"},
		"templateId":        {map[string]any{"templateId": tpl.ID + "\r\nBcc: v@victim.test", "text": nil}, "templateId"},
		"template variable": {map[string]any{"templateId": tpl.ID, "variables": map[string]string{"name": inj}, "text": nil, "subject": nil}, "variables.name"},
		"scheduled_at":      {map[string]any{"scheduled_at": "2030-01-01T00:00:00Z\r\nBcc: v@victim.test"}, "scheduled"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			body := map[string]any{"from": from, "to": to, "subject": "s", "text": "t"}
			for k, v := range c.fields {
				if v == nil {
					delete(body, k)
				} else {
					body[k] = v
				}
			}
			r := s.Call("POST", "/v1/emails", liveKey, nil, body)
			if r.Code != 400 || !strings.Contains(r.ErrMessage(), c.want) {
				t.Fatalf("%d %s, want a 400 naming %s", r.Code, r.Body, c.want)
			}
		})
	}
	if n := len(s.ListAll(liveKey, "")); n != 0 {
		t.Errorf("%d messages were stored", n)
	}
}
