package main

import (
	"context"
	"database/sql"
	"net/http"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/shopledger/shopledger/migrations"
	"github.com/shopledger/shopledger/pgtest"
)

// Restart PostgreSQL (pg_ctl restart -m fast), freeze it
// (SIGSTOP/SIGCONT for a few seconds) and terminate ingest's sessions
// while the soak runs against the ingest binary. The process is never
// restarted: it must recover by itself, and after resending every non-ok
// id the checker passes.
func TestPostgresRestartAndPauseDuringSoak(t *testing.T) {
	pg := pgtest.NewCluster(t)
	admin, err := sql.Open("pgx", pg.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec(`CREATE DATABASE ingest`); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("pgx", pg.URL("ingest"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// As `ledger migrate` would: ingest itself never migrates.
	if err := migrations.Up(context.Background(), db, nil); err != nil {
		t.Fatal(err)
	}

	p, addr := startIngestBinary(t, pg.URL("ingest"), "warn")
	p.mu.Lock()
	ingestPID := p.cmd.Process.Pid
	p.mu.Unlock()

	cfg := soakConfig{base: func() string { return "http://" + addr }, n: 2000, dupFraction: 0.1, concurrency: 16, secret: testSecret, seed: 37}
	faults := []struct {
		at   float64 // fraction of the first pass done
		name string
		do   func() error
	}{
		{0.15, "restart", func() error { return pg.PGCtl(60*time.Second, "restart", "-m", "fast") }},
		{0.40, "pause", func() error { return pg.Pause(3 * time.Second) }},
		{0.60, "terminate", func() error {
			_, err := admin.Exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'ingest' AND pid <> pg_backend_pid()`)
			return err
		}},
		{0.75, "restart again", func() error { return pg.PGCtl(60*time.Second, "restart", "-m", "fast") }},
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
