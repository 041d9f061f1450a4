package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
)

// An event has one id in both streams, the global stream's, which the
// account's entry also carries (gid); if the account's stream cannot take
// that id, its entry gets its own and still carries the global one.
func TestEventStreamsShareIDs(t *testing.T) {
	rdb := testkit.RedisClient(t)
	s := New(rdb, time.Now)
	ctx := context.Background()
	ev := Event{Type: EventDelivered, Timestamp: time.Now().UTC(), EmailID: "em_1", AccountID: "acct_a"}
	if err := s.AddEvent(ctx, ev); err != nil {
		t.Fatal(err)
	}
	global, err := rdb.XRange(ctx, EventStreamKey(0), "-", "+").Result()
	if err != nil || len(global) != 1 {
		t.Fatalf("global stream: %v %v", global, err)
	}
	gid := global[0].ID
	got, err := s.AccountEventsBetween(ctx, "acct_a", "-", "+", 10)
	if err != nil || len(got) != 1 {
		t.Fatalf("account stream: %+v %v", got, err)
	}
	if got[0].StreamID != gid || got[0].EventID != gid || got[0].Event.Type != EventDelivered || got[0].Event.EmailID != "em_1" || got[0].Event.AccountID != "acct_a" {
		t.Errorf("account entry %+v, want id and gid %s", got[0], gid)
	}
	// The listing reads the same entries.
	if listed, err := s.AccountEvents(ctx, "acct_a", "", 10); err != nil || len(listed) != 1 || listed[0].StreamID != gid {
		t.Errorf("AccountEvents: %+v %v", listed, err)
	}

	// An account stream ahead of the global one (an entry from before,
	// with a clock that went back).
	ahead := "99999999999999-0"
	if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: AccountEventsKey(0, "acct_b"), ID: ahead, Values: []any{"account", "acct_b", "event", "{}"}}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.AddEvent(ctx, Event{Type: EventSent, Timestamp: time.Now().UTC(), EmailID: "em_2", AccountID: "acct_b"}); err != nil {
		t.Fatal(err)
	}
	global, _ = rdb.XRange(ctx, EventStreamKey(0), "-", "+").Result()
	gid2 := global[len(global)-1].ID
	got, _ = s.AccountEventsBetween(ctx, "acct_b", "-", "+", 10)
	if len(got) != 2 || got[0].EventID != "" || got[1].StreamID == gid2 || got[1].EventID != gid2 || got[1].Event.EmailID != "em_2" {
		t.Fatalf("account b: %+v; want the legacy entry, then one of its own id carrying %s", got, gid2)
	}
	for _, c := range []struct{ account, id string }{{"acct_a", gid}, {"acct_b", gid2}} {
		e, err := s.AccountEventByID(ctx, c.account, c.id)
		if err != nil || e.EventID != c.id {
			t.Errorf("AccountEventByID(%s, %s) = %+v, %v", c.account, c.id, e, err)
		}
	}
	if _, err := s.AccountEventByID(ctx, "acct_a", gid2); !errors.Is(err, ErrNotFound) {
		t.Errorf("another account's event: %v", err)
	}
}

// A fan-out's delivery ids are indexed for a redelivery, and the given-up
// ones keep their event's id; another account finds neither.
func TestWebhookDeliveryEvent(t *testing.T) {
	rdb := testkit.RedisClient(t)
	s := New(rdb, time.Now)
	ctx := context.Background()
	now := time.Now().UTC()
	d := &WebhookDelivery{ID: "whmsg_00000000000000000000000a", AccountID: "acct_a", EndpointID: "wh_1", Event: "email.sent", Body: []byte("{}"), CreatedAt: now}
	if ok, err := s.QueueWebhookDeliveries(ctx, "5-1", []*WebhookDelivery{d}, now); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if got, err := s.WebhookDelivery(ctx, d.ID); err != nil || got.StreamID != "5-1" {
		t.Errorf("delivery %+v %v: no stream id", got, err)
	}
	if sid, ep, err := s.WebhookDeliveryEvent(ctx, "acct_a", d.ID, now.Add(6*24*time.Hour)); sid != "5-1" || ep != "" || err != nil {
		t.Errorf("indexed: %q %q %v", sid, ep, err)
	}
	if _, _, err := s.WebhookDeliveryEvent(ctx, "acct_a", d.ID, now.Add(9*24*time.Hour)); !errors.Is(err, ErrNotFound) {
		t.Errorf("past the index's days: %v", err)
	}
	if _, _, err := s.WebhookDeliveryEvent(ctx, "acct_b", d.ID, now); !errors.Is(err, ErrNotFound) {
		t.Errorf("another account: %v", err)
	}
	if ttl := rdb.TTL(ctx, WebhookIndexKey("acct_a", StatsDay(now))).Val(); ttl <= 7*24*time.Hour || ttl > 8*24*time.Hour {
		t.Errorf("index TTL %v", ttl)
	}

	// Given up, and out of the index: the failed record has it.
	del, _ := s.WebhookDelivery(ctx, d.ID)
	if err := s.FailWebhookDelivery(ctx, del, now); err != nil {
		t.Fatal(err)
	}
	rdb.Del(ctx, WebhookIndexKey("acct_a", StatsDay(now)))
	if sid, ep, err := s.WebhookDeliveryEvent(ctx, "acct_a", d.ID, now); sid != "5-1" || ep != "wh_1" || err != nil {
		t.Errorf("given up: %q %q %v", sid, ep, err)
	}
	if _, _, err := s.WebhookDeliveryEvent(ctx, "acct_b", d.ID, now); !errors.Is(err, ErrNotFound) {
		t.Errorf("another account, given up: %v", err)
	}
}

