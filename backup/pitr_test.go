package backup_test

import (
	"context"
	"testing"
	"time"

	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/projections"
)

// Point-in-time recovery, as docs/operations.md describes it: a cluster
// archiving its WAL, a base backup, events sealed before and after a
// moment; the base backup replayed up to that moment on another cluster,
// then `ledger migrate` (which checks, and adopts if needed, the log's
// order) and verify. The recovered log holds exactly what was committed
// before the moment, its seal verifies, and new appends work.
func TestPointInTimeRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two clusters")
	}
	ctx := context.Background()
	src, db := pgtest.NewArchivingLedger(t)
	base := src.BaseBackup()

	pgtest.AppendAndSeal(t, db, 1, 10)
	var target string
	if err := db.QueryRowContext(ctx, `SELECT clock_timestamp()::text`).Scan(&target); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	pgtest.AppendAndSeal(t, db, 100, 10)
	// Close the WAL segment so that it is archived, and wait for it.
	src.ArchiveWAL()

	rdb, n := pgtest.RecoverLedger(t, base, src.ArchiveDir(), target)
	if n != 10 {
		t.Errorf("the log recovered to %s holds %d events, want the 10 committed before it", target, n)
	}
	rep, err := projections.VerifySeal(ctx, rdb)
	if err != nil || !rep.OK() || rep.Sealed != 10 {
		t.Errorf("verify after recovery = %+v, %v; want 10 sealed events and an intact chain", rep, err)
	}
	if _, err := eventstore.New(rdb).Append(ctx, events.ListingStream(500), eventstore.NoStream, events.New(events.ListingStream(500), 7, time.Now(), events.StockAdjusted{
		ListingID: 500, VariantKey: "sku:A", Delta: 1, Reason: events.ReasonRestock,
	})); err != nil {
		t.Errorf("append after recovery: %v", err)
	}
	t.Logf("recovered to %s: %d events, seal head %s", target, n, rep.Head)
}
