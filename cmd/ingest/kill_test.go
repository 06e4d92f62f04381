package main

import (
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/service/servicetest"
)

// process is the ingest binary, restartable on one address.
type process struct {
	t    *testing.T
	bin  string
	env  []string
	addr string
	// opsAddr serves /readyz and /metrics.
	opsAddr string
	mu      sync.Mutex
	cmd     *exec.Cmd
	stderr  *servicetest.Output
}

// start runs the binary and waits until it listens; a port still held by
// the killed process is retried.
func (p *process) start() {
	p.t.Helper()
	for attempt := 0; ; attempt++ {
		cmd := exec.Command(p.bin)
		cmd.Env = p.env
		cmd.Stderr = p.stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			p.t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			p.t.Fatal(err)
		}
		select {
		case ok := <-servicetest.Listening(out):
			if ok {
				p.mu.Lock()
				p.cmd = cmd
				p.mu.Unlock()
				return
			}
		case <-time.After(30 * time.Second):
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if attempt == 20 {
			p.t.Fatalf("ingest did not start again; stderr:\n%s", tail(p.stderr.String(), 2000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kill sends SIGKILL: no shutdown, no draining, no deferred anything.
func (p *process) kill() {
	p.mu.Lock()
	cmd := p.cmd
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ingest")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// SIGKILL the binary at random moments while the
// soak runs (between any INSERT, COMMIT and answer), restart it, resend
// every non-ok id; the checker passes. A kill between COMMIT and the
// answer leaves an indeterminate id whose resend must find the duplicate.
func TestKillDuringSoak(t *testing.T) {
	const kills = 12
	db := pgtest.New(t)
	p, addr := startIngestBinary(t, db.URL, "info")

	cfg := soakConfig{base: func() string { return "http://" + addr }, n: 5000, dupFraction: 0.1, concurrency: 32, secret: testSecret, seed: 36}
	// Kill moments: random points of the first pass's progress, so every
	// kill lands inside it however fast the machine is.
	rng := rand.New(rand.NewPCG(36, 38))
	at := make([]int64, kills)
	for i := range at {
		at[i] = int64(float64(cfg.planned()) * (0.03 + 0.9*rng.Float64()))
	}
	slices.Sort(at)
	h := newHistory()
	passOver := make(chan struct{})
	killedDuringPass := 0
	killerDone := make(chan struct{})
	go func() {
		defer close(killerDone)
		for i, mark := range at {
			for h.done.Load() < mark {
				select {
				case <-passOver:
					return
				case <-time.After(time.Millisecond):
				}
			}
			time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond)
			p.kill()
			killedDuringPass = i + 1
			p.start()
		}
	}()

	start := time.Now()
	soak(context.Background(), cfg, h)
	close(passOver)
	<-killerDone
	ok, failed, unknown := h.counts()
	t.Logf("first pass %v: ok %d, failed %d, unknown %d; %d of %d kills during it", time.Since(start).Round(time.Millisecond), ok, failed, unknown, killedDuringPass, kills)
	if killedDuringPass < 10 {
		t.Errorf("only %d kills landed during the first pass, want at least 10", killedDuringPass)
	}
	if unknown == 0 {
		t.Error("no attempt was indeterminate: the kills did not hit the soak")
	}
	checkBeforeResend(t, h, stored(t, db.DB))
	resend(context.Background(), t, cfg, h, 2*time.Minute)
	got := stored(t, db.DB)
	checkAfterResend(t, h, got)
	if len(got) != cfg.n {
		t.Errorf("%d webhook ids stored, want %d", len(got), cfg.n)
	}
	// The signing secret never reached the
	// logs.
	logs := p.stderr.String()
	if strings.Contains(logs, testSecret) || strings.Contains(logs, strings.TrimPrefix(testSecret, "whsec_")) {
		t.Error("the webhook signing secret appears in ingest's logs")
	}
	if !strings.Contains(logs, `"webhook_secrets":["(set, `) {
		t.Errorf("start-up log does not show the masked secret:\n%s", tail(logs, 1000))
	}
}

// startIngestBinary builds cmd/ingest and starts it on a free port against
// databaseURL, with the fetcher off and none of the caller's SHOPLEDGER_
// settings; the test's end kills it.
func startIngestBinary(t *testing.T, databaseURL, logLevel string) (*process, string) {
	t.Helper()
	bin := buildBinary(t)
	addr, opsAddr := servicetest.FreeAddr(t), servicetest.FreeAddr(t)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SHOPLEDGER_") {
			env = append(env, kv)
		}
	}
	env = append(env,
		"SHOPLEDGER_DATABASE_URL="+pgtest.WithUser(databaseURL, pgtest.IngestRole),
		"SHOPLEDGER_INGEST_ADDR="+addr,
		"SHOPLEDGER_INGEST_OPS_ADDR="+opsAddr,
		"SHOPLEDGER_WEBHOOK_SECRETS="+testSecret,
		"SHOPLEDGER_FETCHER_ENABLED=false",
		"SHOPLEDGER_LOG_LEVEL="+logLevel,
	)
	p := &process{t: t, bin: bin, env: env, addr: addr, opsAddr: opsAddr, stderr: &servicetest.Output{}}
	p.start()
	t.Cleanup(p.kill)
	return p, addr
}
