// Package servicetest is what tests of the services share: it starts a
// whole binary (its run function in this process with Start, or reads a
// built executable's output for its URLs with ReadURLs), checks its help,
// collects output written from several goroutines, reads metrics from a
// registry, hands out free loopback addresses and finds external tools.
// Only tests import it.
package servicetest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopledger/shopledger/service"
)

// Run is a binary's run function, which main calls.
type Run func(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error

// startTimeout bounds how long a binary may take to listen, and stopTimeout
// how long it may take to return once its context ended.
const (
	startTimeout = 30 * time.Second
	stopTimeout  = 20 * time.Second
)

// Process is a binary running in this process.
type Process struct {
	// Base is the public listener's URL; Ops the ops listener's, empty
	// when the binary was started without ops.
	Base, Ops string

	t       testing.TB
	cancel  context.CancelFunc
	done    chan error
	stopped bool
}

// Start runs run with env and no arguments, and returns once it printed
// the URL it listens on ("… listening on URL") and, with ops, the URL of
// its ops listener ("… ops endpoints on URL"). The test's cleanup stops it.
func Start(t testing.TB, run Run, env map[string]string, ops bool) *Process {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out, w := io.Pipe()
	p := &Process{t: t, cancel: cancel, done: make(chan error, 1)}
	go func() {
		p.done <- run(ctx, nil, service.MapEnv(env), w)
		w.Close()
	}()
	t.Cleanup(p.Stop)
	p.Base, p.Ops = ReadURLs(t, out, ops)
	return p
}

// Stop ends the binary's context and waits for run to return, failing the
// test if it returns an error or does not return in time. Stopping twice
// does nothing.
func (p *Process) Stop() {
	if p.stopped {
		return
	}
	p.stopped = true
	p.cancel()
	select {
	case err := <-p.done:
		if err != nil {
			p.t.Errorf("run after shutdown: %v", err)
		}
	case <-time.After(stopTimeout):
		p.t.Error("run did not stop after its context ended")
	}
}

// ReadURLs reads a starting binary's output until it printed the URL it
// listens on and, with ops, its ops listener's URL; then it keeps draining
// r so that the binary never blocks on its output.
func ReadURLs(t testing.TB, r io.Reader, ops bool) (base, opsURL string) {
	t.Helper()
	type found struct {
		ops bool
		u   string
	}
	lines := make(chan found)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if _, after, ok := strings.Cut(sc.Text(), " listening on "); ok {
				lines <- found{false, after}
			} else if _, after, ok := strings.Cut(sc.Text(), " ops endpoints on "); ok {
				lines <- found{true, after}
			}
		}
		close(lines)
	}()
	deadline := time.After(startTimeout)
	for base == "" || (ops && opsURL == "") {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("binary exited before listening")
			}
			if l.ops {
				opsURL = l.u
			} else {
				base = l.u
			}
		case <-deadline:
			t.Fatal("binary did not start listening")
		}
	}
	go func() {
		for range lines {
		}
	}()
	return base, opsURL
}

// CLIMain is a binary's cliMain: it runs a command line and returns the
// exit status.
type CLIMain func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int

// CheckHelp runs each command line, all asking for help, and fails the
// test unless each prints usage naming the binary on stdout, prints nothing
// on stderr, exits 0 and reads no setting (so opens no database and serves
// nothing).
func CheckHelp(t *testing.T, binary string, cliMain CLIMain, lines [][]string) {
	t.Helper()
	noEnv := func(name string) string {
		t.Errorf("help read %s", name)
		return ""
	}
	for _, args := range lines {
		var stdout, stderr bytes.Buffer
		code := cliMain(context.Background(), args, noEnv, &stdout, &stderr)
		if code != 0 || stderr.Len() > 0 {
			t.Errorf("%s %s: status %d, stderr %q; want 0 and nothing", binary, strings.Join(args, " "), code, stderr.String())
		}
		if !strings.HasPrefix(stdout.String(), binary+" ") && !strings.HasPrefix(stdout.String(), binary+"\n") &&
			!strings.Contains(stdout.String(), "\n"+binary+" ") {
			t.Errorf("%s %s printed no usage: %q", binary, strings.Join(args, " "), stdout.String())
		}
	}
}

