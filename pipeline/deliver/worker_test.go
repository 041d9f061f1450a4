package deliver

import (
	"testing"
	"time"
)

func TestHardBounce(t *testing.T) {
	cases := []struct {
		err  Error
		want bool
	}{
		{Error{Enhanced: [3]int{5, 1, 1}}, true},                   // bad mailbox
		{Error{Enhanced: [3]int{5, 1, 10}}, true},                  // null MX
		{Error{Enhanced: [3]int{5, 1, 7}}, false},                  // bad sender: not the recipient's fault
		{Error{Enhanced: [3]int{5, 7, 1}}, false},                  // policy
		{Error{Temporary: true, Enhanced: [3]int{4, 1, 1}}, false}, // temporary
	}
	for _, c := range cases {
		if got := hardBounce(&c.err); got != c.want {
			t.Errorf("%v: %v, want %v", c.err.Enhanced, got, c.want)
		}
	}
}

func TestBackoffDoublesWithJitterUpToMax(t *testing.T) {
	w := &Worker{RetryInitial: time.Second, RetryMax: 10 * time.Second}
	for attempts, base := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second, 5: 10 * time.Second, 30: 10 * time.Second} {
		for range 20 {
			d := w.backoff(attempts)
			if d < base-base/10 || d > base+base/10 {
				t.Fatalf("attempt %d: %v outside %v ±10%%", attempts, d, base)
			}
		}
	}
}
