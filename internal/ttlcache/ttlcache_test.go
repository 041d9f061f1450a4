package ttlcache

import (
	"errors"
	"testing"
	"time"
)

func TestTTLCache(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	c := New[int](time.Second)
	loads := 0
	load := func(v int) func() (int, error) {
		return func() (int, error) { loads++; return v, nil }
	}
	get := func(key string, at time.Time, v int) int {
		t.Helper()
		got, err := c.Lookup(key, at, load(v))
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	get("a", now, 1)
	get("b", now, 2)
	if v := get("a", now.Add(time.Second), 10); v != 1 || loads != 2 {
		t.Errorf("fresh entry: %d after %d loads", v, loads)
	}
	if v := get("a", now.Add(time.Second+1), 11); v != 11 {
		t.Errorf("expired entry returned: %d", v)
	}
	c.DropIf(func(v int) bool { return v == 2 })
	if v := get("b", now, 12); v != 12 {
		t.Errorf("dropped entry returned: %d", v)
	}
	c.Drop("b")
	if v := get("b", now, 13); v != 13 {
		t.Errorf("dropped entry returned: %d", v)
	}
	c.DropAll()
	if v := get("a", now, 14); v != 14 {
		t.Errorf("entry returned after dropAll: %d", v)
	}

	// A failed load is not kept.
	if _, err := c.Lookup("e", now, func() (int, error) { return 0, errors.New("down") }); err == nil {
		t.Fatal("load error lost")
	}
	if v := get("e", now, 15); v != 15 {
		t.Errorf("failed load kept: %d", v)
	}

	// A value loaded while a drop happens may predate the change the drop
	// is about: it is returned but not kept.
	v, _ := c.Lookup("r", now, func() (int, error) { c.Drop("r"); return 16, nil })
	if v != 16 {
		t.Fatalf("racing load returned %d", v)
	}
	if v := get("r", now, 17); v != 17 {
		t.Errorf("value loaded across a drop was kept: %d", v)
	}

	off := New[int](0)
	off.Lookup("a", now, load(1))
	if v, _ := off.Lookup("a", now, load(2)); v != 2 {
		t.Error("a zero TTL must disable the cache")
	}
}
