package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/api"
	"github.com/pigeonpost/pigeonpost/config"
	"github.com/pigeonpost/pigeonpost/internal/testkit/resttest"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
	"github.com/pigeonpost/pigeonpost/pipeline/webhooks"
)

// The contract of openapi.json, through the handler over the pipeline's
// parts (see helpers_test.go): every
// operation is called, every request example is sent (with the names and
// ids of the doc replaced by ones of the test server), and every answer must
// have the documented success status, validate against the documented
// schema and have every property of the documented response example, with
// the same JSON types. Then, for every operation with a JSON body: unknown
// fields are accepted, a wrong type is a 400 naming the field, and a body
// over Options.MaxBodyBytes is a 413 with the error shape.
//
// Schemas are checked more strictly than JSON Schema requires: an object
// schema that lists properties is closed (unless additionalProperties is a
// schema), so that a field a handler adds without documenting it fails here.

// contractMaxBody is http.max_body_bytes in the contract test: small, so
// that going over it is cheap.
const contractMaxBody = 64 << 10

// docReplacer turns the names of the document's examples into those of the
// test server (hooksURL and tplID are added per test; ids, pairs of a
// document id and the test's, e.g. the contact and segment sends go to).
func docReplacer(hooksURL, tplID string, ids ...string) *strings.Replacer {
	return strings.NewReplacer(append([]string{
		"https://hooks.acme.com/pigeonpost", hooksURL, // before acme.com
		"acme.com", senderDomain, // hello@acme.com, t.acme.com ...
		"example.com", rcptDomain, // user@example.com, mail.example.com ...
		"tpl_abc123", tplID,
	}, ids...)...)
}

