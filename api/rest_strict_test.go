package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/testkit/resttest"
)

// A field a route does not know is refused by name, with the name meant;
// both spellings of the tracking options are read.
func TestRESTStrictFields(t *testing.T) {
	s := newServer(t)
	from, to := "hello@"+senderDomain, "user@"+rcptDomain
	html := `<p>Hi <a href="https://example.test/welcome">there</a></p>`

	// The tracking endpoints page's spelling tracks as the tracking page's does.
	var sent struct{ ID string }
	if code := s.JSON("POST", "/v1/emails", liveKey, map[string]any{"from": from, "to": to, "subject": "s", "html": html,
		"tracking": map[string]bool{"open": true, "click": true}}, &sent); code != http.StatusOK {
		t.Fatalf("tracking.open/click: %d", code)
	}
	if _, pixel, clicks := s.TrackingURLs(sent.ID); pixel == "" || len(clicks) == 0 {
		t.Errorf("tracking.open/click tracked nothing: pixel %q, clicks %q", pixel, clicks)
	}

	for _, c := range []struct {
		name, path string
		body       map[string]any
		code       int
		errCode    string
		message    string
	}{
		{"a typo at the top", "/v1/emails", map[string]any{"from": from, "to": to, "subject": "s", "html": html, "trackng": map[string]bool{"opens": true}},
			400, "invalid_request", `unknown field "trackng"; did you mean "tracking"?`},
		{"a typo inside", "/v1/emails", map[string]any{"from": from, "to": to, "subject": "s", "html": html, "tracking": map[string]bool{"opnes": true}},
			400, "invalid_request", `unknown field "tracking.opnes"; did you mean "tracking.opens"?`},
		{"both spellings disagreeing", "/v1/emails", map[string]any{"from": from, "to": to, "subject": "s", "html": html, "tracking": map[string]bool{"opens": true, "open": false}},
			400, "validation_error", "tracking.opens, tracking.open: the same option given twice, with different values"},
		{"a sends typo", "/api/v1/sends", map[string]any{"templateId": "tpl_x", "to": to, "personalisations": map[string]string{}},
			400, "invalid_request", `unknown field "personalisations"; did you mean "personalizations"?`},
		{"a settings typo", "/v1/tracking/defaults", map[string]any{"trackingEnabeld": true},
			400, "invalid_request", `unknown field "trackingEnabeld"; did you mean "trackingEnabled"?`},
	} {
		method := "POST"
		if strings.HasPrefix(c.path, "/v1/tracking") {
			method = "PATCH"
		}
		var e resttest.APIError
		if code := s.JSON(method, c.path, liveKey, c.body, &e); code != c.code || e.Error.Code != c.errCode || e.Error.Message != c.message {
			t.Errorf("%s: %d %+v, want %d %s %q", c.name, code, e.Error, c.code, c.errCode, c.message)
		}
	}

	// One email of a batch with a typo fails alone, named.
	var batch struct {
		Data []struct {
			Status string
			Error  *struct{ Code, Message string }
		}
	}
	s.JSON("POST", "/v1/emails/batch", liveKey, map[string]any{"emails": []map[string]any{
		{"from": from, "to": to, "subject": "s", "html": html},
		{"from": from, "to": to, "subjct": "s", "html": html},
	}}, &batch)
	if len(batch.Data) != 2 || batch.Data[0].Error != nil || batch.Data[1].Error == nil ||
		batch.Data[1].Error.Message != `unknown field "emails[1].subjct"; did you mean "emails[1].subject"?` {
		t.Errorf("batch with a typo: %+v", batch.Data)
	}
}

