//go:build !linux

package systemtest_test

import "os/exec"

// dieWithTest does nothing where the kernel cannot tie a child's life to
// its parent's; t.Cleanup still stops every process.
func dieWithTest(*exec.Cmd) {}
