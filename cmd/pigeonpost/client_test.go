package main

import (
	"context"
	"errors"
	"testing"

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
