package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pigeonpost/pigeonpost/api"
	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/account"
	"github.com/pigeonpost/pigeonpost/pipeline/deliver"
	"github.com/pigeonpost/pigeonpost/pipeline/engagement"
	"github.com/pigeonpost/pigeonpost/pipeline/pipelinetest"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
	"github.com/pigeonpost/pigeonpost/pipeline/webhooks"
)

// The REST contract tests run the api handler in an httptest server over
// the pipeline's parts (pipelinetest) on a test Redis, with a loopback DNS
// server for domain and tracking-domain verification. Nothing delivers:
// where a test needs an email delivered or bounced, markDelivered and
// markBounced record what the delivery worker records (cmd/pigeonpost's
// whole-stack tests prove that the worker does).

const (
	liveKey            = "sp_live_integrationtestkey000000000001"
	senderDomain       = "acme.test"
	rcptDomain         = "example.test"
	publicHost         = "t.gateway.test"
	testTrackingSecret = "integration-test-tracking-secret"
	browserUA          = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"
	defaultMaxBody     = 35 << 20 // http.max_body_bytes's default
)

// server is the api handler over the pipeline's parts, with the bootstrap
// key liveKey of the account "default" and senderDomain verified.
type server struct {
	t         *testing.T
	p         *pipelinetest.Parts
	dns       *testkit.DNS
	url       string
	accountID string
}

// serverConfig is what newServer builds from; options change it.
type serverConfig struct {
	parts pipelinetest.Options
	api   api.Options
}

func newServer(t *testing.T, options ...func(*serverConfig)) *server {
	t.Helper()
	d := testkit.StartDNS(t)
	resolver := &deliver.Resolver{Addr: d.Addr(), Timeout: 5 * time.Second}
	reg := prometheus.NewRegistry()
	const cacheTTL = 5 * time.Second // as cmd/pigeonpost builds the parts
	c := serverConfig{
		parts: pipelinetest.Options{
			Secret: []byte(testTrackingSecret),
			Pipeline: pipeline.Options{
				Hostname: "gateway.test", PublicURL: "https://" + publicHost, CacheTTL: cacheTTL,
				Metrics: pipeline.NewMetrics(reg),
			},
			Account: account.Options{
				DKIMSelector: "pigeonpost", SPFInclude: "_spf.gateway.test",
				Resolver: resolver, Lookup: resolver,
			},
			Engagement: engagement.Options{Lookup: resolver, CacheTTL: cacheTTL, Metrics: engagement.NewMetrics(reg)},
		},
		api: api.Options{MaxBodyBytes: defaultMaxBody, Metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{})},
	}
	for _, o := range options {
		o(&c)
	}
	p := pipelinetest.New(t, c.parts)
	k := p.Key(t, "default", liveKey)
	p.RecordHits(t)
	srv := httptest.NewServer(api.Handler(api.Parts{Pipeline: p.Pipeline, Account: p.Account, Compose: p.Compose, Engagement: p.Engagement}, c.api))
	t.Cleanup(srv.Close)
	s := &server{t: t, p: p, dns: d, url: srv.URL, accountID: k.AccountID}
	s.verifyDomain(senderDomain)
	return s
}

// webhookURLs allows loopback http:// webhook endpoints.
func webhookURLs(c *serverConfig) {
	c.parts.Account.WebhookURLs = webhooks.URLPolicy{AllowPrivate: true, AllowHTTP: true}
}

// ---- requests ----

type apiError struct {
	Error struct{ Code, Message string }
}

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

// errCode is the JSON error code of an error answer ("" for a success).
func (r restResp) errCode() string {
	var e apiError
	_ = json.Unmarshal(r.Body, &e)
	return e.Error.Code
}

func (r restResp) errMessage() string {
	var e apiError
	_ = json.Unmarshal(r.Body, &e)
	return e.Error.Message
}

