package systemtest_test

// Processes, commands, HTTP and polling for the whole-system test.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shopledger/shopledger/etsy/etsysim"
	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/service/servicetest"
	"github.com/shopledger/shopledger/stdwebhooks"
)

// buildBinaries builds the commands into a temporary directory and returns
// it. The binaries are built without -race even when the test runs with it:
// they are the system under test, not the test.
func buildBinaries(t *testing.T, cmds ...string) string {
	t.Helper()
	dir := t.TempDir()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go tool not found: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	for _, c := range cmds {
		args = append(args, "./cmd/"+c)
	}
	cmd := exec.CommandContext(ctx, goBin, args...)
	cmd.Dir = ".." // the module root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return dir
}

// environ is the test process's environment without any SHOPLEDGER_*
// variable, plus extra: each process gets exactly the settings the test
// chose.
func environ(extra map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SHOPLEDGER_") {
			env = append(env, kv)
		}
	}
	for k, v := range extra {
		env = append(env, k+"="+v)
	}
	return env
}

// proc is a long-running binary.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *servicetest.Output

	mu      sync.Mutex
	lines   []string      // stdout lines so far
	changed chan struct{} // closed and replaced on each new line and at exit
	exited  bool
	done    chan struct{}
	waitErr error
}

// start runs bin with args and env. Its stdout and stderr go to a buffer
// that is logged when the test fails; t.Cleanup stops it with SIGTERM and,
// a few seconds later, SIGKILL.
func start(t *testing.T, name, bin string, args []string, env []string) *proc {
	t.Helper()
	p := &proc{name: name, out: &servicetest.Output{}, changed: make(chan struct{}), done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = env
	p.cmd.Stderr = p.out
	dieWithTest(p.cmd)
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	// Registered first so that it runs after the stop below (cleanups run
	// last in, first out) and sees everything the process wrote.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("----- %s (pid %d) output -----\n%s", name, p.cmd.Process.Pid, p.out.Tail(150))
		}
	})
	t.Cleanup(p.stop)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintf(p.out, "%s\n", line)
			p.mu.Lock()
			p.lines = append(p.lines, line)
			close(p.changed)
			p.changed = make(chan struct{})
			p.mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, stdout)
		p.waitErr = p.cmd.Wait()
		fmt.Fprintf(p.out, "[%s exited: %v]\n", name, p.waitErr)
		p.mu.Lock()
		p.exited = true
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
		close(p.done)
	}()
	return p
}

// stop ends the process: SIGTERM, then SIGKILL if it is still running
// after a few seconds.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(8 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// waitLine returns the index and text of the first stdout line at or after
// from that match reports true for, failing the test if the process exits
// or timeout passes first.
func (p *proc) waitLine(t *testing.T, from int, timeout time.Duration, match func(string) bool) (int, string) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		for i := from; i < len(p.lines); i++ {
			if match(p.lines[i]) {
				line := p.lines[i]
				p.mu.Unlock()
				return i, line
			}
		}
		from = len(p.lines)
		exited, changed := p.exited, p.changed
		p.mu.Unlock()
		if exited {
			t.Fatalf("%s exited before printing the expected line: %v", p.name, p.waitErr)
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("%s printed no expected line within %s", p.name, timeout)
		}
	}
}

// listening waits for "<name> listening on http://ADDR" and returns the URL.
func (p *proc) listening(t *testing.T) (string, int) {
	t.Helper()
	prefix := p.name + " listening on "
	i, line := p.waitLine(t, 0, time.Minute, func(s string) bool { return strings.HasPrefix(s, prefix) })
	return strings.TrimPrefix(line, prefix), i
}

// ops waits for "<name> ops endpoints on http://ADDR" and returns the URL
// of the process's ops listener (/readyz, /metrics).
func (p *proc) ops(t *testing.T) string {
	t.Helper()
	prefix := p.name + " ops endpoints on "
	_, line := p.waitLine(t, 0, time.Minute, func(s string) bool { return strings.HasPrefix(s, prefix) })
	return strings.TrimPrefix(line, prefix)
}

