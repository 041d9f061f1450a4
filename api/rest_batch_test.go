package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

type batchResp struct {
	Data []struct {
		Index  int    `json:"index"`
		Status string `json:"status"`
		ID     string `json:"id"`
		Error  *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	} `json:"data"`
	Summary struct{ Total, Sent, Failed int } `json:"summary"`
}

func TestRESTBatch(t *testing.T) {
	s := newServer(t)
	from := "hello@" + senderDomain
	emails := []map[string]any{
		{"from": from, "to": "user1@" + rcptDomain, "subject": "Hello 1", "html": "<p>Hi!</p>"},
		{"from": from, "to": "not an address", "subject": "Hello 2", "html": "<p>Hi!</p>"},
		{"from": from, "to": "user3@" + rcptDomain, "subject": 5, "html": "<p>Hi!</p>"},
		{"from": from, "to": "user4@" + rcptDomain, "subject": "Hello 4", "html": "<p>Hi!</p>"},
	}
	r := s.Call("POST", "/v1/emails/batch", liveKey, nil, map[string]any{"emails": emails})
	if r.Code != http.StatusOK {
		t.Fatalf("%d %s", r.Code, r.Body)
	}
	var b batchResp
	r.Decode(t, &b)
	if b.Summary.Total != 4 || b.Summary.Sent != 2 || b.Summary.Failed != 2 || len(b.Data) != 4 {
		t.Fatalf("%s", r.Body)
	}
	for i, it := range b.Data {
		ok := i == 0 || i == 3
		if it.Index != i || (ok && (it.Status != "sent" || !strings.HasPrefix(it.ID, "em_") || it.Error != nil)) ||
			(!ok && (it.Status != "failed" || it.ID != "" || it.Error == nil || it.Error.Code == "")) {
			t.Errorf("item %d: %+v", i, it)
		}
	}
	if b.Data[2].Error == nil || !strings.Contains(b.Data[2].Error.Message, "emails[2].subject") {
		t.Errorf("type error does not name the field: %+v", b.Data[2].Error)
	}
	// The documented shape exactly: a success has no "error", a failure no "id".
	var raw struct{ Data []map[string]json.RawMessage }
	r.Decode(t, &raw)
	if _, has := raw.Data[0]["error"]; has {
		t.Errorf("success item carries error: %s", r.Body)
	}
	if _, has := raw.Data[1]["id"]; has {
		t.Errorf("failed item carries id: %s", r.Body)
	}
	// Each accepted item is an email of its own.
	for _, i := range []int{0, 3} {
		var e struct{ ID, ToAddress string }
		if code := s.JSON("GET", "/v1/emails/"+b.Data[i].ID, liveKey, nil, &e); code != http.StatusOK || e.ID != b.Data[i].ID ||
			e.ToAddress != fmt.Sprintf("user%d@%s", i+1, rcptDomain) {
			t.Errorf("item %d stored as %d %+v", i, code, e)
		}
	}

	many := make([]map[string]any, 101)
	for i := range many {
		many[i] = map[string]any{"from": from, "to": fmt.Sprintf("u%d@%s", i, rcptDomain), "subject": "s", "text": "t"}
	}
	if r := s.Call("POST", "/v1/emails/batch", liveKey, nil, map[string]any{"emails": many}); r.Code != 400 || !strings.Contains(r.ErrMessage(), "100") {
		t.Errorf("101 emails: %d %s", r.Code, r.Body)
	}
	if r := s.Call("POST", "/v1/emails/batch", liveKey, nil, map[string]any{"emails": []any{}}); r.Code != 400 {
		t.Errorf("no emails: %d %s", r.Code, r.Body)
	}
	r = s.Call("POST", "/v1/emails/batch", liveKey, nil, map[string]any{"emails": many[:100]})
	r.Decode(t, &b)
	if r.Code != 200 || b.Summary.Total != 100 || b.Summary.Sent != 100 {
		t.Errorf("100 emails: %d %+v", r.Code, b.Summary)
	}

	// Idempotency-Key on a batch: the whole answer is replayed, nothing re-sent.
	h := map[string]string{"Idempotency-Key": "batch-1"}
	two := many[:2]
	a1 := s.Call("POST", "/v1/emails/batch", liveKey, h, map[string]any{"emails": two})
	a2 := s.Call("POST", "/v1/emails/batch", liveKey, h, map[string]any{"emails": two})
	if a1.Code != 200 || string(a1.Body) != string(a2.Body) || a2.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("batch repeat: %s / %s", a1.Body, a2.Body)
	}
	if n := len(s.ListAll(liveKey, "")); n != 2+100+2 {
		t.Errorf("%d emails stored, want 104", n)
	}
}
