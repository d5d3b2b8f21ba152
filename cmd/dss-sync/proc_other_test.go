//go:build !linux

package main

import "os/exec"

// dieWithParent does nothing where the kernel cannot tie a child's life to
// its parent's; t.Cleanup still kills it when the test ends normally.
func dieWithParent(*exec.Cmd) {}
