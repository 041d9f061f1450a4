//go:build !linux

package testkit

import (
	"errors"
	"syscall"
)

func sysProcAttr() *syscall.SysProcAttr { return nil }

func limitFileSize(int, uint64) error {
	return errors.New("limiting a process's file size needs Linux")
}
