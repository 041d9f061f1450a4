package api_test

import (
	"context"
	"fmt"
	"mime"
	"net/http"
	"net/mail"
	"net/url"
	"strings"
	"testing"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline"
	"github.com/pigeonpost/pigeonpost/pipeline/contacts"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// The sends API (Pigeon Perch): templates rendered per recipient with
// personalizations over the contact's fields, contacts made on first use,
// batches, segments and the one-click unsubscribe link.

type sendAnswer struct {
	ID, To, ContactID string
	Status            store.Status
	Error             *struct{ Code, Message string }
}

// template creates a template and returns its id.
func (s *server) template(fields map[string]any) string {
	s.t.Helper()
	var t struct{ ID string }
	if code := s.JSON("POST", "/v1/templates", liveKey, fields, &t); code != http.StatusCreated && code != http.StatusOK {
		s.t.Fatalf("create template: %d", code)
	}
	return t.ID
}

// contact creates a contact of the bootstrap account.
func (s *server) contact(email, first, last, company string, custom map[string]string, tags ...string) *contacts.Contact {
	s.t.Helper()
	k, err := s.p.Pipeline.Authenticate(context.Background(), liveKey)
	if err != nil {
		s.t.Fatal(err)
	}
	f := contacts.Fields{Email: &email, FirstName: &first, LastName: &last, Company: &company, Tags: &tags,
		Fields: map[string]*string{}}
	for name, v := range custom {
		f.Fields[name] = &v
	}
	c, err := s.p.Contacts.Create(context.Background(), k, f)
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

// message is the stored MIME of an email, parsed, and as text.
func (s *server) message(id string) (*mail.Message, string) {
	s.t.Helper()
	raw := s.content(id)
	m, err := mail.ReadMessage(strings.NewReader(string(raw)))
	if err != nil {
		s.t.Fatal(err)
	}
	return m, string(raw)
}

func TestSendsPersonalizationPrecedence(t *testing.T) {
	s := newServer(t)
	tpl := s.template(map[string]any{
		"name": "order", "from": "Acme <" + s.From + ">",
		"subject": "Hi {{first_name}}",
		"text":    "[{{first_name}}|{{last_name}}|{{company}}|{{plan}}|{{email}}|{{order_id}}|{{greeting | default: \"Hello\"}}]",
		"html":    "<p>{{first_name}}</p>",
	})
	s.contact("jane@"+rcptDomain, "Jane", "Roe", "Acme Inc", map[string]string{"plan": "pro"})
	for _, tc := range []struct {
		name     string
		personal map[string]any
		subject  string
		want     string // the text part
		wantSubj string
		wantCode string // an error
	}{
		{name: "contact fields fill the tokens", want: "[Jane|Roe|Acme Inc|pro|jane@example.test||Hello]",
			personal: map[string]any{"order_id": ""}, wantSubj: "Hi Jane"},
		{name: "personalizations win over contact fields", personal: map[string]any{"first_name": "Dr. Jane", "order_id": 42, "plan": true, "greeting": "Hey"},
			want: "[Dr. Jane|Roe|Acme Inc|true|jane@example.test|42|Hey]", wantSubj: "Hi Dr. Jane"},
		{name: "the request's subject is a template too", personal: map[string]any{"order_id": "ORD-1"}, subject: "Order {{order_id}} for {{company}}",
			want: "[Jane|Roe|Acme Inc|pro|jane@example.test|ORD-1|Hello]", wantSubj: "Order ORD-1 for Acme Inc"},
		{name: "a token nothing fills is named", wantCode: "validation_error"},
		{name: "a line break in the subject is refused", personal: map[string]any{"order_id": "1", "first_name": "x\r\nBcc: a@b.test"}, wantCode: "validation_error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := map[string]any{"templateId": tpl, "to": "jane@" + rcptDomain, "personalizations": tc.personal}
			if tc.subject != "" {
				body["subject"] = tc.subject
			}
			r := s.Call("POST", "/v1/sends", liveKey, nil, body)
			if tc.wantCode != "" {
				if r.Code != http.StatusBadRequest || r.ErrCode() != tc.wantCode {
					t.Fatalf("got %d %s", r.Code, r.Body)
				}
				if tc.personal == nil && !strings.Contains(r.ErrMessage(), `"order_id"`) {
					t.Errorf("the error does not name the token: %s", r.ErrMessage())
				}
				return
			}
			if r.Code != http.StatusOK {
				t.Fatalf("got %d %s", r.Code, r.Body)
			}
			var a sendAnswer
			r.Decode(t, &a)
			m, raw := s.message(a.ID)
			if !strings.Contains(raw, tc.want) {
				t.Errorf("text part: want %s in\n%s", tc.want, raw)
			}
			if got, _ := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject")); got != tc.wantSubj {
				t.Errorf("subject %q, want %q", got, tc.wantSubj)
			}
		})
	}
}

