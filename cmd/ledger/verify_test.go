package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/projections"
	"github.com/shopledger/shopledger/projections/engine"
	"github.com/shopledger/shopledger/service"
)

// sealN appends n events and runs the sealer until all are sealed.
func sealN(t *testing.T, db *pgtest.Database, n int) {
	t.Helper()
	ctx := context.Background()
	s := eventstore.New(db.DB)
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	for i := range n {
		e := events.New(events.ListingStream(int64(i%3)), 1, at.Add(time.Duration(i)*time.Minute),
			events.StockAdjusted{ListingID: int64(i % 3), VariantKey: "k", Delta: 1, Reason: events.ReasonRestock})
		if _, err := s.Append(ctx, e.StreamID, eventstore.Any, e); err != nil {
			t.Fatal(err)
		}
	}
	r, err := engine.NewRunner(db.DB, []engine.Projection{projections.NewSeal()},
		engine.RunnerConfig{PollInterval: 20 * time.Millisecond}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var sealed int
		if err := db.DB.QueryRow(`SELECT count(*) FROM event_seal`).Scan(&sealed); err != nil {
			t.Fatal(err)
		}
		if sealed == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sealed %d of %d events", sealed, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestVerifyPassesThenFindsChangedRow(t *testing.T) {
	db := pgtest.New(t)
	sealN(t, db, 30)
	env := service.MapEnv(map[string]string{"SHOPLEDGER_DATABASE_URL": db.URL})

	var out bytes.Buffer
	if err := run(context.Background(), []string{"verify"}, env, &out); err != nil {
		t.Fatalf("verify on an untouched log: %v\n%s", err, out.String())
	}
	if !strings.HasPrefix(out.String(), "ok: 30 events sealed") {
		t.Errorf("verify output = %q, want it to start with %q", out.String(), "ok: 30 events sealed")
	}

	// A superuser rewrites event 12 behind the append-only trigger.
	for _, stmt := range []string{
		`ALTER TABLE events DISABLE TRIGGER events_no_update_delete`,
		`UPDATE events SET data = jsonb_set(data, '{delta}', '1000') WHERE position = (SELECT position FROM event_seal WHERE seq = 12)`,
		`ALTER TABLE events ENABLE TRIGGER events_no_update_delete`,
	} {
		if _, err := db.DB.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	out.Reset()
	err := run(context.Background(), []string{"verify"}, env, &out)
	if !errors.Is(err, errMismatch) {
		t.Fatalf("verify after tampering: err = %v, want errMismatch", err)
	}
	if !strings.Contains(out.String(), "MISMATCH: hash_mismatch at seq 12") {
		t.Errorf("verify output = %q, want the mismatch at seq 12", out.String())
	}
}

// TestExportIsVerifiableOffline recomputes the chain from the export alone.
func TestExportIsVerifiableOffline(t *testing.T) {
	db := pgtest.New(t)
	sealN(t, db, 25)
	var out bytes.Buffer
	if err := run(context.Background(), []string{"export"}, service.MapEnv(map[string]string{"SHOPLEDGER_DATABASE_URL": db.URL}), &out); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(&out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	prev := ""
	n := 0
	for sc.Scan() {
		var l eventstore.SealedLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatal(err)
		}
		n++
		if l.Seq != int64(n) || l.PrevHash != prev {
			t.Fatalf("line %d: seq %d, prev_hash %s; want seq %d linked to %s", n, l.Seq, l.PrevHash, n, prev)
		}
		p, _ := hex.DecodeString(l.PrevHash)
		sum := sha256.Sum256(append(p, l.Canonical...))
		if hex.EncodeToString(sum[:]) != l.Hash {
			t.Fatalf("seq %d: recomputed %x, exported %s", l.Seq, sum, l.Hash)
		}
		prev = l.Hash
	}
	if n != 25 {
		t.Errorf("exported %d lines, want 25", n)
	}
}
