// Package resttest is a client of pigeonpost's REST API for tests: raw
// calls (status, header, body and the JSON error's code and message), JSON
// calls, and the few requests many tests make (send, create a key, list,
// verify a domain, create a webhook, open and click tracking).
//
// It serves both api's contract tests (an httptest server over the
// pipeline's parts) and cmd/pigeonpost's whole-stack tests: they differ
// only in the base URL, the key and the addresses they send from and to.
package resttest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
)

// Client calls the REST API at URL. Any transport failure fails the test;
// answers, errors included, are the caller's to check.
type Client struct {
	t testing.TB
	// URL is the base of every path, e.g. "http://127.0.0.1:8080".
	URL string
	// Key is the (bootstrap) key of the helpers that take none: keys,
	// domains, webhooks, content, tracking and analytics.
	Key string
	// From and To address the emails SendTracked sends.
	From, To string
}

// New returns a client of the API at url whose helpers use key.
func New(t testing.TB, url, key string) *Client {
	return &Client{t: t, URL: url, Key: key}
}

// APIError is the JSON body of an error answer.
type APIError struct {
	Error struct{ Code, Message string }
}

// Response is a raw REST answer.
type Response struct {
	Code   int
	Header http.Header
	Body   []byte
}

// Decode unmarshals the body into out, failing the test if it is not JSON.
func (r Response) Decode(t testing.TB, out any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, out); err != nil {
		t.Fatalf("%d %s: %v", r.Code, r.Body, err)
	}
}

// ErrCode is the JSON error code of an error answer ("" for a success).
func (r Response) ErrCode() string {
	var e APIError
	_ = json.Unmarshal(r.Body, &e)
	return e.Error.Code
}

// ErrMessage is the JSON error message of an error answer.
func (r Response) ErrMessage() string {
	var e APIError
	_ = json.Unmarshal(r.Body, &e)
	return e.Error.Message
}

// Call sends a request with key (none if "") and headers and returns the
// raw answer. body may be nil, []byte (sent as is), an io.Reader (sent
// without a known length: chunked) or a value to encode as JSON.
func (c *Client) Call(method, path, key string, headers map[string]string, body any) Response {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case io.Reader:
		rd = b
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, c.URL+path, rd)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return Response{Code: resp.StatusCode, Header: resp.Header, Body: raw}
}

// JSON calls the API with key, decodes the JSON answer into out (unless
// nil) and returns the status.
func (c *Client) JSON(method, path, key string, body any, out any) int {
	c.t.Helper()
	r := c.Call(method, path, key, nil, body)
	if out != nil {
		if err := json.Unmarshal(r.Body, out); err != nil {
			c.t.Fatalf("%s %s: %d %s: %v", method, path, r.Code, r.Body, err)
		}
	}
	return r.Code
}

// getOK GETs path with Key into out and fails the test, saying what, unless
// the answer is 200.
func (c *Client) getOK(what, path string, out any) {
	c.t.Helper()
	if code := c.JSON("GET", path, c.Key, nil, out); code != http.StatusOK {
		c.t.Fatalf("%s: %d", what, code)
	}
}

// Sent is the answer to POST /v1/emails.
type Sent struct {
	ID          string     `json:"id"`
	Status      string     `json:"status"`
	Suppressed  []string   `json:"suppressed"`
	ScheduledAt *time.Time `json:"scheduledAt"`
}

// SendOK posts an email and fails the test unless it is accepted.
func (c *Client) SendOK(key string, body map[string]any, headers map[string]string) Sent {
	c.t.Helper()
	r := c.Call("POST", "/v1/emails", key, headers, body)
	if r.Code != http.StatusOK {
		c.t.Fatalf("send: %d %s", r.Code, r.Body)
	}
	var out Sent
	r.Decode(c.t, &out)
	if !strings.HasPrefix(out.ID, "em_") {
		c.t.Fatalf("send: %s", r.Body)
	}
	return out
}

// ScheduledEmail is what GET /v1/emails/:id says of a scheduled email.
type ScheduledEmail struct {
	ID          string     `json:"id"`
	Status      string     `json:"status"`
	ScheduledAt *time.Time `json:"scheduledAt"`
	SentAt      *time.Time `json:"sentAt"`
	CancelledAt *time.Time `json:"cancelledAt"`
}

// CreateKey makes a key in Key's account and returns its secret and id.
func (c *Client) CreateKey(body map[string]any) (secret, id string) {
	c.t.Helper()
	r := c.Call("POST", "/v1/api-keys", c.Key, nil, body)
	if r.Code != http.StatusCreated {
		c.t.Fatalf("create key: %d %s", r.Code, r.Body)
	}
	var k struct{ ID, Key string }
	r.Decode(c.t, &k)
	return k.Key, k.ID
}

// ListAll lists every email of the key's account matching query,
// following cursors.
func (c *Client) ListAll(key, query string) []map[string]any {
	c.t.Helper()
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
		r := c.Call("GET", "/v1/emails?"+q, key, nil, nil)
		if r.Code != http.StatusOK {
			c.t.Fatalf("list: %d %s", r.Code, r.Body)
		}
		r.Decode(c.t, &page)
		all = append(all, page.Data...)
		if page.NextCursor == nil {
			return all
		}
		cursor = *page.NextCursor
	}
	c.t.Fatal("listing did not end")
	return nil
}

// VerifyDomain adds the domain to Key's account, publishes its records in
// dns and verifies it.
func (c *Client) VerifyDomain(dns *testkit.DNS, name string) {
	c.t.Helper()
	var d struct {
		ID         string
		Status     string
		DNSRecords []struct{ Name, Value string }
	}
	if code := c.JSON("POST", "/v1/domains", c.Key, map[string]string{"name": name}, &d); code != http.StatusCreated {
		c.t.Fatalf("create domain: %d", code)
	}
	for _, r := range d.DNSRecords {
		dns.SetTXT(r.Name, r.Value)
	}
	if code := c.JSON("POST", "/v1/domains/"+d.ID+"/verify", c.Key, nil, &d); code != http.StatusOK || d.Status != "verified" {
		c.t.Fatalf("verify domain: %d %+v", code, d)
	}
}

// CreateWebhook registers url for events in Key's account and returns the
// endpoint's id and secret.
func (c *Client) CreateWebhook(url string, events ...string) (id, secret string) {
	c.t.Helper()
	var w struct{ ID, Secret string }
	if code := c.JSON("POST", "/v1/webhooks", c.Key, map[string]any{"url": url, "events": events}, &w); code != http.StatusCreated {
		c.t.Fatalf("create webhook: %d", code)
	}
	if !strings.HasPrefix(w.ID, "wh_") || !strings.HasPrefix(w.Secret, "whsec_") {
		c.t.Fatalf("created %+v", w)
	}
	return w.ID, w.Secret
}

// Metrics returns the /metrics page.
func (c *Client) Metrics() string {
	c.t.Helper()
	resp, err := http.Get(c.URL + "/metrics")
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