func TestSendsEscapeHTML(t *testing.T) {
	s := newServer(t)
	tpl := s.template(map[string]any{"name": "x", "from": s.From, "subject": "s", "html": "<p>{{note}}</p>"})
	var a sendAnswer
	if code := s.JSON("POST", "/v1/sends", liveKey, map[string]any{"templateId": tpl, "to": s.To,
		"personalizations": map[string]any{"note": "<script>alert(1)</script>"}}, &a); code != http.StatusOK {
		t.Fatalf("got %d", code)
	}
	_, raw := s.message(a.ID)
	// Escaped in the HTML part; the text part, made from it, is literal.
	if strings.Contains(raw, "<p><script>") || !strings.Contains(raw, "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>") {
		t.Errorf("not escaped:\n%s", raw)
	}
}

func TestSendsCreateContactsAndTakeContactIDs(t *testing.T) {
	s := newServer(t)
	tpl := s.template(map[string]any{"name": "x", "from": s.From, "subject": "Hi {{first_name | default: \"you\"}}", "text": "t"})
	var first sendAnswer
	if code := s.JSON("POST", "/v1/sends", liveKey, map[string]any{"templateId": tpl, "to": "New@" + rcptDomain}, &first); code != http.StatusOK {
		t.Fatalf("got %d", code)
	}
	if !strings.HasPrefix(first.ContactID, "ct_") || first.Status != store.StatusSent {
		t.Fatalf("answer %+v", first)
	}
	// The contact exists, subscribed; a send to its id goes to its address.
	var again sendAnswer
	if code := s.JSON("POST", "/v1/sends", liveKey, map[string]any{"templateId": tpl, "to": first.ContactID}, &again); code != http.StatusOK {
		t.Fatalf("got %d", code)
	}
	if again.ContactID != first.ContactID || again.To != "New@"+rcptDomain {
		t.Errorf("contact %s, then %s (%s)", first.ContactID, again.ContactID, again.To)
	}
	// A retry with the same Idempotency-Key is answered from the first.
	keyed := map[string]any{"templateId": tpl, "to": first.ContactID}
	r1 := s.Call("POST", "/v1/sends", liveKey, map[string]string{"Idempotency-Key": "k1"}, keyed)
	r2 := s.Call("POST", "/v1/sends", liveKey, map[string]string{"Idempotency-Key": "k1"}, keyed)
	var a1, a2 sendAnswer
	r1.Decode(t, &a1)
	r2.Decode(t, &a2)
	if a1.ID == "" || a2.ID != a1.ID || r2.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("retry: %s then %s", r1.Body, r2.Body)
	}
	var rec struct {
		ToAddress, ContactID, TemplateID string
		Status                           store.Status
		Events                           []struct{ Type string }
	}
	s.JSON("GET", "/v1/sends/"+again.ID, liveKey, nil, &rec)
	if rec.ToAddress != "New@"+rcptDomain || rec.ContactID != first.ContactID || rec.TemplateID != tpl {
		t.Errorf("send %+v", rec)
	}
	// An unknown contact id is named.
	r := s.Call("POST", "/v1/sends", liveKey, nil, map[string]any{"templateId": tpl, "to": "ct_nosuchcontact"})
	if r.Code != http.StatusBadRequest || !strings.Contains(r.ErrMessage(), "ct_nosuchcontact") {
		t.Errorf("unknown contact: %d %s", r.Code, r.Body)
	}
	// An email is not a send.
	sent := s.SendOK(liveKey, map[string]any{"from": s.From, "to": s.To, "subject": "s", "text": "t"}, nil)
	if r := s.Call("GET", "/v1/sends/"+sent.ID, liveKey, nil, nil); r.Code != http.StatusNotFound {
		t.Errorf("an email read as a send: %d", r.Code)
	}
}

