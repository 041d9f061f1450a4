// Package failpoint names the points of the commit and delivery paths
// where the crash tests kill or break the process (issue 17). Nothing in
// the server arms a point: only a test does, so in a running gateway Hit
// costs one atomic load.
package failpoint

import (
	"maps"
	"sync"
	"sync/atomic"
)

// The points. detail is what Hit is given there.
const (
	// BeforeCommit: a submission is validated and about to be stored in
	// the MULTI that persists and enqueues it. detail: the first email id.
	BeforeCommit = "commit.before"
	// AfterCommit: the MULTI is done and the reply (250, 2xx) not yet
	// sent. detail: the first email id.
	AfterCommit = "commit.after"
	// Attempt: a delivery attempt begins. detail: the email id.
	Attempt = "deliver.attempt"
	// AfterRemoteAccepted: the destination accepted the message and its
	// result is not yet recorded. detail: the email id.
	AfterRemoteAccepted = "deliver.accepted"
)

// Action is what an armed point does; it may panic or end the process.
type Action func(detail string)

var (
	mu    sync.Mutex // serialises Arm and disarm
	armed atomic.Pointer[map[string]Action]
)

// Hit runs the action armed at point, if any.
func Hit(point, detail string) {
	if m := armed.Load(); m != nil {
		if a := (*m)[point]; a != nil {
			a(detail)
		}
	}
}

// Arm makes Hit(point, …) run a until the returned function disarms it.
func Arm(point string, a Action) (disarm func()) {
	set(point, a)
	return func() { set(point, nil) }
}

func set(point string, a Action) {
	mu.Lock()
	defer mu.Unlock()
	m := map[string]Action{}
	if old := armed.Load(); old != nil {
		maps.Copy(m, *old)
	}
	if a == nil {
		delete(m, point)
	} else {
		m[point] = a
	}
	if len(m) == 0 {
		armed.Store(nil)
		return
	}
	armed.Store(&m)
}
