package engine_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shopledger/shopledger/projections/engine"
	"github.com/shopledger/shopledger/projections/internal/projtest"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopledger/shopledger/backup"
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/projections"
	"github.com/shopledger/shopledger/service"
)

func openCluster(t *testing.T, url string) (*sql.DB, *pgxpool.Pool) {
	t.Helper()
	db, pool, err := service.OpenDB(context.Background(), url, 20, projtest.Logger(t), service.Migrate())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(); pool.Close() })
	return db, pool
}

// A log of more than 50,000 events with its read models and seal, on a
// cluster whose transaction counter ran far ahead, is backed up and
// restored into a brand-new cluster. There, every restored event is
// visible at once, the projector continues from the restored offsets, and
// new events order after the restored ones: the seal covers every event
// once in log order, `verify` passes, the read models equal the source's
// after the same new events, and a rebuild equals live.
func TestRestoreIntoANewClusterKeepsTheLogsOrder(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two clusters and a 50,000-event log")
	}
	ctx := context.Background()
	began := time.Now()
	step := func(what string) {
		t.Logf("%s: %s", what, time.Since(began).Round(time.Millisecond))
		began = time.Now()
	}
	src := pgtest.NewCluster(t)
	src.BurnXIDs(30_000)
	step("source cluster, 30,000 transactions burnt")
	srcDB, srcPool := openCluster(t, src.CreateDatabase("ledger"))

	w := projtest.NewWorld(7, 4)
	var initial []projtest.Batch
	initial = append(initial, w.Start(6)...)
	initial = append(initial, w.Generate(50_500)...)
	appendInTransactions(t, srcDB, projtest.Coalesce(initial, 64), 500)
	step("50,000 events appended")
	projs := projections.Default()
	cfg := projtest.FastConfig()
	cfg.BatchSize = 2000
	_, stopSrc := projtest.StartRunner(t, srcDB, projs, cfg, nil)
	projtest.WaitCaughtUp(t, srcDB, projtest.Names(projs), 5*time.Minute)
	stopSrc()
	step("projected and sealed")
	var logged int64
	if err := srcDB.QueryRow(`SELECT count(*) FROM events`).Scan(&logged); err != nil {
		t.Fatal(err)
	}
	if logged < 50_000 {
		t.Fatalf("source log holds %d events, want at least 50,000", logged)
	}

	var buf bytes.Buffer
	m, err := backup.Write(ctx, srcPool, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if m.Rows["events"] != logged || m.SealHead == "" {
		t.Fatalf("backup manifest: %d events, seal head %q; want %d and a head", m.Rows["events"], m.SealHead, logged)
	}

	// A truncated backup is refused and leaves the target empty.
	dst := pgtest.NewCluster(t)
	step("backup written, target cluster created")
	if src.NextXID() < dst.NextXID()+25_000 {
		t.Fatalf("source counter %d is not far ahead of the new cluster's %d", src.NextXID(), dst.NextXID())
	}
	dstDB, dstPool := openCluster(t, dst.CreateDatabase("ledger"))
	if _, err := backup.Restore(ctx, dstPool, bytes.NewReader(buf.Bytes()[:buf.Len()/2])); err == nil {
		t.Fatal("restoring half a backup succeeded")
	}
	rep, err := backup.Restore(ctx, dstPool, bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	step("restored")
	if rep.ShiftRaisedBy <= 0 {
		t.Errorf("restore raised the log clock by %d, want it raised past the source's ids", rep.ShiftRaisedBy)
	}
	visible, err := eventstore.New(dstDB).ReadAll(ctx, eventstore.Cursor{}, int(logged)+10)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(visible)) != logged {
		t.Fatalf("after restore %d of %d events are visible to consumers", len(visible), logged)
	}
	seal, err := projections.VerifySeal(ctx, dstDB)
	if err != nil || !seal.OK() || seal.Head != m.SealHead || seal.Pending != 0 {
		t.Fatalf("verify after restore = %+v, %v; want ok with head %s", seal, err, m.SealHead)
	}

	// The auditor's log filtered by a type reads the same on both sides:
	// the restored seal rows keep their types, and where typed rows start
	// is derived again from them.
	var shopIDs []int64
	shopRows, err := srcDB.QueryContext(ctx, `SELECT DISTINCT shop_id FROM event_seal WHERE shop_id IS NOT NULL`)
	if err != nil {
		t.Fatal(err)
	}
	for shopRows.Next() {
		var id int64
		if err := shopRows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		shopIDs = append(shopIDs, id)
	}
	if err := shopRows.Close(); err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{events.TypeStockSold, events.TypeShopSettingsChanged} {
		f := eventstore.SealedFilter{Shops: shopIDs, Type: typ, Limit: 200}
		a, errA := eventstore.New(srcDB).ListSealed(ctx, f)
		b, errB := eventstore.New(dstDB).ListSealed(ctx, f)
		if errA != nil || errB != nil {
			t.Fatalf("list %s: source %v, restored %v", typ, errA, errB)
		}
		seqs := func(evs []eventstore.LoggedEvent) []int64 {
			var out []int64
			for _, e := range evs {
				out = append(out, e.Seq)
			}
			return out
		}
		if len(a) == 0 || !slices.Equal(seqs(a), seqs(b)) {
			t.Errorf("the log by type %s: source %d events, restored %d, not the same seqs", typ, len(a), len(b))
		}
	}

	// The same new events on both sides, through the running projector.
	more := w.Generate(3_000)
	appendInTransactions(t, srcDB, more, 50)
	appendInTransactions(t, dstDB, more, 50)
	for _, side := range []*sql.DB{srcDB, dstDB} {
		_, stop := projtest.StartRunner(t, side, projs, cfg, nil)
		projtest.WaitCaughtUp(t, side, projtest.Names(projs), 2*time.Minute)
		stop()
	}
	step("new events projected on both sides")
	seal, err = projections.VerifySeal(ctx, dstDB)
	if err != nil || !seal.OK() || seal.Pending != 0 || seal.Sealed != logged+int64(countEvents(more)) {
		t.Fatalf("verify after new events = %+v, %v; want every one of %d events sealed", seal, err, logged+int64(countEvents(more)))
	}
	var outOfOrder int64
	if err := dstDB.QueryRow(`SELECT count(*) FROM (
			SELECT s.seq, row_number() OVER (ORDER BY e.transaction_id, e.position) AS n
			FROM event_seal s JOIN events e ON e.position = s.position) x WHERE seq <> n`).Scan(&outOfOrder); err != nil {
		t.Fatal(err)
	}
	if outOfOrder != 0 {
		t.Errorf("%d events sealed out of log order", outOfOrder)
	}

	_, tables := projtest.Rebuildable(t)
	for _, table := range tables {
		if a, b := digestWithout(t, srcDB, table), digestWithout(t, dstDB, table); a != b {
			t.Errorf("%s differs between the source and the restored cluster after the same new events", table)
		}
	}
	targets, _ := projtest.Rebuildable(t)
	projtest.RebuildShadow(t, dstPool, dstDB, targets)
	projtest.RequireSameTables(t, dstDB, tables, engine.ShadowSuffix)
	step("compared and rebuilt")

	// The plain PostgreSQL path, pg_dump and pg_restore into the new
	// cluster: refused by every binary until `ledger migrate` adopts it.
	dump := filepath.Join(src.Dir(), "ledger.dump")
	if out, err := src.Tool(2*time.Minute, "pg_dump", "--format=custom", "--file="+dump, src.URL("ledger")); err != nil {
		t.Fatalf("pg_dump: %v\n%s", err, out)
	}
	dumpedURL := dst.CreateDatabase("dumped")
	if out, err := dst.Tool(2*time.Minute, "pg_restore", "--no-owner", "--no-privileges", "--exit-on-error", "--dbname="+dumpedURL, dump); err != nil {
		t.Fatalf("pg_restore: %v\n%s", err, out)
	}
	if _, _, err := service.OpenDB(ctx, dumpedURL, 2, nil); !errors.Is(err, eventstore.ErrLogOutOfOrder) {
		t.Fatalf("a binary opening the pg_restored database: %v, want ErrLogOutOfOrder", err)
	}
	adoptedDB, adoptedPool, err := service.OpenDB(ctx, dumpedURL, 4, nil, service.Migrate(), service.AdoptMovedLog())
	if err != nil {
		t.Fatalf("ledger migrate's open of the pg_restored database: %v", err)
	}
	defer adoptedPool.Close()
	defer adoptedDB.Close()
	var restored int64
	if err := adoptedDB.QueryRow(`SELECT count(*) FROM events WHERE transaction_id < log_horizon()`).Scan(&restored); err != nil {
		t.Fatal(err)
	}
	if want := logged + int64(countEvents(more)); restored != want {
		t.Errorf("after pg_restore and adoption %d of %d events are visible", restored, want)
	}
	if seal, err := projections.VerifySeal(ctx, adoptedDB); err != nil || !seal.OK() {
		t.Errorf("verify after pg_restore = %+v, %v", seal, err)
	}
}

