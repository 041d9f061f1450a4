package api_test

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/testkit/resttest"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
	"github.com/pigeonpost/pigeonpost/pipeline/webhooks"
)

// The key permission matrix (issue 18): every kind of key of one account
// calls every route of openapi.json with a valid id and the route's request
// example, and gets what keyPolicy says. A route keyPolicy does not name
// fails the test, so a new route is covered as soon as it is documented.
// (TestCrossAccountMatrix covers another account's ids, TestKeyAuthority
// the key-management cases one by one.)

// keyKind is one kind of key of the account.
type keyKind struct {
	name, mode, permission string
	domain                 string // the domain the key is limited to, "" for none
}

func (k keyKind) full() bool      { return k.permission == store.PermissionFull }
func (k keyKind) live() bool      { return k.mode == store.ModeLive }
func (k keyKind) limited() bool   { return k.domain != "" }
func (k keyKind) elsewhere() bool { return k.limited() && k.domain != senderDomain }

// otherDomain is a second verified domain of the account, which one kind of
// key is limited to: the examples send from senderDomain.
const otherDomain = "other.test"

var keyKinds = []keyKind{
	{"live full", store.ModeLive, store.PermissionFull, ""},
	{"live sending", store.ModeLive, store.PermissionSending, ""},
	{"live full limited to its domain", store.ModeLive, store.PermissionFull, senderDomain},
	{"live full limited to another domain", store.ModeLive, store.PermissionFull, otherDomain},
	{"test full", store.ModeTest, store.PermissionFull, ""},
	{"test sending", store.ModeTest, store.PermissionSending, ""},
}

// outcome is what a call must get: allowed (anything but 401, 403 and 404
// for the id that exists), 403 with an error code, or 404.
type outcome struct {
	status int // 0: allowed
	code   string
}

var (
	allowed   = outcome{}
	forbidden = outcome{http.StatusForbidden, "forbidden"}
	notFound  = outcome{http.StatusNotFound, "not_found"}
	// notHisDomain: the example's From is on senderDomain.
	notHisDomain = outcome{http.StatusForbidden, "domain_not_allowed"}
)

// rule says what a kind of key gets on a route.
type rule func(keyKind) outcome

var (
	// anyKey: every key of the account.
	anyKey rule = func(keyKind) outcome { return allowed }
	// fullKey: a key of full permission, of either mode, limited or not.
	fullKey rule = func(k keyKind) outcome { return when(k.full(), forbidden) }
	// adminKey: the account's domains (pipeline.RequireAdmin): a live, full
	// key limited to no domain.
	adminKey rule = func(k keyKind) outcome { return when(k.full() && k.live() && !k.limited(), forbidden) }
	// sends: every key, from a domain it may send from (test mode: any).
	sends rule = func(k keyKind) outcome { return when(!k.elsewhere(), notHisDomain) }
	// ownMail: every key, but a sending key reads and cancels only what it
	// sent: another key's email (the one the route is called with) is 404.
	ownMail rule = func(k keyKind) outcome { return when(k.full(), notFound) }
	// ownList: every key, but a sending key's list holds only what it sent
	// (checked after the matrix).
	ownList = anyKey
	// batchSends: every key; a batch is answered 200 with each item's
	// outcome, so one from a domain the key may not use is an item failed
	// domain_not_allowed, not a 403.
	batchSends = anyKey
	// createsKey: the example makes a live key; a full key of test mode may
	// make test keys only (a limited key makes one limited to its domain).
	createsKey rule = func(k keyKind) outcome { return when(k.full() && k.live(), forbidden) }
	// revokesKey: the key revoked is live and unlimited: only a live, full,
	// unlimited key may revoke it.
	revokesKey = adminKey
	// noKey: a public route (a signed id, or nothing of an account's).
	noKey rule = nil
)

func when(ok bool, otherwise outcome) outcome {
	if ok {
		return allowed
	}
	return otherwise
}

