package engine_test

import (
	"context"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shopledger/shopledger/projections/engine"
	"github.com/shopledger/shopledger/projections/internal/projtest"
	"github.com/shopledger/shopledger/service/servicetest"

	"github.com/shopledger/shopledger/alerts"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/projections"
)

// buildProjector compiles cmd/projector into a temporary directory.
func buildProjector(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "projector")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/shopledger/shopledger/cmd/projector")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build cmd/projector: %v\n%s", err, out)
	}
	return bin
}

// startProjector starts the binary and waits until it listens.
func startProjector(t *testing.T, bin, dbURL string, logs *servicetest.Output) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"SHOPLEDGER_DATABASE_URL="+pgtest.WithUser(dbURL, pgtest.ProjectorRole),
		"SHOPLEDGER_PROJECTOR_ADDR=127.0.0.1:0",
		"SHOPLEDGER_PROJECTOR_POLL_INTERVAL=20ms",
		"SHOPLEDGER_PROJECTOR_BATCH_SIZE=200",
		"SHOPLEDGER_PROJECTOR_RETRY_INTERVAL=200ms",
		"SHOPLEDGER_LOG_LEVEL=warn",
	)
	cmd.Stderr = logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case ok := <-servicetest.Listening(stdout):
		if !ok {
			_ = cmd.Wait()
			t.Fatalf("projector exited before listening:\n%s", logs.Tail(30))
		}
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("projector did not start listening:\n%s", logs.Tail(30))
	}
	return cmd
}

// TestKilledProjectorConverges: the projector binary is
// killed with SIGKILL at random moments (so also between an Apply and its
// commit) while 20,000 events flow in; after the last restart the read
// models equal a rebuild from the log and the seal verifies.
func TestKilledProjectorConverges(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and kills it repeatedly")
	}
	bin := buildProjector(t)
	db, s, w := projtest.NewLog(t, 4, 4, 6)
	ctx := context.Background()
	flow := w.Generate(20000)

	// Two writers append the flow over at least 10 seconds, many streams
	// a transaction, so that transactions interleave and commit out of
	// position order while the projector is killed again and again. Each
	// stream belongs to one writer, which keeps the stream's order; a
	// stream's consecutive facts are appended together.
	const perTx = 40
	var parts [2][]projtest.Batch
	for _, b := range projtest.Coalesce(flow, len(flow)) {
		h := fnv.New32a()
		h.Write([]byte(b.Stream))
		for i := 0; i < len(b.Events); i += 50 {
			parts[h.Sum32()%2] = append(parts[h.Sum32()%2], projtest.Batch{Stream: b.Stream, Events: b.Events[i:min(i+50, len(b.Events))]})
		}
	}
	pause := 10 * time.Second / time.Duration(max(len(parts[0]), len(parts[1]))/perTx+1)
	var wg sync.WaitGroup
	appendsDone := make(chan struct{})
	for _, part := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < len(part); i += perTx {
				start := time.Now()
				if err := appendTx(ctx, db, s, part[i:min(i+perTx, len(part))]); err != nil {
					t.Errorf("append: %v", err)
					return
				}
				time.Sleep(pause - time.Since(start))
			}
		}()
	}
	go func() { wg.Wait(); close(appendsDone) }()

	logs := &servicetest.Output{}
	rng := rand.New(rand.NewPCG(42, 7))
	kills := 0
	for kills < 10 || !isClosed(appendsDone) {
		cmd := startProjector(t, bin, db.URL, logs)
		time.Sleep(time.Duration(100+rng.IntN(700)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		kills++
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	t.Logf("killed the projector %d times while %d events were appended", kills, countBatches(flow))

	cmd := startProjector(t, bin, db.URL, logs)
	// The binary also runs the alerts read model and the alerter, which
	// appends alert events that every other group then reads: wait until
	// all groups are caught up at the same moment.
	groups := append(projtest.Names(projections.Default()), alerts.ReadModelName, alerts.AlerterName)
	projtest.WaitCaughtUpOr(t, db.DB, groups, 120*time.Second, func() string { return logs.Tail(40) })
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("projector after SIGTERM: %v\n%s", err, logs.Tail(30))
	}

	targets, tables := projtest.Rebuildable(t)
	rebuildRep := projtest.RebuildShadow(t, db.Pool, db.DB, targets)
	t.Logf("rebuild: %d events, cursor %+v", rebuildRep.Events, rebuildRep.Cursor)
	projtest.RequireSameTables(t, db.DB, tables, engine.ShadowSuffix)
	rep, err := projections.VerifySeal(ctx, db.DB)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	if err := db.DB.QueryRow(`SELECT count(*) FROM events`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Sealed != n {
		t.Errorf("seal after kills: %+v (first %v), want ok with %d sealed", rep, rep.First, n)
		rows, err := db.DB.Query(`SELECT e.type, count(*), min(e.transaction_id::text), max(e.transaction_id::text), min(position), max(position) FROM events e
			WHERE NOT EXISTS (SELECT 1 FROM event_seal s WHERE s.position = e.position) GROUP BY 1`)
		if err == nil {
			for rows.Next() {
				var typ, a, b string
				var c, p1, p2 int64
				_ = rows.Scan(&typ, &c, &a, &b, &p1, &p2)
				t.Logf("unsealed %s: %d txids %s..%s positions %d..%d", typ, c, a, b, p1, p2)
			}
			rows.Close()
		}
		rows, err = db.DB.Query(`SELECT consumer_group, offset_acked, last_processed_transaction_id::text FROM event_offsets`)
		if err == nil {
			for rows.Next() {
				var g, x string
				var o int64
				_ = rows.Scan(&g, &o, &x)
				t.Logf("offset %s: %d %s", g, o, x)
			}
			rows.Close()
		}
		if rep.First != nil {
			rows, err = db.DB.Query(`SELECT e.position, e.transaction_id::text, e.type, s.seq IS NOT NULL FROM events e LEFT JOIN event_seal s ON s.position = e.position
				WHERE e.position BETWEEN $1 - 15 AND $1 + 15 ORDER BY e.transaction_id, e.position`, rep.First.Position)
			if err == nil {
				for rows.Next() {
					var pos int64
					var x, typ string
					var sealed bool
					_ = rows.Scan(&pos, &x, &typ, &sealed)
					t.Logf("around the first mismatch: position %d txid %s %s sealed=%v", pos, x, typ, sealed)
				}
				rows.Close()
			}
		}
		var sealedTx string
		_ = db.DB.QueryRow(`SELECT min(transaction_id::text)||'..'||max(transaction_id::text) FROM event_seal`).Scan(&sealedTx)
		t.Logf("sealed txids %s", sealedTx)
		t.Logf("logs:\n%s", logs.Tail(60))
	}
}

// appendTx appends batches in one transaction.
func appendTx(ctx context.Context, db *pgtest.Database, s *eventstore.Store, bs []projtest.Batch) error {
	tx, err := db.DB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after commit this is a no-op
	for _, b := range bs {
		if _, err := s.AppendIn(ctx, tx, b.Stream, eventstore.Any, b.Events...); err != nil {
			return err
		}
	}
	return tx.Commit()
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func countBatches(bs []projtest.Batch) int {
	n := 0
	for _, b := range bs {
		n += len(b.Events)
	}
	return n
}
