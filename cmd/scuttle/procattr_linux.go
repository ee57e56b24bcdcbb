package main

import "syscall"

// childAttr makes the kernel kill the child processes this program starts
// (the demo's nodes, a test's scuttle serve) when it dies, so that a killed
// demo or test run leaves nothing behind.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