func TestOpenAPIContract(t *testing.T) {
	if got := config.Default().HTTP.MaxBodyBytes; got != 35<<20 {
		t.Errorf("default http.max_body_bytes is %d, want 35 MiB", got)
	}
	s := newServer(t, webhookURLs, func(c *serverConfig) { c.api.MaxBodyBytes, c.api.MaxImportBytes = contractMaxBody, contractMaxBody })
	hooks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(hooks.Close)

	c := newContract(t, s)
	c.hooks = hooks.URL
	if !bytes.Equal(c.raw, mustReadFile(t, "openapi.json")) {
		t.Error("GET /v1/openapi.json is not api/openapi.json")
	}

	// Resources every later call needs.
	whID := c.id(c.call("createWebhook", "", nil))
	c.call("listWebhooks", "", nil)
	created := c.call("createDomain", "", nil)
	domID := c.id(created)
	var d struct {
		DNSRecords []struct{ Name, Value string }
	}
	created.Decode(t, &d)
	for _, r := range d.DNSRecords {
		s.dns.SetTXT(r.Name, r.Value)
	}
	c.call("listDomains", "", nil)
	c.call("getDomain", "", map[string]string{"id": domID})
	c.call("verifyDomain", "", map[string]string{"id": domID})

	c.tplID = c.id(c.call("createTemplate", "", nil))
	c.call("listTemplates", "", nil)
	c.call("getTemplate", "", map[string]string{"id": c.tplID})
	c.call("updateTemplate", "", map[string]string{"id": c.tplID})
	ct := map[string]string{"id": c.id(c.call("createContact", "", nil))}
	c.call("importContacts", "", nil)
	c.call("listContacts", "", nil)
	c.call("getContact", "", ct)
	c.call("updateContact", "", ct)
	seg := map[string]string{"id": c.id(c.call("createSegment", "", nil))}
	c.call("listSegments", "", nil)
	c.call("getSegment", "", seg)
	c.call("updateSegment", "", seg)
	c.call("createSuppression", "", nil)
	c.call("listSuppressions", "", nil)
	keyID := c.id(c.call("createApiKey", "", nil))
	c.call("listApiKeys", "", nil)

	// Tracking settings, on the verified sender domain.
	acme := map[string]string{"id": s.domainID(senderDomain)}
	c.call("getTrackingDefaults", "", nil)
	c.call("updateTrackingDefaults", "", nil)
	c.call("putDomainTracking", "", acme)
	c.call("setTrackingDomain", "", acme)
	s.dns.SetCNAME("t."+senderDomain, "t.gateway.test")
	c.call("verifyTrackingDomain", "", acme)
	c.call("getDomainTracking", "", acme)

	// Sends: every example.
	ids := map[string]string{}
	for _, name := range c.requestExampleNames("sendEmail") {
		ids[name] = c.id(c.call("sendEmail", name, nil))
	}
	c.call("sendBatch", "", nil)
	for _, name := range c.requestExampleNames("previewEmail") {
		c.call("previewEmail", name, nil)
	}
	c.postMIME("previewEmail", nil)
	s.markDelivered(ids["basic"], ids["tracking"])
	email := map[string]string{"id": ids["basic"]}
	c.call("getEmail", "", email)
	c.call("getEmailContent", "", email)
	c.call("listEmailEvents", "", email)
	c.call("listEmails", "", nil)
	c.call("cancelSchedule", "", map[string]string{"id": ids["scheduled"]})

	// Sends (Pigeon Perch): every example, from a template with a sender
	// whose tokens have defaults, so that every example's personalizations
	// fit it; to the contact and the segment made above.
	tplID := c.tplID
	c.tplID = c.sendsTemplate()
	c.docIDs = []string{"ct_abc123", ct["id"], "seg_abc123", seg["id"]}
	sends := map[string]string{}
	for _, name := range c.requestExampleNames("createSend") {
		if r := c.call("createSend", name, nil); name != "segment" {
			sends[name] = c.id(r)
		}
	}
	var batch struct{ BatchID string }
	c.call("createSendBatch", "", nil).Decode(t, &batch)
	c.call("getBatch", "", map[string]string{"id": batch.BatchID})
	c.call("listSends", "", nil)
	s.markDelivered(sends["address"])
	c.call("getSend", "", map[string]string{"id": sends["address"]})
	// The send's unsubscribe link: its page, then the one-click POST.
	unsub := map[string]string{"id": c.unsubscribeID(sends["address"])}
	c.call("unsubscribePage", "", unsub)
	c.call("unsubscribe", "", unsub)
	// The next send to that contact is recorded, not delivered.
	body, _, _ := c.requestBody("createSend", "address")
	c.checkResponse("createSend", "suppressed", c.do("POST", "/v1/sends", liveKey, nil, body))

	// The tracking endpoints, with the links of the tracked email.
	c.call("trackOpen", "", map[string]string{"emailId": ids["tracking"]})
	_, _, clicks := s.TrackingURLs(ids["tracking"])
	if len(clicks) == 0 {
		t.Fatal("tracked email: no click link")
	}
	r := c.call("trackClick", "", map[string]string{"trackingId": strings.TrimPrefix(clicks[0], "/v1/track/click/")})
	if loc := r.Header.Get("Location"); loc != "https://"+rcptDomain+"/activate" {
		t.Errorf("click redirects to %q", loc)
	}
	s.SettleHits() // the hits are recorded after the answer
	c.call("listEvents", "", nil)
	c.call("getAnalytics", "", nil)
	c.call("getUsage", "", nil)
	c.call("getReputation", "", nil)
	// A delivery to hooks given up, as the webhook dispatcher records it
	// (cmd/pigeonpost's TestWebhookGivenUp has the dispatcher do it).
	if err := s.p.Store.FailWebhookDelivery(context.Background(), &store.WebhookDelivery{
		ID: "whmsg_contract", AccountID: s.accountID, EndpointID: whID, Event: "email.delivered",
		Body: []byte(`{}`), Attempts: 3, LastError: "503 Service Unavailable", CreatedAt: time.Now().Add(-time.Minute),
	}, time.Now()); err != nil {
		t.Fatal(err)
	}
	c.call("listFailedWebhooks", "", nil)
	// An attempt at a delivery to hooks, as the dispatcher records it.
	if err := s.p.Store.RecordWebhookAttempt(context.Background(), s.accountID, store.WebhookAttempt{
		DeliveryID: "whmsg_contract", EndpointID: whID, Event: "email.delivered", Attempt: 1, At: time.Now().UTC(),
		Outcome: store.AttemptRetrying, HTTPStatus: 503, LatencyMs: 20, Response: "HTTP 503 Service Unavailable",
	}); err != nil {
		t.Fatal(err)
	}
	c.call("listWebhookDeliveries", "", map[string]string{"id": whID})
	// A delivery of a recorded event to hooks, given up, then redelivered;
	// a replay of the last hour to hooks.
	var delivered struct{ Data []struct{ ID string } }
	if code := s.JSON("GET", "/v1/events?type=delivered&limit=1", liveKey, nil, &delivered); code != http.StatusOK || len(delivered.Data) == 0 {
		t.Fatalf("no delivered event: %d", code)
	}
	given := &store.WebhookDelivery{ID: webhooks.DeliveryID(delivered.Data[0].ID, whID), AccountID: s.accountID, EndpointID: whID,
		Event: "email.delivered", Body: []byte(`{}`), Attempts: 9, LastError: "endpoint answered HTTP 503",
		CreatedAt: time.Now().Add(-time.Hour), StreamID: delivered.Data[0].ID}
	if err := s.p.Store.FailWebhookDelivery(context.Background(), given, time.Now()); err != nil {
		t.Fatal(err)
	}
	c.call("redeliverWebhook", "", map[string]string{"id": given.ID})
	c.call("replayWebhook", "", map[string]string{"id": whID})
	c.call("healthz", "", nil)
	c.call("metrics", "", nil)
	c.call("getOpenAPI", "", nil)

	// An endpoint of its own for the replays of the body checks: one
	// replay of an endpoint at a time.
	hook, _ := s.CreateWebhook(c.hooks, "email.delivered", "email.opened")
	t.Run("request bodies", func(t *testing.T) {
		c.checkBodies(t, map[string]string{"id": c.tplID}, acme, ct, seg, map[string]string{"id": hook})
	})
	// Reports about the delivered emails, a complaint then a bounce, once
	// no more mail goes to their recipient: they suppress it.
	c.callReport("receiveFeedbackReport", ids["basic"])
	c.callReport("receiveBounceReport", ids["tracking"])
	c.call("deleteSegment", "", seg)
	c.call("deleteContact", "", ct)

	c.call("deleteTemplate", "", map[string]string{"id": tplID})
	c.call("deleteSuppression", "", map[string]string{"email": "bounced@" + rcptDomain})
	c.call("deleteDomain", "", map[string]string{"id": domID})
	c.call("deleteApiKey", "", map[string]string{"id": keyID})
	c.call("deleteWebhook", "", map[string]string{"id": whID})

	// Everything was exercised.
	for _, id := range c.opIDs() {
		if !c.called[id] {
			t.Errorf("operation %s was not called", id)
		}
		for _, name := range c.requestExampleNames(id) {
			if !c.called[id+"/"+name] {
				t.Errorf("request example %s of %s was not sent", name, id)
			}
		}
		if c.mimeExample(id) != "" && !c.called[id+"/"+mimeType] {
			t.Errorf("the message/rfc822 example of %s was not sent", id)
		}
		for _, resp := range c.successes(id) {
			for name := range examplesOf(jsonObject(jsonObject(resp["content"])["application/json"])) {
				if !c.called[id+"/response/"+name] {
					t.Errorf("response example %s of %s was not compared with an answer", name, id)
				}
			}
		}
	}
	registered := map[string]bool{}
	for _, p := range api.Routes() {
		registered[p] = true
	}
	for _, id := range c.opIDs() {
		if o := c.ops[id]; !registered[o.method+" "+o.path] {
			t.Errorf("%s: %s %s is not a registered route", id, o.method, o.path)
		}
	}
}

