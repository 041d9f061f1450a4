package main

import (
	"bytes"
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/pigeonpost/pigeonpost/config"
	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline/deliver"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
	"github.com/pigeonpost/pigeonpost/tracking"
)

// trackingIDs matches the pixel and click URLs of a copy: the email id each
// names (a click id starts with it).
var trackingIDs = regexp.MustCompile(`/v1/track/(open|click)/(em_[a-z2-7]+(?:-q[0-9]+)?)`)

// checkDelivered fails unless data, a message as the sink received it,
// passes DKIM verification for senderDomain and ends with content (what
// the content API answers for it) after nothing but delivery's
// X-Pigeonpost-Id and DKIM-Signature fields.
func (s *stack) checkDelivered(id string, data, content []byte) {
	s.t.Helper()
	verifications, err := dkim.VerifyWithOptions(bytes.NewReader(data), &dkim.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) {
			return (&deliver.Resolver{Addr: s.dns.Addr(), Timeout: 2 * time.Second}).LookupTXT(context.Background(), name)
		},
	})
	if err != nil || len(verifications) != 1 || verifications[0].Err != nil || verifications[0].Domain != senderDomain {
		s.t.Errorf("%s: DKIM: %v %+v", id, err, verifications)
	}
	prefix, ok := bytes.CutSuffix(data, content)
	if !ok {
		s.t.Errorf("%s: the delivered copy does not end with the content the API renders:\ndelivered:\n%s\ncontent:\n%s", id, data, content)
		return
	}
	for _, line := range strings.Split(strings.TrimSuffix(string(prefix), "\r\n"), "\r\n") {
		if line == "" || line[0] == ' ' || line[0] == '\t' {
			continue
		}
		name, _, _ := strings.Cut(line, ":")
		if !strings.EqualFold(name, tracking.FeedbackHeader) && !strings.EqualFold(name, "DKIM-Signature") {
			s.t.Errorf("%s: delivery put %q before the content", id, line)
		}
	}
}

// TestOneBodyManyRecipients: a tracked message to several recipients is
// stored once; each recipient's delivered copy is rendered from it with
// its own pixel and click ids, is DKIM-signed over them, and is what GET
// /v1/emails/:id/content answers (but for delivery's signature and id
// fields). The message starts to expire when the last is delivered.
func TestOneBodyManyRecipients(t *testing.T) {
	s := startStack(t, func(c *config.Config) {
		c.Retention.Content = time.Hour
		c.Retention.Records = 2 * time.Hour
	})
	rdb := s.redis.Client(t)
	ctx := context.Background()
	from := "hello@" + senderDomain
	to := []string{"a@" + rcptDomain, "b@" + rcptDomain, "c@" + rcptDomain}
	html := "<html><body><p>Hi <a href=\"https://shop.example.test/a\">shop</a> and <a href=\"https://shop.example.test/b\">more</a></p>" +
		strings.Repeat("<p>"+strings.Repeat("padding ", 12)+"</p>\n", 2000) + "</body></html>"
	var sent struct {
		IDs      []string
		Warnings []string
	}
	if code := s.JSON("POST", "/v1/emails", liveKey, map[string]any{"from": from, "to": to, "subject": "one body", "html": html,
		"tracking": map[string]bool{"opens": true, "clicks": true}}, &sent); code != http.StatusOK || len(sent.IDs) != 3 {
		t.Fatalf("send: %d %+v", code, sent)
	}

	var message string
	for _, id := range sent.IDs {
		m, err := rdb.HGet(ctx, store.EmailKey(id), "message").Result()
		if err != nil || (message != "" && m != message) {
			t.Fatalf("%s names message %q (%v), the first %q", id, m, err, message)
		}
		message = m
		if n, _ := rdb.Exists(ctx, store.BodyKey(id)).Result(); n != 0 {
			t.Errorf("%s has a body of its own", id)
		}
	}
	size, err := rdb.StrLen(ctx, store.MessageKey(message)).Result()
	if err != nil || size < int64(len(html)) {
		t.Errorf("message of %d bytes (%v) for %d bytes of HTML", size, err, len(html))
	}

	got := s.sink.Wait(t, 3, 20*time.Second)
	for _, id := range sent.IDs {
		s.waitStatus(id, "delivered")
	}
	byRcpt := map[string][]byte{}
	for _, m := range got {
		byRcpt[m.To[0]] = m.Data
	}
	for i, id := range sent.IDs {
		data := byRcpt[to[i]]
		_, parts := testkit.MIMEParts(t, data)
		var decoded strings.Builder
		for _, p := range parts {
			decoded.Write(p.Body)
		}
		ids := trackingIDs.FindAllStringSubmatch(decoded.String(), -1)
		opens, clicks := 0, 0
		for _, m := range ids {
			if m[2] != id {
				t.Errorf("%s: the copy to %s carries %s's %s id", id, to[i], m[2], m[1])
			}
			if m[1] == "open" {
				opens++
			} else {
				clicks++
			}
		}
		if opens != 1 || clicks != 4 { // the links of the HTML, and of the text part made from it
			t.Errorf("%s: %d pixels and %d click links, want 1 and 4", id, opens, clicks)
		}
		r := s.Call("GET", "/v1/emails/"+id+"/content", liveKey, nil, nil)
		if r.Code != http.StatusOK {
			t.Fatalf("content of %s: %d", id, r.Code)
		}
		if int64(len(r.Body)) <= size {
			t.Errorf("%s: a copy of %d bytes, the message stored %d: not one copy for three", id, len(r.Body), size)
		}
		s.checkDelivered(id, data, r.Body)
		links, err := rdb.HGet(ctx, store.EmailKey(id), store.FieldLinks).Result()
		if err != nil || links != `["https://shop.example.test/a","https://shop.example.test/b","https://shop.example.test/a","https://shop.example.test/b"]` {
			t.Errorf("%s: links %s (%v)", id, links, err)
		}
	}
	if d, err := rdb.TTL(ctx, store.MessageKey(message)).Result(); err != nil || d <= 59*time.Minute || d > time.Hour {
		t.Errorf("message TTL %v (%v) once every recipient is delivered, want about 1h", d, err)
	}
	if n, _ := rdb.Exists(ctx, store.MessageRefsKey(message)).Result(); n != 0 {
		t.Error("the message still counts recipients")
	}
}

