// Package clock holds the one way pigeonpost's long-lived loops wait: for a
// duration, or until their context is done, whichever comes first.
package clock

import (
	"context"
	"time"
)

// Sleep waits for d, or until ctx is done; it reports whether it waited
// the whole d.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
