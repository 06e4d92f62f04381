package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/shopledger/shopledger/migrations"
)

// cluster is a private PostgreSQL server for one test, so the test may
// restart and pause it without touching the shared server.
type cluster struct {
	t     *testing.T
	bin   string // directory of initdb, pg_ctl
	dir   string // owns data/ and server.log
	data  string
	port  int
	owner *syscall.Credential // when running as root: the postgres user
}

// pgBinDir finds initdb and pg_ctl: SHOPLEDGER_PG_BINDIR, else the newest
// /usr/lib/postgresql/*/bin, else PATH.
func pgBinDir() (string, error) {
	has := func(dir string) bool {
		for _, name := range []string{"initdb", "pg_ctl"} {
			if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.IsDir() {
				return false
			}
		}
		return true
	}
	if dir := os.Getenv("SHOPLEDGER_PG_BINDIR"); dir != "" {
		if has(dir) {
			return dir, nil
		}
		return "", fmt.Errorf("SHOPLEDGER_PG_BINDIR=%s holds no initdb and pg_ctl", dir)
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) > pgMajor(dirs[j]) })
	for _, dir := range dirs {
		if has(dir) {
			return dir, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil && has(filepath.Dir(p)) {
		return filepath.Dir(p), nil
	}
	return "", fmt.Errorf("initdb and pg_ctl not found (install PostgreSQL's server package or set SHOPLEDGER_PG_BINDIR)")
}

func pgMajor(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// newCluster initdbs and starts a cluster on a free loopback port. It is
// stopped and its directory removed when t ends, whatever happened.
// Without initdb the test is skipped, except under CI=true where that is
// a failure.
func newCluster(t *testing.T) *cluster {
	t.Helper()
	bin, err := pgBinDir()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("private PostgreSQL cluster: %v", err)
		}
		t.Skipf("private PostgreSQL cluster: %v", err)
	}
	c := &cluster{t: t, bin: bin}
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root.
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root, but no postgres user to own a private cluster: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.owner = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	// Not t.TempDir: its parent is closed to the postgres user.
	if c.dir, err = os.MkdirTemp("", "shopledger-pgfault-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.destroy)
	if c.owner != nil {
		if err := os.Chown(c.dir, int(c.owner.Uid), int(c.owner.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	c.data = filepath.Join(c.dir, "data")
	_, portText, _ := net.SplitHostPort(freeAddr(t))
	c.port, _ = strconv.Atoi(portText)
	// --no-sync speeds up initdb's own writes only; the server runs with
	// fsync and synchronous_commit on, as ingest insists.
	c.run(30*time.Second, "initdb", "-D", c.data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	conf := fmt.Sprintf("listen_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = ''\nmax_connections = 50\nshared_buffers = 32MB\n", c.port)
	f, err := os.OpenFile(filepath.Join(c.data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(conf); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := c.pgctl(60*time.Second, "start"); err != nil {
		t.Fatal(err)
	}
	return c
}

// run runs one of the cluster's programs as its owner and fails t on error.
func (c *cluster) run(timeout time.Duration, name string, args ...string) {
	c.t.Helper()
	if out, err := c.command(timeout, name, args...); err != nil {
		c.t.Fatalf("%s %s: %v\n%s\nserver log:\n%s", name, strings.Join(args, " "), err, out, c.log())
	}
}

func (c *cluster) command(timeout time.Duration, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, name), args...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LANG=C"}
	if c.owner != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.owner}
	}
	// Not CombinedOutput: the server pg_ctl starts inherits stdout and
	// would hold a pipe open; its output goes to -l instead.
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	return out.Bytes(), err
}

// pgctl runs pg_ctl action and waits for it; safe from any goroutine.
func (c *cluster) pgctl(timeout time.Duration, action string, extra ...string) error {
	args := append([]string{"-D", c.data, "-l", filepath.Join(c.dir, "server.log"), "-w", "-t", strconv.Itoa(int(timeout.Seconds()))}, extra...)
	if out, err := c.command(timeout+5*time.Second, "pg_ctl", append(args, action)...); err != nil {
		return fmt.Errorf("pg_ctl %s: %v\n%s\nserver log:\n%s", action, err, out, c.log())
	}
	return nil
}

func (c *cluster) url(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, db)
}

func (c *cluster) log() string {
	b, _ := os.ReadFile(filepath.Join(c.dir, "server.log"))
	return tail(string(b), 3000)
}

// processes are the postmaster and its children (backends, checkpointer,
// WAL writer...), postmaster first.
func (c *cluster) processes() ([]int, error) {
	b, err := os.ReadFile(filepath.Join(c.data, "postmaster.pid"))
	if err != nil {
		return nil, err
	}
	first, _, _ := strings.Cut(string(b), "\n")
	postmaster, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return nil, fmt.Errorf("postmaster.pid starts with %q", first)
	}
	pids := []int{postmaster}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(postmaster) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// pause freezes the whole server (SIGSTOP to the postmaster and every
// child) for d: connections stay open and nothing answers.
func (c *cluster) pause(d time.Duration) error {
	pids, err := c.processes()
	if err != nil {
		return fmt.Errorf("pause: %w", err)
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGSTOP)
	}
	// Whatever happens next, the server must not stay frozen.
	defer func() {
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}()
	time.Sleep(d)
	return nil
}

// destroy stops the server however it is and removes its directory.
func (c *cluster) destroy() {
	if pids, err := c.processes(); err == nil {
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
		if out, err := c.command(30*time.Second, "pg_ctl", "-D", c.data, "-m", "immediate", "-w", "-t", "20", "stop"); err != nil {
			c.t.Errorf("stop private cluster: %v\n%s", err, out)
		}
	}
	if err := os.RemoveAll(c.dir); err != nil {
		c.t.Errorf("remove private cluster: %v", err)
	}
}

// Checklist 37: restart PostgreSQL (pg_ctl restart -m fast), freeze it
// (SIGSTOP/SIGCONT for a few seconds) and terminate ingest's sessions
// while the soak runs against the ingest binary. The process is never
// restarted: it must recover by itself, and after resending every non-ok
// id the checker passes.
func TestPostgresRestartAndPauseDuringSoak(t *testing.T) {
	pg := newCluster(t)
	admin, err := sql.Open("pgx", pg.url("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec(`CREATE DATABASE ingest`); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("pgx", pg.url("ingest"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// As `ledger migrate` would: ingest itself never migrates.
	if err := migrations.Up(context.Background(), db, nil); err != nil {
		t.Fatal(err)
	}

	p, addr := startIngestBinary(t, pg.url("ingest"), "warn")
	p.mu.Lock()
	ingestPID := p.cmd.Process.Pid
	p.mu.Unlock()

	cfg := soakConfig{base: func() string { return "http://" + addr }, n: 2000, dupFraction: 0.1, concurrency: 16, secret: testSecret, seed: 37}
	faults := []struct {
		at   float64 // fraction of the first pass done
		name string
		do   func() error
	}{
		{0.15, "restart", func() error { return pg.pgctl(60*time.Second, "restart", "-m", "fast") }},
		{0.40, "pause", func() error { return pg.pause(3 * time.Second) }},
		{0.60, "terminate", func() error {
			_, err := admin.Exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'ingest' AND pid <> pg_backend_pid()`)
			return err
		}},
		{0.75, "restart again", func() error { return pg.pgctl(60*time.Second, "restart", "-m", "fast") }},
	}
	h := newHistory()
	passOver := make(chan struct{})
	done := make(chan []string)
	go func() {
		var during []string
		defer func() { done <- during }()
		for _, f := range faults {
			mark := int64(float64(cfg.planned()) * f.at)
			for h.done.Load() < mark {
				select {
				case <-passOver:
					return
				case <-time.After(time.Millisecond):
				}
			}
			if err := f.do(); err != nil {
				t.Errorf("%s: %v", f.name, err)
			}
			during = append(during, f.name)
		}
	}()
	start := time.Now()
	soak(context.Background(), cfg, h)
	close(passOver)
	during := <-done
	ok, failed, unknown := h.counts()
	t.Logf("first pass %v: ok %d, failed %d, unknown %d; faults during it: %v", time.Since(start).Round(time.Millisecond), ok, failed, unknown, during)
	if len(during) != len(faults) {
		t.Errorf("only %v of %d faults happened during the first pass", during, len(faults))
	}
	if failed+unknown == 0 {
		t.Error("no attempt failed: the faults did not hit the soak")
	}

	// Recovered without a manual step: the same process, ready again.
	waitReady(t, "http://"+p.opsAddr, 20*time.Second)
	checkBeforeResend(t, h, stored(t, db))
	resend(context.Background(), t, cfg, h, 30*time.Second)
	got := stored(t, db)
	checkAfterResend(t, h, got)
	if len(got) != cfg.n {
		t.Errorf("%d webhook ids stored, want %d", len(got), cfg.n)
	}
	p.mu.Lock()
	same := p.cmd != nil && p.cmd.Process.Pid == ingestPID && p.cmd.ProcessState == nil
	p.mu.Unlock()
	if !same {
		t.Errorf("ingest did not survive the faults; stderr:\n%s", tail(p.stderr.String(), 2000))
	}
}

func waitReady(t *testing.T, base string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("ingest not ready %v after the faults (last: %v)", within, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
