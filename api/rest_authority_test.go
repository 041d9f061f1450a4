package api_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// Issue 18's key findings as a matrix: a key does no more than its mode,
// permission and domain allow, whatever route it calls. A test-mode key
// administers no live key and no domain; a key limited to a domain makes
// only keys limited to it and no domain; a sending key reads and cancels
// only the mail it sent.
func TestKeyAuthority(t *testing.T) {
	s := newServer(t)
	domainID := s.domainID(senderDomain)
	testKey, _ := s.CreateKey(map[string]any{"name": "ci", "mode": "test"})
	_, liveID := s.CreateKey(map[string]any{"name": "other live"})
	limited, _ := s.CreateKey(map[string]any{"name": "acme only", "domainId": domainID})
	sending, _ := s.CreateKey(map[string]any{"name": "app", "permission": "sending"})
	from, to := "hello@"+senderDomain, "user@"+rcptDomain
	send := map[string]any{"from": from, "to": to, "subject": "s", "text": "t"}
	later := map[string]any{"from": from, "to": to, "subject": "s", "text": "t",
		"scheduledAt": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}

	// The full key's email, and the sending key's own.
	var others, own struct{ ID string }
	s.JSON("POST", "/v1/emails", liveKey, later, &others)
	s.JSON("POST", "/v1/emails", sending, later, &own)

	for _, c := range []struct {
		name, key, method, path string
		body                    any
		want                    int
	}{
		{"test key creates a live key", testKey, "POST", "/v1/api-keys", map[string]any{"name": "x", "mode": "live"}, 403},
		{"test key creates a test key", testKey, "POST", "/v1/api-keys", map[string]any{"name": "x", "mode": "test"}, 201},
		{"test key revokes a live key", testKey, "DELETE", "/v1/api-keys/" + liveID, nil, 403},
		{"test key adds a domain", testKey, "POST", "/v1/domains", map[string]any{"name": "new.test"}, 403},
		{"test key verifies a domain", testKey, "POST", "/v1/domains/" + domainID + "/verify", nil, 403},
		{"test key deletes a domain", testKey, "DELETE", "/v1/domains/" + domainID, nil, 403},
		{"limited key creates a key", limited, "POST", "/v1/api-keys", map[string]any{"name": "by limited"}, 201},
		{"limited key creates a key of another domain", limited, "POST", "/v1/api-keys", map[string]any{"name": "y", "domainId": "dom_other"}, 403},
		{"limited key revokes an unlimited key", limited, "DELETE", "/v1/api-keys/" + liveID, nil, 403},
		{"limited key adds a domain", limited, "POST", "/v1/domains", map[string]any{"name": "new.test"}, 403},
		{"sending key reads another key's email", sending, "GET", "/v1/emails/" + others.ID, nil, 404},
		{"sending key reads another key's content", sending, "GET", "/v1/emails/" + others.ID + "/content", nil, 404},
		{"sending key cancels another key's email", sending, "DELETE", "/v1/emails/" + others.ID + "/schedule", nil, 404},
		{"sending key reads its own email", sending, "GET", "/v1/emails/" + own.ID, nil, 200},
		{"sending key cancels its own email", sending, "DELETE", "/v1/emails/" + own.ID + "/schedule", nil, 200},
		{"sending key sends", sending, "POST", "/v1/emails", send, 200},
	} {
		if r := s.Call(c.method, c.path, c.key, nil, c.body); r.Code != c.want {
			t.Errorf("%s: %d %s, want %d", c.name, r.Code, r.Body, c.want)
		}
	}
	// What the limited key made is limited to its domain, as it is.
	var keys struct {
		Data []struct {
			Name     string  `json:"name"`
			DomainID *string `json:"domainId"`
		}
	}
	s.JSON("GET", "/v1/api-keys", liveKey, nil, &keys)
	found := false
	for _, k := range keys.Data {
		if k.Name == "by limited" {
			found = true
			if k.DomainID == nil || *k.DomainID != domainID {
				t.Errorf("the key made by the limited key is limited to %v, want %s", k.DomainID, domainID)
			}
		}
	}
	if !found {
		t.Errorf("no key made by the limited key in %+v", keys.Data)
	}
}

// Idempotency keys are per mode: a live send that reuses a test send's key
// and body is a new send, not the test's receipt (never delivered).
func TestIdempotencyKeyPerMode(t *testing.T) {
	s := newServer(t)
	testKey, _ := s.CreateKey(map[string]any{"name": "ci", "mode": "test"})
	body := map[string]any{"from": "hello@" + senderDomain, "to": "user@" + rcptDomain, "subject": "s", "text": "t"}
	h := map[string]string{"Idempotency-Key": "order-1"}
	first := s.Call("POST", "/v1/emails", testKey, h, body)
	second := s.Call("POST", "/v1/emails", liveKey, h, body)
	if first.Code != http.StatusOK || second.Code != http.StatusOK || string(first.Body) == string(second.Body) ||
		second.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("test then live with one key: %d %s / %d %s", first.Code, first.Body, second.Code, second.Body)
	}
}

// An account's domains and templates are capped: each domain costs an RSA
// key, each template up to a body's size.
func TestAccountCaps(t *testing.T) {
	s := newServer(t)
	var last int
	for i := range 60 {
		last = s.Call("POST", "/v1/domains", liveKey, nil, map[string]any{"name": fmt.Sprintf("d%d.test", i)}).Code
		if last != http.StatusCreated {
			break
		}
	}
	var domains struct{ Data []any }
	s.JSON("GET", "/v1/domains", liveKey, nil, &domains)
	if last != http.StatusConflict || len(domains.Data) != 50 {
		t.Errorf("domains: last answer %d, %d domains; want 409 at 50", last, len(domains.Data))
	}
	created := 0
	for range 1001 {
		if last = s.Call("POST", "/v1/templates", liveKey, nil, map[string]any{"name": "t", "subject": "s", "text": "t"}).Code; last != http.StatusCreated {
			break
		}
		created++
	}
	if last != http.StatusConflict || created != 1000 {
		t.Errorf("templates: %d created, then %d; want 409 after 1000", created, last)
	}
}
