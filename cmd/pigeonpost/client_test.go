package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/client"
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
