package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// restResp is a raw REST answer.
type restResp struct {
	Code   int
	Header http.Header
	Body   []byte
}

func (r restResp) decode(t *testing.T, out any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, out); err != nil {
		t.Fatalf("%d %s: %v", r.Code, r.Body, err)
	}
}

func (r restResp) errMessage() string {
	var e apiError
	_ = json.Unmarshal(r.Body, &e)
	return e.Error.Message
}

// call is api with request headers and the raw answer; body may be []byte
// (sent as is) or a value to encode.
func (s *stack) call(method, path, key string, headers map[string]string, body any) restResp {
	s.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			s.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, "http://"+s.addrs.HTTP+path, rd)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return restResp{Code: resp.StatusCode, Header: resp.Header, Body: raw}
}

type sendResp struct {
	ID          string     `json:"id"`
	Status      string     `json:"status"`
	Suppressed  []string   `json:"suppressed"`
	ScheduledAt *time.Time `json:"scheduledAt"`
}

// sendOK posts an email and fails the test unless it is accepted.
func (s *stack) sendOK(key string, body map[string]any, headers map[string]string) sendResp {
	s.t.Helper()
	r := s.call("POST", "/v1/emails", key, headers, body)
	if r.Code != http.StatusOK {
		s.t.Fatalf("send: %d %s", r.Code, r.Body)
	}
	var out sendResp
	r.decode(s.t, &out)
	if !strings.HasPrefix(out.ID, "em_") {
		s.t.Fatalf("send: %s", r.Body)
	}
	return out
}

// createKey makes a key in the bootstrap account and returns its secret and id.
func (s *stack) createKey(body map[string]any) (secret, id string) {
	s.t.Helper()
	r := s.call("POST", "/v1/api-keys", liveKey, nil, body)
	if r.Code != http.StatusCreated {
		s.t.Fatalf("create key: %d %s", r.Code, r.Body)
	}
	var k struct{ ID, Key string }
	r.decode(s.t, &k)
	return k.Key, k.ID
}

// countEmails lists every email of the key's account (following cursors).
func (s *stack) listAll(key, query string) []map[string]any {
	s.t.Helper()
	var all []map[string]any
	cursor := ""
	for range 100 {
		q := query
		if cursor != "" {
			q += "&cursor=" + cursor
		}
		var page struct {
			Data       []map[string]any
			NextCursor *string
			HasMore    bool
		}
		r := s.call("GET", "/v1/emails?"+q, key, nil, nil)
		if r.Code != http.StatusOK {
			s.t.Fatalf("list: %d %s", r.Code, r.Body)
		}
		r.decode(s.t, &page)
		all = append(all, page.Data...)
		if page.NextCursor == nil {
			return all
		}
		cursor = *page.NextCursor
	}
	s.t.Fatal("listing did not end")
	return nil
}
