package pipeline

import (
	"testing"
	"time"
)

func TestTTLCache(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	c := newTTLCache[int](time.Second)
	c.put("a", 1, now)
	c.put("b", 2, now)
	if v, ok := c.get("a", now.Add(time.Second)); !ok || v != 1 {
		t.Errorf("fresh entry: %v %v", v, ok)
	}
	if _, ok := c.get("a", now.Add(time.Second+1)); ok {
		t.Error("expired entry returned")
	}
	c.dropIf(func(v int) bool { return v == 2 })
	if _, ok := c.get("b", now); ok {
		t.Error("dropped entry returned")
	}
	c.put("c", 3, now)
	c.drop("c")
	if _, ok := c.get("c", now); ok {
		t.Error("dropped entry returned")
	}
	off := newTTLCache[int](0)
	off.put("a", 1, now)
	if _, ok := off.get("a", now); ok {
		t.Error("a zero TTL must disable the cache")
	}
}
