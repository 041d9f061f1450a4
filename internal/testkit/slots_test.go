package testkit

import (
	"context"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"
)

// Known slots from the Redis Cluster specification and `CLUSTER KEYSLOT`.
func TestSlot(t *testing.T) {
	cases := map[string]uint16{
		"123456789":            12739, // the CRC16 check value 0x31C3 % 16384
		"foo":                  12182,
		"{user1000}.following": Slot("user1000"),
		"foo{}{bar}":           Slot("foo{}{bar}"), // empty tag: the whole key
		"pp:{q}:email:em_1":    Slot("q"),
	}
	for key, want := range cases {
		if got := Slot(key); got != want {
			t.Errorf("Slot(%q) = %d, want %d", key, got, want)
		}
	}
	if Slot("pp:{q}:stream") != Slot("pp:{q}:retry") || Slot("pp:{q}:x") == Slot("pp:{keys}:x") {
		t.Error("hash tags not honoured")
	}
}

// The checker reports a transaction and a script across slots, and stays
// quiet for the same commands within one hash tag.
func TestSlotCheckerReports(t *testing.T) {
	var reports []string
	rdb := StartRedis(t).Client(t)
	rdb.AddHook(NewSlotChecker(func(format string, args ...any) { reports = append(reports, fmt.Sprintf(format, args...)) }))
	ctx := context.Background()
	_, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "pp:{a}:x", 1, 0)
		p.Set(ctx, "pp:{a}:y", 1, 0)
		return nil
	})
	if err != nil || len(reports) != 0 {
		t.Fatalf("same tag: %v %v", err, reports)
	}
	_, _ = rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "pp:{a}:x", 1, 0)
		p.Set(ctx, "pp:{b}:y", 1, 0)
		return nil
	})
	_ = rdb.Eval(ctx, "return 1", []string{"pp:{a}:x", "pp:{c}:z"}).Err()
	if len(reports) != 2 {
		t.Fatalf("want 2 reports, got %q", reports)
	}
}
