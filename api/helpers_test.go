package api_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pigeonpost/pigeonpost/api"
	"github.com/pigeonpost/pigeonpost/internal/membudget"
	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/internal/testkit/resttest"
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
	browserUA          = resttest.BrowserUA
	defaultMaxBody     = 35 << 20 // http.max_body_bytes's default
)

// server is the api handler over the pipeline's parts, with the bootstrap
// key liveKey of the account "default" and senderDomain verified.
type server struct {
	*resttest.Client
	t         *testing.T
	p         *pipelinetest.Parts
	dns       *testkit.DNS
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
	srv := httptest.NewServer(api.Handler(api.Parts{Pipeline: p.Pipeline, Account: p.Account, Compose: p.Compose, Engagement: p.Engagement,
		Contacts: p.Contacts, Sends: p.Sends, Reputation: p.Reputation, Feedback: p.Feedback, Webhooks: p.Webhooks}, c.api))
	t.Cleanup(srv.Close)
	s := &server{Client: resttest.New(t, srv.URL, liveKey), t: t, p: p, dns: d, accountID: k.AccountID}
	s.From, s.To = "hello@"+senderDomain, "user@"+rcptDomain
	s.VerifyDomain(d, senderDomain)
	return s
}

// webhookURLs allows loopback http:// webhook endpoints.
func webhookURLs(c *serverConfig) {
	c.parts.Account.WebhookURLs = webhooks.URLPolicy{AllowPrivate: true, AllowHTTP: true}
}

// withBudget makes large bodies share budget, waiting at most wait for
// their share.
func withBudget(budget *membudget.Budget, wait time.Duration) func(*serverConfig) {
	return func(c *serverConfig) {
		c.api.Budget, c.api.BudgetWait = budget, wait
	}
}

// ---- requests (the REST calls themselves are resttest.Client's) ----

// domainID returns the id of the bootstrap account's domain called name.
func (s *server) domainID(name string) string {
	s.t.Helper()
	var list struct{ Data []struct{ ID, Name string } }
	s.JSON("GET", "/v1/domains", liveKey, nil, &list)
	for _, d := range list.Data {
		if d.Name == name {
			return d.ID
		}
	}
	s.t.Fatalf("domain %s not found", name)
	return ""
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