// TestOldLayoutRecordDelivers: an email queued before messages were stored
// once (its tracked copy under BodyKey, no message) is delivered and
// served as it was stored, tracked once, not again.
func TestOldLayoutRecordDelivers(t *testing.T) {
	s := startStack(t)
	rdb := s.redis.Client(t)
	ctx := context.Background()
	from, to := "hello@"+senderDomain, "user@"+rcptDomain
	var first struct{ ID string }
	if code := s.JSON("POST", "/v1/emails", liveKey, map[string]any{"from": from, "to": to, "subject": "first", "text": "x"}, &first); code != http.StatusOK {
		t.Fatalf("send: %d", code)
	}
	accountID, err := rdb.HGet(ctx, store.EmailKey(first.ID), "accountId").Result()
	if err != nil {
		t.Fatal(err)
	}
	s.sink.Wait(t, 1, 20*time.Second)

	id := store.NewID("em")
	body := []byte("From: <" + from + ">\r\nTo: <" + to + ">\r\nSubject: queued before\r\nMessage-Id: <old@" + senderDomain + ">\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: text/html\r\n\r\n" +
		"<p><a href=\"https://t.gateway.test/v1/track/click/" + id + ".0.x\">x</a></p><img src=\"https://t.gateway.test/v1/track/open/" + id + "\">\r\n")
	e := &store.Email{ID: id, AccountID: accountID, KeyID: "key_old", Mode: store.ModeLive, Status: store.StatusPending, Source: "smtp",
		FromAddress: from, EnvelopeFrom: from, ToAddress: to, Subject: "queued before", CreatedAt: time.Now().UTC(),
		TrackOpens: true, TrackClicks: true, Links: []string{"https://shop.example.test/"}}
	if err := store.New(rdb, time.Now).Persist(ctx, []store.NewEmail{{Email: e, Body: body}}, true); err != nil {
		t.Fatal(err)
	}
	got := s.sink.Wait(t, 2, 20*time.Second)[1]
	s.waitStatus(id, "delivered")
	r := s.Call("GET", "/v1/emails/"+id+"/content", liveKey, nil, nil)
	if r.Code != http.StatusOK || !bytes.Equal(r.Body, body) {
		t.Errorf("content: %d\n%s\nwant the stored copy", r.Code, r.Body)
	}
	s.checkDelivered(id, got.Data, body)
}
