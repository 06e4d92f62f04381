package eventstore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/pgtest"
)

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func adjusted(listing int64, delta int64) events.Event {
	return events.New(events.ListingStream(listing), 7, t0, events.StockAdjusted{
		ListingID: listing, VariantKey: "sku:A", Delta: delta, Reason: events.ReasonRestock,
	})
}

// newStore is a store on a fresh database.
func newStore(t *testing.T) (*pgtest.Database, *eventstore.Store, context.Context) {
	t.Helper()
	db := pgtest.New(t)
	return db, eventstore.New(db.DB), context.Background()
}

func TestAppendAndReadStream(t *testing.T) {
	_, s, ctx := newStore(t)

	res, err := s.Append(ctx, "listing-1", eventstore.NoStream, adjusted(1, 5), adjusted(1, -2))
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if res.Version != 2 || res.NewCount() != 2 {
		t.Fatalf("Append = version %d, new %d; want 2, 2", res.Version, res.NewCount())
	}
	recs, err := s.ReadStream(ctx, "listing-1", 0)
	if err != nil {
		t.Fatalf("ReadStream: %v", err)
	}
	var deltas []int64
	for _, r := range recs {
		deltas = append(deltas, r.Data.(events.StockAdjusted).Delta)
	}
	if diff := cmp.Diff([]int64{5, -2}, deltas); diff != "" {
		t.Errorf("deltas (-want +got):\n%s", diff)
	}
	if recs[0].ShopID != 7 || recs[1].StreamVersion != 2 || !recs[0].OccurredAt.Equal(t0) {
		t.Errorf("envelope not kept: %+v", recs[0])
	}

	_, err = s.Append(ctx, "listing-1", eventstore.Exact(1), adjusted(1, 1))
	if !errors.Is(err, eventstore.ErrConcurrency) {
		t.Errorf("stale expected version: err = %v, want ErrConcurrency", err)
	}
	_, err = s.Append(ctx, "listing-1", eventstore.NoStream, adjusted(1, 1))
	if !errors.Is(err, eventstore.ErrConcurrency) {
		t.Errorf("NoStream on existing stream: err = %v, want ErrConcurrency", err)
	}
	_, err = s.Append(ctx, "listing-1", eventstore.Exact(5), adjusted(1, 1))
	if !errors.Is(err, eventstore.ErrConcurrency) {
		t.Errorf("expected version ahead of stream: err = %v, want ErrConcurrency", err)
	}
	res, err = s.Append(ctx, "listing-1", eventstore.Exact(2), adjusted(1, 1))
	if err != nil || res.Version != 3 {
		t.Errorf("Append at exact version = %v, %v; want version 3", res.Version, err)
	}
}

func TestConcurrentAppendsWithExpectedVersion(t *testing.T) {
	_, s, ctx := newStore(t)
	const writers = 50

	// Every writer tries once at the version it read; losers must get
	// ErrConcurrency, never a gap or a duplicate version.
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, conflicts := 0, 0
	start := make(chan struct{})
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			recs, err := s.ReadStream(ctx, "listing-9", 0)
			if err != nil {
				t.Error(err)
				return
			}
			_, err = s.Append(ctx, "listing-9", eventstore.Exact(int64(len(recs))), adjusted(9, 1))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, eventstore.ErrConcurrency):
				conflicts++
			default:
				t.Errorf("Append: %v", err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if wins+conflicts != writers || wins == 0 {
		t.Fatalf("wins %d + conflicts %d, want %d with at least one win", wins, conflicts, writers)
	}

	// Update converges: every writer's decision lands exactly once.
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Update(ctx, "listing-9", func(past []events.Record) ([]events.Event, error) {
				return []events.Event{adjusted(9, 1)}, nil
			})
			if err != nil {
				t.Errorf("Update: %v", err)
			}
		}()
	}
	wg.Wait()

	recs, err := s.ReadStream(ctx, "listing-9", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != wins+writers {
		t.Fatalf("stream has %d events, want %d", len(recs), wins+writers)
	}
	for i, r := range recs {
		if r.StreamVersion != int64(i+1) {
			t.Fatalf("event %d has version %d: versions must be 1..n", i, r.StreamVersion)
		}
	}
}

