package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pigeonpost/pigeonpost/config"
	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// contentKey is the key of the MIME stored for the email id: its message,
// or, for a record without one, its own body.
func contentKey(t *testing.T, rdb redis.UniversalClient, id string) string {
	t.Helper()
	m, err := rdb.HGet(context.Background(), store.EmailKey(id), "message").Result()
	if errors.Is(err, redis.Nil) {
		return store.BodyKey(id)
	}
	if err != nil {
		t.Fatal(err)
	}
	return store.MessageKey(m)
}

// TestRetention: finished mail expires (content first, then the record);
// mail still in flight never does.
func TestRetention(t *testing.T) {
	s := startStack(t, func(c *config.Config) {
		c.Retention.Content = time.Hour
		c.Retention.Records = 2 * time.Hour
	})
	rdb := s.redis.Client(t)
	ctx := context.Background()
	ttl := func(key string) time.Duration {
		t.Helper()
		d, err := rdb.TTL(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	from, to := "hello@"+senderDomain, "user@"+rcptDomain

	reply, err := testkit.SendMail(s.smtpClient(true, liveKey), from, []string{to}, testkit.SimpleMessage(from, to, "kept a while"))
	if err != nil {
		t.Fatal(err)
	}
	id := queuedID(t, reply)
	s.waitStatus(id, "delivered")
	if d := ttl(contentKey(t, rdb, id)); d <= 59*time.Minute || d > time.Hour {
		t.Errorf("content TTL %v, want about 1h", d)
	}
	for _, key := range []string{store.EmailKey(id), store.EventsKey(id)} {
		if d := ttl(key); d <= 119*time.Minute || d > 2*time.Hour {
			t.Errorf("%s TTL %v, want about 2h", key, d)
		}
	}

	// Scheduled mail is not finished: it must not expire.
	var sent struct{ ID string }
	if code := s.JSON("POST", "/v1/emails", liveKey, map[string]any{"from": from, "to": to, "subject": "later", "text": "x",
		"scheduled_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}, &sent); code != http.StatusOK {
		t.Fatalf("scheduled send: %d", code)
	}
	if d := ttl(contentKey(t, rdb, sent.ID)); d != -1 {
		t.Errorf("scheduled content TTL %v, want none", d)
	}
	finished := func(what, id string) {
		t.Helper()
		if d := ttl(contentKey(t, rdb, id)); d <= 59*time.Minute || d > time.Hour {
			t.Errorf("%s: content TTL %v, want about 1h", what, d)
		}
		if d := ttl(store.EmailKey(id)); d <= 119*time.Minute || d > 2*time.Hour {
			t.Errorf("%s: record TTL %v, want about 2h", what, d)
		}
	}

	// Cancelled, it is finished.
	if r := s.Call("DELETE", "/v1/emails/"+sent.ID+"/schedule", liveKey, nil, nil); r.Code != http.StatusOK {
		t.Fatalf("cancel: %d %s", r.Code, r.Body)
	}
	finished("cancelled", sent.ID)

	// So is a scheduled test-mode email once its time has come ("sent").
	testKey, _ := s.CreateKey(map[string]any{"name": "t", "mode": "test"})
	if code := s.JSON("POST", "/v1/emails", testKey, map[string]any{"from": from, "to": to, "subject": "test later", "text": "x",
		"scheduled_at": time.Now().Add(2 * time.Second).UTC().Format(time.RFC3339)}, &sent); code != http.StatusOK {
		t.Fatalf("scheduled test send: %d", code)
	}
	s.waitStatus(sent.ID, "sent")
	finished("scheduled test-mode", sent.ID)
}

// TestLostContentFailsInsteadOfLooping: a queued email whose content Redis
// lost is marked failed once, not retried forever.
func TestLostContentFailsInsteadOfLooping(t *testing.T) {
	s := startStack(t, func(c *config.Config) { c.Delivery.Workers = 0 })
	from, to := "hello@"+senderDomain, "user@"+rcptDomain
	c := s.smtpClient(true, liveKey)
	reply, err := testkit.SendMail(c, from, []string{to}, testkit.SimpleMessage(from, to, "lost"))
	if err != nil {
		t.Fatal(err)
	}
	id := queuedID(t, reply)
	c.Quit() // an open session would hold the shutdown for its grace period
	s.stop()
	if err := s.redis.Client(t).Del(context.Background(), contentKey(t, s.redis.Client(t), id)).Err(); err != nil {
		t.Fatal(err)
	}
	s.cfg.Delivery.Workers = 2
	s.start()
	e := s.waitStatus(id, "failed")
	if e.LastError == "" || len(s.sink.Messages()) != 0 {
		t.Errorf("last error %q, %d delivered", e.LastError, len(s.sink.Messages()))
	}
}

// TestRedisRestartMidDelivery (F2): Redis is killed while the workers are
// delivering a backlog and comes back on the same data: every message is
// delivered, duplicates stay within the documented at-least-once window.
func TestRedisRestartMidDelivery(t *testing.T) {
	s := startStack(t, func(c *config.Config) { c.Delivery.Workers = 0 })
	from := "hello@" + senderDomain
	c := s.smtpClient(true, liveKey)
	const n = 30
	for i := range n {
		to := fmt.Sprintf("user%d@%s", i, rcptDomain)
		if _, err := testkit.SendMail(c, from, []string{to}, testkit.SimpleMessage(from, to, fmt.Sprint("backlog ", i))); err != nil {
			t.Fatal(err)
		}
	}
	c.Quit()
	s.stop()
	s.cfg.Delivery.Workers = 2
	s.start()
	s.redis.Kill()
	// Restart Redis once the gateway has seen it gone (its health check
	// fails), not after a guessed pause.
	testkit.WaitFor(t, "the gateway to see Redis down", func() bool {
		return s.JSON("GET", "/healthz", "", nil, nil) == http.StatusServiceUnavailable
	})
	s.redis.Restart()

	got := s.sink.Wait(t, n, 60*time.Second)
	seen := map[string]int{}
	for _, m := range got {
		seen[m.To[0]]++
	}
	if len(seen) != n {
		t.Fatalf("%d distinct recipients delivered, want %d", len(seen), n)
	}
	if dups := len(got) - n; dups > 2 {
		t.Errorf("%d duplicates, more than the 2 workers' in-flight messages", dups)
	}
	testkit.WaitFor(t, fmt.Sprintf("%d emails delivered by status", n), func() bool {
		var list struct{ Data []struct{ Status string } }
		s.JSON("GET", "/v1/emails?status=delivered", liveKey, nil, &list)
		return len(list.Data) == n
	})
}
