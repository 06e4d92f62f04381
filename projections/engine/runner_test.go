package engine_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopledger/shopledger/projections/engine"
	"github.com/shopledger/shopledger/projections/internal/projtest"
	"github.com/shopledger/shopledger/service/servicetest"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/projections"
)

// recorder is a projection that records every event it applies, counting
// repeats, so tests can see exactly-once (or not) from the database.
type recorder struct {
	name string
	// failAt makes Apply fail at this position (after writing a row, to
	// prove the savepoint takes it back) while failing is set.
	failAt  int64
	failing atomic.Bool
}

func (r *recorder) Name() string        { return r.name }
func (r *recorder) Handles(string) bool { return true }
func (r *recorder) tableSQL() string {
	return `CREATE TABLE IF NOT EXISTS applied (grp text, position bigint, n int NOT NULL DEFAULT 1, ord bigserial, PRIMARY KEY (grp, position))`
}
func (r *recorder) probe(p int64) string { return fmt.Sprintf("%s-probe-%d", r.name, p) }

func (r *recorder) Apply(ctx context.Context, tx *sql.Tx, rec events.Record) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO applied (grp, position) VALUES ($1, $2)
		ON CONFLICT (grp, position) DO UPDATE SET n = applied.n + 1`, r.name, rec.Position); err != nil {
		return err
	}
	if rec.Position == r.failAt && r.failing.Load() {
		if _, err := tx.ExecContext(ctx, `INSERT INTO applied (grp, position) VALUES ($1, $2)`, r.probe(rec.Position), rec.Position); err != nil {
			return err
		}
		return errors.New("this event cannot be applied yet")
	}
	return nil
}

func newRecorderDB(t *testing.T) *pgtest.Database {
	t.Helper()
	db := pgtest.New(t)
	if _, err := db.DB.Exec((&recorder{}).tableSQL()); err != nil {
		t.Fatal(err)
	}
	return db
}

// applied returns how often each position was applied by group, and the
// positions in apply order.
func applied(t *testing.T, db *sql.DB, group string) (map[int64]int, []int64) {
	t.Helper()
	rows, err := db.Query(`SELECT position, n FROM applied WHERE grp = $1 ORDER BY ord`, group)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	counts := map[int64]int{}
	var order []int64
	for rows.Next() {
		var p int64
		var n int
		if err := rows.Scan(&p, &n); err != nil {
			t.Fatal(err)
		}
		counts[p] = n
		order = append(order, p)
	}
	return counts, order
}

func adjust(listing int64, delta int64) events.Event {
	return events.New(events.ListingStream(listing), 1, projtest.T0, events.StockAdjusted{ListingID: listing, VariantKey: "k", Delta: delta, Reason: events.ReasonRestock})
}

// appendRoundRobin appends n one-unit restocks to listings 0..listings-1
// in turn, one transaction each, and returns their positions.
func appendRoundRobin(t *testing.T, db *pgtest.Database, n, listings int) []int64 {
	t.Helper()
	s := eventstore.New(db.DB)
	positions := make([]int64, 0, n)
	for i := range n {
		l := int64(i % listings)
		res, err := s.Append(context.Background(), events.ListingStream(l), eventstore.Any, adjust(l, 1))
		if err != nil {
			t.Fatal(err)
		}
		positions = append(positions, res.Events[0].Position)
	}
	return positions
}

// TestProjectorWaitsForOlderOpenTransaction is the gap-safe read through the
// projector: with transaction A open after inserting position N and B
// committed at N+1, no projection passes N; once A commits, N is applied,
// then N+1.
func TestProjectorWaitsForOlderOpenTransaction(t *testing.T) {
	db := newRecorderDB(t)
	s := eventstore.New(db.DB)
	ctx := context.Background()

	txA, err := db.DB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer txA.Rollback() //nolint:errcheck
	resA, err := s.AppendIn(ctx, txA, events.ListingStream(1), eventstore.Any, adjust(1, 5))
	if err != nil {
		t.Fatal(err)
	}
	resB, err := s.Append(ctx, events.ListingStream(2), eventstore.Any, adjust(2, 7))
	if err != nil {
		t.Fatal(err)
	}
	posA, posB := resA.Events[0].Position, resB.Events[0].Position
	if posB <= posA {
		t.Fatalf("positions A=%d B=%d: B should come after A", posA, posB)
	}

	rec := &recorder{name: "recorder"}
	projs := []engine.Projection{rec, projections.NewStockMovements()}
	projtest.StartRunner(t, db.DB, projs, projtest.FastConfig(), nil)

	// Many poll intervals: nothing may be applied past the open A.
	time.Sleep(time.Second)
	if _, order := applied(t, db.DB, rec.name); len(order) != 0 {
		t.Fatalf("recorder applied %v while A (position %d) was open", order, posA)
	}
	var moved int
	if err := db.DB.QueryRow(`SELECT count(*) FROM stock_movements`).Scan(&moved); err != nil {
		t.Fatal(err)
	}
	if moved != 0 {
		t.Fatalf("stock_movements has %d rows while A was open", moved)
	}
	var passed int
	if err := db.DB.QueryRow(`SELECT count(*) FROM event_offsets WHERE offset_acked >= $1`, posA).Scan(&passed); err != nil {
		t.Fatal(err)
	}
	if passed != 0 {
		t.Fatalf("%d consumer groups committed an offset at or past A's position %d", passed, posA)
	}

	if err := txA.Commit(); err != nil {
		t.Fatal(err)
	}
	projtest.WaitCaughtUp(t, db.DB, projtest.Names(projs), 10*time.Second)
	counts, order := applied(t, db.DB, rec.name)
	if diff := cmp.Diff([]int64{posA, posB}, order); diff != "" {
		t.Errorf("apply order (-want +got):\n%s", diff)
	}
	for p, n := range counts {
		if n != 1 {
			t.Errorf("position %d applied %d times", p, n)
		}
	}
	if err := db.DB.QueryRow(`SELECT count(*) FROM stock_movements`).Scan(&moved); err != nil {
		t.Fatal(err)
	}
	if moved != 2 {
		t.Errorf("stock_movements has %d rows after A committed, want 2", moved)
	}
}

// checkStopped fails the test unless runner's readiness names the
// projection name stopped at position, with why in the reason, and does
// not name other, and unless name's stopped gauge reads 1.
func checkStopped(t *testing.T, runner *engine.Runner, reg prometheus.Gatherer, name string, position int64, why, other string) {
	t.Helper()
	err := runner.Ready(context.Background())
	if err == nil || !strings.Contains(err.Error(), name) || strings.Contains(err.Error(), other) ||
		!strings.Contains(err.Error(), fmt.Sprint(position)) || !strings.Contains(err.Error(), why) {
		t.Errorf("Ready() = %v, want it to name %s stopped at %d (%q) and not %s", err, name, position, why, other)
	}
	if v := servicetest.Metric(t, reg, "shopledger_projection_stopped", ofProjection(name)); v != 1 {
		t.Errorf("stopped gauge of %s = %v, want 1", name, v)
	}
}

// ofProjection labels a series with the projection it belongs to.
func ofProjection(projection string) map[string]string {
	return map[string]string{"projection": projection}
}

func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFailingApplyStopsOnlyItsProjection: an Apply that fails after
// writing leaves nothing behind, stops its projection at that event (logs,
// metrics, readiness) while the others carry on, and resumes at that same
// event once it can be applied: nothing is skipped.
func TestFailingApplyStopsOnlyItsProjection(t *testing.T) {
	db := newRecorderDB(t)
	ctx := context.Background()
	positions := appendRoundRobin(t, db, 40, 4)
	failAt := positions[17]
	flaky := &recorder{name: "flaky", failAt: failAt}
	flaky.failing.Store(true)
	steady := &recorder{name: "steady"}
	reg := prometheus.NewRegistry()
	cfg := projtest.FastConfig()
	cfg.LagInterval = 50 * time.Millisecond
	runner, _ := projtest.StartRunner(t, db.DB, []engine.Projection{flaky, steady, projections.NewStockMovements()}, cfg, reg)

	projtest.WaitCaughtUp(t, db.DB, []string{"steady", "stock_movements"}, 20*time.Second)
	waitFor(t, "flaky to stop", 10*time.Second, func() bool { return runner.Ready(ctx) != nil })
	// The stopped projection closes its consumer, which commits the events
	// before the failing one; that happens just after it reports stopped.
	waitFor(t, "flaky to commit the events before the failing one", 20*time.Second, func() bool {
		counts, _ := applied(t, db.DB, "flaky")
		return counts[positions[16]] > 0
	})

	counts, _ := applied(t, db.DB, "flaky")
	for i, p := range positions {
		want := 0
		if i < 17 {
			want = 1
		}
		if counts[p] != want {
			t.Errorf("flaky applied position %d (event %d) %d times while stopped at %d, want %d", p, i, counts[p], failAt, want)
		}
	}
	if probes, _ := applied(t, db.DB, flaky.probe(failAt)); len(probes) != 0 {
		t.Errorf("the failing Apply left its partial row behind: %v", probes)
	}
	checkStopped(t, runner, reg, "flaky", failAt, "", "steady")
	if v := servicetest.Metric(t, reg, "shopledger_projection_stopped", ofProjection("steady")); v != 0 {
		t.Errorf("stopped gauge of steady = %v, want 0", v)
	}
	waitFor(t, "lag gauges", 5*time.Second, func() bool {
		return servicetest.MetricExists(t, reg, "shopledger_projection_lag_events", ofProjection("steady")) &&
			servicetest.Metric(t, reg, "shopledger_projection_lag_events", ofProjection("steady")) == 0 &&
			servicetest.Metric(t, reg, "shopledger_projection_lag_events", ofProjection("flaky")) == float64(len(positions)-17)
	})
	if v := servicetest.Metric(t, reg, "shopledger_projection_lag_seconds", ofProjection("flaky")); v <= 0 {
		t.Errorf("lag seconds of flaky = %v, want > 0 while stopped", v)
	}
	if v := servicetest.Metric(t, reg, "shopledger_projection_events_applied_total", ofProjection("steady")); v != float64(len(positions)) {
		t.Errorf("applied total of steady = %v, want %d", v, len(positions))
	}

	// The cause goes away: the same event applies on the next retry and
	// everything after it follows, each once.
	flaky.failing.Store(false)
	projtest.WaitCaughtUp(t, db.DB, []string{"flaky"}, 20*time.Second)
	counts, _ = applied(t, db.DB, "flaky")
	for _, p := range positions {
		if counts[p] != 1 {
			t.Errorf("after recovery position %d applied %d times, want 1", p, counts[p])
		}
	}
	waitFor(t, "flaky to be ready", 5*time.Second, func() bool { return runner.Ready(ctx) == nil })
	if v := servicetest.Metric(t, reg, "shopledger_projection_stopped", ofProjection("flaky")); v != 0 {
		t.Errorf("stopped gauge of flaky after recovery = %v, want 0", v)
	}
}

// TestFailingWriteInBatchStopsOnlyItsProjection covers a planned
// projection, whose events are written together at the end of each
// consumer batch: a write that fails in the middle of a batch must commit
// the events before it, leave nothing of the failing event, stop only that
// projection at that event, and resume there once the cause is gone.
func TestFailingWriteInBatchStopsOnlyItsProjection(t *testing.T) {
	db := newRecorderDB(t)
	ctx := context.Background()
	positions := appendRoundRobin(t, db, 40, 4)
	failAt := positions[17]
	// The read model refuses the movement of one event, as a constraint
	// added by a careless migration would.
	if _, err := db.DB.Exec(fmt.Sprintf(`CREATE FUNCTION refuse_movement() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.position = %d THEN RAISE EXCEPTION 'movement at %% refused', NEW.position; END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER refuse_movement BEFORE INSERT ON stock_movements FOR EACH ROW EXECUTE FUNCTION refuse_movement()`, failAt)); err != nil {
		t.Fatal(err)
	}
	steady := &recorder{name: "steady"}
	reg := prometheus.NewRegistry()
	cfg := projtest.FastConfig()
	cfg.BatchSize = 500 // every event in one batch
	runner, _ := projtest.StartRunner(t, db.DB, []engine.Projection{steady, projections.NewStockMovements()}, cfg, reg)

	projtest.WaitCaughtUp(t, db.DB, []string{"steady"}, 20*time.Second)
	waitFor(t, "stock_movements to stop", 10*time.Second, func() bool { return runner.Ready(ctx) != nil })
	movements := func() map[int64]int64 {
		rows, err := db.DB.Query(`SELECT position, balance FROM stock_movements`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[int64]int64{}
		for rows.Next() {
			var p, b int64
			if err := rows.Scan(&p, &b); err != nil {
				t.Fatal(err)
			}
			out[p] = b
		}
		return out
	}
	waitFor(t, "the events before the failing one to commit", 20*time.Second, func() bool {
		_, ok := movements()[positions[16]]
		return ok
	})
	got := movements()
	for i, p := range positions {
		if _, ok := got[p]; ok != (i < 17) {
			t.Errorf("movement of event %d (position %d) stored = %v while stopped at %d", i, p, ok, failAt)
		}
	}
	checkStopped(t, runner, reg, "stock_movements", failAt, "refused", "steady")
	if v := servicetest.Metric(t, reg, "shopledger_projection_events_applied_total", ofProjection("stock_movements")); v != 17 {
		t.Errorf("applied total of stock_movements = %v, want 17", v)
	}

	if _, err := db.DB.Exec(`DROP TRIGGER refuse_movement ON stock_movements`); err != nil {
		t.Fatal(err)
	}
	projtest.WaitCaughtUp(t, db.DB, []string{"stock_movements"}, 20*time.Second)
	got = movements()
	for i, p := range positions {
		// Four listings take turns, one unit each: event i is the
		// (i/4+1)th movement of its listing.
		if b, ok := got[p]; !ok || b != int64(i/4+1) {
			t.Errorf("after recovery movement of event %d (position %d): stored %v, balance %d, want balance %d", i, p, ok, b, i/4+1)
		}
	}
	if len(got) != len(positions) {
		t.Errorf("%d movements stored, want %d", len(got), len(positions))
	}
	waitFor(t, "stock_movements to be ready", 5*time.Second, func() bool { return runner.Ready(ctx) == nil })
	if v := servicetest.Metric(t, reg, "shopledger_projection_events_applied_total", ofProjection("stock_movements")); v != float64(len(positions)) {
		t.Errorf("applied total of stock_movements after recovery = %v, want %d", v, len(positions))
	}
}

// TestTwoProjectorsApplyEachEventOnce: two runners
// (each with its own connection pool, like two processes) consume the same
// groups while events are appended; every event is applied exactly once.
func TestTwoProjectorsApplyEachEventOnce(t *testing.T) {
	db := newRecorderDB(t)
	s := eventstore.New(db.DB)
	ctx := context.Background()
	other := pgtest.Open(t, db.URL, 10)

	cfg := projtest.FastConfig()
	cfg.BatchSize = 50
	projtest.StartRunner(t, db.DB, []engine.Projection{&recorder{name: "counted"}, projections.NewStockMovements()}, cfg, nil)
	projtest.StartRunner(t, other, []engine.Projection{&recorder{name: "counted"}, projections.NewStockMovements()}, cfg, nil)

	const writers, perWriter = 4, 1000
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWriter; i += 10 {
				evs := make([]events.Event, 10)
				for j := range evs {
					evs[j] = adjust(int64(w), 1)
				}
				if _, err := s.Append(ctx, events.ListingStream(int64(w)), eventstore.Any, evs...); err != nil {
					t.Errorf("append: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	projtest.WaitCaughtUp(t, db.DB, []string{"counted", "stock_movements"}, 90*time.Second)
	counts, _ := applied(t, db.DB, "counted")
	if len(counts) != writers*perWriter {
		t.Errorf("%d distinct events applied, want %d", len(counts), writers*perWriter)
	}
	for p, n := range counts {
		if n != 1 {
			t.Errorf("position %d applied %d times", p, n)
		}
	}
	// The stock history agrees: one movement per event, balances count up
	// by one without a gap or a repeat.
	var rows, badBalance int
	if err := db.DB.QueryRow(`SELECT count(*), count(*) FILTER (WHERE balance <> seq) FROM stock_movements`).Scan(&rows, &badBalance); err != nil {
		t.Fatal(err)
	}
	if rows != writers*perWriter || badBalance != 0 {
		t.Errorf("stock_movements: %d rows (want %d), %d with balance <> seq", rows, writers*perWriter, badBalance)
	}
}

// TestCommitOrderAcrossDigitBoundary: transaction ids that gain a digit
// (999 → 1000) still come in numeric order, to the projector and to a
// rebuild. Sorting them as text would deliver 1000 first and skip 999.
func TestCommitOrderAcrossDigitBoundary(t *testing.T) {
	db := newRecorderDB(t)
	// INSERT is what the log allows; old transaction ids are set
	// explicitly because a test cannot wait for the server's counter.
	var positions []int64
	for i, txid := range []string{"998", "1000", "999", "10000", "1001"} {
		var pos int64
		err := db.DB.QueryRow(`INSERT INTO events (transaction_id, event_id, stream_id, stream_version, type, schema_version, data, shop_id, occurred_at)
			VALUES ($1::text::xid8, gen_random_uuid(), 'listing-1', $2, 'stock.adjusted', 1, '{"listing_id": 1, "variant_key": "k", "delta": 1, "reason": "restock"}', 1, now())
			RETURNING position`, txid, i+1).Scan(&pos)
		if err != nil {
			t.Fatal(err)
		}
		positions = append(positions, pos)
	}
	want := []int64{positions[0], positions[2], positions[1], positions[4], positions[3]} // 998, 999, 1000, 1001, 10000

	rec := &recorder{name: "recorder"}
	projs := []engine.Projection{rec, projections.NewStockMovements()}
	_, stop := projtest.StartRunner(t, db.DB, projs, projtest.FastConfig(), nil)
	projtest.WaitCaughtUp(t, db.DB, projtest.Names(projs), 10*time.Second)
	stop()
	_, order := applied(t, db.DB, rec.name)
	if diff := cmp.Diff(want, order); diff != "" {
		t.Errorf("apply order (-want +got):\n%s", diff)
	}

	var moved int
	if err := db.DB.QueryRow(`SELECT count(*) FROM stock_movements`).Scan(&moved); err != nil {
		t.Fatal(err)
	}
	rep := projtest.RebuildShadow(t, db.Pool, db.DB, []engine.Rebuildable{projections.NewStockMovements()})
	if moved != 5 || rep.Events != 5 || rep.Rows["stock_movements"] != 5 {
		t.Errorf("live movements %d, rebuild read %d events into %d rows; want 5 each", moved, rep.Events, rep.Rows["stock_movements"])
	}
	onlyLive, onlyRebuilt, sample := projtest.ExceptBothWays(t, db.DB, "stock_movements", "stock_movements_rebuild")
	if onlyLive+onlyRebuilt != 0 {
		t.Errorf("live and rebuilt movements differ%s", sample)
	}
}

// TestUndecodableEventStopsPlannerAtIt: a stored payload this binary
// cannot decode, in the middle of a consumer window, stops a planned
// projection at that event. The window's events before it commit with the
// group's offset; nothing after it is applied, not even by a restart; the
// other projections carry on.
func TestUndecodableEventStopsPlannerAtIt(t *testing.T) {
	db := newRecorderDB(t)
	ctx := context.Background()
	before := appendRoundRobin(t, db, 17, 4)
	var bad int64
	if err := db.DB.QueryRow(`INSERT INTO events (event_id, stream_id, stream_version, type, schema_version, data, shop_id, occurred_at)
		VALUES (gen_random_uuid(), 'listing-undecodable', 1, 'stock.adjusted', 1, '{"listing_id": 9, "variant_key": "k", "delta": "three"}', 1, now())
		RETURNING position`).Scan(&bad); err != nil {
		t.Fatal(err)
	}
	after := appendRoundRobin(t, db, 10, 4)
	reg := prometheus.NewRegistry()
	cfg := projtest.FastConfig()
	cfg.BatchSize = 500 // every event in one window
	runner, _ := projtest.StartRunner(t, db.DB, []engine.Projection{projections.NewSeal(), projections.NewStockMovements()}, cfg, reg)

	// The seal reads no payloads: it seals every event, this one too.
	projtest.WaitCaughtUp(t, db.DB, []string{"seal"}, 20*time.Second)
	waitFor(t, "stock_movements to stop", 10*time.Second, func() bool { return runner.Ready(ctx) != nil })
	waitFor(t, "the events before the undecodable one to commit", 20*time.Second, func() bool {
		var n int
		if err := db.DB.QueryRow(`SELECT count(*) FROM stock_movements WHERE position = $1`, before[len(before)-1]).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	})
	// Let a few retries pass: each reads the window again from the offset.
	time.Sleep(3 * cfg.RetryInterval)
	var stored, beyond int
	if err := db.DB.QueryRow(`SELECT count(*) FILTER (WHERE position < $1), count(*) FILTER (WHERE position >= $1) FROM stock_movements`, bad).Scan(&stored, &beyond); err != nil {
		t.Fatal(err)
	}
	if stored != len(before) || beyond != 0 {
		t.Errorf("stock_movements holds %d movements before the undecodable event and %d at or after it, want %d and 0 (after: %v)",
			stored, beyond, len(before), after)
	}
	var offset int64
	if err := db.DB.QueryRow(`SELECT offset_acked FROM event_offsets WHERE consumer_group = 'stock_movements'`).Scan(&offset); err != nil {
		t.Fatal(err)
	}
	if offset != before[len(before)-1] {
		t.Errorf("stock_movements offset at %d, want %d (the event before the undecodable one)", offset, before[len(before)-1])
	}
	checkStopped(t, runner, reg, "stock_movements", bad, "decode", "seal")
}
