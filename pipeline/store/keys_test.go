package store

import (
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/pigeonpost/pigeonpost/internal/testkit"
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
		tag := "{" + shardTags[k] + "}"
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
	for _, id := range []string{"em_abc", "em_abc-q", "em_abc-q0", "em_abc-q01", "em_abc-q16", "em_abc-q100", "em_abc-q1x", "em_abc-q-1", "", "em_preview"} {
		if got := ShardOf(id); got != 0 {
			t.Errorf("ShardOf(%q) = %d, want 0", id, got)
		}
	}
	if got := ShardOf("em_abc-q15"); got != 15 {
		t.Errorf("ShardOf(em_abc-q15) = %d", got)
	}
	if EmailKey("em_abc") != prefix+"{q}:email:em_abc" {
		t.Errorf("shard 0 is no longer {q}: %s", EmailKey("em_abc"))
	}
}

// For every N up to MaxShards, shards 0 … N-1 are on N different masters
// of a cluster of N masters with the slots split evenly, whether split as
// the test clusters do (i×16384/N) or as redis-cli --cluster create does
// (rounded): each master of M takes N/M of the shards when M divides N.
func TestShardTags(t *testing.T) {
	splits := map[string]func(n, i int) int{ // first slot of master i of n
		"floor":     func(n, i int) int { return i * 16384 / n },
		"redis-cli": func(n, i int) int { return int(math.Round(float64(i)*16384/float64(n)-1)) + 1 },
	}
	masterOf := func(first func(n, i int) int, n, slot int) int {
		m := 0
		for i := range n {
			if slot >= first(n, i) {
				m = i
			}
		}
		return m
	}
	seenTag := map[string]bool{}
	for k, tag := range shardTags {
		if seenTag[tag] || !strings.HasPrefix(tag, "q") || strings.ContainsAny(tag, "{}") {
			t.Fatalf("shard %d: tag %q is not a distinct q… tag", k, tag)
		}
		seenTag[tag] = true
	}
	for name, first := range splits {
		for n := 1; n <= MaxShards; n++ {
			seen := map[int]Shard{}
			for k := range Shard(n) {
				slot := int(testkit.Slot(Shard(k).tag()))
				m := masterOf(first, n, slot)
				if other, ok := seen[m]; ok {
					t.Errorf("%s split, %d masters: shards %d and %d on master %d", name, n, other, k, m)
				}
				seen[m] = k
			}
		}
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

// Ids come from clients (an email's URL, an event cursor): whatever the
// string, ShardOf names a shard that exists, only an id that ends in its
// own suffix ("-q" and the shard) names one other than 0, and
// splitEventID takes exactly that suffix off.
func FuzzShardOf(f *testing.F) {
	for _, id := range []string{"em_abc", "em_abc-q2", "em_abc-q15", "em_abc-q16", "em_abc-q01", "1700000000000-0-q3", "-q", "-q-q1", ""} {
		f.Add(id)
	}
	f.Fuzz(func(t *testing.T, id string) {
		k := ShardOf(id)
		if k < 0 || k >= MaxShards {
			t.Fatalf("ShardOf(%q) = %d, not a shard", id, k)
		}
		stream, got := splitEventID(id)
		if got != k {
			t.Fatalf("splitEventID(%q) gives shard %d, ShardOf %d", id, got, k)
		}
		want := id
		if k > 0 {
			want = stream + shardSuffix + strconv.Itoa(int(k))
		}
		if want != id || (k == 0 && stream != id) {
			t.Fatalf("splitEventID(%q) = %q, %d", id, stream, k)
		}
		_ = EmailKey(id) // names a key of that shard without panicking
	})
}