// TestOpenAPIExamplesMatchSchemas: every request and response example of
// the document validates against its own schema.
func TestOpenAPIExamplesMatchSchemas(t *testing.T) {
	doc := parseDoc(t, mustReadFile(t, "openapi.json"))
	n := 0
	for _, id := range doc.opIDs() {
		o := doc.ops[id]
		if body := jsonObject(o.op["requestBody"]); body != nil {
			c := requestMedia(body)
			for name, ex := range examplesOf(c) {
				n++
				for _, p := range doc.validate("", jsonObject(c["schema"]), ex) {
					t.Errorf("%s request example %s: %s", id, name, p)
				}
			}
		}
		for code, r := range jsonObject(o.op["responses"]) {
			c := jsonObject(jsonObject(doc.deref(r)["content"])["application/json"])
			for name, ex := range examplesOf(c) {
				n++
				for _, p := range doc.validate("", jsonObject(c["schema"]), ex) {
					t.Errorf("%s response %s example %s: %s", id, code, name, p)
				}
			}
		}
	}
	if n < 40 {
		t.Errorf("only %d examples", n)
	}
}

// ---- the contract client ----

type operation struct {
	method, path string // as the route table spells them ("GET", "/v1/emails/{id}")
	op           map[string]any
}

type oasDoc struct {
	root map[string]any
	ops  map[string]operation // by operationId
}

type contract struct {
	*oasDoc
	t      *testing.T
	s      *server
	raw    []byte // the document as served
	client *http.Client
	tplID  string
	docIDs []string // more pairs for docReplacer
	hooks  string
	called map[string]bool // operationIds, and operationId/example
}

