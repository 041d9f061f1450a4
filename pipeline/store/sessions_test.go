package store

import (
	"context"
	"testing"
	"time"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
)

// TouchSession records a session's last use; on a session that is gone
// (expired, logged out) it writes nothing, leaving no partial record
// without expiry behind.
func TestTouchSession(t *testing.T) {
	rdb := testkit.RedisClient(t)
	s := New(rdb, time.Now)
	ctx := context.Background()
	created := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	sess := &Session{AccountID: "acct_a", KeyID: "key_a", KeyHash: "h", CSRFToken: "c", CreatedAt: created, ExpiresAt: time.Now().Add(time.Hour)}
	if err := s.CreateSession(ctx, "live", sess); err != nil {
		t.Fatal(err)
	}
	if got, err := s.SessionByHash(ctx, "live"); err != nil || !got.SeenAt.Equal(created) {
		t.Fatalf("a new session: %+v %v, want seen at its creation", got, err)
	}
	seen := created.Add(5 * time.Minute)
	if err := s.TouchSession(ctx, "live", seen); err != nil {
		t.Fatal(err)
	}
	if got, err := s.SessionByHash(ctx, "live"); err != nil || !got.SeenAt.Equal(seen) || !got.CreatedAt.Equal(created) {
		t.Errorf("after a touch: %+v %v, want seen at %v", got, err, seen)
	}
	if ttl, _ := rdb.PTTL(ctx, SessionKey("live")).Result(); ttl <= 0 {
		t.Errorf("the touched record's TTL is %v", ttl)
	}
	if err := s.TouchSession(ctx, "gone", seen); err != nil {
		t.Fatal(err)
	}
	if n, _ := rdb.Exists(ctx, SessionKey("gone")).Result(); n != 0 {
		t.Error("touching a session that is gone wrote a record")
	}
}
