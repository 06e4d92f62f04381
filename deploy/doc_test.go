// Package deploy_test checks the deployment artifacts in this folder
// against the code and against the tools that consume them: the image is
// built and run with podman, the compose file is held to the variables the
// binaries read, the systemd units pass systemd-analyze verify, and the
// GitHub workflow runs what .ci/run runs.
package deploy_test

import (
	"path/filepath"
	"runtime"
	"testing"
)

// repoRoot is the module root: tests run in deploy/.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot tell where the test file is")
	}
	return filepath.Dir(filepath.Dir(file))
}
