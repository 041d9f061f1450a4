package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/pigeonpost/pigeonpost/api"
	"github.com/pigeonpost/pigeonpost/pipeline/pipelinetest"
)

// fuzzKey is a test-mode key: nothing a fuzzed send accepts is delivered.
const fuzzKey = "sp_test_fuzzfuzzfuzzfuzzfuzzfuzzfuzz0123"

// FuzzRequests sends fuzzed JSON bodies to every endpoint that decodes one.
// Whatever the body, the answer is never a 5xx (no storage error is
// injected, so a 5xx is a bug), and every error is
// {"error":{"code","message"}} with both set, as application/json.
// The server and its Redis are built once per fuzzing process.
func FuzzRequests(f *testing.F) {
	p := pipelinetest.New(f, pipelinetest.Options{})
	p.Key(f, "acme", fuzzKey)
	h := api.Handler(api.Parts{Pipeline: p.Pipeline, Account: p.Account, Compose: p.Compose, Engagement: p.Engagement,
		Contacts: p.Contacts, Sends: p.Sends, Reputation: p.Reputation, Feedback: p.Feedback, Webhooks: p.Webhooks}, api.Options{MaxBodyBytes: 1 << 20})

	// A template and a domain for the routes that name one.
	var tpl, dom struct {
		ID string `json:"id"`
	}
	mustCreate(f, h, "/v1/templates", `{"name":"t","subject":"Hi {{name}}","html":"<p>{{name}}</p>"}`, &tpl)
	// A domain is made by a live key: a test-mode key may not add one.
	admin := p.Key(f, "acme", "sp_live_fuzzadminfuzzadminfuzzadmin0123")
	d, err := p.Account.AddDomain(context.Background(), admin, "acme.test")
	if err != nil {
		f.Fatal(err)
	}
	dom.ID = d.ID
	endpoints := []struct{ method, path string }{
		{"POST", "/v1/emails"},
		{"POST", "/v1/emails/batch"},
		{"POST", "/v1/templates"},
		{"PATCH", "/v1/templates/" + tpl.ID},
		{"POST", "/v1/api-keys"},
		{"POST", "/v1/domains"},
		{"POST", "/v1/suppressions"},
		{"POST", "/v1/webhooks"},
		{"PATCH", "/v1/tracking/defaults"},
		{"PUT", "/v1/domains/" + dom.ID + "/tracking"},
		{"POST", "/v1/domains/" + dom.ID + "/tracking/set-domain"},
		{"PATCH", "/v1/templates/tpl_nosuchtemplate"},
		{"POST", "/v1/sends"},
		{"POST", "/v1/sends/batch"},
	}

	seeds := map[int][]string{
		0: {
			`{"from":"hello@acme.test","to":"a@x.test","subject":"s","text":"t"}`,
			`{"from":"Acme <hello@acme.test>","to":["a@x.test"],"cc":["b@x.test"],"subject":"Héllo","html":"<p>Hi</p>"}`,
			`{"from":"hello@acme.test","to":["a@x.test"],"subject":"s\r\nBcc: evil@x.test","text":"t"}`,
			`{"from":"hello@acme.test","to":["a@x.test"],"templateId":"` + tpl.ID + `","variables":{"name":{"a":1}}}`,
			`{"from":"hello@acme.test","to":["a@x.test"],"templateId":"` + tpl.ID + `","variables":{"name":"x\r\ny"}}`,
			`{"from":"hello@acme.test","to":["a@x.test"],"templateId":"` + tpl.ID + `","variables":{"name":"v"},"personalizations":{"name":null}}`,
			`{"from":"hello@acme.test","to":["a@x.test"],"templateId":"` + tpl.ID + `","personalizations":{"name":[1],"b":{}}}`,
			`{"from":"hello@acme.test","to":["a@x.test"],"text":"t","personalizations":{"name":"p"}}`,
			`{"from":"hello@acme.test","to":["a@x.test"],"text":"t","attachments":[{"filename":"a.txt","content":"aGk="}]}`,
			`{"from":"hello@acme.test","to":["a@x.test"],"text":"t","attachments":[{"filename":"a","path":"https://x.test/a"}]}`,
			`{"from":"hello@acme.test","to":["a@x.test"],"text":"t","attachments":[{"filename":"a","content":"!!"}]}`,
			`{"from":"hello@acme.test","to":["a@x.test"],"text":"t","scheduledAt":"2099-01-01T00:00:00Z"}`,
			`{"from":"hello@acme.test","to":["a@x.test"],"text":"t","scheduled_at":"in 5 minutes"}`,
			`{"from":"hello@acme.test","to":["a@x.test"],"text":"t","tracking":{"opens":"yes"}}`,
			`{"from":"hello@acme.test","to":["a@x.test"],"text":"t","headers":{"X-A":"1","Bcc":"x@y.test"}}`,
			`{"from":"hello@acme.test","to":["a@x.test"],"text":"t","tags":["a",1],"metadata":{"k":2}}`,
			`{"to":12}`, `[]`, `null`, `"x"`, `{`, ``, `{"from":"a@b.test"} trailing`, "\xff\xfe",
		},
		1: {
			`{"emails":[{"from":"hello@acme.test","to":["a@x.test"],"subject":"s","text":"t"},{"to":1},7,null]}`,
			`{"emails":[]}`, `{"emails":{}}`, `{"emails":[[]]}`,
		},
		2:  {`{"name":"n","html":"<p>{{x}}</p>"}`, `{"name":"n","text":"{{x"}`, `{"name":1}`, `{"name":"n","subject":"a\nb","text":"x"}`},
		3:  {`{"name":"renamed"}`, `{"html":"{{ a | default: 'b' }}"}`, `{"subject":null}`, `{}`},
		4:  {`{"name":"k","mode":"test","permission":"sending","domainId":"` + dom.ID + `"}`, `{"name":"k","mode":"prod"}`, `{"name":""}`},
		5:  {`{"name":"example.test"}`, `{"name":"ACME.TEST."}`, `{"name":"-x-.test"}`, `{"name":["a"]}`},
		6:  {`{"email":"a@x.test","reason":"manual"}`, `{"email":"not an address"}`, `{"email":"a@x.test","reason":7}`},
		7:  {`{"url":"https://hooks.x.test/p","events":["email.delivered"]}`, `{"url":"http://127.0.0.1/","events":["x"]}`, `{"url":"javascript:x"}`},
		8:  {`{"openTracking":true,"clickTracking":false}`, `{"pixelPlacement":"top"}`, `{"webhookOnEveryClick":"yes"}`},
		9:  {`{"openTracking":true,"clickTracking":true,"privacyMode":false}`, `{"clickTracking":null}`},
		10: {`{"trackingDomain":"t.acme.test"}`, `{"trackingDomain":"evil.test"}`},
		12: {
			`{"templateId":"` + tpl.ID + `","to":"a@x.test","from":"hello@acme.test","personalizations":{"name":"N"}}`,
			`{"templateId":"` + tpl.ID + `","to":"ct_nosuchcontact","subject":"{{name}}\r\n"}`,
			`{"templateId":"` + tpl.ID + `","segmentId":"seg_nosuch","to":"a@x.test"}`,
			`{"templateId":"` + tpl.ID + `","to":"a@x.test","personalizations":{"name":{"x":1}},"scheduledAt":"soon"}`,
			`{"templateId":5}`,
		},
		13: {
			`{"templateId":"` + tpl.ID + `","from":"hello@acme.test","recipients":[{"to":"a@x.test","personalizations":{"name":1}},{"to":2},7,null]}`,
			`{"templateId":"` + tpl.ID + `","recipients":[]}`, `{"recipients":{}}`, `{"templateId":"` + tpl.ID + `","recipients":[{"to":"a@x.test"}]}`,
		},
	}
	for i, bodies := range seeds {
		for _, b := range bodies {
			f.Add(byte(i), []byte(b))
			f.Add(byte(i)|0x80, []byte(b)) // with an Idempotency-Key
		}
	}

	f.Fuzz(func(t *testing.T, choice byte, body []byte) {
		ep := endpoints[int(choice&0x7f)%len(endpoints)]
		req := httptest.NewRequest(ep.method, ep.path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+fuzzKey)
		req.Header.Set("Content-Type", "application/json")
		if choice&0x80 != 0 {
			req.Header.Set("Idempotency-Key", fmt.Sprintf("fuzz-%d", choice&0x7f))
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		checkAnswer(t, ep.method+" "+ep.path, body, rec)
	})
}

func mustCreate(tb testing.TB, h http.Handler, path, body string, out any) {
	tb.Helper()
	req := httptest.NewRequest("POST", path, bytes.NewReader([]byte(body)))
	req.Header.Set("Authorization", "Bearer "+fuzzKey)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusCreated && rec.Code != http.StatusOK {
		tb.Fatalf("POST %s: %d %s", path, rec.Code, rec.Body)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
		tb.Fatalf("POST %s: %v", path, err)
	}
}

// checkAnswer holds an answer to the API's error contract.
func checkAnswer(t *testing.T, route string, body []byte, rec *httptest.ResponseRecorder) {
	t.Helper()
	fail := func(why string) {
		t.Fatalf("%s: %s\nbody:   %q\nanswer: %d %q %s", route, why, body, rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	if rec.Code >= 500 {
		fail("a server error for a client's body")
	}
	if rec.Code == http.StatusNoContent {
		return
	}
	if mt, _, err := mime.ParseMediaType(rec.Header().Get("Content-Type")); err != nil || mt != "application/json" {
		fail("the answer is not application/json")
	}
	if rec.Code < 300 {
		if !json.Valid(rec.Body.Bytes()) {
			fail("a success whose body is not JSON")
		}
		return
	}
	var outer map[string]json.RawMessage
	if err := json.Unmarshal(rec.Body.Bytes(), &outer); err != nil || len(outer) != 1 || outer["error"] == nil {
		fail(`an error that is not {"error": {...}}`)
	}
	var inner map[string]any
	if err := json.Unmarshal(outer["error"], &inner); err != nil || len(inner) != 2 {
		fail(`an error that is not {"error": {"code", "message"}}`)
	}
	code, _ := inner["code"].(string)
	msg, _ := inner["message"].(string)
	if code == "" || msg == "" {
		fail("an error without its code or message")
	}
}
