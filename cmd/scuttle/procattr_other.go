//go:build !linux

package main

import "syscall"

// childAttr is nil where the kernel cannot kill a dead parent's children.
func childAttr() *syscall.SysProcAttr { return nil }