// Every request example of the product documents (../shared/seeds), as
// written there but for the names of things this server has (the sender
// domain, ids, a date still ahead, whole base64): each is accepted, so no
// documented field is one this server does not know.
func TestRESTSeedExamples(t *testing.T) {
	s := newServer(t)
	var tpl struct{ ID string }
	s.JSON("POST", "/v1/templates", liveKey, map[string]any{"name": "seed", "subject": "Hi {{name}}", "html": `<p>{{name | default: "there"}} {{company | default: "us"}}</p>`,
		"from": "hello@" + senderDomain}, &tpl)
	domainID := s.domainID(senderDomain)
	ahead := time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339)
	names := strings.NewReplacer("acme.com", senderDomain, "yourdomain.com", senderDomain, "example.com", rcptDomain,
		"tpl_abc123", tpl.ID, "your-template-uuid", tpl.ID, "{domainId}", domainID,
		"2025-06-15T10:00:00Z", ahead, "JVBERi0xLjQK...", "JVBERi0xLjQK", "t.yourdomain.com", "t."+senderDomain)
	for _, ex := range []struct{ seed, method, path, body string }{
		{"pigeonperch-transactional-sends", "POST", "/api/v1/sends", `{ "templateId": "your-template-uuid", "to": "customer@example.com", "subject": "Your order has shipped!", "personalizations": { "order_id": "ORD-12345", "tracking_url": "https://track.example.com/abc" } }`},
		{"sendpigeon-rest-api", "POST", "/v1/emails", `{ "from": "hello@acme.com", "to": "user@example.com", "subject": "Your order shipped!", "html": "<h1>Order #1234</h1>", "replyTo": "support@acme.com" }`},
		{"sendpigeon-rest-api", "POST", "/v1/emails", `{ "from": "hello@acme.com", "to": "user@example.com", "subject": "Your invoice", "html": "<p>See attached.</p>", "attachments": [{ "filename": "invoice.pdf", "content": "JVBERi0xLjQK..." }] }`},
		{"sendpigeon-rest-api", "POST", "/v1/emails", `{ "from": "hello@acme.com", "to": "user@example.com", "templateId": "tpl_abc123", "variables": { "name": "John", "company": "Acme Inc" } }`},
		{"sendpigeon-rest-api", "POST", "/v1/emails", `{ "from": "hello@acme.com", "to": "user@example.com", "subject": "Reminder", "html": "<p>Dont forget!</p>", "scheduled_at": "2025-06-15T10:00:00Z" }`},
		{"sendpigeon-rest-api", "POST", "/v1/emails/batch", `{ "emails": [ { "from": "hello@yourdomain.com", "to": "user1@example.com", "subject": "Hello 1", "html": "<p>Hi!</p>" }, { "from": "hello@yourdomain.com", "to": "user2@example.com", "subject": "Hello 2", "html": "<p>Hi!</p>" } ] }`},
		{"sendpigeon-rest-api", "POST", "/v1/domains", `{ "name": "mail.example.com" }`},
		{"sendpigeon-rest-api", "POST", "/v1/templates", `{ "name": "welcome-email", "subject": "Welcome {{name}}!", "html": "<p>Hello {{name}}</p>" }`},
		{"sendpigeon-rest-api", "PATCH", "/v1/templates/tpl_abc123", `{ "subject": "New subject" }`},
		{"sendpigeon-rest-api", "POST", "/v1/api-keys", `{ "name": "Production", "mode": "live", "permission": "sending" }`},
		{"sendpigeon-tracking", "POST", "/v1/emails", `{ "to": "user@example.com", "from": "hello@yourdomain.com", "subject": "Welcome!", "html": "<p>Hello world</p>", "tracking": { "opens": true, "clicks": true } }`},
		{"sendpigeon-tracking-endpoints", "POST", "/v1/emails", `{ "to": "user@example.com", "from": "hello@yourdomain.com", "subject": "Welcome!", "html": "<p>Hello world</p>", "tracking": { "open": true, "click": true } }`},
		{"sendpigeon-tracking", "PATCH", "/v1/tracking/defaults", `{ "trackingEnabled": true, "privacyMode": false, "webhookOnEveryOpen": false, "webhookOnEveryClick": false }`},
		{"sendpigeon-tracking", "PUT", "/v1/domains/{domainId}/tracking", `{ "openTracking": true, "clickTracking": true, "privacyMode": true }`},
		{"sendpigeon-tracking", "POST", "/v1/domains/{domainId}/tracking/set-domain", `{ "trackingDomain": "t.yourdomain.com" }`},
	} {
		r := s.Call(ex.method, names.Replace(ex.path), liveKey, nil, []byte(names.Replace(ex.body)))
		if r.Code/100 != 2 {
			t.Errorf("%s: %s %s: %d %s", ex.seed, ex.method, ex.path, r.Code, r.Body)
		}
	}
}
