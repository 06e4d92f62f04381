package eventstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v3/pkg/sql"
	"github.com/google/go-cmp/cmp"

	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/pgtest"
)

// Random interleavings of appenders that begin, write elsewhere, stall,
// append and commit or abort in any order; of strangers that hold a
// transaction id without appending; and of two consumer groups reading all
// along. Every committed event reaches each group exactly once, in the
// log's (transaction_id, position) order, the same for both groups.
func TestRandomAppendersStrangersAndConsumers(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	db := pgtest.New(t)
	ctx := context.Background()
	if _, err := db.DB.Exec(`CREATE TABLE deliveries (grp text NOT NULL, n bigserial, position bigint NOT NULL);
		CREATE TABLE side_effects (note text)`); err != nil {
		t.Fatal(err)
	}
	s := eventstore.New(db.DB)

	consumeCtx, stopConsumers := context.WithCancel(ctx)
	var consumers sync.WaitGroup
	for _, group := range []string{"left", "right"} {
		consumers.Add(1)
		go func() {
			defer consumers.Done()
			runConsumer(t, consumeCtx, db.DB, group)
		}()
	}

	// Horizons sampled all along, each with the snapshot it was computed
	// in: once the appenders are done, no committed event may lie below a
	// sampled horizon and yet have been invisible in that snapshot.
	stopSampling := make(chan struct{})
	var sampling sync.WaitGroup
	var samples []horizonSample
	sampling.Add(1)
	go func() {
		defer sampling.Done()
		for {
			select {
			case <-stopSampling:
				return
			default:
			}
			if h, ok := sampleHorizon(t, db.DB); ok {
				samples = append(samples, h)
			}
			time.Sleep(time.Millisecond)
		}
	}()

	stopStrangers := make(chan struct{})
	var strangers sync.WaitGroup
	for i := range 2 {
		strangers.Add(1)
		go func() {
			defer strangers.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(100+i)))
			for {
				select {
				case <-stopStrangers:
					return
				default:
				}
				tx, err := db.DB.BeginTx(ctx, nil)
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := tx.Exec(`INSERT INTO side_effects VALUES ('stranger')`); err != nil {
					t.Error(err)
				}
				time.Sleep(time.Duration(rng.IntN(400)) * time.Millisecond)
				if rng.IntN(2) == 0 {
					_ = tx.Commit()
				} else {
					_ = tx.Rollback()
				}
			}
		}()
	}

	var committedEvents atomic.Int64
	var appenders sync.WaitGroup
	for i := range 6 {
		appenders.Add(1)
		go func() {
			defer appenders.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(i)))
			for j := range 30 {
				stream := fmt.Sprintf("listing-%d", 1000*i+j)
				listing := int64(1000*i + j)
				n := 1 + rng.IntN(3)
				evs := make([]events.Event, n)
				for k := range evs {
					evs[k] = adjusted(listing, int64(k+1))
				}
				stall := func() { time.Sleep(time.Duration(rng.IntN(60)) * time.Millisecond) }
				switch rng.IntN(3) {
				case 0: // a transaction of its own
					stall()
					if _, err := s.Append(ctx, stream, eventstore.NoStream, evs...); err != nil {
						t.Error(err)
						return
					}
					committedEvents.Add(int64(n))
				default: // writes elsewhere first, stalls, then commits or aborts
					tx, err := eventstore.BeginAppend(ctx, db.DB)
					if err != nil {
						t.Error(err)
						return
					}
					stall()
					if _, err := tx.Exec(`INSERT INTO side_effects VALUES ('appender')`); err != nil {
						t.Error(err)
					}
					stall()
					if _, err := s.AppendIn(ctx, tx, stream, eventstore.NoStream, evs...); err != nil {
						t.Error(err)
						_ = tx.Rollback()
						return
					}
					stall()
					if rng.IntN(4) == 0 {
						_ = tx.Rollback()
						continue
					}
					if err := tx.Commit(); err != nil {
						t.Error(err)
						return
					}
					committedEvents.Add(int64(n))
				}
			}
		}()
	}
	appenders.Wait()
	close(stopStrangers)
	strangers.Wait()
	close(stopSampling)
	sampling.Wait()
	checkHorizonSamples(t, db.DB, samples)

	want := logOrder(t, db.DB)
	if int64(len(want)) != committedEvents.Load() {
		t.Fatalf("the log holds %d events, the appenders committed %d", len(want), committedEvents.Load())
	}
	deadline := time.Now().Add(60 * time.Second)
	for (len(delivered(t, db.DB, "left")) < len(want) || len(delivered(t, db.DB, "right")) < len(want)) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // anything delivered twice shows now
	stopConsumers()
	consumers.Wait()
	for _, group := range []string{"left", "right"} {
		if diff := cmp.Diff(want, delivered(t, db.DB, group)); diff != "" {
			t.Errorf("group %s: deliveries differ from the log's order (-want +got):\n%s", group, diff)
		}
	}
}

