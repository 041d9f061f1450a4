package store

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"time"
)

// ConsumerName returns a consumer-group name for this process, unique
// among the processes sharing one Redis: host-pid-random.
func ConsumerName() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%d-%04x", host, os.Getpid(), rand.IntN(1<<16))
}

// RetryUntilDone runs op until it succeeds or ctx ends, backing off from
// 100 ms to 5 s while Redis is away (no busy loop, bounded log volume).
// It returns nil on success and ctx.Err() when cancelled. The queue
// consumers (delivery, webhooks) wait out a Redis outage with it.
func RetryUntilDone(ctx context.Context, log *slog.Logger, what string, op func(context.Context) error) error {
	delay := 100 * time.Millisecond
	for {
		err := op(ctx)
		if err == nil || ctx.Err() != nil {
			return ctx.Err()
		}
		log.Warn(what+" unavailable, retrying", "err", err, "in", delay)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}
