package main

import "syscall"

// childAttr makes the kernel kill a test's child processes when the test
// process dies, so that a killed test run leaves no scuttle serve behind.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