func TestSendToUnsubscribedContactIsRecordedNotDelivered(t *testing.T) {
	s := newServer(t)
	tpl := s.template(map[string]any{"name": "x", "from": s.From, "subject": "s", "text": "t"})
	c := s.contact("gone@"+rcptDomain, "", "", "", nil)
	if _, err := s.p.Contacts.SetStatus(context.Background(), s.accountID, c.ID, contacts.Unsubscribed); err != nil {
		t.Fatal(err)
	}
	before := s.p.Redis.XLen(context.Background(), store.StreamKey(0)).Val()
	var a sendAnswer
	if code := s.JSON("POST", "/v1/sends", liveKey, map[string]any{"templateId": tpl, "to": "gone@" + rcptDomain}, &a); code != http.StatusOK {
		t.Fatalf("got %d", code)
	}
	if a.Status != store.StatusSuppressed || a.ID == "" {
		t.Fatalf("answer %+v", a)
	}
	var rec struct {
		Status    store.Status
		LastError string
	}
	s.JSON("GET", "/v1/sends/"+a.ID, liveKey, nil, &rec)
	if rec.Status != store.StatusSuppressed || !strings.Contains(rec.LastError, "unsubscribed") {
		t.Errorf("send %+v", rec)
	}
	if after := s.p.Redis.XLen(context.Background(), store.StreamKey(0)).Val(); after != before {
		t.Errorf("the delivery queue grew from %d to %d", before, after)
	}
	var list struct{ Data []struct{ ID string } }
	s.JSON("GET", "/v1/sends?status=suppressed", liveKey, nil, &list)
	if len(list.Data) != 1 || list.Data[0].ID != a.ID {
		t.Errorf("list of suppressed sends: %+v", list.Data)
	}
}

