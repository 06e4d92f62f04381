package eventstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v3/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/pgtest"
)

// consume reads the log as group until want events arrived or the deadline
// passed, acking each, and returns the positions in delivery order of the
// events it applied. An event the group applied before is recorded in
// replayed and not returned (see eventstore.NewSubscriber).
func consume(t *testing.T, db *sql.DB, group string, want int, within time.Duration) []int64 {
	t.Helper()
	sub, err := eventstore.NewSubscriber(db, eventstore.SubscriberConfig{ConsumerGroup: group, BatchSize: 500, PollInterval: 20 * time.Millisecond}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	// Close first so the subscriber commits what was acked; then cancel.
	defer cancel()
	defer sub.Close()
	msgs, err := sub.Subscribe(ctx, eventstore.Topic)
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	timeout := time.After(within)
	for len(got) < want {
		select {
		case m := <-msgs:
			rec, err := eventstore.RecordFromMessage(m)
			if err != nil {
				t.Fatalf("RecordFromMessage: %v", err)
			}
			tx, ok := wsql.TxFromContext(m.Context())
			if !ok {
				t.Fatal("message carries no subscriber transaction")
			}
			// Like a read model: the effect and the group's checkpoint
			// commit with the group's offset.
			var applied bool
			err = tx.QueryRowContext(m.Context(), `WITH cp AS (
					INSERT INTO consumed_upto AS c VALUES ($1, $2::text::xid8, $3)
					ON CONFLICT (consumer_group) DO UPDATE SET transaction_id = excluded.transaction_id, position = excluded.position
					WHERE (c.transaction_id, c.position) < (excluded.transaction_id, excluded.position)
					RETURNING 1
				), fresh AS (
					INSERT INTO consumed (consumer_group, position) SELECT $1, $3 FROM cp RETURNING 1
				), again AS (
					INSERT INTO replayed (consumer_group, position) SELECT $1, $3 WHERE NOT EXISTS (SELECT 1 FROM cp) RETURNING 1
				)
				SELECT EXISTS (SELECT 1 FROM fresh) OR NOT EXISTS (SELECT 1 FROM again)`,
				group, fmt.Sprint(rec.TransactionID), rec.Position).Scan(&applied)
			if err != nil {
				t.Fatalf("record effect: %v", err)
			}
			if applied {
				got = append(got, rec.Position)
			}
			m.Ack()
		case <-timeout:
			return got
		}
	}
	return got
}

func newConsumedDB(t *testing.T) *pgtest.Database {
	t.Helper()
	db := pgtest.New(t)
	if _, err := db.DB.Exec(`CREATE TABLE consumed (consumer_group text, position bigint);
		CREATE TABLE replayed (consumer_group text, position bigint);
		CREATE TABLE consumed_upto (consumer_group text PRIMARY KEY, transaction_id xid8, position bigint)`); err != nil {
		t.Fatal(err)
	}
	return db
}

// committed returns how many times each position's effect committed.
func committed(t *testing.T, db *sql.DB, group string) map[int64]int {
	t.Helper()
	return countPositions(t, db, `SELECT position, count(*) FROM consumed WHERE consumer_group = $1 GROUP BY position`, group)
}

// replays returns how many times each position was delivered again after
// its effect committed.
func replays(t *testing.T, db *sql.DB, group string) map[int64]int {
	t.Helper()
	return countPositions(t, db, `SELECT position, count(*) FROM replayed WHERE consumer_group = $1 GROUP BY position`, group)
}

func countPositions(t *testing.T, db *sql.DB, q string, args ...any) map[int64]int {
	t.Helper()
	rows, err := db.Query(q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64]int{}
	for rows.Next() {
		var p int64
		var n int
		if err := rows.Scan(&p, &n); err != nil {
			t.Fatal(err)
		}
		out[p] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSubscriberWaitsForOlderOpenTransaction(t *testing.T) {
	db := newConsumedDB(t)
	s := eventstore.New(db.DB)
	ctx := context.Background()

	txA, err := db.DB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	resA, err := s.AppendIn(ctx, txA, "listing-1", eventstore.Any, adjusted(1, 1))
	if err != nil {
		t.Fatal(err)
	}
	resB, err := s.Append(ctx, "listing-2", eventstore.Any, adjusted(2, 1))
	if err != nil {
		t.Fatal(err)
	}
	if got := consume(t, db.DB, "gap", 1, 500*time.Millisecond); len(got) != 0 {
		t.Fatalf("consumer advanced past open transaction A: got positions %v", got)
	}
	if err := txA.Commit(); err != nil {
		t.Fatal(err)
	}
	got := consume(t, db.DB, "gap", 2, 5*time.Second)
	want := []int64{resA.Events[0].Position, resB.Events[0].Position}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after A commits got %v, want %v (A first, both once)", got, want)
	}
	if again := consume(t, db.DB, "gap", 1, 300*time.Millisecond); len(again) != 0 {
		t.Fatalf("redelivered %v", again)
	}
	for p, n := range committed(t, db.DB, "gap") {
		if n != 1 {
			t.Errorf("position %d committed %d times", p, n)
		}
	}
}

func TestSubscriberRoundTripTwoGroupsRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 events")
	}
	db := newConsumedDB(t)
	s := eventstore.New(db.DB)
	ctx := context.Background()
	const total = 10000

	// Appends in 100 concurrent-ish batches so transactions interleave.
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for b := 0; b < total/4/100; b++ {
				evs := make([]events.Event, 100)
				for i := range evs {
					evs[i] = adjusted(int64(w), 1)
				}
				if _, err := s.Append(ctx, fmt.Sprintf("listing-%d", w), eventstore.Any, evs...); err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()

	for _, group := range []string{"one", "two"} {
		// Stop twice mid-stream, at moments that do not line up with the
		// subscriber's batches, then let a fresh subscriber finish.
		consume(t, db.DB, group, 3333, 60*time.Second)
		consume(t, db.DB, group, 2717, 60*time.Second)
		closes := 2
		deadline := time.Now().Add(90 * time.Second)
		for len(committed(t, db.DB, group)) < total && time.Now().Before(deadline) {
			consume(t, db.DB, group, total, 2*time.Second)
			closes++
		}
		seen := committed(t, db.DB, group)
		if len(seen) != total {
			t.Errorf("group %s committed %d distinct events, want %d (missing)", group, len(seen), total)
		}
		for p, n := range seen {
			if n != 1 {
				t.Errorf("group %s: position %d committed %d times (redelivered)", group, p, n)
			}
		}
		if extra := consume(t, db.DB, group, 1, 300*time.Millisecond); len(extra) != 0 {
			t.Errorf("group %s: delivered again after everything was acked: %v", group, extra)
		}
		closes++
		// Only a close racing an ack may deliver an applied event again,
		// once (see eventstore.NewSubscriber).
		again := 0
		for p, n := range replays(t, db.DB, group) {
			again += n
			if seen[p] != 1 {
				t.Errorf("group %s: position %d delivered again but never applied", group, p)
			}
		}
		if again > closes {
			t.Errorf("group %s: %d events delivered again across %d closes, want at most one per close", group, again, closes)
		}
	}
}

var _ message.Subscriber = (*wsql.Subscriber)(nil)

// Transaction ids are numbers: a consumer must take 999 before 1000 even
// though their text sorts the other way round.
func TestCommitOrderAcrossDigitBoundary(t *testing.T) {
	db := newConsumedDB(t)
	s := eventstore.New(db.DB)
	ctx := context.Background()
	txids := []int{998, 1000, 999, 10000, 1001}
	for i, txid := range txids {
		// Rows with chosen transaction ids, as a log that crossed a digit
		// boundary would hold.
		_, err := db.DB.ExecContext(ctx, `INSERT INTO events (transaction_id, event_id, stream_id, stream_version, type, schema_version, data, occurred_at)
			VALUES ($1::text::xid8, gen_random_uuid(), $2, 1, 'sale.paid', 1, '{"receipt_id": 1}', now())`, fmt.Sprint(txid), fmt.Sprintf("receipt-%d", i))
		if err != nil {
			t.Fatal(err)
		}
	}
	// Ids this cluster may not have reached yet, as a log brought from
	// another cluster holds: adopting it makes them all visible.
	if _, err := db.DB.ExecContext(ctx, `SELECT log_adopt()`); err != nil {
		t.Fatal(err)
	}
	want := []uint64{998, 999, 1000, 1001, 10000}

	recs, err := s.ReadAll(ctx, eventstore.Cursor{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for _, r := range recs {
		got = append(got, r.TransactionID)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("ReadAll order = %v, want %v", got, want)
	}

	positions := consume(t, db.DB, "digits", len(txids), 10*time.Second)
	byPos := map[int64]uint64{}
	for _, r := range recs {
		byPos[r.Position] = r.TransactionID
	}
	got = got[:0]
	for _, p := range positions {
		got = append(got, byPos[p])
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("subscriber order = %v, want %v", got, want)
	}
}
