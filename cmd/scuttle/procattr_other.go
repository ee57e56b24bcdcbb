//go:build !linux

package main

import "syscall"

// childAttr is nil where the kernel cannot kill a dead parent's children.
func childAttr() *syscall.SysProcAttr { return nil }

// commandAttr is nil where the kernel cannot signal a dead parent's
// children: a command of scuttle lock outlives a killed scuttle there.
func commandAttr() *syscall.SysProcAttr { return nil }