// keyPolicy is who may call each operation of openapi.json.
var keyPolicy = map[string]rule{
	// Sending, and reading what was sent.
	"sendEmail":       sends,
	"sendBatch":       batchSends,
	"previewEmail":    sends,
	"listEmails":      ownList,
	"getEmail":        ownMail,
	"getEmailContent": ownMail,
	"listEmailEvents": ownMail,
	"cancelSchedule":  ownMail,
	// Sends of templates (Pigeon Perch): sends to addresses and contacts
	// are sends (a send to a segment needs a full key).
	"createSend":      sends,
	"createSendBatch": batchSends,
	"listSends":       ownList,
	"getSend":         ownMail,
	"getBatch":        anyKey, // a batch records no key: see the report of issue 18
	// The account's content.
	"listTemplates":     fullKey,
	"createTemplate":    fullKey,
	"getTemplate":       fullKey,
	"updateTemplate":    fullKey,
	"deleteTemplate":    fullKey,
	"listContacts":      fullKey,
	"createContact":     fullKey,
	"importContacts":    fullKey,
	"getContact":        fullKey,
	"updateContact":     fullKey,
	"deleteContact":     fullKey,
	"listSegments":      fullKey,
	"createSegment":     fullKey,
	"getSegment":        fullKey,
	"updateSegment":     fullKey,
	"deleteSegment":     fullKey,
	"listSuppressions":  fullKey,
	"createSuppression": fullKey,
	"deleteSuppression": fullKey,
	// Domains and keys: the account's administration.
	"listDomains":  fullKey,
	"getDomain":    fullKey,
	"createDomain": adminKey,
	"verifyDomain": adminKey,
	"deleteDomain": adminKey,
	"listApiKeys":  fullKey,
	"createApiKey": createsKey,
	"deleteApiKey": revokesKey,
	// Tracking settings.
	"getTrackingDefaults":    fullKey,
	"updateTrackingDefaults": adminKey,
	"getDomainTracking":      fullKey,
	"putDomainTracking":      adminKey,
	"setTrackingDomain":      adminKey,
	"verifyTrackingDomain":   adminKey,
	// Webhooks.
	"createWebhook":         fullKey,
	"listWebhooks":          fullKey,
	"listFailedWebhooks":    fullKey,
	"listWebhookDeliveries": fullKey,
	"deleteWebhook":         fullKey,
	"replayWebhook":         fullKey,
	"redeliverWebhook":      fullKey,
	// Reports and figures.
	"receiveFeedbackReport": fullKey,
	"receiveBounceReport":   fullKey,
	"listEvents":            anyKey,
	"getAnalytics":          anyKey,
	"getUsage":              anyKey,
	"getReputation":         anyKey,
	// Public.
	"unsubscribePage": noKey,
	"unsubscribe":     noKey,
	"trackOpen":       noKey,
	"trackClick":      noKey,
	"healthz":         noKey,
	"metrics":         noKey,
	"getOpenAPI":      noKey,
}