func TestDedupeKeyStoresOneRow(t *testing.T) {
	db, s, ctx := newStore(t)

	ev := adjusted(3, 1).WithDedupe("etsy-txn:77:sold")
	first, err := s.Append(ctx, "listing-3", eventstore.Any, ev)
	if err != nil {
		t.Fatal(err)
	}
	again := adjusted(3, 1).WithDedupe("etsy-txn:77:sold")
	second, err := s.Append(ctx, "listing-3", eventstore.Any, again, adjusted(3, 2))
	if err != nil {
		t.Fatal(err)
	}
	if !second.Events[0].Duplicate || second.Events[0].EventID != first.Events[0].EventID {
		t.Errorf("second append of the key = %+v, want duplicate of %s", second.Events[0], first.Events[0].EventID)
	}
	if second.Events[1].Duplicate || second.Events[1].StreamVersion != 2 {
		t.Errorf("fresh event beside a duplicate = %+v, want new at version 2", second.Events[1])
	}

	// 20 goroutines race to record the same fact.
	const racers = 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	news := 0
	for i := 0; i < racers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			stream := fmt.Sprintf("receipt-%d", i%3) // the same fact may arrive on any stream
			res, err := s.Append(ctx, stream, eventstore.Any, events.New(stream, 7, t0, events.SalePaid{ReceiptID: 5}).WithDedupe("etsy-receipt:5:paid"))
			if err != nil {
				t.Errorf("Append: %v", err)
				return
			}
			mu.Lock()
			news += res.NewCount()
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	var rows int
	if err := db.DB.QueryRow(`SELECT count(*) FROM events WHERE dedupe_key = 'etsy-receipt:5:paid'`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 1 || news != 1 {
		t.Errorf("rows = %d, new = %d; want 1 and 1", rows, news)
	}

	_, err = s.Append(ctx, "listing-3", eventstore.Any, adjusted(3, 1).WithDedupe("k"), adjusted(3, 1).WithDedupe("k"))
	if !errors.Is(err, eventstore.ErrInvalidEvent) {
		t.Errorf("one key twice in a batch: err = %v, want ErrInvalidEvent", err)
	}
}

func TestLogIsImmutable(t *testing.T) {
	db, s, ctx := newStore(t)
	if _, err := s.Append(ctx, "listing-1", eventstore.Any, adjusted(1, 1)); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`UPDATE events SET type = 'x'`,
		`DELETE FROM events`,
		`TRUNCATE events`,
	} {
		if _, err := db.DB.ExecContext(ctx, stmt); err == nil {
			t.Errorf("%s succeeded on the log", stmt)
		}
	}

	// The application role may read and append but has no grant to change.
	conn, err := db.DB.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SET ROLE shopledger_app`); err != nil {
		t.Fatal(err)
	}
	defer conn.ExecContext(ctx, `RESET ROLE`) //nolint:errcheck
	if _, err := conn.ExecContext(ctx, `UPDATE events SET type = 'x'`); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("UPDATE as app role: err = %v, want permission denied", err)
	}
	if _, err := conn.ExecContext(ctx, `DELETE FROM events`); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("DELETE as app role: err = %v, want permission denied", err)
	}
	var n int
	if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM events`).Scan(&n); err != nil || n != 1 {
		t.Errorf("SELECT as app role = %d, %v; want 1", n, err)
	}
}

func TestReadAllIsGapSafe(t *testing.T) {
	db, s, ctx := newStore(t)

	txA, err := db.DB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendIn(ctx, txA, "listing-1", eventstore.Any, adjusted(1, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "listing-2", eventstore.Any, adjusted(2, 1)); err != nil {
		t.Fatal(err)
	}
	got, err := s.ReadAll(ctx, eventstore.Cursor{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("ReadAll while A is open returned %d events, want 0", len(got))
	}
	if err := txA.Commit(); err != nil {
		t.Fatal(err)
	}
	// Another appender of this database may hold the horizon for a
	// moment; wait for it to pass.
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err = s.ReadAll(ctx, eventstore.Cursor{}, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	var streams []string
	for _, r := range got {
		streams = append(streams, r.StreamID)
	}
	if diff := cmp.Diff([]string{"listing-1", "listing-2"}, streams); diff != "" {
		t.Errorf("commit order (-want +got):\n%s", diff)
	}
	rest, err := s.ReadAll(ctx, eventstore.CursorOf(got[1]), 100)
	if err != nil || len(rest) != 0 {
		t.Errorf("ReadAll after the last cursor = %d events, %v; want none", len(rest), err)
	}
}

// A single-event Append borrows the pgx connection under database/sql; a
// connection the server closed while it sat idle must still be replaced
// instead of failing the append.
func TestAppendOneSurvivesAnIdleConnectionTheServerClosed(t *testing.T) {
	db, s, ctx := newStore(t)
	if _, err := s.Append(ctx, "listing-1", eventstore.Any, adjusted(1, 1)); err != nil {
		t.Fatal(err)
	}
	admin, err := sql.Open("pgx", pgtest.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var killed int
	if err := admin.QueryRowContext(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1`, db.Name).Scan(&killed); err != nil {
		t.Fatal(err)
	}
	if killed == 0 {
		t.Fatal("no connection was terminated: the test tests nothing")
	}
	// database/sql checks a connection that sat idle for over a second
	// before handing it out again.
	time.Sleep(1100 * time.Millisecond)
	res, err := s.Append(ctx, "listing-1", eventstore.Any, adjusted(1, 1))
	if err != nil {
		t.Fatalf("Append after the server closed the idle connection: %v", err)
	}
	if res.Version != 2 {
		t.Errorf("version = %d, want 2", res.Version)
	}
}
