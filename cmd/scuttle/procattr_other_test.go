//go:build !linux

package main

import "syscall"

// childAttr is nil where the kernel cannot kill a test's children with it.
func childAttr() *syscall.SysProcAttr { return nil }
