package main

import (
	"bytes"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"
)

func TestRESTIdempotencyKey(t *testing.T) {
	s := startStack(t)
	from, to := "hello@"+senderDomain, "user@"+rcptDomain
	body := map[string]any{"from": from, "to": to, "subject": "Order", "html": "<p>1</p>", "tags": []string{"a"}}
	h := map[string]string{"Idempotency-Key": "order-1234"}

	first := s.call("POST", "/v1/emails", liveKey, h, body)
	second := s.call("POST", "/v1/emails", liveKey, h, body)
	if first.Code != 200 || second.Code != 200 || !bytes.Equal(first.Body, second.Body) {
		t.Fatalf("repeat: %d %s / %d %s", first.Code, first.Body, second.Code, second.Body)
	}
	if first.Header.Get("Idempotent-Replayed") != "" || second.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("Idempotent-Replayed: %q then %q", first.Header.Get("Idempotent-Replayed"), second.Header.Get("Idempotent-Replayed"))
	}
	// The same JSON written differently is the same request.
	reordered := []byte(`{ "tags": ["a"], "html": "<p>1</p>", "subject": "Order", "to": "` + to + `", "from": "` + from + `" }`)
	if r := s.call("POST", "/v1/emails", liveKey, h, reordered); r.Code != 200 || !bytes.Equal(r.Body, first.Body) {
		t.Errorf("reordered JSON: %d %s", r.Code, r.Body)
	}
	body2 := map[string]any{"from": from, "to": to, "subject": "Another order", "html": "<p>2</p>"}
	if r := s.call("POST", "/v1/emails", liveKey, h, body2); r.Code != 422 || r.errCode() != "idempotency_key_reused" {
		t.Errorf("same key, other body: %d %s", r.Code, r.Body)
	}
	if r := s.call("POST", "/v1/emails", liveKey, map[string]string{"Idempotency-Key": strings.Repeat("k", 256)}, body); r.Code != 400 {
		t.Errorf("overlong key: %d %s", r.Code, r.Body)
	}
	var sent sendResp
	first.decode(t, &sent)
	s.waitStatus(sent.ID, "delivered")
	if n := len(s.sink.Messages()); n != 1 {
		t.Errorf("%d messages at the sink, want 1", n)
	}

	// Every POST: a template is created once; an API key's answer holds
	// its secret, which is not stored, so its repeat is a 409.
	tpl := map[string]string{"name": "welcome", "html": "<p>Hi {{name}}</p>"}
	th := map[string]string{"Idempotency-Key": "tpl-1"}
	t1 := s.call("POST", "/v1/templates", liveKey, th, tpl)
	t2 := s.call("POST", "/v1/templates", liveKey, th, tpl)
	if t1.Code != 201 || t2.Code != 201 || !bytes.Equal(t1.Body, t2.Body) {
		t.Errorf("template repeat: %d %s / %d %s", t1.Code, t1.Body, t2.Code, t2.Body)
	}
	var list struct{ Data []struct{ ID string } }
	s.api("GET", "/v1/templates", liveKey, nil, &list)
	if len(list.Data) != 1 {
		t.Errorf("%d templates after a repeated create", len(list.Data))
	}
	kh := map[string]string{"Idempotency-Key": "key-1"}
	k1 := s.call("POST", "/v1/api-keys", liveKey, kh, map[string]string{"name": "ci"})
	k2 := s.call("POST", "/v1/api-keys", liveKey, kh, map[string]string{"name": "ci"})
	if k1.Code != 201 || k2.Code != 409 || bytes.Contains(k2.Body, []byte("sp_live_")) {
		t.Errorf("api key repeat: %d / %d %s", k1.Code, k2.Code, k2.Body)
	}
	// A failed POST is not stored: the corrected retry with the same key works.
	bad := s.call("POST", "/v1/suppressions", liveKey, map[string]string{"Idempotency-Key": "sup-1"}, map[string]string{"email": "not an address"})
	good := s.call("POST", "/v1/suppressions", liveKey, map[string]string{"Idempotency-Key": "sup-1"}, map[string]string{"email": "x@" + rcptDomain})
	if bad.Code != 400 || good.Code != 201 {
		t.Errorf("retry after a failure: %d / %d %s", bad.Code, good.Code, good.Body)
	}
}

