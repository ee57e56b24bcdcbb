package main

import "syscall"

// childAttr makes the kernel kill the child processes this program starts
// (the demo's nodes, a test's scuttle serve) when it dies, so that a killed
// demo or test run leaves nothing behind.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// commandAttr makes the kernel send SIGTERM to the command scuttle lock
// runs if scuttle dies (SIGKILL included): its lock is released within the
// session's TTL, so the command must not go on without it.
func commandAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
