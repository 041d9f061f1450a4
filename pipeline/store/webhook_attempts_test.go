package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
)

// An endpoint's recent attempts are kept newest first, capped at
// MaxWebhookAttempts, with an expiry, apart from every other endpoint's
// and account's; a limit reads the newest.
func TestWebhookAttemptsCapped(t *testing.T) {
	rdb := testkit.RedisClient(t)
	s := New(rdb, time.Now)
	ctx := context.Background()
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	n := MaxWebhookAttempts + 5
	for i := range n {
		a := WebhookAttempt{DeliveryID: fmt.Sprintf("whmsg_%03d", i), EndpointID: "wh_a", Event: "email.delivered", Attempt: 1,
			At: at.Add(time.Duration(i) * time.Second), Outcome: AttemptDelivered, HTTPStatus: 200, LatencyMs: int64(i), Response: "HTTP 200 OK"}
		if err := s.RecordWebhookAttempt(ctx, "acct_a", a); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RecordWebhookAttempt(ctx, "acct_a", WebhookAttempt{DeliveryID: "whmsg_other", EndpointID: "wh_b", Outcome: AttemptFailed}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordWebhookAttempt(ctx, "acct_b", WebhookAttempt{DeliveryID: "whmsg_b", EndpointID: "wh_a", Outcome: AttemptRetrying}); err != nil {
		t.Fatal(err)
	}

	got, err := s.WebhookAttempts(ctx, "acct_a", "wh_a", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != MaxWebhookAttempts {
		t.Fatalf("%d attempts kept, want %d", len(got), MaxWebhookAttempts)
	}
	for i, a := range got {
		want := fmt.Sprintf("whmsg_%03d", n-1-i)
		if a.DeliveryID != want || a.EndpointID != "wh_a" || a.HTTPStatus != 200 || a.Response != "HTTP 200 OK" || !a.At.Equal(at.Add(time.Duration(n-1-i)*time.Second)) {
			t.Fatalf("attempt %d is %+v, want %s (newest first)", i, a, want)
		}
	}
	if got, _ := s.WebhookAttempts(ctx, "acct_a", "wh_a", 3); len(got) != 3 || got[0].DeliveryID != fmt.Sprintf("whmsg_%03d", n-1) {
		t.Errorf("limit 3: %+v", got)
	}
	if got, _ := s.WebhookAttempts(ctx, "acct_a", "wh_b", 0); len(got) != 1 || got[0].DeliveryID != "whmsg_other" {
		t.Errorf("the other endpoint: %+v", got)
	}
	if got, _ := s.WebhookAttempts(ctx, "acct_b", "wh_a", 0); len(got) != 1 || got[0].DeliveryID != "whmsg_b" {
		t.Errorf("the other account's endpoint of the same id: %+v", got)
	}
	if got, _ := s.WebhookAttempts(ctx, "acct_c", "wh_a", 0); len(got) != 0 {
		t.Errorf("an endpoint never attempted: %+v", got)
	}
	ttl, err := rdb.TTL(ctx, WebhookAttemptsKey("acct_a", "wh_a")).Result()
	if err != nil || ttl <= 0 || ttl > webhookAttemptsTTL {
		t.Errorf("TTL %v (%v), want at most %v", ttl, err, webhookAttemptsTTL)
	}
}