// runConsumer consumes the log as group until ctx ends, recording each
// delivery in the subscriber's transaction (exactly once with the offset).
func runConsumer(t *testing.T, ctx context.Context, db *sql.DB, group string) {
	sub, err := eventstore.NewSubscriber(db, eventstore.SubscriberConfig{ConsumerGroup: group, BatchSize: 7, PollInterval: 10 * time.Millisecond}, watermill.NopLogger{})
	if err != nil {
		t.Error(err)
		return
	}
	defer sub.Close()
	msgs, err := sub.Subscribe(ctx, eventstore.Topic)
	if err != nil {
		t.Error(err)
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-msgs:
			if !ok {
				return
			}
			rec, err := eventstore.RecordFromMessage(m)
			if err != nil {
				t.Error(err)
				m.Nack()
				continue
			}
			tx, _ := wsql.TxFromContext(m.Context())
			if _, err := tx.ExecContext(m.Context(), `INSERT INTO deliveries (grp, position) VALUES ($1, $2)`, group, rec.Position); err != nil {
				m.Nack()
				continue
			}
			m.Ack()
		}
	}
}

// horizonSample is one consumer's view: the horizon it would read below,
// the snapshot it would read in, and the locks as they were just after.
type horizonSample struct {
	horizon, snapshot, locks string
}

func sampleHorizon(t *testing.T, db *sql.DB) (horizonSample, bool) {
	t.Helper()
	var h horizonSample
	tx, err := db.BeginTx(context.Background(), &sql.TxOptions{Isolation: sql.LevelRepeatableRead})
	if err != nil {
		t.Error(err)
		return h, false
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	err = tx.QueryRow(`SELECT pg_current_snapshot()::text, log_horizon()::text,
			coalesce((SELECT string_agg(locktype || ':' || coalesce(transactionid::text, objid::text) || '@' || pid, ' ' ORDER BY pid)
			 FROM pg_locks WHERE granted AND ((locktype = 'transactionid' AND mode = 'ExclusiveLock')
			     OR (locktype = 'advisory' AND classid = 7316 AND objid = 206 AND objsubid = 2))), '')`).Scan(&h.snapshot, &h.horizon, &h.locks)
	if err != nil {
		t.Error(err)
		return h, false
	}
	return h, true
}

// checkHorizonSamples fails the test for every committed event that lies
// below a sampled horizon but was invisible in that horizon's snapshot: a
// consumer reading there would have passed it for good.
func checkHorizonSamples(t *testing.T, db *sql.DB, samples []horizonSample) {
	t.Helper()
	bad := 0
	for _, h := range samples {
		var n int
		var positions string
		err := db.QueryRow(`SELECT count(*), coalesce(string_agg(position::text || '@' || transaction_id::text, ' '), '')
			FROM events WHERE transaction_id < $1::text::xid8
			  AND NOT pg_visible_in_snapshot(transaction_id, $2::text::pg_snapshot)`, h.horizon, h.snapshot).Scan(&n, &positions)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			bad++
			if bad <= 5 {
				t.Errorf("horizon %s passed events invisible in its snapshot %s: %s (locks: %s)", h.horizon, h.snapshot, positions, h.locks)
			}
		}
	}
	t.Logf("%d horizon samples checked, %d passed an invisible event", len(samples), bad)
}

func logOrder(t *testing.T, db *sql.DB) []int64 {
	t.Helper()
	return positions(t, db, `SELECT position FROM events ORDER BY transaction_id, position`)
}

func delivered(t *testing.T, db *sql.DB, group string) []int64 {
	t.Helper()
	return positions(t, db, `SELECT position FROM deliveries WHERE grp = $1 ORDER BY n`, group)
}

func positions(t *testing.T, db *sql.DB, q string, args ...any) []int64 {
	t.Helper()
	rows, err := db.Query(q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var p int64
		if err := rows.Scan(&p); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// Transaction ids are the cluster's but a session writes only to its own
// database: an appender of another database on the same cluster, held
// open, holds back nobody here.
func TestAnotherDatabasesAppenderHoldsNothingBack(t *testing.T) {
	here, elsewhere := pgtest.New(t), pgtest.New(t)
	ctx := context.Background()
	other, err := eventstore.BeginAppend(ctx, elsewhere.DB)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback() //nolint:errcheck // never committed
	if _, err := eventstore.New(elsewhere.DB).AppendIn(ctx, other, "listing-1", eventstore.Any, adjusted(1, 1)); err != nil {
		t.Fatal(err)
	}

	s := eventstore.New(here.DB)
	res, err := s.Append(ctx, "listing-2", eventstore.Any, adjusted(2, 1))
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.ReadAll(ctx, eventstore.Cursor{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Position != res.Events[0].Position {
		t.Fatalf("ReadAll while another database's appender is open = %d events, want the one appended here", len(got))
	}
	h, err := eventstore.ReadHorizon(ctx, here.DB)
	if err != nil {
		t.Fatal(err)
	}
	if h.Hidden != 0 || h.Holder.PID != 0 {
		t.Errorf("horizon here = %d hidden, holder %s; want nothing held back", h.Hidden, h.Holder)
	}
}
