package pgtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
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

	"github.com/jackc/pgx/v5"
)

// Cluster is a private PostgreSQL server created for one test with initdb
// on a free loopback port: a brand-new cluster, its transaction counter in
// the hundreds, as on a machine that was set up minutes ago.
type Cluster struct {
	t     testing.TB
	bin   string // directory of initdb, pg_ctl
	dir   string // owns data/ and server.log
	data  string
	Port  int
	owner *syscall.Credential // when running as root: the postgres user
}

// BinDir finds initdb and pg_ctl: SHOPLEDGER_PG_BINDIR, else the newest
// /usr/lib/postgresql/*/bin, else PATH.
func BinDir() (string, error) {
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
	major := func(d string) int { n, _ := strconv.Atoi(filepath.Base(filepath.Dir(d))); return n }
	sort.Slice(dirs, func(i, j int) bool { return major(dirs[i]) > major(dirs[j]) })
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

// NewCluster initdbs and starts a cluster; it is stopped and removed when
// t ends. Each of conf is a line added to its postgresql.conf (settings
// other than the listen address and port). Without initdb the test is
// skipped, except under CI=true where that is a failure.
func NewCluster(t testing.TB, conf ...string) *Cluster {
	t.Helper()
	return newCluster(t, false, conf)
}

// newCluster initdbs, configures (archiving WAL into ArchiveDir when
// archive) and starts a cluster.
func newCluster(t testing.TB, archive bool, conf []string) *Cluster {
	t.Helper()
	c := prepareCluster(t)
	// --no-sync speeds up initdb's own writes only; the server runs with
	// fsync and synchronous_commit on, as the binaries insist.
	c.run(60*time.Second, "initdb", "-D", c.data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	if archive {
		if err := os.Mkdir(c.ArchiveDir(), 0o700); err != nil {
			t.Fatal(err)
		}
		if c.owner != nil {
			if err := os.Chown(c.ArchiveDir(), int(c.owner.Uid), int(c.owner.Gid)); err != nil {
				t.Fatal(err)
			}
		}
		conf = append(c.ArchiveConf(), conf...)
	}
	c.configure(conf)
	if err := c.PGCtl(60*time.Second, "start"); err != nil {
		t.Fatal(err)
	}
	return c
}

// prepareCluster makes the cluster's folder (owned by the postgres user
// when the test runs as root) and picks a free port.
func prepareCluster(t testing.TB) *Cluster {
	t.Helper()
	bin, err := BinDir()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("private PostgreSQL cluster: %v", err)
		}
		t.Skipf("private PostgreSQL cluster: %v", err)
	}
	c := &Cluster{t: t, bin: bin}
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
	if c.dir, err = os.MkdirTemp("", "shopledger-cluster-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.destroy)
	if c.owner != nil {
		if err := os.Chown(c.dir, int(c.owner.Uid), int(c.owner.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	c.data = filepath.Join(c.dir, "data")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.Port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return c
}

// configure appends the cluster's own settings, then conf, to
// postgresql.conf: later lines win, so a copied configuration gets this
// cluster's port.
func (c *Cluster) configure(conf []string) {
	c.t.Helper()
	lines := fmt.Sprintf("listen_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = ''\nmax_connections = 60\nshared_buffers = 64MB\n", c.Port)
	for _, l := range conf {
		lines += l + "\n"
	}
	f, err := os.OpenFile(filepath.Join(c.data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		c.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(lines); err != nil {
		c.t.Fatal(err)
	}
}

// ArchiveConf are the settings that archive every WAL segment into the
// cluster's folder (ArchiveDir), for point-in-time recovery.
func (c *Cluster) ArchiveConf() []string {
	return []string{"wal_level = replica", "archive_mode = on",
		fmt.Sprintf("archive_command = 'test ! -f %s/%%f && cp %%p %s/%%f'", c.ArchiveDir(), c.ArchiveDir())}
}

// ArchiveDir is where ArchiveConf archives WAL.
func (c *Cluster) ArchiveDir() string { return filepath.Join(c.dir, "archive") }

// NewArchivingCluster is NewCluster with WAL archiving on (ArchiveConf).
func NewArchivingCluster(t testing.TB) *Cluster {
	t.Helper()
	return newCluster(t, true, nil)
}

// BaseBackup takes a physical base backup with pg_basebackup into a folder
// of the cluster's and returns its path.
func (c *Cluster) BaseBackup() string {
	c.t.Helper()
	dir := filepath.Join(c.dir, "base")
	if out, err := c.command(5*time.Minute, "pg_basebackup", "--dbname="+c.URL("postgres"), "--pgdata="+dir,
		"--format=plain", "--wal-method=stream", "--checkpoint=fast"); err != nil {
		c.t.Fatalf("pg_basebackup: %v\n%s", err, out)
	}
	return dir
}

// RecoverCluster starts a new cluster from the base backup at base and
// replays the WAL archived in archive up to target (a timestamp PostgreSQL
// parses), then promotes it: point-in-time recovery.
func RecoverCluster(t testing.TB, base, archive, target string) *Cluster {
	t.Helper()
	c := prepareCluster(t)
	cp, err := exec.LookPath("cp")
	if err != nil {
		t.Fatal(err)
	}
	// As the cluster's owner, so that the copy is the server's to read.
	if out, err := c.command(2*time.Minute, cp, "-a", base, c.data); err != nil {
		t.Fatalf("copy the base backup: %v\n%s", err, out)
	}
	c.configure([]string{
		fmt.Sprintf("restore_command = 'cp %s/%%f %%p'", archive),
		fmt.Sprintf("recovery_target_time = '%s'", target),
		"recovery_target_action = 'promote'",
		"archive_mode = off",
	})
	if err := os.WriteFile(filepath.Join(c.data, "recovery.signal"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if c.owner != nil {
		if err := os.Chown(filepath.Join(c.data, "recovery.signal"), int(c.owner.Uid), int(c.owner.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.PGCtl(2*time.Minute, "start"); err != nil {
		t.Fatal(err)
	}
	// Promoted once the target is reached.
	ctx := context.Background()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var inRecovery bool
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		if err == nil {
			err = conn.QueryRow(ctx, `SELECT pg_is_in_recovery()`).Scan(&inRecovery)
			conn.Close(ctx)
		}
		if err == nil && !inRecovery {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("recovered cluster not promoted after 2 minutes (%v)\nserver log:\n%s", err, c.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// PGCtl runs `pg_ctl action` (start, restart, stop) with extra arguments
// such as "-m", "fast" and waits for it; safe from any goroutine.
func (c *Cluster) PGCtl(timeout time.Duration, action string, extra ...string) error {
	args := append([]string{"-D", c.data, "-l", filepath.Join(c.dir, "server.log"), "-w", "-t", strconv.Itoa(int(timeout.Seconds()))}, extra...)
	if out, err := c.command(timeout+5*time.Second, "pg_ctl", append(args, action)...); err != nil {
		return fmt.Errorf("pg_ctl %s: %v\n%s\nserver log:\n%s", action, err, out, c.log())
	}
	return nil
}

// Pause freezes the whole server (SIGSTOP to the postmaster and every
// child) for d: connections stay open and nothing answers.
func (c *Cluster) Pause(d time.Duration) error {
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

// processes are the postmaster and its children (backends, checkpointer,
// WAL writer...), postmaster first.
func (c *Cluster) processes() ([]int, error) {
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

// URL is the URL of database db on the cluster, as the superuser.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, db)
}

// CreateDatabase creates an empty database and returns its URL.
func (c *Cluster) CreateDatabase(name string) string {
	c.t.Helper()
	c.asSuperuser(func(ctx context.Context, conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, `CREATE DATABASE `+pgx.Identifier{name}.Sanitize())
		return err
	})
	return c.URL(name)
}

// asSuperuser runs f on a new connection to the cluster's postgres
// database and fails the test if either fails.
func (c *Cluster) asSuperuser(f func(ctx context.Context, conn *pgx.Conn) error) {
	c.t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		c.t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := f(ctx, conn); err != nil {
		c.t.Fatal(err)
	}
}

// BurnXIDs advances the cluster's transaction counter by about n, as years
// of use would: one committed transaction with an id each.
func (c *Cluster) BurnXIDs(n int) {
	c.t.Helper()
	c.asSuperuser(func(ctx context.Context, conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, fmt.Sprintf(`DO $$ BEGIN FOR i IN 1..%d LOOP PERFORM pg_current_xact_id(); COMMIT; END LOOP; END $$`, n))
		return err
	})
}

// NextXID is the next transaction id the cluster will hand out.
func (c *Cluster) NextXID() uint64 {
	c.t.Helper()
	var x uint64
	c.asSuperuser(func(ctx context.Context, conn *pgx.Conn) error {
		return conn.QueryRow(ctx, `SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint`).Scan(&x)
	})
	return x
}

// Tool runs one of PostgreSQL's programs (pg_dump, pg_restore, psql...)
// as the cluster's owner, in a directory the owner may write, and returns
// its output.
func (c *Cluster) Tool(timeout time.Duration, name string, args ...string) ([]byte, error) {
	return c.command(timeout, name, args...)
}

// Dir is a directory the cluster's owner may write files to.
func (c *Cluster) Dir() string { return c.dir }

func (c *Cluster) run(timeout time.Duration, name string, args ...string) {
	c.t.Helper()
	if out, err := c.command(timeout, name, args...); err != nil {
		c.t.Fatalf("%s %s: %v\n%s\nserver log:\n%s", name, strings.Join(args, " "), err, out, c.log())
	}
}

// command runs one of PostgreSQL's programs (or a program named by an
// absolute path) as the cluster's owner.
func (c *Cluster) command(timeout time.Duration, name string, args ...string) ([]byte, error) {
	return c.commandEnv(timeout, nil, name, args...)
}

// RunAsOwner runs the program at path as the cluster's owner (the
// postgres user when the test runs as root), with env added to a minimal
// environment whose PATH starts with the server's binaries, and returns
// its output.
func (c *Cluster) RunAsOwner(timeout time.Duration, env []string, path string, args ...string) ([]byte, error) {
	return c.commandEnv(timeout, append([]string{"PATH=" + c.bin + ":" + os.Getenv("PATH")}, env...), path, args...)
}

func (c *Cluster) commandEnv(timeout time.Duration, env []string, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	path := name
	if !filepath.IsAbs(name) {
		path = filepath.Join(c.bin, name)
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = "/"
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "LANG=C"}, env...)
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

func (c *Cluster) log() string {
	b, _ := os.ReadFile(filepath.Join(c.dir, "server.log"))
	s := string(b)
	if len(s) > 3000 {
		s = s[len(s)-3000:]
	}
	return s
}

// destroy stops the server however it is (thawing a paused one) and
// removes its directory.
func (c *Cluster) destroy() {
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