// CheckUsageErrors runs each command line, all wrong, and fails the test
// unless each exits 2 with nothing on stdout and the error followed by the
// usage on stderr.
func CheckUsageErrors(t *testing.T, binary string, cliMain CLIMain, lines [][]string) {
	t.Helper()
	for _, args := range lines {
		var stdout, stderr bytes.Buffer
		code := cliMain(context.Background(), args, func(string) string { return "" }, &stdout, &stderr)
		if code != 2 || stdout.Len() > 0 || (!strings.Contains(stderr.String(), "\n"+binary+" ") && !strings.Contains(stderr.String(), "\n"+binary+"\n")) {
			t.Errorf("%s %s: status %d, stdout %q, stderr %q; want 2, nothing, the error and usage",
				binary, strings.Join(args, " "), code, stdout.String(), stderr.String())
		}
	}
}

// HelpLines are the spellings of a binary's own help.
func HelpLines() [][]string { return [][]string{{"--help"}, {"-h"}, {"-help"}, {"help"}} }

// Output collects what a binary or a logger writes from several
// goroutines, for a test to read while they still write.
type Output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

// String returns everything written so far.
func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// Lines returns the lines written so far, the last one even if it is not
// finished yet.
func (o *Output) Lines() []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(o.String()))
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// After waits up to 10 seconds for a finished line starting with prefix
// and returns the rest of it; "" if none came.
func (o *Output) After(prefix string) string {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		text := o.String()
		for _, line := range strings.Split(text, "\n") {
			if rest, ok := strings.CutPrefix(line, prefix); ok && strings.HasSuffix(text, "\n") {
				return rest
			}
		}
	}
	return ""
}

// Tail returns the last n lines written.
func (o *Output) Tail(n int) string { return Tail(o.String(), n) }

// Tail returns the last n lines of s, after a line that counts those left
// out.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("… %d earlier lines", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// Scrape returns the text exposition a running binary serves at
// base/metrics.
func Scrape(t testing.TB, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s/metrics: %v", base, err)
	}
	return string(b)
}

// Metric sums the counters and gauges named name on g whose labels include
// labels (nil: every series of the metric), or for a histogram the number
// of observations; a series never touched reads 0, as Prometheus would
// have it.
func Metric(t testing.TB, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	v, _ := gather(t, g, name, labels)
	return v
}

// MetricExists reports whether g holds a series named name whose labels
// include labels.
func MetricExists(t testing.TB, g prometheus.Gatherer, name string, labels map[string]string) bool {
	t.Helper()
	_, ok := gather(t, g, name, labels)
	return ok
}

// gather walks g itself because testutil compares or counts series but
// neither filters them by label nor reads a histogram's count.
func gather(t testing.TB, g prometheus.Gatherer, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	sum, found := 0.0, false
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue series
				}
			}
			found = true
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			default:
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum, found
}

// NeedTool returns the path of an external tool. Without it the test is
// skipped with the way to get it, except under CI=true, where the scripts
// install it and its absence is a failure.
func NeedTool(t testing.TB, name, install string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found under CI=true (%s)", name, install)
	}
	t.Skipf("%s not found; %s", name, install)
	return ""
}

// FreeAddr returns a loopback address with a port that was free a moment
// ago, for the one process whose address others must know before it
// starts (ingest: the simulator's webhook target and OAuth redirect).
//
// It never hands out the same port twice in one test binary: a port
// closed here is free to the kernel again, and a test that picks several
// addresses before it starts anything would otherwise be given one twice.
func FreeAddr(t testing.TB) string {
	t.Helper()
	handedOutMu.Lock()
	defer handedOutMu.Unlock()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		if !handedOut[addr] {
			handedOut[addr] = true
			return addr
		}
	}
	t.Fatal("no loopback port that was not handed out before")
	return ""
}

var (
	handedOutMu sync.Mutex
	handedOut   = map[string]bool{}
)

// Listening reads a starting binary's output r to its end and reports on
// the channel, once, whether it printed a "… listening on" line before
// the output ended.
func Listening(r io.Reader) <-chan bool {
	listening := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(r)
		ok := false
		for sc.Scan() {
			if !ok && strings.Contains(sc.Text(), " listening on ") {
				ok = true
				listening <- true
			}
		}
		if !ok {
			listening <- false
		}
	}()
	return listening
}

// CheckStatuses GETs each URL of want and fails the test where the answer
// is not the status wanted for it; it returns each answer's body by URL.
func CheckStatuses(t testing.TB, want map[string]int) map[string]string {
	t.Helper()
	bodies := map[string]string{}
	for url, status := range want {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != status {
			t.Errorf("GET %s = %d, want %d", url, resp.StatusCode, status)
		}
		bodies[url] = string(body)
	}
	return bodies
}
