package deploy_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/service/servicetest"
)

// imageBuildTimeout bounds scripts/image: a cold build of every binary on a
// busy two-core machine takes a few minutes, a warm one seconds.
const imageBuildTimeout = 7 * time.Minute

// TestImageServesQueryAgainstTheDatabase builds the image with scripts/image
// (what make image runs), starts query from it against a fresh test
// database and waits for /healthz, then runs the image's own HEALTHCHECK.
func TestImageServesQueryAgainstTheDatabase(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the container image; skipped with -short")
	}
	root := repoRoot(t)
	podmanBin := servicetest.NeedTool(t, "podman", "install it with scripts/podman-ensure (SHOPLEDGER_PODMAN_INSTALL=1 as root) or apt-get install podman runc")
	servicetest.NeedTool(t, "runc", "apt-get install runc")
	db := pgtest.New(t)

	podman := func(timeout time.Duration, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, podmanBin, append([]string{"--runtime", "runc", "--cgroup-manager=cgroupfs"}, args...)...)
		cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+filepath.Join(root, "deploy", "podman", "containers.conf"))
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if err != nil {
			return stdout.String(), fmt.Errorf("podman %s: %w\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
		}
		return strings.TrimSpace(stdout.String()), nil
	}

	suffix := randomHex(t)
	tag := "localhost/shopledger-test:" + suffix
	ctx, cancel := context.WithTimeout(context.Background(), imageBuildTimeout)
	defer cancel()
	build := exec.CommandContext(ctx, filepath.Join(root, "scripts", "image"), "--tag", tag)
	build.Dir = root
	build.Env = os.Environ()
	var buildOut, buildLog bytes.Buffer
	build.Stdout, build.Stderr = &buildOut, &buildLog
	started := time.Now()
	if err := build.Run(); err != nil {
		t.Fatalf("scripts/image --tag %s: %v\n%s", tag, err, tail(buildLog.String(), 40))
	}
	t.Logf("scripts/image took %s: %s", time.Since(started).Round(time.Second), lastLine(buildLog.String()))
	t.Cleanup(func() {
		if _, err := podman(time.Minute, "rmi", tag); err != nil {
			t.Logf("remove image: %v", err)
		}
	})

	// What the image promises before it runs anything.
	user, err := podman(time.Minute, "image", "inspect", "--format", "{{.Config.User}}", tag)
	if err != nil {
		t.Fatal(err)
	}
	if user == "" || strings.HasPrefix(user, "0:") || user == "0" || strings.HasPrefix(user, "root") {
		t.Errorf("image runs as %q, want a numeric non-root user", user)
	}
	version, err := podman(time.Minute, "image", "inspect", "--format", `{{index .Labels "org.opencontainers.image.version"}}`, tag)
	if err != nil {
		t.Fatal(err)
	}
	if version == "" || version == "dev" {
		t.Errorf("image version label is %q, want one stamped from git", version)
	}
	health, err := podman(time.Minute, "image", "inspect", "--format", "{{json .Config.Healthcheck}}", tag)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(health, "healthcheck") {
		t.Errorf("image healthcheck is %s, want one running the healthcheck binary", health)
	}

	addr := servicetest.FreeAddr(t)
	name := "shopledger-test-" + suffix
	if _, err := podman(2*time.Minute, "run", "--detach", "--name", name, "--network", "host",
		"--env", "SHOPLEDGER_DATABASE_URL="+db.RoleURL(pgtest.QueryRole),
		"--env", "SHOPLEDGER_QUERY_ADDR="+addr,
		"--env", "SHOPLEDGER_HEALTHCHECK_URL=http://"+addr+"/healthz",
		tag, "query"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			logs, err := podman(time.Minute, "logs", name)
			t.Logf("query's log (%v):\n%s", err, tail(logs, 40))
			state, err := podman(time.Minute, "inspect", "--format", "{{json .State}}", name)
			t.Logf("container state (%v): %s", err, state)
		}
		if _, err := podman(time.Minute, "rm", "--force", "--time", "5", name); err != nil {
			t.Logf("remove container: %v", err)
		}
	})

	url := "http://" + addr + "/healthz"
	// Generous: the first container on a machine that just installed
	// podman also sets up its storage, and make test runs beside it.
	deadline := time.Now().Add(2 * time.Minute)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s from the container's query: still %v after 2 minutes", url, err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// The process itself, seen from the host: not root. (podman top would
	// need ps inside the image.)
	pid, err := podman(time.Minute, "inspect", "--format", "{{.State.Pid}}", name)
	if err != nil {
		t.Fatal(err)
	}
	if status, err := os.ReadFile("/proc/" + pid + "/status"); err != nil {
		t.Logf("cannot read query's process status from the host: %v", err)
	} else if uid := procUID(string(status)); uid != "65532" {
		t.Errorf("query in the container runs as uid %q, want 65532", uid)
	}

	// The image's HEALTHCHECK, run the way the runtime runs it.
	if out, err := podman(time.Minute, "healthcheck", "run", name); err != nil {
		t.Errorf("podman healthcheck run: %v (%s)", err, out)
	}
	got, err := podman(time.Minute, "exec", name, "healthcheck", "--version")
	if err != nil {
		t.Fatal(err)
	}
	if want := "shopledger " + version; got != want {
		t.Errorf("healthcheck --version in the image printed %q, want %q (the image's label)", got, want)
	}
	// CA certificates and time-zone data from the build host.
	for _, f := range []string{"/etc/ssl/certs/ca-certificates.crt", "/usr/share/zoneinfo/Europe/Berlin", "/usr/share/zoneinfo/UTC"} {
		if _, err := podman(time.Minute, "cp", name+":"+f, filepath.Join(t.TempDir(), filepath.Base(f))); err != nil {
			t.Errorf("image lacks %s: %v", f, err)
		}
	}
}

func randomHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func lastLine(s string) string { return tail(s, 1) }

// procUID is the real uid of a /proc/PID/status, or the whole Uid line
// when its ids differ.
func procUID(status string) string {
	for _, line := range strings.Split(status, "\n") {
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			ids := strings.Fields(rest)
			for _, id := range ids {
				if id != ids[0] {
					return strings.Join(ids, " ")
				}
			}
			if len(ids) > 0 {
				return ids[0]
			}
		}
	}
	return ""
}
