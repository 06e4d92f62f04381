package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/shopledger/shopledger/projections/engine"
	"github.com/shopledger/shopledger/projections/internal/projtest"

	"github.com/shopledger/shopledger/projections"
)

// An operator's session holding `BEGIN; SELECT pg_current_xact_id();`
// while orders flow does not hold the projector back: every event
// appended after it is projected while it is still open. (Before appenders
// announced themselves, every consumer waited for it to end.)
func TestAStrangersTransactionDoesNotStallProjections(t *testing.T) {
	db, s, w := projtest.NewLog(t, 3, 2, 3)
	ctx := context.Background()
	projs := projections.Default()
	projtest.StartRunner(t, db.DB, projs, projtest.FastConfig(), nil)
	projtest.WaitCaughtUp(t, db.DB, projtest.Names(projs), time.Minute)

	stranger, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Rollback(ctx) //nolint:errcheck // ended below
	if _, err := stranger.Exec(ctx, `SET LOCAL application_name = 'psql'; SELECT pg_current_xact_id()`); err != nil {
		t.Fatal(err)
	}

	var worst time.Duration
	for range 20 {
		projtest.AppendAll(t, s, w.Generate(25))
		lags, err := engine.GroupLag(ctx, db.DB, projtest.Names(projs), projections.NewSeal())
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range lags {
			worst = max(worst, l.Age)
		}
		time.Sleep(50 * time.Millisecond)
	}
	projtest.WaitCaughtUp(t, db.DB, projtest.Names(projs), time.Minute)
	var open bool
	if err := stranger.QueryRow(ctx, `SELECT pg_current_xact_id_if_assigned() IS NOT NULL`).Scan(&open); err != nil || !open {
		t.Fatalf("the stranger's transaction ended before the projections caught up (%v)", err)
	}
	t.Logf("worst projection lag while the stranger held a transaction id: %s", worst.Round(time.Millisecond))
}

// An event that lands behind the seal's offset (as one appended into an
// unadopted restored log would) is never sealed: the seal's lag counts it
// instead of reading 0.
func TestSealLagCountsEventsBehindItsOffset(t *testing.T) {
	db, _, _ := projtest.NewLog(t, 5, 1, 2)
	ctx := context.Background()
	seal := projections.NewSeal()
	projtest.StartRunner(t, db.DB, []engine.Projection{seal}, projtest.FastConfig(), nil)
	projtest.WaitCaughtUp(t, db.DB, []string{seal.Name()}, time.Minute)

	if _, err := db.DB.ExecContext(ctx, `INSERT INTO events (transaction_id, event_id, stream_id, stream_version, type, schema_version, data, occurred_at)
		VALUES ('3', gen_random_uuid(), 'receipt-999', 1, 'sale.paid', 1, '{"receipt_id": 999}', now())`); err != nil {
		t.Fatal(err)
	}
	lags, err := engine.GroupLag(ctx, db.DB, []string{seal.Name()}, seal)
	if err != nil {
		t.Fatal(err)
	}
	if lags[0].Events != 1 {
		t.Errorf("seal lag with one event behind its offset = %d, want 1", lags[0].Events)
	}
}
