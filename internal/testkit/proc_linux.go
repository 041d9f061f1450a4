//go:build linux

package testkit

import (
	"os/signal"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

var ignoreXFSZ sync.Once

// sysProcAttr makes child servers die with the test binary, even when it is
// killed without running its cleanups (e.g. by go test -timeout). It also
// makes SIGXFSZ ignored, which children inherit, so that a server past
// limitFileSize gets EFBIG from write, as on a full disk, instead of dying.
func sysProcAttr() *syscall.SysProcAttr {
	ignoreXFSZ.Do(func() { signal.Ignore(syscall.SIGXFSZ) })
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// limitFileSize sets the largest file offset process pid may write
// (RLIMIT_FSIZE); 0 lifts the limit.
func limitFileSize(pid int, max uint64) error {
	if max == 0 {
		max = unix.RLIM_INFINITY
	}
	return unix.Prlimit(pid, unix.RLIMIT_FSIZE, &unix.Rlimit{Cur: max, Max: unix.RLIM_INFINITY}, nil)
}
