package main

import "syscall"

// childAttr makes a server the driver starts die with the driver, even when
// the driver itself is killed with SIGKILL and cannot clean up.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