// running fails the test if the process has exited.
func (p *proc) running(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
		t.Fatalf("%s exited: %v", p.name, p.waitErr)
	default:
	}
}

// runCmd runs a command to completion and returns its stdout; a non-zero
// exit fails the test with both outputs.
func runCmd(t *testing.T, timeout time.Duration, bin string, args []string, env []string) string {
	t.Helper()
	out, errOut, err := tryCmd(timeout, bin, args, env)
	if err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", filepath.Base(bin), strings.Join(args, " "), err, out, servicetest.Tail(errOut, 80))
	}
	return out
}

func tryCmd(timeout time.Duration, bin string, args []string, env []string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	cmd.WaitDelay = 5 * time.Second
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// waitHealthy polls GET base/path until it answers 200.
func waitHealthy(t *testing.T, base, path string, p *proc) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(base + path)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		p.running(t)
		if time.Now().After(deadline) {
			t.Fatalf("%s%s did not answer 200 within a minute (last error %v)", base, path, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// metrics reads a Prometheus text page and sums the samples of name whose
// labels include every pair of want.
func metricSum(ctx context.Context, base, name string, want map[string]string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s/metrics: %s", base, resp.Status)
	}
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		labels := ""
		if strings.HasPrefix(rest, "{") {
			end := strings.Index(rest, "}")
			if end < 0 {
				continue
			}
			labels, rest = rest[1:end], rest[end+1:]
		}
		if !strings.HasPrefix(rest, " ") {
			continue // another metric whose name starts with name
		}
		ok := true
		for k, v := range want {
			if !strings.Contains(","+labels+",", ","+k+"="+strconv.Quote(v)+",") {
				ok = false
			}
		}
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
		if err != nil {
			return 0, fmt.Errorf("metric line %q: %w", line, err)
		}
		sum += f
	}
	return sum, sc.Err()
}

// apiClient reads the query API with one bearer token.
type apiClient struct {
	base, token string
}

// errStatus is a non-200 answer.
type errStatus struct {
	path   string
	status int
	body   string
}

func (e *errStatus) Error() string { return fmt.Sprintf("GET %s: %d %s", e.path, e.status, e.body) }

// get decodes the JSON answer to GET path into out.
func (a *apiClient) get(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return fmt.Errorf("GET %s: read: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return &errStatus{path: path, status: resp.StatusCode, body: strings.TrimSpace(string(body))}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("GET %s: decode: %w", path, err)
	}
	return nil
}

// pages follows next_cursor from path and returns every item, each decoded
// into a fresh T.
func pages[T any](ctx context.Context, a *apiClient, path string) ([]T, error) {
	var all []T
	cursor := ""
	for range 10000 {
		p := path
		if cursor != "" {
			sep := "?"
			if strings.Contains(p, "?") {
				sep = "&"
			}
			p += sep + "cursor=" + url.QueryEscape(cursor)
		}
		var page struct {
			Items      []T    `json:"items"`
			NextCursor string `json:"next_cursor"`
		}
		if err := a.get(ctx, p, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Items...)
		if page.NextCursor == "" {
			return all, nil
		}
		cursor = page.NextCursor
	}
	return nil, fmt.Errorf("GET %s: more than 10000 pages", path)
}

// converge calls check until it reports no difference or timeout passes,
// and fails the test with the last difference. check returns a diff (empty
// when converged) or an error (retried too: a read model may not exist
// yet).
func converge(t *testing.T, what string, timeout time.Duration, check func(ctx context.Context) (string, error)) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last string
	var lastErr error
	for {
		diff, err := check(ctx)
		if err == nil && diff == "" {
			return true
		}
		last, lastErr = diff, err
		select {
		case <-ctx.Done():
			if lastErr != nil && !errors.Is(lastErr, context.DeadlineExceeded) {
				t.Errorf("%s: still failing after %s: %v", what, timeout, lastErr)
			} else {
				t.Errorf("%s: not converged after %s (-want +got):\n%s", what, timeout, last)
			}
			return false
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// simShops waits for the simulator's listening line and the summary line
// after it, and returns its URL and its shops, failing the test unless it
// runs want shops.
func simShops(t *testing.T, sim *proc, want int) (string, []etsysim.ShopInfo) {
	t.Helper()
	simURL, at := sim.listening(t)
	_, line := sim.waitLine(t, at+1, 10*time.Second, func(string) bool { return true })
	var info struct {
		Shops []etsysim.ShopInfo `json:"shops"`
	}
	if err := json.Unmarshal([]byte(line), &info); err != nil || len(info.Shops) != want {
		t.Fatalf("etsysim summary line %q: %v", line, err)
	}
	return simURL, info.Shops
}

// etsyEnv is the settings that make the simulator at simURL the Etsy of
// ingest and ledger, with the app's key and redirect URL.
func etsyEnv(simURL, keyString, sharedSecret, redirectURL string) map[string]string {
	return map[string]string{
		"SHOPLEDGER_ETSY_KEYSTRING":           keyString,
		"SHOPLEDGER_ETSY_SHARED_SECRET":       sharedSecret,
		"SHOPLEDGER_ETSY_API_URL":             simURL,
		"SHOPLEDGER_ETSY_ALLOWED_HOSTS":       strings.TrimPrefix(simURL, "http://"),
		"SHOPLEDGER_ETSY_ALLOW_HTTP":          "true",
		"SHOPLEDGER_ETSY_OAUTH_AUTHORIZE_URL": simURL + "/oauth/connect",
		"SHOPLEDGER_ETSY_OAUTH_TOKEN_URL":     simURL + "/v3/public/oauth/token",
		"SHOPLEDGER_ETSY_REDIRECT_URL":        redirectURL,
	}
}

// startQuery starts query with env, listening on addr (port 0: any) with
// its ops on any port and no per-token or per-client limit (the tests
// read a lot), waits until it is ready, and returns it with its URL.
func startQuery(t *testing.T, bin, addr string, env map[string]string) (*proc, string) {
	t.Helper()
	query := start(t, "query", bin+"/query", nil, environ(merge(env, map[string]string{
		"SHOPLEDGER_QUERY_ADDR":         addr,
		"SHOPLEDGER_QUERY_OPS_ADDR":     "127.0.0.1:0",
		"SHOPLEDGER_QUERY_TOKEN_RATE":   "0",
		"SHOPLEDGER_QUERY_ADDRESS_RATE": "0",
	})))
	queryURL, _ := query.listening(t)
	waitHealthy(t, query.ops(t), "/readyz", query)
	return query, queryURL
}

// ledgerRunner runs the ledger binary with env, each command within a
// minute, and returns what it printed.
func ledgerRunner(t *testing.T, bin string, env []string) func(args ...string) string {
	return func(args ...string) string {
		t.Helper()
		return runCmd(t, time.Minute, bin+"/ledger", args, env)
	}
}

// quietSimArgs are the simulator's arguments for shops shops without a
// catalogue or a scenario of its own (the test drives every change),
// serving the Etsy app with keyString, sharedSecret and redirectURL; extra
// follow them.
func quietSimArgs(seed, shops int, keyString, sharedSecret, redirectURL string, extra ...string) []string {
	return append([]string{
		"--port", "0", "--seed", strconv.Itoa(seed), "--shops", strconv.Itoa(shops), "--demo-listings", "0",
		"--order-rate", "0", "--restock-rate", "0", "--cancel-rate", "0", "--edit-rate", "0",
		"--ship-rate", "0", "--deliver-rate", "0",
		"--key-string", keyString, "--shared-secret", sharedSecret, "--redirect-uris", redirectURL,
	}, extra...)
}

// startProjector starts the projector with env, its ops listener on any
// port, waits until it is healthy, and returns it with its URL.
func startProjector(t *testing.T, bin string, env map[string]string) (*proc, string) {
	t.Helper()
	projector := start(t, "projector", bin+"/projector", nil, environ(merge(env, map[string]string{
		"SHOPLEDGER_PROJECTOR_ADDR": "127.0.0.1:0",
	})))
	projectorURL, _ := projector.listening(t)
	waitHealthy(t, projectorURL, "/healthz", projector)
	return projector, projectorURL
}

// etsyApp is the Etsy app that a test's ingest serves: the app's key, its
// webhook signing secret, and ingest's address, which the simulator must
// know before ingest starts.
type etsyApp struct {
	keyString, sharedSecret, webhookSecret string
	ingestAddr                             string
}

// newEtsyApp makes an app with a key string of name and keyBytes random
// bytes, fresh secrets, and a free address for ingest.
func newEtsyApp(t *testing.T, name string, keyBytes int) etsyApp {
	t.Helper()
	webhookSecret, err := stdwebhooks.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	return etsyApp{
		keyString: name + randomHex(t, keyBytes), sharedSecret: randomHex(t, 12), webhookSecret: webhookSecret,
		ingestAddr: servicetest.FreeAddr(t),
	}
}

func (a etsyApp) ingestURL() string   { return "http://" + a.ingestAddr }
func (a etsyApp) redirectURL() string { return a.ingestURL() + "/connect/etsy/callback" }

// simArgs are quietSimArgs for the app, its webhooks sent to ingest.
func (a etsyApp) simArgs(seed, shops int, extra ...string) []string {
	return quietSimArgs(seed, shops, a.keyString, a.sharedSecret, a.redirectURL(),
		append([]string{"--webhook-url", a.ingestURL() + "/webhooks/etsy", "--webhook-secret", a.webhookSecret}, extra...)...)
}

// env is etsyEnv for the app with the simulator at simURL, and the
// webhook signing secret.
func (a etsyApp) env(simURL string) map[string]string {
	return merge(etsyEnv(simURL, a.keyString, a.sharedSecret, a.redirectURL()), map[string]string{
		"SHOPLEDGER_WEBHOOK_SECRETS": a.webhookSecret,
	})
}

// ingestEnv is ingest's settings for the app with the simulator at simURL,
// on db as ingest's role: new token keys, a rate budget that is not what
// the tests are about, and no scheduled reconciliation, so that the one
// reconciliation is the one a test runs.
func (a etsyApp) ingestEnv(t *testing.T, db *pgtest.Database, simURL string) map[string]string {
	t.Helper()
	return merge(a.env(simURL), map[string]string{
		"SHOPLEDGER_DATABASE_URL":      db.RoleURL(pgtest.IngestRole),
		"SHOPLEDGER_LOG_LEVEL":         "info",
		"SHOPLEDGER_INGEST_ADDR":       a.ingestAddr,
		"SHOPLEDGER_INGEST_OPS_ADDR":   "127.0.0.1:0",
		"SHOPLEDGER_TOKEN_KEYS":        "k1:" + base64.StdEncoding.EncodeToString(randomBytes(t, 32)),
		"SHOPLEDGER_ETSY_QPS":          "50",
		"SHOPLEDGER_ETSY_QPD":          "1000000",
		"SHOPLEDGER_RECONCILE_ENABLED": "false",
	})
}

// createToken runs ledger tokens create for seller with args through
// ledger and returns the token it printed.
func createToken(t testing.TB, ledger func(args ...string) string, seller int64, args ...string) string {
	t.Helper()
	out := ledger(append([]string{"tokens", "create", "--seller", strconv.FormatInt(seller, 10)}, args...)...)
	for l := range strings.Lines(out) {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "slt_") {
			return l
		}
	}
	t.Fatalf("ledger tokens create printed no slt_ token:\n%s", out)
	return ""
}