// appendInTransactions appends batches, per transactions of n batches:
// one commit (and one WAL flush) per n instead of per batch.
func appendInTransactions(t *testing.T, db *sql.DB, batches []projtest.Batch, n int) {
	t.Helper()
	ctx := context.Background()
	s := eventstore.New(db)
	for len(batches) > 0 {
		chunk := batches[:min(n, len(batches))]
		batches = batches[len(chunk):]
		tx, err := eventstore.BeginAppend(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range chunk {
			if _, err := s.AppendIn(ctx, tx, b.Stream, eventstore.Any, b.Events...); err != nil {
				tx.Rollback() //nolint:errcheck // failing anyway
				t.Fatalf("append %s: %v", b.Stream, err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
}

func countEvents(bs []projtest.Batch) int {
	n := 0
	for _, b := range bs {
		n += len(b.Events)
	}
	return n
}

// digestWithout hashes a table's rows without the log positions and
// recording times they cite: two clusters number and stamp the same new
// events themselves.
func digestWithout(t *testing.T, db *sql.DB, table string) string {
	t.Helper()
	var d sql.NullString
	q := `SELECT md5(string_agg(x, E'\n' ORDER BY x)) FROM (SELECT (to_jsonb(r) - 'position' - 'recorded_at')::text AS x FROM ` + table + ` r) s`
	if err := db.QueryRow(q).Scan(&d); err != nil {
		t.Fatal(strings.TrimSpace(err.Error()))
	}
	return d.String
}
