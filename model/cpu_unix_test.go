//go:build unix

package model_test

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time the process has used, user and system,
// for benchmarks that report CPU per update on a loaded machine.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
