package store

import (
	"strconv"
	"strings"
	"testing"
)

// An id carries its shard, whatever the configured count: ids of shard 0
// (and all ids made before there were shards) keep their form, and the
// keys they name stay under {q}.
func TestShardOf(t *testing.T) {
	for k := range Shard(MaxShards) {
		id := NewIDIn("em", k)
		if got := ShardOf(id); got != k {
			t.Fatalf("ShardOf(%q) = %d, want %d", id, got, k)
		}
		tag := "{q}"
		if k > 0 {
			tag = "{q" + strconv.Itoa(int(k)) + "}"
		}
		if key := EmailKey(id); !strings.HasPrefix(key, prefix+tag+":") {
			t.Fatalf("EmailKey(%q) = %q, want the tag %s", id, key, tag)
		}
	}
	if id := NewIDIn("em", 0); len(id) != len("em_")+26 || strings.Contains(id, "-") {
		t.Errorf("a shard 0 id %q is not of the form em_ and 26 characters", id)
	}
	if id := NewIDIn("bat", 3); !strings.HasSuffix(id, "-q3") || len(id) != len("bat_")+26+3 {
		t.Errorf("a shard 3 id %q is not of the form bat_, 26 characters and -q3", id)
	}
	for _, id := range []string{"em_abc", "em_abc-q", "em_abc-q0", "em_abc-q01", "em_abc-q256", "em_abc-q1x", "em_abc-q-1", "", "em_preview"} {
		if got := ShardOf(id); got != 0 {
			t.Errorf("ShardOf(%q) = %d, want 0", id, got)
		}
	}
	if got := ShardOf("em_abc-q255"); got != 255 {
		t.Errorf("ShardOf(em_abc-q255) = %d", got)
	}
}

// The shard of an idempotency key is a function of its digest alone, and
// digests spread over the shards.
func TestIdemShardSpreads(t *testing.T) {
	s := &Store{}
	s.SetShards(3)
	seen := map[Shard]bool{}
	for i := range 100 {
		d := HashKey(strings.Repeat("x", i))
		k := s.IdemShard(d)
		if k != s.IdemShard(d) || k < 0 || k >= 3 {
			t.Fatalf("IdemShard(%s) = %d: not stable or out of range", d, k)
		}
		seen[k] = true
	}
	if len(seen) != 3 {
		t.Errorf("100 digests used shards %v, want all 3", seen)
	}
	s.SetShards(1)
	if k := s.IdemShard(HashKey("a")); k != 0 {
		t.Errorf("one shard: IdemShard = %d", k)
	}
}