func TestSendBatchOfAThousand(t *testing.T) {
	s := newServer(t)
	tpl := s.template(map[string]any{"name": "weekly", "from": s.From, "subject": "Your summary", "html": "<p>Total: {{total}}</p>"})
	batch := func(n int) map[string]any {
		rcpts := make([]map[string]any, n)
		for i := range rcpts {
			rcpts[i] = map[string]any{"to": fmt.Sprintf("user%d@%s", i, rcptDomain), "personalizations": map[string]any{"total": fmt.Sprintf("$%d", i)}}
		}
		rcpts[7] = map[string]any{"to": "not an address"}
		rcpts[8] = map[string]any{"to": fmt.Sprintf("user8@%s", rcptDomain), "personalizations": map[string]any{"total": []int{8}}}
		rcpts[9] = map[string]any{"to": "nototal@" + rcptDomain}
		return map[string]any{"templateId": tpl, "recipients": rcpts}
	}
	r := s.Call("POST", "/v1/sends/batch", liveKey, map[string]string{"Idempotency-Key": "weekly-1"}, batch(1000))
	if r.Code != http.StatusOK {
		t.Fatalf("got %d %s", r.Code, r.Body)
	}
	var out struct {
		BatchID string
		Data    []sendAnswer
	}
	r.Decode(t, &out)
	if !strings.HasPrefix(out.BatchID, "bat_") || len(out.Data) != 1000 {
		t.Fatalf("batch %s with %d answers", out.BatchID, len(out.Data))
	}
	for i, a := range out.Data {
		failed := i == 7 || i == 8 || i == 9
		if failed != (a.Error != nil) || failed == (a.ID != "") {
			t.Fatalf("recipient %d: %+v", i, a)
		}
	}
	if msg := out.Data[8].Error.Message; msg != "recipients[8].personalizations.total: must be a string, a number, a boolean or null" {
		t.Errorf("wrong type: %s", msg)
	}
	if !strings.Contains(out.Data[9].Error.Message, `"total"`) {
		t.Errorf("missing personalization: %s", out.Data[9].Error.Message)
	}
	_, raw := s.message(out.Data[500].ID)
	if !strings.Contains(raw, "Total: $500") {
		t.Errorf("recipient 500's email:\n%s", raw)
	}

	// The same request again is answered from the first, sending nothing.
	again := s.Call("POST", "/v1/sends/batch", liveKey, map[string]string{"Idempotency-Key": "weekly-1"}, batch(1000))
	var replay struct {
		BatchID string
		Data    []sendAnswer
	}
	again.Decode(t, &replay)
	if again.Header.Get("Idempotent-Replayed") != "true" || replay.BatchID != out.BatchID || replay.Data[500].ID != out.Data[500].ID {
		t.Errorf("replay: %d %s %s", again.Code, again.Header, replay.BatchID)
	}
	if n := s.p.Redis.ZCard(context.Background(), store.AccountSendsKey(0, s.accountID)).Val(); n != 997 {
		t.Errorf("%d sends stored, want 997", n)
	}

	var status struct {
		ID     string
		Total  int
		Counts map[string]int
	}
	s.JSON("GET", "/v1/batches/"+out.BatchID, liveKey, nil, &status)
	if status.Total != 999 || status.Counts["pending"] != 997 {
		t.Errorf("batch status %+v", status)
	}
	var page struct{ Data []struct{ BatchID string } }
	s.JSON("GET", "/v1/sends?batchId="+out.BatchID+"&limit=5", liveKey, nil, &page)
	if len(page.Data) != 5 || page.Data[0].BatchID != out.BatchID {
		t.Errorf("sends of the batch: %+v", page.Data)
	}

	r = s.Call("POST", "/v1/sends/batch", liveKey, nil, batch(1001))
	if r.Code != http.StatusBadRequest || !strings.Contains(r.ErrMessage(), "1000") {
		t.Errorf("1,001 recipients: %d %s", r.Code, r.Body)
	}
}