// Twenty identical requests at once with one key: one email, one id.
func TestRESTIdempotencyConcurrent(t *testing.T) {
	s := startStack(t)
	body := map[string]any{"from": "hello@" + senderDomain, "to": "user@" + rcptDomain, "subject": "once", "text": "t"}
	h := map[string]string{"Idempotency-Key": "concurrent"}
	var wg sync.WaitGroup
	answers := make([]restResp, 20)
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = s.call("POST", "/v1/emails", liveKey, h, body)
		}()
	}
	wg.Wait()
	for i, a := range answers {
		if a.Code != 200 || !bytes.Equal(a.Body, answers[0].Body) {
			t.Fatalf("answer %d: %d %s (first %s)", i, a.Code, a.Body, answers[0].Body)
		}
	}
	var sent sendResp
	answers[0].decode(t, &sent)
	s.waitStatus(sent.ID, "delivered")
	if n := len(s.listAll(liveKey, "")); n != 1 {
		t.Errorf("%d emails stored, want 1", n)
	}
	if n := len(s.sink.Messages()); n != 1 {
		t.Errorf("%d messages at the sink, want 1", n)
	}
}

// A client whose connection dropped after the final dot sends the message
// again on a new connection: same id, and the destination gets one copy.
func TestRESTSMTPDuplicateResend(t *testing.T) {
	s := startStack(t)
	from, to := "hello@"+senderDomain, "user@"+rcptDomain
	msg := "From: " + from + "\r\nTo: " + to + "\r\nSubject: once\r\nMessage-ID: <order-1234@acme.test>\r\n" +
		"Date: Mon, 15 Jun 2026 10:00:00 +0000\r\n\r\nHello.\r\n"
	reply1, err := send(s.smtpClient(true, liveKey), from, []string{to}, msg)
	if err != nil {
		t.Fatal(err)
	}
	reply2, err := send(s.smtpClient(true, liveKey), from, []string{to}, msg)
	if err != nil {
		t.Fatal(err)
	}
	id := queuedID(t, reply1)
	if queuedID(t, reply2) != id {
		t.Fatalf("re-sent message got %q, first %q", reply2, reply1)
	}
	// The same Message-ID to another recipient is another message.
	other := strings.Replace(msg, "To: "+to, "To: other@"+rcptDomain, 1)
	reply3, err := send(s.smtpClient(true, liveKey), from, []string{"other@" + rcptDomain}, other)
	if err != nil || queuedID(t, reply3) == id {
		t.Fatalf("another recipient: %q %v", reply3, err)
	}

	// An Idempotency-Key header is honoured and removed.
	keyed := "From: " + from + "\r\nTo: " + to + "\r\nSubject: keyed\r\nIdempotency-Key: smtp-42\r\n\r\nHello.\r\n"
	r4, err := send(s.smtpClient(true, liveKey), from, []string{to}, keyed)
	if err != nil {
		t.Fatal(err)
	}
	// Rebuilt for the retry with a new Date and Message-ID: the same request still.
	rebuilt := strings.Replace(keyed, "Subject: keyed\r\n", "Subject: keyed\r\nDate: Tue, 16 Jun 2026 10:00:00 +0000\r\nMessage-ID: <retry@acme.test>\r\n", 1)
	r5, err := send(s.smtpClient(true, liveKey), from, []string{to}, rebuilt)
	if err != nil || queuedID(t, r5) != queuedID(t, r4) {
		t.Fatalf("keyed resend: %q %q %v", r4, r5, err)
	}
	_, err = send(s.smtpClient(true, liveKey), from, []string{to}, strings.Replace(keyed, "Hello.", "Changed.", 1))
	wantSMTPError(t, err, 550, smtp.EnhancedCode{5, 5, 0})

	for _, id := range []string{id, queuedID(t, reply3), queuedID(t, r4)} {
		s.waitStatus(id, "delivered")
	}
	msgs := s.sink.Messages()
	if len(msgs) != 3 {
		t.Fatalf("%d messages at the sink, want 3", len(msgs))
	}
	for _, m := range msgs {
		if bytes.Contains(bytes.ToLower(m.Data), []byte("idempotency-key")) {
			t.Errorf("Idempotency-Key header reached the destination:\n%s", m.Data)
		}
	}
	if n := len(s.listAll(liveKey, "")); n != 3 {
		t.Errorf("%d emails stored, want 3", n)
	}
}