// Requeued deliveries skip those still queued, ignore the fan-out's marker,
// come due in order, and join the replay's set, which holds the next replay
// back until they are gone.
func TestRequeueAndReplayLock(t *testing.T) {
	rdb := testkit.RedisClient(t)
	s := New(rdb, time.Now)
	ctx := context.Background()
	now := time.Now().UTC()
	mk := func(id, stream string) *WebhookDelivery {
		return &WebhookDelivery{ID: id, AccountID: "acct_a", EndpointID: "wh_1", Event: "email.sent", Body: []byte(`{"n":"` + id + `"}`), CreatedAt: now, StreamID: stream}
	}
	pending := mk("whmsg_p", "1-0")
	if _, err := s.QueueWebhookDeliveries(ctx, "1-0", []*WebhookDelivery{pending}, now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if left, err := s.StartWebhookReplay(ctx, "wh_1", "whrp_1", time.Minute); err != nil || left != 0 {
		t.Fatal(left, err)
	}
	if _, err := s.StartWebhookReplay(ctx, "wh_1", "whrp_2", time.Minute); !errors.Is(err, ErrReplayRunning) {
		t.Errorf("a second replay while the first queues: %v", err)
	}
	ds := []*WebhookDelivery{mk("whmsg_a", "2-0"), mk("whmsg_p", "1-0"), mk("whmsg_b", "3-0")}
	queued, skipped, err := s.RequeueWebhookDeliveries(ctx, Requeue{Deliveries: ds, Due: now, Replay: "wh_1", ReplayTTL: time.Hour, Now: now})
	if err != nil || queued != 2 || skipped != 1 {
		t.Fatalf("requeue: %d queued, %d pending, %v", queued, skipped, err)
	}
	if err := s.EndWebhookReplay(ctx, "wh_1", "whrp_1"); err != nil {
		t.Fatal(err)
	}
	due, _ := rdb.ZRangeWithScores(ctx, WebhookDueKey(), 0, -1).Result()
	if len(due) != 3 || due[0].Member != "whmsg_p" || due[1].Member != "whmsg_a" || due[2].Member != "whmsg_b" || due[2].Score <= due[1].Score {
		t.Errorf("schedule %+v: want the pending one first, then a, then b", due)
	}
	if got, _ := s.WebhookDelivery(ctx, "whmsg_b"); got == nil || string(got.Body) != `{"n":"whmsg_b"}` || got.StreamID != "3-0" || got.Attempts != 0 {
		t.Errorf("requeued delivery %+v", got)
	}
	if sid, _, _ := s.WebhookDeliveryEvent(ctx, "acct_a", "whmsg_b", now); sid != "3-0" {
		t.Errorf("requeued delivery not indexed: %q", sid)
	}
	if ttl := rdb.TTL(ctx, WebhookReplayIDsKey("wh_1")).Val(); ttl <= 0 || ttl > time.Hour {
		t.Errorf("replay set TTL %v", ttl)
	}

	// The first replay's deliveries are queued: no other replay yet.
	if left, err := s.StartWebhookReplay(ctx, "wh_1", "whrp_3", time.Minute); !errors.Is(err, ErrReplayRunning) || left != 2 {
		t.Errorf("while its deliveries are queued: %d left, %v", left, err)
	}
	_ = s.FinishWebhookDelivery(ctx, "whmsg_a")
	if left, err := s.StartWebhookReplay(ctx, "wh_1", "whrp_4", time.Minute); !errors.Is(err, ErrReplayRunning) || left != 1 {
		t.Errorf("with one left: %d left, %v", left, err)
	}
	del, _ := s.WebhookDelivery(ctx, "whmsg_b")
	_ = s.FailWebhookDelivery(ctx, del, now)
	if left, err := s.StartWebhookReplay(ctx, "wh_1", "whrp_5", time.Minute); err != nil || left != 0 {
		t.Errorf("once delivered and given up: %d left, %v", left, err)
	}
	if n := rdb.SCard(ctx, WebhookReplayIDsKey("wh_1")).Val(); n != 0 {
		t.Errorf("%d ids left in the replay's set", n)
	}
	// A redelivery joins no set; a delivery still queued is not replaced.
	q, p, err := s.RequeueWebhookDeliveries(ctx, Requeue{Deliveries: []*WebhookDelivery{mk("whmsg_p", "1-0")}, Due: now, Now: now})
	if err != nil || q != 0 || p != 1 {
		t.Errorf("redelivery of a queued one: %d %d %v", q, p, err)
	}
}
