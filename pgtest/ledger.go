package pgtest

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/service"
)

// AppendAndSeal appends a restock to each of n listings numbered from
// from, each its own stream, then seals every event not sealed yet in the
// projector's order: log for a recovery test to find again.
func AppendAndSeal(t testing.TB, db *sql.DB, from, n int64) {
	t.Helper()
	ctx := context.Background()
	s := eventstore.New(db)
	for i := from; i < from+n; i++ {
		ev := events.New(events.ListingStream(i), 7, time.Now(), events.StockAdjusted{
			ListingID: i, VariantKey: "sku:A", Delta: 1, Reason: events.ReasonRestock,
		})
		if _, err := s.Append(ctx, events.ListingStream(i), eventstore.NoStream, ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := eventstore.SealAllUnsealed(ctx, db); err != nil {
		t.Fatal(err)
	}
}

// ArchiveWAL closes the cluster's current WAL segment and waits up to a
// minute until the archive holds it.
func (c *Cluster) ArchiveWAL() {
	c.t.Helper()
	c.asSuperuser(func(ctx context.Context, conn *pgx.Conn) error {
		var segment string
		if err := conn.QueryRow(ctx, `SELECT pg_walfile_name(pg_switch_wal())`).Scan(&segment); err != nil {
			return err
		}
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
			var archived string
			if err := conn.QueryRow(ctx, `SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver`).Scan(&archived); err != nil {
				return err
			}
			if archived >= segment {
				return nil
			}
			if time.Now().After(deadline) {
				c.t.Fatalf("segment %s not archived within a minute (last %q)", segment, archived)
			}
		}
	})
}

// RecoverLedger recovers base with the WAL in archive up to target on a
// new cluster, opens its ledger database as `ledger migrate` does
// (adopting the log's new order), and returns it with the number of events
// the recovered log holds. The test's cleanup closes it.
func RecoverLedger(t testing.TB, base, archive, target string) (*sql.DB, int64) {
	t.Helper()
	ctx := context.Background()
	dst := RecoverCluster(t, base, archive, target)
	db, pool, err := service.OpenDB(ctx, dst.URL("ledger"), 4, nil, service.Migrate(), service.AdoptMovedLog())
	if err != nil {
		t.Fatalf("ledger migrate on the recovered cluster: %v", err)
	}
	t.Cleanup(func() {
		db.Close()
		pool.Close()
	})
	n, err := eventstore.CountAll(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	return db, n
}

// NewArchivingLedger starts a cluster that archives its WAL (see
// NewArchivingCluster) with a migrated database named ledger on it, which
// the test's cleanup closes.
func NewArchivingLedger(t testing.TB) (*Cluster, *sql.DB) {
	t.Helper()
	c := NewArchivingCluster(t)
	db, pool, err := service.OpenDB(context.Background(), c.CreateDatabase("ledger"), 4, nil, service.Migrate())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db.Close()
		pool.Close()
	})
	return c, db
}