func TestSendToSegment(t *testing.T) {
	s := newServer(t)
	tpl := s.template(map[string]any{"name": "x", "from": s.From, "subject": "Hi {{first_name}}", "text": "t"})
	s.contact("a@"+rcptDomain, "A", "", "", nil, "vip")
	s.contact("b@"+rcptDomain, "B", "", "", nil, "vip", "beta")
	gone := s.contact("c@"+rcptDomain, "C", "", "", nil, "vip")
	s.contact("d@"+rcptDomain, "D", "", "", nil)
	if _, err := s.p.Contacts.SetStatus(context.Background(), s.accountID, gone.ID, contacts.Unsubscribed); err != nil {
		t.Fatal(err)
	}
	k, _ := s.p.Pipeline.Authenticate(context.Background(), liveKey)
	name := "vips"
	seg, err := s.p.Contacts.CreateSegment(context.Background(), k, contacts.SegmentFields{Name: &name, Filter: &contacts.Filter{Tags: []string{"vip"}}})
	if err != nil {
		t.Fatal(err)
	}
	var a struct {
		ID, BatchID string
		Count       int
	}
	if code := s.JSON("POST", "/api/v1/sends", "", map[string]any{"templateId": tpl, "segmentId": seg.ID}, &a); code != http.StatusUnauthorized {
		t.Fatalf("without a key: %d", code)
	}
	r := s.Call("POST", "/api/v1/sends", "", map[string]string{"X-API-Key": liveKey}, map[string]any{"templateId": tpl, "segmentId": seg.ID})
	if r.Code != http.StatusAccepted {
		t.Fatalf("got %d %s", r.Code, r.Body)
	}
	r.Decode(t, &a)
	if a.Count != 2 || a.ID != a.BatchID {
		t.Fatalf("answer %+v", a)
	}
	var status struct {
		InProgress bool
		Counts     map[string]int
	}
	testkit.WaitFor(t, "the segment's sends", func() bool {
		s.JSON("GET", "/v1/batches/"+a.BatchID, liveKey, nil, &status)
		return !status.InProgress && status.Counts["pending"] == 2
	})
	// A retry with the same Idempotency-Key sends nothing again.
	body := map[string]any{"templateId": tpl, "segmentId": seg.ID}
	first := s.Call("POST", "/v1/sends", liveKey, map[string]string{"Idempotency-Key": "vips-1"}, body)
	again := s.Call("POST", "/v1/sends", liveKey, map[string]string{"Idempotency-Key": "vips-1"}, body)
	var b1, b2 struct{ BatchID string }
	first.Decode(t, &b1)
	again.Decode(t, &b2)
	if b1.BatchID == "" || b2.BatchID != b1.BatchID || again.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("retry: %s then %s (%s)", first.Body, again.Body, again.Header)
	}
	testkit.WaitFor(t, "the keyed segment's sends", func() bool {
		s.JSON("GET", "/v1/batches/"+b1.BatchID, liveKey, nil, &status)
		return !status.InProgress
	})
	if n := s.p.Redis.ZCard(context.Background(), store.AccountSendsKey(0, s.accountID)).Val(); n != 4 {
		t.Errorf("%d sends in all, want 4", n)
	}
	r = s.Call("POST", "/v1/sends", liveKey, nil, map[string]any{"templateId": tpl, "segmentId": "seg_nosuch"})
	if r.Code != http.StatusBadRequest || !strings.Contains(r.ErrMessage(), "seg_nosuch") {
		t.Errorf("unknown segment: %d %s", r.Code, r.Body)
	}
}

