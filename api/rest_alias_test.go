package api_test

import (
	"bytes"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/pigeonpost/pigeonpost/api"
)

// Every /v1 route answers under /api/v1 (Pigeon Perch's paths) exactly as
// under /v1: the alias is one rewrite in api.Handler, so a route added to
// the table has it too.
func TestRESTAPIV1AliasServesEveryRoute(t *testing.T) {
	s := newServer(t)
	param := regexp.MustCompile(`\{[^}]+\}`)
	n := 0
	for _, p := range api.Routes() {
		method, path, _ := strings.Cut(p, " ")
		if !strings.HasPrefix(path, "/v1/") {
			continue
		}
		n++
		path = param.ReplaceAllString(path, "x")
		t.Run(p, func(t *testing.T) {
			for _, key := range []string{"", liveKey} {
				v1 := s.Call(method, path, key, nil, nil)
				alias := s.Call(method, "/api"+path, key, nil, nil)
				if alias.Code != v1.Code || alias.ErrCode() != v1.ErrCode() {
					t.Errorf("key %t: /api%s answers %d %s, /v1 %d %s", key != "", path, alias.Code, alias.Body, v1.Code, v1.Body)
				}
				if strings.HasPrefix(alias.ErrMessage(), "route ") {
					t.Errorf("key %t: /api%s is not routed: %s", key != "", path, alias.Body)
				}
			}
		})
	}
	if n == 0 {
		t.Fatal("no /v1 routes")
	}
}

// Under /api/v1 a request is the same request as under /v1: the email sent
// is read back under either, and an Idempotency-Key used under one is
// replayed under the other.
func TestRESTAPIV1AliasIsTheSameResource(t *testing.T) {
	s := newServer(t)
	body := map[string]any{"from": s.From, "to": s.To, "subject": "alias", "text": "x"}
	h := map[string]string{"Idempotency-Key": "alias-1"}
	first := s.Call("POST", "/api/v1/emails", liveKey, h, body)
	if first.Code != http.StatusOK {
		t.Fatalf("POST /api/v1/emails: %d %s", first.Code, first.Body)
	}
	again := s.Call("POST", "/v1/emails", liveKey, h, body)
	if again.Code != http.StatusOK || !bytes.Equal(again.Body, first.Body) || again.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("the same key under /v1: %d %s (replayed %q), first %s", again.Code, again.Body, again.Header.Get("Idempotent-Replayed"), first.Body)
	}
	var sent struct{ ID string }
	first.Decode(t, &sent)
	for _, prefix := range []string{"/v1", "/api/v1"} {
		var got struct{ ID, Subject string }
		if code := s.JSON("GET", prefix+"/emails/"+sent.ID, liveKey, nil, &got); code != http.StatusOK || got.ID != sent.ID {
			t.Errorf("GET %s/emails/%s: %d %+v", prefix, sent.ID, code, got)
		}
	}
	tpl := map[string]any{"name": "alias", "subject": "Hi {{name}}", "html": "<p>{{name}}</p>"}
	if r := s.Call("POST", "/api/v1/templates", liveKey, nil, tpl); r.Code != http.StatusCreated && r.Code != http.StatusOK {
		t.Errorf("POST /api/v1/templates: %d %s", r.Code, r.Body)
	}
}

// An unknown path is the JSON 404 under both prefixes, naming the path as
// it was asked; only /v1 has the alias.
func TestRESTAPIV1AliasUnknownPaths(t *testing.T) {
	s := newServer(t)
	for _, tc := range []struct{ method, path string }{
		{"GET", "/v1/nope"},
		{"GET", "/api/v1/nope"},
		{"GET", "/api/v1/emails/x/nope"},
		{"PUT", "/api/v1/emails"},
		{"GET", "/api/v1"},
		{"GET", "/api/v1/"},
		{"GET", "/api/healthz"},
		{"GET", "/api/metrics"},
		{"GET", "/api/v2/emails"},
		{"GET", "/api/api/v1/emails"},
	} {
		r := s.Call(tc.method, tc.path, liveKey, nil, nil)
		if r.Code != http.StatusNotFound || r.ErrCode() != "not_found" || !strings.Contains(r.ErrMessage(), tc.method+" "+tc.path) {
			t.Errorf("%s %s: %d %s, want the JSON 404 naming it", tc.method, tc.path, r.Code, r.Body)
		}
	}
	for _, path := range []string{"/healthz", "/metrics"} {
		if r := s.Call("GET", path, "", nil, nil); r.Code != http.StatusOK {
			t.Errorf("GET %s: %d", path, r.Code)
		}
	}
}
