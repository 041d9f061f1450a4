// Package retry owns the retry schedule: how long email delivery
// (pipeline/deliver) and webhook delivery (pipeline/webhooks) wait before
// trying again after a temporary failure.
package retry

import (
	"math/rand/v2"
	"time"
)

// Schedule is exponential backoff with jitter: Initial after the first
// failed attempt, doubling after each further one, never more than Max,
// each delay moved by up to ±10 % at random so that the retries of many
// messages that failed together (an outage, a restart) spread out instead of
// arriving in one wave.
type Schedule struct {
	Initial time.Duration
	Max     time.Duration
	// Int64N returns a uniform random number in [0, n); nil means
	// math/rand/v2.Int64N. Tests set it to make Delay deterministic.
	Int64N func(n int64) int64
}

// Delay returns how long to wait after attempts failed attempts (1 after
// the first) before the next one: Initial·2^(attempts-1), at most Max, with
// ±10 % jitter. attempts < 1 counts as 1. A schedule whose delay is not
// positive (Initial or Max ≤ 0) retries at once: Delay returns 0.
func (s Schedule) Delay(attempts int) time.Duration {
	d := s.Initial
	for i := 1; i < attempts && d < s.Max; i++ {
		if d > s.Max/2 { // doubling would pass Max (or overflow)
			d = s.Max
			break
		}
		d *= 2
	}
	d = min(d, s.Max)
	if d <= 0 {
		return 0
	}
	int64n := s.Int64N
	if int64n == nil {
		int64n = rand.Int64N
	}
	return d + time.Duration(int64n(int64(d)/5+1)) - d/10
}
