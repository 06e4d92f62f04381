package systemtest_test

import (
	"os/exec"
	"syscall"
)

// dieWithTest has the kernel kill a started process when the test process
// dies without running its cleanups (a -timeout panic, a closed output
// pipe), so no simulator or service outlives the test.
func dieWithTest(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
