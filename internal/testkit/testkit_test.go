package testkit

import (
	"fmt"
	"runtime"
	"testing"
)

// fakeTB records the first Fatal/Fatalf of a helper run by runFake.
type fakeTB struct {
	testing.TB
	fatal string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatal(args ...any) {
	f.fatal = fmt.Sprint(args...)
	runtime.Goexit()
}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// runFake runs fn with a TB whose Fatal stops fn's goroutine, and returns
// the fatal message ("" if none). Logs and cleanups go to t.
func runFake(t *testing.T, fn func(tb testing.TB)) string {
	t.Helper()
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	return f.fatal
}
