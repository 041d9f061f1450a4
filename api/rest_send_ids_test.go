package api_test

import (
	"bytes"
	"net/http"
	"slices"
	"testing"
)

// POST /v1/emails answers every email it made: ids, one per recipient not
// suppressed in the order of to, cc, then bcc, and id, the first of them.
func TestRESTSendAnswersEveryID(t *testing.T) {
	s := newServer(t)
	at := "@" + rcptDomain
	if code := s.JSON("POST", "/v1/suppressions", liveKey, map[string]string{"email": "gone" + at}, nil); code >= 300 {
		t.Fatalf("suppress: %d", code)
	}
	for _, tc := range []struct {
		name        string
		to, cc, bcc []string
		want        []string // the address of each id, in order
	}{
		{"one recipient", []string{"a" + at}, nil, nil, []string{"a" + at}},
		{"to, cc and bcc", []string{"a" + at, "b" + at}, []string{"c" + at}, []string{"d" + at}, []string{"a" + at, "b" + at, "c" + at, "d" + at}},
		{"a suppressed one skipped", []string{"gone" + at, "b" + at}, []string{"c" + at}, nil, []string{"b" + at, "c" + at}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := map[string]any{"from": s.From, "to": tc.to, "subject": "ids", "text": "x"}
			if tc.cc != nil {
				body["cc"] = tc.cc
			}
			if tc.bcc != nil {
				body["bcc"] = tc.bcc
			}
			r := s.Call("POST", "/v1/emails", liveKey, map[string]string{"Idempotency-Key": "ids-" + tc.name}, body)
			if r.Code != http.StatusOK {
				t.Fatalf("%d %s", r.Code, r.Body)
			}
			var got struct {
				ID  string   `json:"id"`
				IDs []string `json:"ids"`
			}
			r.Decode(t, &got)
			if len(got.IDs) != len(tc.want) || got.ID != got.IDs[0] {
				t.Fatalf("id %q, ids %q: want %d ids, the first being id", got.ID, got.IDs, len(tc.want))
			}
			if distinct := slices.Compact(slices.Sorted(slices.Values(got.IDs))); len(distinct) != len(got.IDs) {
				t.Errorf("ids repeat: %q", got.IDs)
			}
			for i, id := range got.IDs {
				var e struct{ ToAddress string }
				if code := s.JSON("GET", "/v1/emails/"+id, liveKey, nil, &e); code != http.StatusOK || e.ToAddress != tc.want[i] {
					t.Errorf("ids[%d] %s: %d to %q, want %q", i, id, code, e.ToAddress, tc.want[i])
				}
			}
			// A replay answers the same ids.
			again := s.Call("POST", "/v1/emails", liveKey, map[string]string{"Idempotency-Key": "ids-" + tc.name}, body)
			if again.Code != http.StatusOK || !bytes.Equal(again.Body, r.Body) {
				t.Errorf("replay: %d %s, first %s", again.Code, again.Body, r.Body)
			}
		})
	}
}