func TestKeyPermissionMatrix(t *testing.T) {
	s := newServer(t, webhookURLs)
	s.VerifyDomain(s.dns, otherDomain)
	ctx := context.Background()
	later := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	c := newContract(t, s)
	c.hooks = "http://127.0.0.1:9/hooks"
	c.tplID = c.sendsTemplate()
	contact := c.id(s.Call("POST", "/v1/contacts", liveKey, nil, map[string]any{"email": "ct@" + rcptDomain, "tags": []string{"vip"}}))
	segment := c.id(s.Call("POST", "/v1/segments", liveKey, nil, map[string]any{"name": "vip", "filter": map[string]any{"tags": []string{"vip"}}}))
	c.docIDs = []string{"ct_abc123", contact, "seg_abc123", segment}

	// The keys, and a scheduled email each sent (from its domain).
	keys := map[string]string{}
	own := map[string]string{}
	for _, k := range keyKinds {
		body := map[string]any{"name": k.name, "mode": k.mode, "permission": k.permission}
		if k.limited() {
			body["domainId"] = s.domainID(k.domain)
		}
		keys[k.name], _ = s.CreateKey(body)
		domain := cmp.Or(k.domain, senderDomain)
		own[k.name] = c.id(s.Call("POST", "/v1/emails", keys[k.name], nil, map[string]any{
			"from": "hello@" + domain, "to": "own@" + rcptDomain, "subject": "s", "text": "t", "scheduledAt": later}))
	}
	revoked, revokedID := s.CreateKey(map[string]any{"name": "revoked"})
	if r := s.Call("DELETE", "/v1/api-keys/"+revokedID, liveKey, nil, nil); r.Code != http.StatusOK {
		t.Fatalf("revoke: %d %s", r.Code, r.Body)
	}

	// The ids the routes are called with, by the prefix of their path:
	// made by the bootstrap key (another key, to every kind), made again
	// once a call has deleted (or used up) one.
	n := 0
	unique := func(what string) string { n++; return fmt.Sprintf("%s%d", what, n) }
	var hook string
	makers := map[string]func() string{
		"/v1/emails/": func() string {
			return c.id(s.Call("POST", "/v1/emails", liveKey, nil, map[string]any{"from": s.From, "to": s.To, "subject": "s", "text": "t", "scheduledAt": later}))
		},
		"/v1/templates/": func() string {
			return c.id(s.Call("POST", "/v1/templates", liveKey, nil, map[string]any{"name": "t", "subject": "s", "text": "t"}))
		},
		"/v1/contacts/": func() string {
			return c.id(s.Call("POST", "/v1/contacts", liveKey, nil, map[string]any{"email": unique("contact") + "@" + rcptDomain}))
		},
		"/v1/segments/": func() string {
			return c.id(s.Call("POST", "/v1/segments", liveKey, nil, map[string]any{"name": "s", "filter": map[string]any{"tags": []string{"x"}}}))
		},
		"/v1/sends/": func() string {
			return c.id(s.Call("POST", "/v1/sends", liveKey, nil, map[string]any{"templateId": c.tplID, "to": "send@" + rcptDomain}))
		},
		"/v1/batches/": func() string {
			var b struct{ BatchID string }
			s.Call("POST", "/v1/sends/batch", liveKey, nil, map[string]any{"templateId": c.tplID,
				"recipients": []map[string]any{{"to": "b1@" + rcptDomain}}}).Decode(t, &b)
			return b.BatchID
		},
		"/v1/suppressions/": func() string {
			email := unique("suppressed") + "@" + rcptDomain
			if r := s.Call("POST", "/v1/suppressions", liveKey, nil, map[string]any{"email": email, "reason": "manual"}); r.Code/100 != 2 {
				t.Fatalf("suppress: %d %s", r.Code, r.Body)
			}
			return email
		},
		"/v1/api-keys/": func() string { _, id := s.CreateKey(map[string]any{"name": "target"}); return id },
		"/v1/domains/":  func() string { return s.domainID(senderDomain) },
		// A domain of its own for the routes that verify and delete one.
		"/v1/domains/ (spare)": func() string {
			return c.id(s.Call("POST", "/v1/domains", liveKey, nil, map[string]any{"name": unique("spare") + ".test"}))
		},
		"/v1/webhooks/": func() string { hook, _ = s.CreateWebhook(c.hooks, "email.delivered"); return hook },
		"/v1/webhooks/deliveries/": func() string {
			if hook == "" {
				hook, _ = s.CreateWebhook(c.hooks, "email.delivered")
			}
			var events struct{ Data []struct{ ID string } }
			if code := s.JSON("GET", "/v1/events?limit=1", liveKey, nil, &events); code != http.StatusOK || len(events.Data) == 0 {
				t.Fatalf("no event to redeliver: %d", code)
			}
			stream := events.Data[0].ID
			id := webhooks.DeliveryID(stream, hook)
			if err := s.p.Store.FailWebhookDelivery(ctx, &store.WebhookDelivery{ID: id, AccountID: s.accountID, EndpointID: hook,
				Event: "email.delivered", Body: []byte(`{}`), Attempts: 9, LastError: "endpoint answered HTTP 503",
				CreatedAt: time.Now().Add(-time.Hour), StreamID: stream}, time.Now()); err != nil {
				t.Fatal(err)
			}
			return id
		},
	}
	ids := map[string]string{}
	idFor := func(prefix string) string {
		if prefix != "" && ids[prefix] == "" {
			ids[prefix] = makers[prefix]()
		}
		return ids[prefix]
	}

	// Each operation, once per kind of key, with no key and with a revoked
	// one.
	tried := 0
	for _, opID := range c.opIDs() {
		o := c.ops[opID]
		policy, known := keyPolicy[opID]
		switch {
		case !known:
			t.Errorf("%s (%s %s): map the new route: add it to keyPolicy", opID, o.method, o.path)
			continue
		case (policy == nil) != c.public(opID):
			t.Errorf("%s: keyPolicy and openapi.json disagree on whether it needs a key", opID)
			continue
		case policy == nil:
			continue // TestTrackingForgedIDs, the unsubscribe tests
		}
		// The resource the path names, and whether a call that succeeds
		// uses it up.
		prefix := ""
		if strings.Contains(o.path, "{") {
			for p := range makers {
				if strings.HasPrefix(o.path, p) && len(p) > len(prefix) {
					prefix = p
				}
			}
			if prefix == "" {
				t.Errorf("%s %s: which resource does its id name? Add a maker", o.method, o.path)
				continue
			}
			if opID == "verifyDomain" || opID == "deleteDomain" {
				prefix += " (spare)"
			}
		}
		usesUp := o.method == "DELETE" && opID != "cancelSchedule" || opID == "redeliverWebhook"
		var body []byte
		var headers map[string]string
		if names := c.requestExampleNames(opID); len(names) > 0 {
			var ctype string
			body, _, ctype = c.requestBody(opID, names[0])
			headers = map[string]string{"Content-Type": ctype}
		}
		report := c.mimeExample(opID)
		call := func(key, id string) resttest.Response {
			if report != "" {
				// A report about an email of the account, sent now.
				email := c.id(s.Call("POST", "/v1/emails", liveKey, nil, map[string]any{"from": s.From, "to": unique("reported") + "@" + rcptDomain, "subject": "s", "text": "t"}))
				body = []byte(regexp.MustCompile(`X-Pigeonpost-Id: \S+`).ReplaceAllString(docReplacer(c.hooks, c.tplID).Replace(report),
					"X-Pigeonpost-Id: "+s.p.Signer.FeedbackID(email)))
				headers = map[string]string{"Content-Type": mimeType}
			}
			path := o.path
			if prefix != "" {
				param := o.path[strings.Index(o.path, "{"):]
				param = param[:strings.Index(param, "}")+1]
				path = strings.Replace(path, param, url.PathEscape(id), 1)
			}
			return c.do(o.method, path, key, headers, body)
		}

		for _, who := range []struct{ name, key, code string }{{"no key", "", "unauthorized"}, {"a revoked key", revoked, "unauthorized"}} {
			r := call(who.key, idFor(prefix))
			if r.Code != http.StatusUnauthorized || r.ErrCode() != who.code {
				t.Errorf("%s, %s: %d %s, want 401 %s", who.name, opID, r.Code, short(r.Body), who.code)
			}
		}
		for _, k := range keyKinds {
			what := fmt.Sprintf("%s key, %s %s (%s)", k.name, o.method, o.path, opID)
			r := call(keys[k.name], idFor(prefix))
			tried++
			want := policy(k)
			switch {
			case want == allowed:
				if r.Code == http.StatusUnauthorized || r.Code == http.StatusForbidden || r.Code == http.StatusNotFound {
					t.Errorf("%s: %d %s, want it allowed", what, r.Code, short(r.Body))
				} else if usesUp && r.Code/100 == 2 {
					ids[prefix] = ""
				}
			case r.Code != want.status || r.ErrCode() != want.code:
				t.Errorf("%s: %d %s, want %d %s", what, r.Code, short(r.Body), want.status, want.code)
			default:
				c.wantErrorShape(t, what, r)
			}
			// A sending key reads and cancels what it sent itself.
			if prefix == "/v1/emails/" {
				if r := call(keys[k.name], own[k.name]); r.Code/100 != 2 {
					t.Errorf("%s, its own email: %d %s", what, r.Code, short(r.Body))
				}
			}
		}
	}
	if tried < 50*len(keyKinds) {
		t.Errorf("only %d calls made", tried)
	}

	// The lists of a sending key hold what it sent, and nothing of another
	// key's; a full key's hold everything of the account.
	others := map[string]string{"emails": idFor("/v1/emails/"), "sends": idFor("/v1/sends/")}
	for _, k := range keyKinds {
		for _, list := range []string{"emails", "sends"} {
			var page struct{ Data []struct{ ID string } }
			if code := s.JSON("GET", "/v1/"+list+"?limit=100", keys[k.name], nil, &page); code != http.StatusOK {
				t.Errorf("%s key, GET /v1/%s: %d", k.name, list, code)
				continue
			}
			var got []string
			for _, e := range page.Data {
				got = append(got, e.ID)
			}
			if slices.Contains(got, others[list]) != k.full() {
				t.Errorf("%s key, GET /v1/%s: another key's %s listed: %v", k.name, list, others[list], !k.full())
			}
			if list == "emails" && !slices.Contains(got, own[k.name]) {
				t.Errorf("%s key, GET /v1/emails: its own %s not listed", k.name, own[k.name])
			}
		}
	}
}

// short is the start of an answer's body, for a failure's message.
func short(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}
