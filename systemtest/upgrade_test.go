package systemtest_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopledger/shopledger/service/servicetest"
)

// TestUpgradeDuringWebhookSoak upgrades a running deployment from the
// previous commit's binaries to this one's with scripts/deploy while
// Etsy sends webhooks through the proxy: two ingest, two query and one
// projector instance, each run from $ROOT/current under a restart loop as
// systemd would, restarted one at a time. Every webhook must be stored
// exactly once, and every non-2xx answer Etsy saw must have been followed
// by a 2xx on retry. A second deploy whose ingest cannot start is rolled
// back to the release before it.
//
// SHOPLEDGER_UPGRADE_FROM names the commit to upgrade from (default
// HEAD~1).
func TestUpgradeDuringWebhookSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the previous commit and upgrades a deployment under load")
	}
	caddy := servicetest.NeedTool(t, "caddy", "apt-get install caddy, or as root SHOPLEDGER_PODMAN_INSTALL=1 scripts/proxy-ensure")
	servicetest.NeedTool(t, "curl", "apt-get install curl")
	cmds := []string{"etsysim", "ingest", "query", "projector", "ledger"}
	from := os.Getenv("SHOPLEDGER_UPGRADE_FROM")
	if from == "" {
		from = "HEAD~1"
	}
	oldBin := buildAt(t, from, cmds...)
	newBin := buildBinaries(t, cmds...)

	d := newDeployment(t, newBin, deploymentConfig{emptyDB: true})
	root := t.TempDir()
	install(t, oldBin, filepath.Join(root, "releases", "old"))
	if err := os.Symlink(filepath.Join(root, "releases", "old"), filepath.Join(root, "current")); err != nil {
		t.Fatal(err)
	}
	// The old release's ledger migrates and connects the shop: the new
	// one refuses a schema behind it.
	migrator := map[string]string{"SHOPLEDGER_DATABASE_URL": d.db.URL, "SHOPLEDGER_SEAL_KEYS": d.sealKeys}
	oldLedger := func(args ...string) {
		runCmd(t, 2*time.Minute, filepath.Join(root, "current", "ledger"), args, environ(merge(d.ingestEnv("127.0.0.1:0"), migrator)))
	}
	oldLedger("migrate")
	shop := d.shopIDs[0]
	oldLedger("shops", "connect", "--sim-shop", strconv.FormatInt(shop, 10))

	run := t.TempDir()
	sup := &supervisor{t: t, root: root, run: run}
	fastQuery := map[string]string{"SHOPLEDGER_QUERY_TOKEN_RATE": "0", "SHOPLEDGER_QUERY_ADDRESS_RATE": "0"}
	// Behind Caddy's 1 s health checks, as docs/deployment.md says.
	drain := map[string]string{"SHOPLEDGER_SHUTDOWN_DRAIN": "2s"}
	var ingests, queries []*unit
	for i := range 2 {
		addr, ops := servicetest.FreeAddr(t), servicetest.FreeAddr(t)
		ingests = append(ingests, sup.start(fmt.Sprintf("ingest-%d", i+1), "ingest", addr, ops,
			merge(d.ingestEnv(addr), drain, map[string]string{"SHOPLEDGER_INGEST_OPS_ADDR": ops})))
	}
	for i := range 2 {
		addr, ops := servicetest.FreeAddr(t), servicetest.FreeAddr(t)
		queries = append(queries, sup.start(fmt.Sprintf("query-%d", i+1), "query", addr, ops,
			merge(d.queryEnv(addr), fastQuery, drain, map[string]string{"SHOPLEDGER_QUERY_OPS_ADDR": ops})))
	}
	projAddr := servicetest.FreeAddr(t)
	projector := sup.start("projector-1", "projector", projAddr, projAddr,
		merge(d.projectorEnv(), map[string]string{"SHOPLEDGER_PROJECTOR_ADDR": projAddr}))
	units := append(append(append([]*unit{}, ingests...), queries...), projector)
	for _, u := range units {
		u.waitReady(t, time.Minute)
	}
	px := d.startProxy(caddy, []string{ingests[0].addr, ingests[1].addr}, []string{queries[0].addr, queries[1].addr})
	base := "https://" + d.publicHost

	// Etsy: webhooks from four senders until the upgrade is over, each
	// retried until it gets a 2xx.
	ctx := context.Background()
	soak, stopSoak := context.WithCancel(ctx)
	var (
		mu       sync.Mutex
		ids      []string
		next     atomic.Int64
		non2xx   atomic.Int64
		gaveUp   atomic.Int64
		wg       sync.WaitGroup
		tag      = randomHex(t, 4)
		deadline = time.Minute
	)
	for s := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := d.client(px, "127.0.0."+strconv.Itoa(30+s))
			for soak.Err() == nil {
				n := int(next.Add(1))
				id := fmt.Sprintf("msg_upgrade_%s_%d", tag, n)
				mu.Lock()
				ids = append(ids, id)
				mu.Unlock()
				until := time.Now().Add(deadline)
				for {
					status, err := d.postWebhook(ctx, c, base, id, d.webhookBody(shop, n))
					if err == nil && status/100 == 2 {
						break
					}
					non2xx.Add(1)
					if time.Now().After(until) {
						gaveUp.Add(1)
						t.Errorf("webhook %s: no 2xx within %s (last %d, %v)", id, deadline, status, err)
						break
					}
					time.Sleep(200 * time.Millisecond)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	time.Sleep(2 * time.Second) // traffic before the upgrade starts

	deployEnv := func() []string {
		var specs []string
		for _, u := range units {
			specs = append(specs, u.name+"=http://"+u.ops)
		}
		return environ(merge(d.ingestEnv("127.0.0.1:0"), migrator, map[string]string{
			"SHOPLEDGER_DEPLOY_ROOT":           root,
			"SHOPLEDGER_DEPLOY_INSTANCES":      strings.Join(specs, " "),
			"SHOPLEDGER_DEPLOY_RESTART":        sup.restartCommand(),
			"SHOPLEDGER_DEPLOY_HEALTH_TIMEOUT": "60",
		}))
	}
	script := filepath.Join(repoRoot(t), "scripts", "deploy")
	start := time.Now()
	out, stderr, err := tryCmd(5*time.Minute, script, []string{"--name", "new", newBin}, deployEnv())
	if err != nil {
		stopSoak()
		wg.Wait()
		t.Fatalf("deploy: %v\n%s\n%s", err, out, stderr)
	}
	took := time.Since(start)
	time.Sleep(2 * time.Second) // traffic after it
	stopSoak()
	wg.Wait()

	for _, u := range units {
		if exe := u.exe(t); !strings.HasPrefix(exe, filepath.Join(root, "releases", "new")) {
			t.Errorf("%s runs %s after the upgrade, want the new release", u.name, exe)
		}
	}
	stored, err := d.storedWebhooks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lost, dup := 0, 0
	for _, id := range ids {
		switch stored[id] {
		case 0:
			lost++
		case 1:
		default:
			dup++
		}
	}
	t.Logf("upgrade took %s; %d webhooks sent, %d non-2xx answers (each retried), %d never accepted, %d lost, %d stored twice",
		took.Round(time.Millisecond), len(ids), non2xx.Load(), gaveUp.Load(), lost, dup)
	if lost > 0 || dup > 0 || gaveUp.Load() > 0 {
		t.Errorf("%d webhooks lost, %d stored more than once, %d never accepted", lost, dup, gaveUp.Load())
	}

	// A release whose ingest cannot start: the first instance fails its
	// check, and everything goes back to the release before.
	broken := filepath.Join(t.TempDir(), "broken")
	install(t, newBin, broken)
	if err := os.WriteFile(filepath.Join(broken, "ingest"), []byte("#!/bin/sh\necho 'this release cannot start' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	env := deployEnv()
	env = append(env, "SHOPLEDGER_DEPLOY_HEALTH_TIMEOUT=5")
	out, stderr, err = tryCmd(5*time.Minute, script, []string{"--name", "broken", broken}, env)
	if err == nil {
		t.Fatalf("deploying a release that cannot start succeeded:\n%s\n%s", out, stderr)
	}
	if !strings.Contains(stderr, "rolled back to new") {
		t.Errorf("deploy did not say it rolled back:\n%s", stderr)
	}
	if cur, _ := filepath.EvalSymlinks(filepath.Join(root, "current")); cur != filepath.Join(root, "releases", "new") {
		t.Errorf("current is %s after the rollback, want releases/new", cur)
	}
	for _, u := range units {
		u.waitReady(t, time.Minute)
		if exe := u.exe(t); !strings.HasPrefix(exe, filepath.Join(root, "releases", "new")) {
			t.Errorf("%s runs %s after the rollback, want the new release", u.name, exe)
		}
	}
	// Still serving after the rollback.
	c := d.client(px, "127.0.0.40")
	if status, err := d.postWebhook(ctx, c, base, "msg_upgrade_after_"+tag, d.webhookBody(shop, 0)); err != nil || status/100 != 2 {
		t.Errorf("webhook after the rollback: %d, %v", status, err)
	}
}

// buildAt builds the commands as they were at rev, from `git archive`,
// into a temporary directory.
func buildAt(t *testing.T, rev string, cmds ...string) string {
	t.Helper()
	src := t.TempDir()
	archive := exec.Command("git", "archive", "--format=tar", rev)
	archive.Dir = repoRoot(t)
	untar := exec.Command("tar", "-x", "-C", src)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	untar.Stdin = pipe
	var archiveErr strings.Builder
	archive.Stderr = &archiveErr
	if err := untar.Start(); err != nil {
		t.Fatal(err)
	}
	if err := archive.Run(); err != nil {
		if os.Getenv("CI") != "true" {
			t.Skipf("no commit %s to upgrade from (%v: %s)", rev, err, archiveErr.String())
		}
		t.Fatalf("git archive %s: %v: %s", rev, err, archiveErr.String())
	}
	if err := untar.Wait(); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	args := []string{"build", "-o", out + string(filepath.Separator)}
	for _, c := range cmds {
		args = append(args, "./cmd/"+c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", args...)
	build.Dir = src
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build %s at %s: %v\n%s", strings.Join(cmds, " "), rev, err, b)
	}
	return out
}

// install copies a release's binaries into dir.
func install(t *testing.T, from, dir string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", from, dir).CombinedOutput(); err != nil {
		t.Fatalf("cp %s %s: %v\n%s", from, dir, err, out)
	}
}

// supervisor runs services from $root/current under restart loops, as
// systemd units with Restart=always would: a unit's process, once it
// exits, is started again from whatever current points at then.
type supervisor struct {
	t    *testing.T
	root string
	run  string // pid files
}

// unit is one supervised service instance.
type unit struct {
	name, addr, ops string
	pidfile         string
}

func (s *supervisor) start(name, bin, addr, ops string, env map[string]string) *unit {
	s.t.Helper()
	u := &unit{name: name, addr: addr, ops: ops, pidfile: filepath.Join(s.run, name+".pid")}
	loop := fmt.Sprintf(`c=
trap 'kill -TERM $c 2>/dev/null; wait $c; exit 0' TERM INT
while :; do
	%q &
	c=$!
	echo $c > %q
	wait $c
	sleep 0.1
done`, filepath.Join(s.root, "current", bin), u.pidfile)
	p := start(s.t, name, "bash", []string{"-c", loop}, environ(env))
	s.t.Cleanup(func() {
		// The loop's child, should the loop itself have been killed.
		if raw, err := os.ReadFile(u.pidfile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(raw))); err == nil {
				if proc, err := os.FindProcess(pid); err == nil {
					_ = proc.Kill()
				}
			}
		}
	})
	_ = p
	return u
}

// restartCommand is scripts/deploy's SHOPLEDGER_DEPLOY_RESTART for the
// supervised units: stop the unit's process, gracefully, and return once
// it has exited (the loop starts the new one), as systemctl restart does.
func (s *supervisor) restartCommand() string {
	return fmt.Sprintf(`f=%q/{unit}.pid; p=$(cat "$f"); kill -TERM "$p"; while kill -0 "$p" 2>/dev/null; do sleep 0.05; done; while [ "$(cat "$f")" = "$p" ]; do sleep 0.05; done`, s.run)
}

// waitReady waits until the unit's ops /readyz answers 200.
func (u *unit) waitReady(t *testing.T, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		resp, err := http.Get("http://" + u.ops + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready on %s within %s (%v)", u.name, u.ops, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// exe is the binary the unit's current process runs.
func (u *unit) exe(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(u.pidfile)
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Readlink("/proc/" + strings.TrimSpace(string(raw)) + "/exe")
	if err != nil {
		t.Fatalf("%s: %v", u.name, err)
	}
	return exe
}
