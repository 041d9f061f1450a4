package api_test

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
	"github.com/pigeonpost/pigeonpost/pipeline/webhooks"
)

// The cross-account matrix (issue 18): tenant B has one of every resource;
// A's full key calls every route of openapi.json that takes an id, with
// each of B's ids, and gets 404 with the JSON error shape; afterwards no
// value in Redis has changed. The routes come from the document, so a new
// route with an id is covered as soon as it is documented: the test fails
// until it knows which of B's resources the route's id names.
// (TestKeyAuthority covers the keys within one account.)
func TestCrossAccountMatrix(t *testing.T) {
	s := newServer(t, webhookURLs)
	b := s.tenantB()
	ctx := context.Background()
	later := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)

	// One of each of B's resources, by the prefix of the routes that name it.
	created := func(method, path string, body any) map[string]any {
		t.Helper()
		var out map[string]any
		r := b.Call(method, path, tenantBKey, nil, body)
		if r.Code/100 != 2 {
			t.Fatalf("B: %s %s: %d %s", method, path, r.Code, r.Body)
		}
		r.Decode(t, &out)
		return out
	}
	str := func(m map[string]any, k string) string { v, _ := m[k].(string); return v }
	bTracked, _ := b.SendTracked(nil)
	b.SendTracked(map[string]any{"scheduledAt": later})
	email := str(created("POST", "/v1/emails", map[string]any{"from": b.From, "to": b.To, "subject": "s", "text": "t", "scheduledAt": later}), "id")
	tpl := str(created("POST", "/v1/templates", map[string]any{"name": "b", "from": "B <hello@" + tenantBDomain + ">", "subject": "Hi", "html": "<p>Hi</p>"}), "id")
	contact := str(created("POST", "/v1/contacts", map[string]any{"email": "bee@" + rcptDomain, "tags": []string{"vip"}}), "id")
	segment := str(created("POST", "/v1/segments", map[string]any{"name": "b", "filter": map[string]any{"tags": []string{"vip"}}}), "id")
	send := str(created("POST", "/v1/sends", map[string]any{"templateId": tpl, "to": "customer@" + rcptDomain}), "id")
	batch := str(created("POST", "/v1/sends/batch", map[string]any{"templateId": tpl, "recipients": []map[string]any{{"to": "u1@" + rcptDomain}}}), "batchId")
	suppressed := "suppressed-b@" + rcptDomain
	created("POST", "/v1/suppressions", map[string]any{"email": suppressed, "reason": "manual"})
	_, key := b.CreateKey(map[string]any{"name": "b second"})
	hook, _ := b.CreateWebhook("http://127.0.0.1:9/hooks", "email.delivered")
	var domains struct{ Data []struct{ ID string } }
	b.JSON("GET", "/v1/domains", tenantBKey, nil, &domains)
	if len(domains.Data) != 1 {
		t.Fatalf("B's domains: %+v", domains)
	}
	// A delivery of B's, given up (as the dispatcher records it).
	delivery := webhooks.DeliveryID("1-1", hook)
	if err := s.p.Store.FailWebhookDelivery(ctx, &store.WebhookDelivery{ID: delivery, AccountID: b.accountID, EndpointID: hook,
		Event: "email.delivered", Body: []byte(`{}`), Attempts: 9, LastError: "endpoint answered HTTP 503",
		CreatedAt: time.Now().Add(-time.Hour), StreamID: "1-1"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{
		"/v1/emails/":              email,
		"/v1/templates/":           tpl,
		"/v1/contacts/":            contact,
		"/v1/segments/":            segment,
		"/v1/sends/":               send,
		"/v1/batches/":             batch,
		"/v1/suppressions/":        suppressed,
		"/v1/api-keys/":            key,
		"/v1/domains/":             domains.Data[0].ID,
		"/v1/webhooks/":            hook,
		"/v1/webhooks/deliveries/": delivery,
	}
	for prefix, id := range ids {
		if id == "" {
			t.Fatalf("B's resource of %s has no id", prefix)
		}
	}
	// A's own copies of each exist too, so that a route that ignored the
	// account would find something of A's under the same kind of id.
	s.SendTracked(nil)
	if _, _, clicks := b.TrackingURLs(bTracked); len(clicks) == 0 {
		t.Fatal("B's tracked email has no link")
	}

	before := testkit.RedisValues(t, s.p.Redis)
	c := newContract(t, s)
	tried := 0
	for _, opID := range c.opIDs() {
		o := c.ops[opID]
		if !strings.Contains(o.path, "{") || c.public(opID) {
			continue // no id, or a public route whose id is a signed token (TestTrackingForgedIDs, the unsubscribe tests)
		}
		prefix := ""
		for p := range ids {
			if strings.HasPrefix(o.path, p) && len(p) > len(prefix) {
				prefix = p
			}
		}
		if prefix == "" {
			t.Errorf("%s %s: which of B's resources does its id name? Add one to the matrix", o.method, o.path)
			continue
		}
		param := o.path[len(prefix):]
		param, rest, _ := strings.Cut(param, "}")
		path := prefix + url.PathEscape(ids[prefix]) + rest
		if !strings.HasPrefix(param, "{") || strings.Contains(path, "{") {
			t.Errorf("%s %s: cannot place B's id", o.method, o.path)
			continue
		}
		var body []byte
		var headers map[string]string
		if names := c.requestExampleNames(opID); len(names) > 0 {
			var ctype string
			body, _, ctype = c.requestBody(opID, names[0])
			headers = map[string]string{"Content-Type": ctype}
		}
		r := c.do(o.method, path, liveKey, headers, body)
		wantNotFound(t, fmt.Sprintf("A's key: %s %s (%s)", o.method, path, opID), r)
		tried++
	}
	if tried < 20 {
		t.Errorf("only %d routes tried", tried)
	}
	after := testkit.RedisValues(t, s.p.Redis)
	for k, v := range before {
		w, ok := after[k]
		if !ok {
			t.Errorf("%s was deleted", k)
			continue
		}
		slices.Sort(v)
		slices.Sort(w)
		if !slices.Equal(v, w) {
			t.Errorf("%s changed: %q → %q", k, v, w)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(after)) {
		if _, ok := before[k]; !ok {
			t.Errorf("%s was created: %q", k, after[k])
		}
	}
	// And B still sees each of its resources.
	for prefix, id := range ids {
		if prefix == "/v1/suppressions/" || prefix == "/v1/api-keys/" || prefix == "/v1/webhooks/" || prefix == "/v1/webhooks/deliveries/" {
			continue // no GET by id: the Redis comparison above covers them
		}
		if r := b.Call("GET", prefix+url.PathEscape(id), tenantBKey, nil, nil); r.Code != http.StatusOK {
			t.Errorf("B: GET %s%s: %d %s", prefix, id, r.Code, r.Body)
		}
	}
}
