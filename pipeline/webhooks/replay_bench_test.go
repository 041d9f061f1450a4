package webhooks

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
	"github.com/pigeonpost/pigeonpost/pipeline/store"
)

// BenchmarkReplay: one replay of MaxReplayEvents events (email.delivered
// of as many emails, with their records), against a real redis-server
// with appendfsync always, as POST /v1/webhooks/{id}/replay runs it in the
// request. The deliveries are removed between runs (not timed).
func BenchmarkReplay(b *testing.B) {
	rdb := testkit.StartRedis(b).Client(b)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	st := store.New(rdb, time.Now)
	r := &Replayer{Store: st, Now: func() time.Time { return now }, Logger: slog.New(slog.DiscardHandler)}
	key := &store.Key{AccountID: replayAccount, Permission: store.PermissionFull}
	if err := st.AddWebhook(ctx, replayAccount, &store.Webhook{ID: "wh_1", URL: "https://hooks.test/", Events: []string{"email.delivered"}, CreatedAt: now}, 20); err != nil {
		b.Fatal(err)
	}
	start := now.Add(-time.Hour)
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range MaxReplayEvents {
			at := start.Add(time.Duration(i) * time.Millisecond / 4)
			email := fmt.Sprintf("em_%06d", i)
			raw, _ := json.Marshal(store.Event{Type: store.EventDelivered, Timestamp: at, EmailID: email})
			id := fmt.Sprintf("%d-%d", at.UnixMilli(), i)
			p.XAdd(ctx, &redis.XAddArgs{Stream: store.AccountEventsKey(0, replayAccount), ID: id,
				Values: []any{"account", replayAccount, "email", email, "type", "delivered", "event", string(raw), "gid", id}})
			p.HSet(ctx, store.EmailKey(email), "toAddress", "user"+email+"@example.test")
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		res, err := r.Replay(ctx, key, "wh_1", ReplayInput{Since: start.Format(time.RFC3339Nano)})
		if err != nil || res.Queued != MaxReplayEvents {
			b.Fatalf("%+v %v", res, err)
		}
		b.StopTimer()
		ids, _ := rdb.ZRange(ctx, store.WebhookDueKey(), 0, -1).Result()
		_, _ = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, id := range ids {
				p.Del(ctx, store.WebhookDeliveryKey(id))
			}
			p.Del(ctx, store.WebhookDueKey())
			return nil
		})
		b.StartTimer()
	}
}
