package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/testkit/resttest"
)

// A key is listed by prefix and last four, a sending key cannot manage the
// account, and a revoked key is refused at once.
func TestAPIKeysPermissionsAndRevocation(t *testing.T) {
	s := newServer(t)
	var created struct {
		ID, Key, Mode, Permission string
	}
	if code := s.JSON("POST", "/v1/api-keys", liveKey, map[string]string{"name": "ci", "mode": "live", "permission": "sending"}, &created); code != http.StatusCreated {
		t.Fatalf("create: %d", code)
	}
	if !strings.HasPrefix(created.Key, "sp_live_") || created.Permission != "sending" {
		t.Fatalf("created %+v", created)
	}

	var list struct {
		Data []struct{ ID, Prefix, LastFour string }
	}
	s.JSON("GET", "/v1/api-keys", liveKey, nil, &list)
	found := false
	for _, k := range list.Data {
		if k.ID == created.ID {
			found = true
			if k.LastFour != created.Key[len(created.Key)-4:] || !strings.HasPrefix(created.Key, k.Prefix) {
				t.Errorf("listed %+v for %s", k, created.Key)
			}
		}
	}
	if !found {
		t.Fatalf("new key not listed: %+v", list)
	}

	var e resttest.APIError
	if code := s.JSON("GET", "/v1/domains", created.Key, nil, &e); code != http.StatusForbidden || !strings.Contains(e.Error.Message, "full") {
		t.Errorf("sending key on /v1/domains: %d %+v", code, e)
	}
	if code := s.JSON("GET", "/v1/emails", created.Key, nil, nil); code != http.StatusOK {
		t.Errorf("sending key before revocation: %d", code)
	}
	if code := s.JSON("DELETE", "/v1/api-keys/"+created.ID, liveKey, nil, nil); code != http.StatusOK {
		t.Fatalf("delete: %d", code)
	}
	if code := s.JSON("GET", "/v1/emails", created.Key, nil, nil); code != http.StatusUnauthorized {
		t.Errorf("revoked key on REST: %d", code)
	}
}

// A key limited to one domain sends only from it.
func TestRESTKeyDomainRestriction(t *testing.T) {
	s := newServer(t)
	s.VerifyDomain(s.dns, "other.test")
	acmeID := s.domainID(senderDomain)
	if r := s.Call("POST", "/v1/api-keys", liveKey, nil, map[string]string{"name": "x", "domainId": "dom_nope"}); r.Code != 400 ||
		!strings.Contains(r.ErrMessage(), "domainId") {
		t.Errorf("unknown domain: %d %s", r.Code, r.Body)
	}
	key, keyID := s.CreateKey(map[string]any{"name": "acme only", "permission": "sending", "domainId": acmeID})
	var keys struct {
		Data []struct{ ID, DomainID string }
	}
	s.JSON("GET", "/v1/api-keys", liveKey, nil, &keys)
	for _, k := range keys.Data {
		if k.ID == keyID && k.DomainID != acmeID {
			t.Errorf("listed key %+v", k)
		}
	}
	to := "user@" + rcptDomain
	s.SendOK(key, map[string]any{"from": "hello@" + senderDomain, "to": to, "subject": "s", "text": "t"}, nil)
	r := s.Call("POST", "/v1/emails", key, nil, map[string]any{"from": "hello@other.test", "to": to, "subject": "s", "text": "t"})
	if r.Code != http.StatusForbidden || r.ErrCode() != "domain_not_allowed" {
		t.Errorf("other domain: %d %s", r.Code, r.Body)
	}
}

// A sending key may send and read emails, nothing else: 403 naming "full".
func TestRESTSendingKeyPermissions(t *testing.T) {
	s := newServer(t)
	key, _ := s.CreateKey(map[string]any{"name": "app", "permission": "sending"})
	from, to := "hello@"+senderDomain, "user@"+rcptDomain
	sent := s.SendOK(key, map[string]any{"from": from, "to": to, "subject": "s", "text": "t"}, nil)
	sched := s.SendOK(key, map[string]any{"from": from, "to": to, "subject": "s", "text": "t",
		"scheduled_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}, nil)
	allowed := []struct{ method, path string }{
		{"GET", "/v1/emails"}, {"GET", "/v1/emails/" + sent.ID}, {"GET", "/v1/emails/" + sent.ID + "/events"},
		{"GET", "/v1/emails/" + sent.ID + "/content"}, {"DELETE", "/v1/emails/" + sched.ID + "/schedule"},
	}
	for _, a := range allowed {
		if r := s.Call(a.method, a.path, key, nil, nil); r.Code != 200 {
			t.Errorf("%s %s: %d %s", a.method, a.path, r.Code, r.Body)
		}
	}
	if r := s.Call("POST", "/v1/emails/batch", key, nil, map[string]any{"emails": []map[string]any{{"from": from, "to": to, "subject": "s", "text": "t"}}}); r.Code != 200 {
		t.Errorf("batch: %d %s", r.Code, r.Body)
	}
	forbidden := []struct {
		method, path string
		body         any
	}{
		{"GET", "/v1/templates", nil}, {"POST", "/v1/templates", map[string]string{"name": "x", "text": "y"}},
		{"GET", "/v1/templates/tpl_x", nil}, {"PATCH", "/v1/templates/tpl_x", map[string]string{"name": "y"}},
		{"DELETE", "/v1/templates/tpl_x", nil},
		{"GET", "/v1/suppressions", nil}, {"POST", "/v1/suppressions", map[string]string{"email": "a@b.test"}},
		{"DELETE", "/v1/suppressions/a@b.test", nil},
		{"GET", "/v1/domains", nil}, {"POST", "/v1/domains", map[string]string{"name": "x.test"}},
		{"GET", "/v1/api-keys", nil}, {"POST", "/v1/api-keys", map[string]string{"name": "x"}},
	}
	for _, f := range forbidden {
		r := s.Call(f.method, f.path, key, nil, f.body)
		if r.Code != http.StatusForbidden || r.ErrCode() != "forbidden" || !strings.Contains(r.ErrMessage(), `"full"`) {
			t.Errorf("%s %s: %d %s", f.method, f.path, r.Code, r.Body)
		}
	}
	// A template can be used by a sending key, though not managed.
	var tpl struct{ ID string }
	s.JSON("POST", "/v1/templates", liveKey, map[string]string{"name": "t", "subject": "Hi {{n}}", "text": "Hello {{n}}"}, &tpl)
	s.SendOK(key, map[string]any{"from": from, "to": to, "templateId": tpl.ID, "variables": map[string]string{"n": "x"}}, nil)
}
