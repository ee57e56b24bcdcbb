//go:build !unix

package model_test

import "time"

// processCPU returns 0: the CPU metric of the benchmarks is unix only.
func processCPU() time.Duration { return 0 }