// call sends a request with key and headers and returns the raw answer;
// body may be []byte (sent as is) or a value to encode.
func (s *server) call(method, path, key string, headers map[string]string, body any) restResp {
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
	req, _ := http.NewRequest(method, s.url+path, rd)
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

// api calls the REST API with key and decodes the JSON answer into out.
func (s *server) api(method, path, key string, body any, out any) int {
	s.t.Helper()
	r := s.call(method, path, key, nil, body)
	if out != nil {
		if err := json.Unmarshal(r.Body, out); err != nil {
			s.t.Fatalf("%s %s: %d %s: %v", method, path, r.Code, r.Body, err)
		}
	}
	return r.Code
}

type sendResp struct {
	ID          string     `json:"id"`
	Status      string     `json:"status"`
	Suppressed  []string   `json:"suppressed"`
	ScheduledAt *time.Time `json:"scheduledAt"`
}

// sendOK posts an email and fails the test unless it is accepted.
func (s *server) sendOK(key string, body map[string]any, headers map[string]string) sendResp {
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
func (s *server) createKey(body map[string]any) (secret, id string) {
	s.t.Helper()
	r := s.call("POST", "/v1/api-keys", liveKey, nil, body)
	if r.Code != http.StatusCreated {
		s.t.Fatalf("create key: %d %s", r.Code, r.Body)
	}
	var k struct{ ID, Key string }
	r.decode(s.t, &k)
	return k.Key, k.ID
}

// listAll lists every email of the key's account (following cursors).
func (s *server) listAll(key, query string) []map[string]any {
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

// verifyDomain adds the domain, publishes its records in the DNS server and verifies it.
func (s *server) verifyDomain(name string) {
	s.t.Helper()
	var d struct {
		ID         string
		Status     string
		DNSRecords []struct{ Name, Value string }
	}
	if code := s.api("POST", "/v1/domains", liveKey, map[string]string{"name": name}, &d); code != http.StatusCreated {
		s.t.Fatalf("create domain: %d", code)
	}
	for _, r := range d.DNSRecords {
		s.dns.SetTXT(r.Name, r.Value)
	}
	if code := s.api("POST", "/v1/domains/"+d.ID+"/verify", liveKey, nil, &d); code != http.StatusOK || d.Status != "verified" {
		s.t.Fatalf("verify domain: %d %+v", code, d)
	}
}

// domainID returns the id of the bootstrap account's domain called name.
func (s *server) domainID(name string) string {
	s.t.Helper()
	var list struct{ Data []struct{ ID, Name string } }
	s.api("GET", "/v1/domains", liveKey, nil, &list)
	for _, d := range list.Data {
		if d.Name == name {
			return d.ID
		}
	}
	s.t.Fatalf("domain %s not found", name)
	return ""
}

// metrics returns the /metrics page.
func (s *server) metrics() string {
	s.t.Helper()
	resp, err := http.Get(s.url + "/metrics")
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// ---- what the delivery worker would record ----

// markDelivered records what the delivery worker records when it delivers
// the email: "sent" at the attempt, then "delivered", each with its event.
func (s *server) markDelivered(ids ...string) {
	s.t.Helper()
	for _, id := range ids {
		now := s.attempt(id)
		s.update(id, map[string]any{store.FieldStatus: store.StatusDelivered, store.FieldDeliveredAt: store.FormatTime(now), store.FieldLastError: ""},
			&store.Event{Type: "delivered", Timestamp: now, AccountID: s.accountID})
	}
}

// markBounced records what the delivery worker records when the
// destination refuses the email for good.
func (s *server) markBounced(id, reason string) {
	s.t.Helper()
	now := s.attempt(id)
	s.update(id, map[string]any{store.FieldStatus: store.StatusBounced, store.FieldBouncedAt: store.FormatTime(now), store.FieldLastError: reason},
		&store.Event{Type: "bounced", Timestamp: now, AccountID: s.accountID, Data: map[string]string{"reason": reason}})
}

func (s *server) attempt(id string) time.Time {
	s.t.Helper()
	now := time.Now().UTC()
	s.update(id, map[string]any{store.FieldStatus: store.StatusSent, store.FieldAttempts: 1, store.FieldSentAt: store.FormatTime(now)},
		&store.Event{Type: "sent", Timestamp: now, AccountID: s.accountID})
	return now
}

func (s *server) update(id string, fields map[string]any, ev *store.Event) {
	s.t.Helper()
	if err := s.p.Store.UpdateEmail(context.Background(), id, fields, ev); err != nil {
		s.t.Fatal(err)
	}
}
