//go:build linux

package testkit

import "syscall"

// sysProcAttr makes child servers die with the test binary, even when it is
// killed without running its cleanups (e.g. by go test -timeout).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
