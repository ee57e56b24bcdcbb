//go:build !unix

package bench

import "time"

// ProcessCPU returns 0: the CPU time is not read on this system.
func ProcessCPU() time.Duration { return 0 }
