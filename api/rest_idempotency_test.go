package api_test

import (
	"bytes"
	"strings"
	"sync"
	"testing"

	"github.com/pigeonpost/pigeonpost/internal/testkit/resttest"
)

func TestRESTIdempotencyKey(t *testing.T) {
	s := newServer(t)
	from, to := "hello@"+senderDomain, "user@"+rcptDomain
	body := map[string]any{"from": from, "to": to, "subject": "Order", "html": "<p>1</p>", "tags": []string{"a"}}
	h := map[string]string{"Idempotency-Key": "order-1234"}

	first := s.Call("POST", "/v1/emails", liveKey, h, body)
	second := s.Call("POST", "/v1/emails", liveKey, h, body)
	if first.Code != 200 || second.Code != 200 || !bytes.Equal(first.Body, second.Body) {
		t.Fatalf("repeat: %d %s / %d %s", first.Code, first.Body, second.Code, second.Body)
	}
	if first.Header.Get("Idempotent-Replayed") != "" || second.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("Idempotent-Replayed: %q then %q", first.Header.Get("Idempotent-Replayed"), second.Header.Get("Idempotent-Replayed"))
	}
	// The same JSON written differently is the same request.
	reordered := []byte(`{ "tags": ["a"], "html": "<p>1</p>", "subject": "Order", "to": "` + to + `", "from": "` + from + `" }`)
	if r := s.Call("POST", "/v1/emails", liveKey, h, reordered); r.Code != 200 || !bytes.Equal(r.Body, first.Body) {
		t.Errorf("reordered JSON: %d %s", r.Code, r.Body)
	}
	body2 := map[string]any{"from": from, "to": to, "subject": "Another order", "html": "<p>2</p>"}
	if r := s.Call("POST", "/v1/emails", liveKey, h, body2); r.Code != 422 || r.ErrCode() != "idempotency_key_reused" {
		t.Errorf("same key, other body: %d %s", r.Code, r.Body)
	}
	if r := s.Call("POST", "/v1/emails", liveKey, map[string]string{"Idempotency-Key": strings.Repeat("k", 256)}, body); r.Code != 400 {
		t.Errorf("overlong key: %d %s", r.Code, r.Body)
	}
	var sent resttest.Sent
	first.Decode(t, &sent)
	if list := s.ListAll(liveKey, ""); len(list) != 1 || list[0]["id"] != sent.ID {
		t.Errorf("%d emails stored, want 1 (%s)", len(list), sent.ID)
	}

	// Every POST: a template is created once; an API key's answer holds
	// its secret, which is not stored, so its repeat is a 409.
	tpl := map[string]string{"name": "welcome", "html": "<p>Hi {{name}}</p>"}
	th := map[string]string{"Idempotency-Key": "tpl-1"}
	t1 := s.Call("POST", "/v1/templates", liveKey, th, tpl)
	t2 := s.Call("POST", "/v1/templates", liveKey, th, tpl)
	if t1.Code != 201 || t2.Code != 201 || !bytes.Equal(t1.Body, t2.Body) {
		t.Errorf("template repeat: %d %s / %d %s", t1.Code, t1.Body, t2.Code, t2.Body)
	}
	var list struct{ Data []struct{ ID string } }
	s.JSON("GET", "/v1/templates", liveKey, nil, &list)
	if len(list.Data) != 1 {
		t.Errorf("%d templates after a repeated create", len(list.Data))
	}
	kh := map[string]string{"Idempotency-Key": "key-1"}
	k1 := s.Call("POST", "/v1/api-keys", liveKey, kh, map[string]string{"name": "ci"})
	k2 := s.Call("POST", "/v1/api-keys", liveKey, kh, map[string]string{"name": "ci"})
	if k1.Code != 201 || k2.Code != 409 || bytes.Contains(k2.Body, []byte("sp_live_")) {
		t.Errorf("api key repeat: %d / %d %s", k1.Code, k2.Code, k2.Body)
	}
	// A failed POST is not stored: the corrected retry with the same key works.
	bad := s.Call("POST", "/v1/suppressions", liveKey, map[string]string{"Idempotency-Key": "sup-1"}, map[string]string{"email": "not an address"})
	good := s.Call("POST", "/v1/suppressions", liveKey, map[string]string{"Idempotency-Key": "sup-1"}, map[string]string{"email": "x@" + rcptDomain})
	if bad.Code != 400 || good.Code != 201 {
		t.Errorf("retry after a failure: %d / %d %s", bad.Code, good.Code, good.Body)
	}
}

// Twenty identical requests at once with one key: one email, one id.
func TestRESTIdempotencyConcurrent(t *testing.T) {
	s := newServer(t)
	body := map[string]any{"from": "hello@" + senderDomain, "to": "user@" + rcptDomain, "subject": "once", "text": "t"}
	h := map[string]string{"Idempotency-Key": "concurrent"}
	var wg sync.WaitGroup
	answers := make([]resttest.Response, 20)
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = s.Call("POST", "/v1/emails", liveKey, h, body)
		}()
	}
	wg.Wait()
	for i, a := range answers {
		if a.Code != 200 || !bytes.Equal(a.Body, answers[0].Body) {
			t.Fatalf("answer %d: %d %s (first %s)", i, a.Code, a.Body, answers[0].Body)
		}
	}
	var sent resttest.Sent
	answers[0].Decode(t, &sent)
	if list := s.ListAll(liveKey, ""); len(list) != 1 || list[0]["id"] != sent.ID {
		t.Errorf("%d emails stored, want 1 (%s)", len(list), sent.ID)
	}
}

// An Idempotency-Key is the account's own (catalogue S17): another account
// sending the same key and body gets its own resource, never the first
// account's cached answer.
func TestIdempotencyKeyPerAccount(t *testing.T) {
	s := newServer(t)
	const otherKey = "sp_live_integrationtestkey000000000002"
	s.p.Key(t, "other", otherKey)
	h := map[string]string{"Idempotency-Key": "shared-1"}
	tpl := map[string]string{"name": "welcome", "html": "<p>Hi {{name}}</p>"}
	mine := s.Call("POST", "/v1/templates", liveKey, h, tpl)
	theirs := s.Call("POST", "/v1/templates", otherKey, h, tpl)
	if mine.Code != 201 || theirs.Code != 201 || bytes.Equal(mine.Body, theirs.Body) || theirs.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("same key in two accounts: %d %s / %d %s (replayed %q)", mine.Code, mine.Body, theirs.Code, theirs.Body, theirs.Header.Get("Idempotent-Replayed"))
	}
	for _, key := range []string{liveKey, otherKey} {
		var list struct{ Data []struct{ ID string } }
		s.JSON("GET", "/v1/templates", key, nil, &list)
		if len(list.Data) != 1 {
			t.Errorf("%d templates in the account of %s…, want 1", len(list.Data), key[:12])
		}
	}
}
