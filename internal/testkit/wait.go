package testkit

import (
	"testing"
	"time"
)

// WaitFor polls cond until it holds, failing the test after a generous
// deadline: a hang, not a measurement (tests never assert on timing).
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
