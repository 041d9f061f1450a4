package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/client"
	"github.com/pigeonpost/pigeonpost/internal/testkit"
)

// TestGoClient drives the REST API through the client package users import.
func TestGoClient(t *testing.T) {
	s := startStack(t)
	ctx := context.Background()
	c := client.New("http://"+s.addrs.HTTP, liveKey)

	res, err := c.Send(ctx, client.Email{From: "hello@" + senderDomain, To: []string{"user@" + rcptDomain},
		Subject: "Welcome!", HTML: "<h1>Hello</h1>", Tags: []string{"welcome"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.IDs) != 1 || res.IDs[0] != res.ID {
		t.Errorf("one recipient: id %q, ids %q", res.ID, res.IDs)
	}
	many, err := c.Send(ctx, client.Email{From: "hello@" + senderDomain, To: []string{"a@" + rcptDomain, "b@" + rcptDomain},
		Bcc: []string{"c@" + rcptDomain}, Subject: "Hi all", Text: "x"})
	if err != nil || len(many.IDs) != 3 || many.IDs[0] != many.ID {
		t.Errorf("three recipients: %v, id %q, ids %q", err, many.ID, many.IDs)
	}
	s.waitStatus(res.ID, "delivered")
	got, err := c.Get(ctx, res.ID)
	if err != nil || got.Status != "delivered" || got.Subject != "Welcome!" || got.DeliveredAt == nil {
		t.Fatalf("Get: %v %+v", err, got)
	}

	_, err = c.Send(ctx, client.Email{From: "hello@unverified.test", To: []string{"user@" + rcptDomain}, Subject: "x", Text: "y"})
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || apiErr.Code != "domain_not_verified" || apiErr.Status != 403 {
		t.Fatalf("unverified domain: %v", err)
	}

	batch, err := c.SendBatch(ctx, []client.Email{
		{From: "hello@" + senderDomain, To: []string{"b1@" + rcptDomain}, Subject: "1", Text: "one"},
		{From: "hello@unverified.test", To: []string{"b2@" + rcptDomain}, Subject: "2", Text: "two"},
	})
	if err != nil || batch.Summary.Total != 2 || batch.Summary.Sent != 1 || batch.Summary.Failed != 1 ||
		batch.Data[1].Error == nil || batch.Data[1].Error.Code != "domain_not_verified" {
		t.Fatalf("SendBatch: %v %+v", err, batch)
	}

	// A preview, of fields and of raw MIME: nothing is sent.
	preview, err := c.Preview(ctx, client.Email{From: "hello@" + senderDomain, To: []string{"p1@" + rcptDomain, "p2@" + rcptDomain},
		Subject: "Preview", HTML: `<a href="https://example.test/a">a</a>`, Tracking: &client.Tracking{Clicks: true}},
		client.PreviewFor("p2@"+rcptDomain))
	// The link is in the HTML and in the text part made from it.
	if err != nil || preview.To != "p2@"+rcptDomain || !preview.Tracking.Clicks || len(preview.Links) != 2 ||
		preview.Links[1].Index == nil || *preview.Links[1].Index != 1 || preview.Size != len(preview.MIME) {
		t.Fatalf("Preview: %v %+v", err, preview)
	}
	preview, err = c.PreviewMIME(ctx, strings.NewReader("From: hello@"+senderDomain+"\nTo: p@"+rcptDomain+"\nSubject: Raw\n\nhi\n"))
	if err != nil || preview.Subject != "Raw" || !strings.Contains(preview.MIME, "\r\n\r\nhi\r\n") {
		t.Fatalf("PreviewMIME: %v %+v", err, preview)
	}
	if _, err := c.Preview(ctx, client.Email{From: "hello@unverified.test", To: []string{"p@" + rcptDomain}, Text: "x"}); !errors.As(err, &apiErr) ||
		apiErr.Code != "domain_not_verified" {
		t.Fatalf("Preview from an unverified domain: %v", err)
	}

	tpl, err := c.CreateTemplate(ctx, client.Template{Name: "welcome", Subject: "Welcome {{name}}!", HTML: "<p>Hello {{name}}</p>"})
	if err != nil || tpl.ID == "" {
		t.Fatalf("CreateTemplate: %v %+v", err, tpl)
	}
	if tpl, err = c.UpdateTemplate(ctx, tpl.ID, map[string]string{"subject": "Hi {{name}}"}); err != nil || tpl.Subject != "Hi {{name}}" {
		t.Fatalf("UpdateTemplate: %v %+v", err, tpl)
	}
	when := time.Now().Add(time.Hour)
	scheduled, err := c.Send(ctx, client.Email{From: "hello@" + senderDomain, To: []string{"later@" + rcptDomain},
		TemplateID: tpl.ID, Variables: map[string]string{"name": "Zoë"}, ScheduledAt: &when})
	if err != nil || scheduled.Status != "scheduled" {
		t.Fatalf("scheduled send: %v %+v", err, scheduled)
	}
	if err := c.Cancel(ctx, scheduled.ID); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Get(ctx, scheduled.ID); err != nil || got.Status != "cancelled" || got.Subject != "Hi Zoë" {
		t.Fatalf("after cancel: %v %+v", err, got)
	}
	if err := c.DeleteTemplate(ctx, tpl.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetTemplate(ctx, tpl.ID); !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Fatalf("deleted template: %v", err)
	}

	// Sends (Pigeon Perch): a template with a sender, to an address, a
	// batch and a segment.
	shipped, err := c.CreateTemplate(ctx, client.Template{Name: "shipped", From: "Acme <hello@" + senderDomain + ">",
		ReplyTo: "support@" + senderDomain, Subject: "Order {{order_id}} shipped", HTML: "<p>Hi {{first_name | default: \"there\"}}</p>"})
	if err != nil || shipped.From != "Acme <hello@"+senderDomain+">" || shipped.ReplyTo != "support@"+senderDomain {
		t.Fatalf("CreateTemplate with a sender: %v %+v", err, shipped)
	}
	if got, err := c.GetTemplate(ctx, shipped.ID); err != nil || got.From != shipped.From || got.ReplyTo != shipped.ReplyTo {
		t.Fatalf("GetTemplate: %v %+v", err, got)
	}
	sent, err := c.CreateSend(ctx, client.SendRequest{TemplateID: shipped.ID, To: "customer@" + rcptDomain,
		Personalizations: map[string]string{"order_id": "ORD-1", "first_name": "Jane"}}, client.IdempotencyKey("ord-1"))
	if err != nil || sent.ID == "" || sent.ContactID == "" || sent.Status != "sent" {
		t.Fatalf("CreateSend: %v %+v", err, sent)
	}
	s.waitStatus(sent.ID, "delivered")
	if got, err := c.GetSend(ctx, sent.ID); err != nil || got.Status != "delivered" || got.Subject != "Order ORD-1 shipped" ||
		got.TemplateID != shipped.ID || got.ContactID != sent.ContactID || got.BatchID != "" || len(got.Events) == 0 {
		t.Fatalf("GetSend: %v %+v", err, got)
	}
	if _, err := c.CreateSend(ctx, client.SendRequest{TemplateID: shipped.ID, To: "customer@" + rcptDomain}); !errors.As(err, &apiErr) ||
		apiErr.Status != 400 || !strings.Contains(apiErr.Message, "order_id") {
		t.Fatalf("a token nothing fills: %v", err)
	}
	sb, err := c.CreateSendBatch(ctx, client.SendBatchRequest{TemplateID: shipped.ID, Recipients: []client.SendRecipient{
		{To: sent.ContactID, Personalizations: map[string]string{"order_id": "ORD-2"}},
		{To: "not an address", Personalizations: map[string]string{"order_id": "ORD-3"}},
	}})
	if err != nil || sb.BatchID == "" || len(sb.Data) != 2 || sb.Data[0].ID == "" || sb.Data[1].Error == nil || sb.Data[1].Status != "failed" {
		t.Fatalf("CreateSendBatch: %v %+v", err, sb)
	}
	if b, err := c.GetBatch(ctx, sb.BatchID); err != nil || b.Total != 2 || b.SegmentID != "" || b.TemplateID != shipped.ID {
		t.Fatalf("GetBatch: %v %+v", err, b)
	}
	if u, err := c.Usage(ctx); err != nil || u.Used == 0 || u.Limit != nil || u.Month == "" {
		t.Fatalf("Usage: %v %+v", err, u)
	}
	if r, err := c.Reputation(ctx); err != nil || r.Status != "active" || r.Pause != nil || r.Window.Hours != 24 {
		t.Fatalf("Reputation: %v %+v", err, r)
	}
	var notReport *client.Error
	if _, err := c.PostReport(ctx, strings.NewReader("Subject: hi\r\n\r\nno report\r\n")); !errors.As(err, &notReport) || notReport.Code != "invalid_message" {
		t.Fatalf("PostReport of a plain message: %v", err)
	}
	if page, err := c.ListSends(ctx, client.SendQuery{BatchID: sb.BatchID}); err != nil || len(page.Data) != 1 ||
		page.Data[0].ID != sb.Data[0].ID || page.Data[0].BatchID != sb.BatchID || page.NextCursor != "" {
		t.Fatalf("ListSends: %v %+v", err, page)
	}
	if _, err := c.CreateContact(ctx, client.Contact{Email: "vip@" + rcptDomain, Tags: []string{"vip"}}); err != nil {
		t.Fatal(err)
	}
	vips, err := c.CreateSegment(ctx, client.Segment{Name: "vips", Filter: client.SegmentFilter{Tags: []string{"vip"}}})
	if err != nil {
		t.Fatal(err)
	}
	toSeg, err := c.CreateSend(ctx, client.SendRequest{TemplateID: shipped.ID, SegmentID: vips.ID,
		Personalizations: map[string]string{"order_id": "ORD-4"}})
	if err != nil || toSeg.BatchID == "" || toSeg.ID != toSeg.BatchID || toSeg.SegmentID != vips.ID || toSeg.Count != 1 {
		t.Fatalf("CreateSend to a segment: %v %+v", err, toSeg)
	}
	testkit.WaitFor(t, "the segment's sends", func() bool {
		b, err := c.GetBatch(ctx, toSeg.BatchID)
		if err != nil {
			t.Fatal(err)
		}
		return !b.InProgress && b.SegmentID == vips.ID && b.Total == 1
	})
	if page, err := c.ListSends(ctx, client.SendQuery{BatchID: toSeg.BatchID}); err != nil || len(page.Data) != 1 || page.Data[0].ToAddress != "vip@"+rcptDomain {
		t.Fatalf("ListSends of the segment: %v %+v", err, page)
	}

	d, err := c.CreateDomain(ctx, "second.test")
	if err != nil || d.Status != "pending" || len(d.DNSRecords) == 0 {
		t.Fatalf("CreateDomain: %v %+v", err, d)
	}
	if d2, err := c.GetDomain(ctx, d.ID); err != nil || d2.Name != "second.test" {
		t.Fatalf("GetDomain: %v %+v", err, d2)
	}
	if err := c.DeleteDomain(ctx, d.ID); err != nil {
		t.Fatal(err)
	}

	k, err := c.CreateKey(ctx, "ci", "test", "sending")
	if err != nil || k.Key == "" {
		t.Fatalf("CreateKey: %v %+v", err, k)
	}
	keys, err := c.ListKeys(ctx)
	if err != nil || len(keys) != 2 {
		t.Fatalf("ListKeys: %v %+v", err, keys)
	}
	if err := c.DeleteKey(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := client.New("http://"+s.addrs.HTTP, k.Key).Get(ctx, res.ID); !errors.As(err, &apiErr) || apiErr.Status != 401 {
		t.Fatalf("revoked key: %v", err)
	}
}

// TestGoClientContacts drives contacts, their import and segments through
// the client package, on the stack serve builds.
func TestGoClientContacts(t *testing.T) {
	s := startStack(t)
	ctx := context.Background()
	c := client.New("http://"+s.addrs.HTTP, liveKey)

	ada, err := c.CreateContact(ctx, client.Contact{Email: "ada@" + rcptDomain, FirstName: "Ada", Tags: []string{"vip"},
		Fields: map[string]string{"plan": "pro"}})
	if err != nil || ada.ID == "" || ada.Status != "subscribed" {
		t.Fatalf("CreateContact: %v %+v", err, ada)
	}
	var apiErr *client.Error
	if _, err := c.CreateContact(ctx, client.Contact{Email: "ADA@" + rcptDomain}); !errors.As(err, &apiErr) || apiErr.Status != 409 {
		t.Errorf("duplicate: %v", err)
	}
	up, err := c.UpdateContact(ctx, ada.ID, map[string]any{"lastName": "Lovelace", "fields": map[string]any{"plan": nil}})
	if err != nil || up.LastName != "Lovelace" || len(up.Fields) != 0 {
		t.Errorf("UpdateContact: %v %+v", err, up)
	}
	res, err := c.ImportContacts(ctx, "text/csv", strings.NewReader("email,tags\nb@"+rcptDomain+",vip\nc@"+rcptDomain+",\nbad,\n"))
	if err != nil || res.Created != 2 || res.Failed != 1 || len(res.Errors) != 1 || res.Errors[0].Row != 3 {
		t.Errorf("ImportContacts: %v %+v", err, res)
	}
	page, err := c.ListContacts(ctx, client.ContactQuery{Tag: "vip", Limit: 1})
	if err != nil || len(page.Data) != 1 || page.Data[0].Email != "b@"+rcptDomain || page.NextCursor == "" {
		t.Fatalf("ListContacts: %v %+v", err, page)
	}
	if page, err = c.ListContacts(ctx, client.ContactQuery{Tag: "vip", Cursor: page.NextCursor}); err != nil || len(page.Data) != 1 || page.Data[0].ID != ada.ID {
		t.Errorf("second page: %v %+v", err, page)
	}

	sg, err := c.CreateSegment(ctx, client.Segment{Name: "vip", Filter: client.SegmentFilter{Tags: []string{"vip"},
		Fields: []client.SegmentCondition{{Field: "email", Op: "contains", Value: "@" + rcptDomain}}}})
	if err != nil || sg.ID == "" || sg.Filter.Status != "" {
		t.Fatalf("CreateSegment: %v %+v", err, sg)
	}
	if got, err := c.GetSegment(ctx, sg.ID); err != nil || got.Count == nil || *got.Count != 2 {
		t.Errorf("GetSegment: %v %+v", err, got)
	}
	if got, err := c.UpdateSegment(ctx, sg.ID, map[string]any{"filter": map[string]any{"status": "subscribed"}}); err != nil || got.Filter.Status != "subscribed" {
		t.Errorf("UpdateSegment: %v %+v", err, got)
	}
	if all, err := c.ListSegments(ctx); err != nil || len(all) != 1 {
		t.Errorf("ListSegments: %v %+v", err, all)
	}
	if err := c.DeleteSegment(ctx, sg.ID); err != nil {
		t.Error(err)
	}
	if err := c.DeleteContact(ctx, ada.ID); err != nil {
		t.Error(err)
	}
	if _, err := c.GetContact(ctx, ada.ID); !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Errorf("after delete: %v", err)
	}
}
