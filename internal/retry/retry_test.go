package retry

import (
	"testing"
	"time"
)

func TestScheduleDelay(t *testing.T) {
	low := func(int64) int64 { return 0 }             // the most negative jitter
	high := func(n int64) int64 { return n - 1 }      // the most positive jitter
	mid := func(n int64) int64 { return (n - 1) / 2 } // no jitter (n-1 even)
	s := Schedule{Initial: time.Second, Max: 10 * time.Second}
	huge := Schedule{Initial: time.Hour, Max: time.Duration(1<<63 - 1)}
	tests := []struct {
		name     string
		s        Schedule
		attempts int
		int64n   func(int64) int64
		want     time.Duration
	}{
		{"first", s, 1, mid, time.Second},
		{"second doubles", s, 2, mid, 2 * time.Second},
		{"third", s, 3, mid, 4 * time.Second},
		{"fourth", s, 4, mid, 8 * time.Second},
		{"capped at max", s, 5, mid, 10 * time.Second},
		{"stays at max", s, 1000, mid, 10 * time.Second},
		{"zero attempts count as one", s, 0, mid, time.Second},
		{"jitter -10%", s, 1, low, 900 * time.Millisecond},
		{"jitter +10%", s, 1, high, 1100 * time.Millisecond},
		{"jitter at max", s, 30, high, 11 * time.Second},
		{"initial above max", Schedule{Initial: time.Minute, Max: time.Second}, 1, mid, time.Second},
		{"zero initial", Schedule{Max: time.Second}, 3, high, 0},
		{"negative initial", Schedule{Initial: -time.Second, Max: time.Second}, 1, high, 0},
		{"no overflow near the largest duration", huge, 200, low, huge.Max - huge.Max/10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.s.Int64N = tt.int64n
			if got := tt.s.Delay(tt.attempts); got != tt.want {
				t.Errorf("Delay(%d) = %v, want %v", tt.attempts, got, tt.want)
			}
		})
	}
}

func TestScheduleDefaultRandomStaysInBounds(t *testing.T) {
	s := Schedule{Initial: time.Second, Max: time.Minute}
	for range 200 {
		if d := s.Delay(3); d < 3600*time.Millisecond || d > 4400*time.Millisecond {
			t.Fatalf("Delay(3) = %v, want 4s ±10%%", d)
		}
	}
}