func TestOneClickUnsubscribe(t *testing.T) {
	s := newServer(t)
	tpl := s.template(map[string]any{"name": "x", "from": s.From, "subject": "s", "text": "t"})
	var a sendAnswer
	s.JSON("POST", "/v1/sends", liveKey, map[string]any{"templateId": tpl, "to": s.To}, &a)
	m, _ := s.message(a.ID)
	if got := m.Header.Get("List-Unsubscribe-Post"); got != "List-Unsubscribe=One-Click" {
		t.Errorf("List-Unsubscribe-Post: %q", got)
	}
	// One https URI, RFC 8058's: the mailto form comes only with
	// smtp.mailbox_listen (cmd/pigeonpost's TestSendUnsubscribedByMail).
	header := m.Header.Get("List-Unsubscribe")
	link := strings.Trim(header, "<>")
	if !strings.HasPrefix(header, "<https://") || strings.Contains(link, ",") {
		t.Fatalf("List-Unsubscribe: %q", header)
	}
	u, err := url.Parse(link)
	if err != nil || u.Host != publicHost {
		t.Fatalf("link %q: %v", link, err)
	}
	post := func(path, accept string) int {
		req, _ := http.NewRequest("POST", s.URL+path, strings.NewReader("List-Unsubscribe=One-Click"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// The landing page changes nothing; a tampered link is unknown.
	if r := s.Call("GET", u.Path, "", nil, nil); r.Code != http.StatusOK || !strings.Contains(string(r.Body), `method="post"`) {
		t.Errorf("landing page: %d %s", r.Code, r.Body)
	}
	tampered := u.Path[:len(u.Path)-2] + "xx"
	if code := post(tampered, ""); code != http.StatusNotFound {
		t.Errorf("tampered link: %d", code)
	}
	if r := s.Call("GET", tampered, "", nil, nil); r.Code != http.StatusNotFound || !strings.Contains(string(r.Body), "not valid") {
		t.Errorf("tampered link's page: %d %s", r.Code, r.Body)
	}
	status := func() contacts.Status {
		k, _ := s.p.Pipeline.Authenticate(context.Background(), liveKey)
		c, err := s.p.Contacts.Get(context.Background(), k, a.ContactID)
		if err != nil {
			t.Fatal(err)
		}
		return c.Status
	}
	if st := status(); st != contacts.Subscribed {
		t.Fatalf("contact %q before the POST", st)
	}
	// The mail client's one-click POST (RFC 8058).
	if code := post(u.Path, ""); code != http.StatusOK {
		t.Fatalf("one-click POST: %d", code)
	}
	if st := status(); st != contacts.Unsubscribed {
		t.Errorf("contact %q after the POST", st)
	}
	var rec struct{ Events []struct{ Type string } }
	s.JSON("GET", "/v1/sends/"+a.ID, liveKey, nil, &rec)
	if n := len(rec.Events); n == 0 || rec.Events[n-1].Type != "unsubscribed" {
		t.Errorf("events %+v", rec.Events)
	}
	// Again, from the browser form: the page, and no second event.
	if code := post(u.Path, "text/html"); code != http.StatusOK {
		t.Errorf("form POST: %d", code)
	}
	s.JSON("GET", "/v1/sends/"+a.ID, liveKey, nil, &rec)
	if n := len(rec.Events); rec.Events[n-1].Type != "unsubscribed" || n > 1 && rec.Events[n-2].Type == "unsubscribed" {
		t.Errorf("events after a second POST %+v", rec.Events)
	}
	// The next send to the contact is recorded, not delivered.
	var next sendAnswer
	s.JSON("POST", "/v1/sends", liveKey, map[string]any{"templateId": tpl, "to": s.To}, &next)
	if next.Status != store.StatusSuppressed {
		t.Errorf("send after unsubscribing: %+v", next)
	}
}

func TestSendsDefaultSender(t *testing.T) {
	s := newServer(t)
	tpl := s.template(map[string]any{"name": "x", "subject": "s", "text": "t"})
	var a sendAnswer
	if code := s.JSON("POST", "/v1/sends", liveKey, map[string]any{"templateId": tpl, "to": s.To}, &a); code != http.StatusOK {
		t.Fatalf("got %d", code)
	}
	m, _ := s.message(a.ID)
	if got := m.Header.Get("From"); got != "<noreply@"+senderDomain+">" {
		t.Errorf("From: %q", got)
	}
	// With two verified domains, the sender is not guessed.
	s.VerifyDomain(s.dns, "other.test")
	r := s.Call("POST", "/v1/sends", liveKey, nil, map[string]any{"templateId": tpl, "to": s.To})
	if r.Code != http.StatusBadRequest || !strings.Contains(r.ErrMessage(), "from: required") {
		t.Errorf("two domains: %d %s", r.Code, r.Body)
	}
}

func TestSendBatchRenderedSizeBounded(t *testing.T) {
	s := newServer(t)
	big := strings.Repeat("<p>A long newsletter paragraph.</p>\n", 24_000) // about 0.85 MiB
	tpl := s.template(map[string]any{"name": "big", "from": s.From, "subject": "s", "html": big, "text": "t"})
	rcpts := make([]map[string]any, 100)
	for i := range rcpts {
		rcpts[i] = map[string]any{"to": fmt.Sprintf("u%d@%s", i, rcptDomain)}
	}
	r := s.Call("POST", "/v1/sends/batch", liveKey, nil, map[string]any{"templateId": tpl, "recipients": rcpts})
	if r.Code != http.StatusRequestEntityTooLarge || !strings.Contains(r.ErrMessage(), "smaller batches") {
		t.Fatalf("got %d %s", r.Code, r.Body)
	}
	if n := s.p.Redis.ZCard(context.Background(), store.AccountSendsKey(0, s.accountID)).Val(); n != 0 {
		t.Errorf("%d sends stored", n)
	}
}

func TestSendsWrongTypesNamed(t *testing.T) {
	s := newServer(t)
	for _, c := range []struct {
		path string
		body string
		want string
	}{
		{"/v1/sends", `{"templateId": 5, "to": "a@b.test"}`, "templateId: must be a string"},
		{"/v1/sends", `{"templateId": "t", "to": "a@b.test", "personalizations": []}`, "personalizations: must be an object"},
		{"/v1/sends/batch", `{"templateId": "t", "tracking": {"opens": "yes"}, "recipients": [{"to": "a@b.test"}]}`, "tracking.opens: must be a boolean"},
	} {
		r := s.Call("POST", c.path, liveKey, nil, []byte(c.body))
		if r.Code != http.StatusBadRequest || r.ErrMessage() != c.want {
			t.Errorf("%s %s: %d %s, want %q", c.path, c.body, r.Code, r.Body, c.want)
		}
	}
}

// A send to a segment whose template its contacts cannot fill is refused
// at once, not contact by contact in the background.
func TestSendToSegmentChecksTheTemplate(t *testing.T) {
	s := newServer(t)
	tpl := s.template(map[string]any{"name": "x", "from": s.From, "subject": "s", "text": "Order {{order_id}}"})
	s.contact("a@"+rcptDomain, "A", "", "", nil, "vip")
	k, _ := s.p.Pipeline.Authenticate(context.Background(), liveKey)
	name := "vips"
	seg, err := s.p.Contacts.CreateSegment(context.Background(), k, contacts.SegmentFields{Name: &name, Filter: &contacts.Filter{Tags: []string{"vip"}}})
	if err != nil {
		t.Fatal(err)
	}
	r := s.Call("POST", "/v1/sends", liveKey, nil, map[string]any{"templateId": tpl, "segmentId": seg.ID})
	if r.Code != http.StatusBadRequest || !strings.Contains(r.ErrMessage(), `"order_id"`) {
		t.Errorf("got %d %s", r.Code, r.Body)
	}
}

// The sends count against the monthly limit like every email: a batch
// that would pass it is refused whole (429), storing nothing.
func TestSendsObeyTheMonthlyLimit(t *testing.T) {
	s := newServer(t, func(c *serverConfig) {
		c.parts.Pipeline.RateLimit = pipeline.RateLimit{PerSecond: 1_000_000, Burst: 1_000_000, Monthly: 3}
	})
	tpl := s.template(map[string]any{"name": "x", "from": s.From, "subject": "s", "text": "t"})
	rcpts := func(n int) []map[string]any {
		out := make([]map[string]any, n)
		for i := range out {
			out[i] = map[string]any{"to": fmt.Sprintf("u%d@%s", i, rcptDomain)}
		}
		return out
	}
	if r := s.Call("POST", "/v1/sends/batch", liveKey, nil, map[string]any{"templateId": tpl, "recipients": rcpts(2)}); r.Code != http.StatusOK {
		t.Fatalf("two sends: %d %s", r.Code, r.Body)
	}
	r := s.Call("POST", "/v1/sends/batch", liveKey, nil, map[string]any{"templateId": tpl, "recipients": rcpts(2)})
	if r.Code != http.StatusTooManyRequests || r.ErrCode() != "monthly_limit_reached" {
		t.Errorf("two more over a limit of 3: %d %s", r.Code, r.Body)
	}
	if n := s.p.Redis.ZCard(context.Background(), store.AccountSendsKey(0, s.accountID)).Val(); n != 2 {
		t.Errorf("%d sends stored, want 2", n)
	}
	if r := s.Call("POST", "/v1/sends", liveKey, nil, map[string]any{"templateId": tpl, "to": s.To}); r.Code != http.StatusOK {
		t.Errorf("the third: %d %s", r.Code, r.Body)
	}
}
