//go:build !linux

package main

import "syscall"

// childAttr: elsewhere only the driver's own cleanup and e2e/run.sh's trap
// stop the servers.
func childAttr() *syscall.SysProcAttr { return nil }