func newContract(t *testing.T, s *server) *contract {
	t.Helper()
	c := &contract{t: t, s: s, called: map[string]bool{},
		client: &http.Client{Timeout: 30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	r := c.do("GET", "/v1/openapi.json", "", nil, nil)
	if r.Code != http.StatusOK {
		t.Fatalf("GET /v1/openapi.json: %d %s", r.Code, r.Body)
	}
	c.raw = r.Body
	c.oasDoc = parseDoc(t, r.Body)
	return c
}

func mustReadFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func parseDoc(t *testing.T, raw []byte) *oasDoc {
	t.Helper()
	d := &oasDoc{ops: map[string]operation{}}
	if err := json.Unmarshal(raw, &d.root); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	for path, item := range jsonObject(d.root["paths"]) {
		for method, op := range jsonObject(item) {
			op := jsonObject(op)
			if id, _ := op["operationId"].(string); id != "" {
				d.ops[id] = operation{method: strings.ToUpper(method), path: path, op: op}
			}
		}
	}
	if len(d.ops) == 0 {
		t.Fatal("openapi.json has no operations")
	}
	return d
}

func (d *oasDoc) opIDs() []string {
	ids := make([]string, 0, len(d.ops))
	for id := range d.ops {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// formType is the request body of the one-click unsubscribe (RFC 8058).
const formType = "application/x-www-form-urlencoded"

// requestMedia returns a request body's JSON media type, or its form one.
func requestMedia(body map[string]any) map[string]any {
	content := jsonObject(body["content"])
	if c := jsonObject(content["application/json"]); c != nil {
		return c
	}
	return jsonObject(content[formType])
}

// requestExampleNames are the names of an operation's request examples.
func (d *oasDoc) requestExampleNames(id string) []string {
	c := requestMedia(jsonObject(d.ops[id].op["requestBody"]))
	var names []string
	for name := range examplesOf(c) {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// successes returns the operation's success responses by status.
func (d *oasDoc) successes(id string) map[int]map[string]any {
	out := map[int]map[string]any{}
	for code, r := range jsonObject(d.ops[id].op["responses"]) {
		var n int
		if _, err := fmt.Sscan(code, &n); err == nil && n >= 200 && n < 400 {
			out[n] = d.deref(r)
		}
	}
	return out
}

// success returns the success status and response that the request
// example named example gets: the only one, or, for an operation with
// several (POST /v1/sends: 200, and 202 for a segment), the one with a
// response example of that name, else the one with a default example.
func (d *oasDoc) success(id, example string) (int, map[string]any) {
	all := d.successes(id)
	codes := make([]int, 0, len(all))
	for n := range all {
		codes = append(codes, n)
	}
	sort.Ints(codes)
	for _, name := range []string{example, "default"} {
		for _, n := range codes {
			if _, ok := examplesOf(jsonObject(jsonObject(all[n]["content"])["application/json"]))[name]; ok || len(codes) == 1 {
				return n, all[n]
			}
		}
	}
	if len(codes) == 0 {
		return 0, nil
	}
	return codes[0], all[codes[0]]
}

// public reports whether the operation is documented without security.
func (d *oasDoc) public(id string) bool {
	sec, ok := d.ops[id].op["security"]
	return ok && len(jsonList(sec)) == 0
}

// requestBody returns the request example name of id (the only one when
// name is ""), with the document's names replaced by the test server's, and
// scheduled_at (scheduledAt) moved to an hour from now and a replay's
// window to the last hour (examples cannot know the date); and its content
// type: JSON, or a form.
func (c *contract) requestBody(id, name string) ([]byte, string, string) {
	c.t.Helper()
	body := jsonObject(c.ops[id].op["requestBody"])
	if body == nil {
		return nil, "", ""
	}
	ctype := "application/json"
	if jsonObject(jsonObject(body["content"])[ctype]) == nil {
		ctype = formType
	}
	exs := examplesOf(requestMedia(body))
	if name == "" {
		if len(exs) != 1 {
			c.t.Fatalf("%s has %d request examples; name one", id, len(exs))
		}
		for n := range exs {
			name = n
		}
	}
	ex, ok := exs[name]
	if !ok {
		c.t.Fatalf("%s has no request example %q", id, name)
	}
	raw, _ := json.Marshal(ex)
	var v map[string]any
	if err := json.Unmarshal([]byte(docReplacer(c.hooks, c.tplID, c.docIDs...).Replace(string(raw))), &v); err != nil {
		c.t.Fatal(err)
	}
	for _, field := range []string{"scheduled_at", "scheduledAt"} {
		if _, ok := v[field]; ok {
			v[field] = time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
		}
	}
	// A replay's window ends now (and may span a week at most).
	for field, ago := range map[string]time.Duration{"since": time.Hour, "until": 0} {
		if _, ok := v[field]; ok {
			v[field] = time.Now().Add(-ago).UTC().Format(time.RFC3339)
		}
	}
	if ctype == formType {
		form := url.Values{}
		for k, x := range v {
			form.Set(k, fmt.Sprint(x))
		}
		return []byte(form.Encode()), name, ctype
	}
	out, _ := json.Marshal(v)
	return out, name, ctype
}

// call sends the operation id with its request example name (if it has a
// body) and path parameters, and checks the answer against the document.
func (c *contract) call(id, example string, params map[string]string) resttest.Response {
	c.t.Helper()
	o, ok := c.ops[id]
	if !ok {
		c.t.Fatalf("no operation %s in openapi.json", id)
	}
	if id == "createWebhook" && c.hooks == "" {
		c.t.Fatal("createWebhook before the receiver is known")
	}
	path := o.path
	for name, v := range params {
		path = strings.ReplaceAll(path, "{"+name+"}", url.PathEscape(v))
	}
	if strings.Contains(path, "{") {
		c.t.Fatalf("%s: path parameters missing in %s", id, path)
	}
	body, example, ctype := c.requestBody(id, example)
	key := liveKey
	if c.public(id) {
		key = ""
	}
	var headers map[string]string
	if ctype == formType {
		headers = map[string]string{"Content-Type": ctype}
	}
	r := c.do(o.method, path, key, headers, body)
	c.called[id] = true
	if example != "" {
		c.called[id+"/"+example] = true
	}
	c.checkResponse(id, example, r)
	return r
}

// callReport posts the raw report of the operation's message/rfc822
// example, its X-Pigeonpost-Id made to name emailID (the document's id
// cannot verify here), and checks the answer.
func (c *contract) callReport(id, emailID string) {
	c.t.Helper()
	if !strings.Contains(c.mimeExample(id), "\nX-Pigeonpost-Id: ") {
		c.t.Fatalf("%s: no message/rfc822 example naming an email", id)
	}
	c.postMIME(id, func(ex string) string {
		return regexp.MustCompile(`X-Pigeonpost-Id: \S+`).ReplaceAllString(ex, "X-Pigeonpost-Id: "+c.s.p.Signer.FeedbackID(emailID))
	})
}

// mimeType is the media type of a request body that is a message.
const mimeType = "message/rfc822"

// mimeExample is the operation's message/rfc822 request example ("" for none).
func (c *contract) mimeExample(id string) string {
	media := jsonObject(jsonObject(jsonObject(c.ops[id].op["requestBody"])["content"])[mimeType])
	ex, _ := media["example"].(string)
	return ex
}

// postMIME posts the operation's message/rfc822 example, with the
// document's names replaced by the test server's and then edited by edit
// (unless nil), and checks the answer.
func (c *contract) postMIME(id string, edit func(string) string) resttest.Response {
	c.t.Helper()
	o := c.ops[id]
	ex := c.mimeExample(id)
	if ex == "" {
		c.t.Fatalf("%s: no message/rfc822 example", id)
	}
	body := docReplacer(c.hooks, c.tplID, c.docIDs...).Replace(ex)
	if edit != nil {
		body = edit(body)
	}
	r := c.do(o.method, o.path, liveKey, map[string]string{"Content-Type": mimeType}, []byte(body))
	c.called[id] = true
	c.called[id+"/"+mimeType] = true
	c.checkResponse(id, "", r)
	return r
}

// checkResponse checks r against the operation's success response.
func (c *contract) checkResponse(id, example string, r resttest.Response) {
	c.t.Helper()
	status, resp := c.success(id, example)
	what := id
	if example != "" {
		what += " (" + example + ")"
	}
	if r.Code != status {
		c.t.Errorf("%s: status %d, documented %d: %s", what, r.Code, status, r.Body)
		return
	}
	content := jsonObject(resp["content"])
	for ctype := range content {
		if got := r.Header.Get("Content-Type"); !strings.HasPrefix(got, ctype) {
			c.t.Errorf("%s: Content-Type %q, documented %s", what, got, ctype)
		}
	}
	media := jsonObject(content["application/json"])
	if media == nil {
		return
	}
	var v any
	if err := json.Unmarshal(r.Body, &v); err != nil {
		c.t.Errorf("%s: the answer is not JSON: %v: %s", what, err, r.Body)
		return
	}
	for _, p := range c.validate("", jsonObject(media["schema"]), v) {
		c.t.Errorf("%s: answer does not match the schema: %s\n%s", what, p, r.Body)
	}
	exs := examplesOf(media)
	name := example
	if _, ok := exs[name]; !ok {
		name = "default"
	}
	ex, ok := exs[name]
	if !ok {
		c.t.Errorf("%s: no response example named %q or default", what, example)
		return
	}
	c.called[id+"/response/"+name] = true
	for _, p := range c.shape("", jsonObject(media["schema"]), ex, v) {
		c.t.Errorf("%s: answer unlike the documented example: %s\n%s", what, p, r.Body)
	}
}

// do sends one request (without following redirects) as a browser would.
func (c *contract) do(method, path, key string, headers map[string]string, body []byte) resttest.Response {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, _ := http.NewRequest(method, c.s.URL+path, rd)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", browserUA)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resttest.Response{Code: resp.StatusCode, Header: resp.Header, Body: raw}
}

// sendsTemplate creates the template of the sends examples and returns its
// id: with a sender, and a default for each token of the examples.
func (c *contract) sendsTemplate() string {
	c.t.Helper()
	tokens := ""
	for _, name := range []string{"order_id", "tracking_url", "total", "discount"} {
		tokens += " {{" + name + ` | default: ""}}`
	}
	body, _ := json.Marshal(map[string]any{"name": "sends", "from": "Acme <hello@" + senderDomain + ">",
		"subject": "Hello {{first_name | default: \"there\"}}", "html": "<p>Hi {{first_name | default: \"there\"}}," + tokens + "</p>"})
	r := c.do("POST", "/v1/templates", liveKey, nil, body)
	if r.Code != http.StatusCreated {
		c.t.Fatalf("create the sends template: %d %s", r.Code, r.Body)
	}
	return c.id(r)
}

// unsubscribeID returns the id of the unsubscribe link of the send id:
// the https link of the List-Unsubscribe header of its stored content.
func (c *contract) unsubscribeID(id string) string {
	c.t.Helper()
	m, _ := c.s.message(id)
	for _, part := range strings.Split(m.Header.Get("List-Unsubscribe"), ",") {
		u, err := url.Parse(strings.Trim(strings.TrimSpace(part), "<>"))
		if err == nil && u.Scheme == "https" {
			if id, ok := strings.CutPrefix(u.Path, "/v1/unsubscribe/"); ok {
				return id
			}
		}
	}
	c.t.Fatalf("no unsubscribe link in List-Unsubscribe: %q", m.Header.Get("List-Unsubscribe"))
	return ""
}

func (c *contract) id(r resttest.Response) string {
	c.t.Helper()
	var v struct{ ID string }
	_ = json.Unmarshal(r.Body, &v)
	if v.ID == "" {
		c.t.Fatalf("no id in %d %s", r.Code, r.Body)
	}
	return v.ID
}

// bodyCase is how checkBodies exercises one operation with a JSON body.
type bodyCase struct {
	params  map[string]string
	example string                 // the request example to add unknown fields to; "" for the only one
	tweak   func(v map[string]any) // makes the example acceptable a second time
	wrong   string                 // a body with one field of the wrong type
	field   string                 // the field the 400 must name
}

// checkBodies: for every operation with a JSON body, unknown fields are
// accepted; a wrong type is a 400 naming the field; a body over the limit
// is a 413 with the error shape (with and without Idempotency-Key).
func (c *contract) checkBodies(t *testing.T, tpl, acme, ct, seg, hook map[string]string) {
	fromTo := `"from":"hello@` + senderDomain + `","to":"user@` + rcptDomain + `"`
	cases := map[string]bodyCase{
		"sendEmail":              {example: "basic", wrong: `{` + fromTo + `,"subject":"s","text":"t","tracking":{"opens":"yes"}}`, field: "tracking.opens"},
		"sendBatch":              {wrong: `{"emails":{` + fromTo + `}}`, field: "emails"},
		"previewEmail":           {example: "basic", wrong: `{` + fromTo + `,"subject":"s","text":"t","tracking":{"clicks":1}}`, field: "tracking.clicks"},
		"createTemplate":         {wrong: `{"name":5,"html":"x"}`, field: "name"},
		"updateTemplate":         {params: tpl, wrong: `{"subject":false}`, field: "subject"},
		"createContact":          {tweak: func(v map[string]any) { v["email"] = "another@" + rcptDomain }, wrong: `{"email":5}`, field: "email"},
		"updateContact":          {params: ct, wrong: `{"tags":"vip"}`, field: "tags"},
		"importContacts":         {wrong: `{"contacts":{"email":"x@` + rcptDomain + `"}}`, field: "contacts"},
		"createSegment":          {wrong: `{"name":1}`, field: "name"},
		"updateSegment":          {params: seg, wrong: `{"filter":{"tags":"vip"}}`, field: "filter.tags"},
		"createSuppression":      {wrong: `{"email":["bounced@` + rcptDomain + `"]}`, field: "email"},
		"createDomain":           {tweak: func(v map[string]any) { v["name"] = "future." + rcptDomain }, wrong: `{"name":1}`, field: "name"},
		"createApiKey":           {wrong: `{"name":"ci","permission":true}`, field: "permission"},
		"updateTrackingDefaults": {wrong: `{"privacyMode":"yes"}`, field: "privacyMode"},
		"putDomainTracking":      {params: acme, wrong: `{"openTracking":1}`, field: "openTracking"},
		"setTrackingDomain":      {params: acme, wrong: `{"trackingDomain":7}`, field: "trackingDomain"},
		"createSend":             {example: "address", wrong: `{"templateId":"` + tpl["id"] + `","segmentId":5}`, field: "segmentId"},
		"createSendBatch":        {wrong: `{"templateId":"` + tpl["id"] + `","recipients":{"to":"user@` + rcptDomain + `"}}`, field: "recipients"},
		"createWebhook":          {wrong: `{"url":"` + c.hooks + `","events":"email.opened"}`, field: "events"},
		"replayWebhook":          {params: hook, wrong: `{"since":5}`, field: "since"},
	}
	for _, id := range c.opIDs() {
		if body := jsonObject(c.ops[id].op["requestBody"]); jsonObject(jsonObject(body["content"])["application/json"]) == nil {
			continue // none, or the one-click form (not JSON)
		}
		bc, ok := cases[id]
		if !ok {
			t.Errorf("%s takes a JSON body but has no case here", id)
			continue
		}
		delete(cases, id)
		t.Run(id, func(t *testing.T) { c.checkBody(t, id, bc) })
	}
	for id := range cases {
		t.Errorf("case %s: no such operation with a JSON body", id)
	}

	t.Run("a wrong type in one email of a batch fails that email, named", func(t *testing.T) {
		r := c.do("POST", "/v1/emails/batch", liveKey, nil, []byte(`{"emails":[{`+fromTo+`,"subject":5,"text":"t"},{`+fromTo+`,"subject":"s","text":"t"}]}`))
		var out struct {
			Data []struct {
				Status string
				Error  struct{ Code, Message string }
			}
		}
		r.Decode(t, &out)
		if r.Code != http.StatusOK || len(out.Data) != 2 || out.Data[0].Status != "failed" ||
			!strings.HasPrefix(out.Data[0].Error.Message, "emails[0].subject: must be") || out.Data[1].Status != "sent" {
			t.Errorf("%d %s", r.Code, r.Body)
		}
	})
}

func (c *contract) checkBody(t *testing.T, id string, bc bodyCase) {
	o := c.ops[id]
	path := o.path
	for name, v := range bc.params {
		path = strings.ReplaceAll(path, "{"+name+"}", url.PathEscape(v))
	}
	status, _ := c.success(id, bc.example)

	body, _, _ := c.requestBody(id, bc.example)
	var v map[string]any
	_ = json.Unmarshal(body, &v)
	if bc.tweak != nil {
		bc.tweak(v)
	}
	ok, _ := json.Marshal(v)
	if r := c.do(o.method, path, liveKey, nil, ok); r.Code != status {
		t.Errorf("the example: %d, want %d: %s", r.Code, status, r.Body)
	}
	// A field the route does not know is refused, named: a typo must not
	// be a silent no-op.
	v["trackng"] = map[string]any{"nested": []any{1, "two", nil}}
	body, _ = json.Marshal(v)
	if r := c.do(o.method, path, liveKey, nil, body); r.Code != http.StatusBadRequest || r.ErrCode() != "invalid_request" ||
		!strings.HasPrefix(r.ErrMessage(), `unknown field "trackng"`) {
		t.Errorf("an unknown field: %d %s", r.Code, r.Body)
	}

	r := c.do(o.method, path, liveKey, nil, []byte(bc.wrong))
	if r.Code != http.StatusBadRequest || r.ErrCode() != "validation_error" || !strings.HasPrefix(r.ErrMessage(), bc.field+": must be") {
		t.Errorf("wrong type of %s: %d %s", bc.field, r.Code, r.Body)
	}
	c.wantErrorShape(t, "wrong type", r)

	big := []byte(`{"padding":"` + strings.Repeat("a", contractMaxBody) + `"}`)
	headers := []map[string]string{nil}
	if o.method == "POST" {
		headers = append(headers, map[string]string{"Idempotency-Key": "contract-too-large-" + id})
	}
	for _, h := range headers {
		r := c.do(o.method, path, liveKey, h, big)
		if r.Code != http.StatusRequestEntityTooLarge || r.ErrCode() != "payload_too_large" {
			t.Errorf("body over the limit (headers %v): %d %s", h, r.Code, r.Body)
		}
		c.wantErrorShape(t, "body over the limit", r)
	}
}

// wantErrorShape checks that r is {"error": {"code", "message"}} and nothing else.
func (c *contract) wantErrorShape(t *testing.T, what string, r resttest.Response) {
	t.Helper()
	var v any
	if err := json.Unmarshal(r.Body, &v); err != nil || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		t.Errorf("%s: not JSON (%q): %s", what, r.Header.Get("Content-Type"), r.Body)
		return
	}
	for _, p := range c.validate("", map[string]any{"$ref": "#/components/schemas/Error"}, v) {
		t.Errorf("%s: not the error shape: %s: %s", what, p, r.Body)
	}
}

// ---- a small JSON Schema checker: the subset openapi.json uses ----

func jsonObject(v any) map[string]any { m, _ := v.(map[string]any); return m }

func jsonList(v any) []any { l, _ := v.([]any); return l }

// examplesOf returns a media type's examples by name ("default" for example).
func examplesOf(c map[string]any) map[string]any {
	out := map[string]any{}
	if ex, ok := c["example"]; ok {
		out["default"] = ex
	}
	for name, ex := range jsonObject(c["examples"]) {
		out[name] = jsonObject(ex)["value"]
	}
	return out
}

// deref follows a local $ref ("#/components/...").
func (d *oasDoc) deref(v any) map[string]any {
	m := jsonObject(v)
	for range 10 {
		ref, ok := m["$ref"].(string)
		if !ok {
			return m
		}
		m = d.root
		for _, k := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			m = jsonObject(m[k])
		}
	}
	return m
}

// flatten resolves schema and merges its allOf parts into one object schema.
func (d *oasDoc) flatten(schema map[string]any) map[string]any {
	schema = d.deref(schema)
	parts, ok := schema["allOf"].([]any)
	if !ok {
		return schema
	}
	out := map[string]any{"type": "object", "properties": map[string]any{}}
	var required []any
	for _, p := range parts {
		p := d.flatten(jsonObject(p))
		for k, v := range jsonObject(p["properties"]) {
			out["properties"].(map[string]any)[k] = v
		}
		required = append(required, jsonList(p["required"])...)
	}
	out["required"] = required
	return out
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case float64:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func (d *oasDoc) allows(schema map[string]any, typ string) bool {
	switch t := schema["type"].(type) {
	case string:
		return t == typ
	case []any:
		return slices.Contains(t, any(typ))
	}
	return true // no type: anything
}

// problemAt is one problem found at where (a path like ".data[0].id").
func problemAt(where, format string, args ...any) []string {
	if where == "" {
		where = "the top"
	}
	return []string{"at " + strings.TrimPrefix(where, ".") + ": " + fmt.Sprintf(format, args...)}
}

// validate returns where v does not match schema.
func (d *oasDoc) validate(where string, schema map[string]any, v any) []string {
	schema = d.flatten(schema)
	at := func(format string, args ...any) []string { return problemAt(where, format, args...) }
	if alts, ok := schema["oneOf"].([]any); ok {
		n := 0
		for _, a := range alts {
			if len(d.validate(where, jsonObject(a), v)) == 0 {
				n++
			}
		}
		if n != 1 {
			return at("matches %d of the oneOf schemas, want 1", n)
		}
		return nil
	}
	typ := jsonType(v)
	ok := d.allows(schema, typ)
	if !ok && typ == "number" && d.allows(schema, "integer") {
		ok = v.(float64) == math.Trunc(v.(float64))
	}
	if !ok {
		return at("%s, documented %v", typ, schema["type"])
	}
	if enum, ok := schema["enum"].([]any); ok && !slices.ContainsFunc(enum, func(e any) bool { return reflect.DeepEqual(e, v) }) {
		return at("%v is not one of %v", v, enum)
	}
	var problems []string
	switch v := v.(type) {
	case string:
		layout := map[string]string{"date-time": time.RFC3339Nano, "date": time.DateOnly}[fmt.Sprint(schema["format"])]
		if _, err := time.Parse(layout, v); layout != "" && err != nil {
			problems = append(problems, at("%q is not a %v", v, schema["format"])...)
		}
	case []any:
		for i, x := range v {
			problems = append(problems, d.validate(fmt.Sprintf("%s[%d]", where, i), jsonObject(schema["items"]), x)...)
		}
	case map[string]any:
		props := jsonObject(schema["properties"])
		for _, r := range jsonList(schema["required"]) {
			if _, ok := v[r.(string)]; !ok {
				problems = append(problems, at("lacks required property %v", r)...)
			}
		}
		extra := jsonObject(schema["additionalProperties"])
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			switch p, ok := props[k]; {
			case ok:
				problems = append(problems, d.validate(where+"."+k, jsonObject(p), v[k])...)
			case extra != nil:
				problems = append(problems, d.validate(where+"."+k, extra, v[k])...)
			case props != nil:
				problems = append(problems, at("undocumented property %q", k)...)
			}
		}
	}
	return problems
}

// shape returns where v lacks something of the example ex: every property
// of an example object is in v with the same JSON type (null where the
// schema allows it), and every element of an example array is like some
// element of v. Free-form objects (no properties) are compared by type only.
func (d *oasDoc) shape(where string, schema map[string]any, ex, v any) []string {
	schema = d.flatten(schema)
	at := func(format string, args ...any) []string { return problemAt(where, format, args...) }
	if ex == nil {
		return nil
	}
	if v == nil {
		if d.allows(schema, "null") {
			return nil
		}
		return at("null, the example has %s", jsonType(ex))
	}
	if jsonType(ex) != jsonType(v) {
		return at("%s, the example has %s", jsonType(v), jsonType(ex))
	}
	var problems []string
	switch ex := ex.(type) {
	case map[string]any:
		props := jsonObject(schema["properties"])
		if props == nil {
			return nil
		}
		v := v.(map[string]any)
		keys := make([]string, 0, len(ex))
		for k := range ex {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			got, ok := v[k]
			if !ok {
				problems = append(problems, at("lacks %q", k)...)
				continue
			}
			problems = append(problems, d.shape(where+"."+k, jsonObject(props[k]), ex[k], got)...)
		}
	case []any:
		v := v.([]any)
		for i, e := range ex {
			if !slices.ContainsFunc(v, func(x any) bool { return len(d.shape("", jsonObject(schema["items"]), e, x)) == 0 }) {
				problems = append(problems, at("no element like the example's element %d (%d elements)", i, len(v))...)
			}
		}
	}
	return problems
}
