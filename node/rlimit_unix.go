//go:build unix

package node

import "syscall"

// openFileLimit returns the process's limit on open file descriptors
// (the soft RLIMIT_NOFILE, which Go raises to the hard one at start), or
// 0 if it is unknown or unlimited.
func openFileLimit() int {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil || r.Cur > 1<<30 { // RLIM_INFINITY included
		return 0
	}
	return int(r.Cur)
}
