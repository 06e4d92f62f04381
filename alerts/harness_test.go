package alerts_test

import (
	"context"
	"database/sql"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v3/pkg/sql"

	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
)

// t0 is the business time the histories start at.
var t0 = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

// projection is what the projector runs; the alerter and the read model
// both are one.
type projection interface {
	Name() string
	Handles(string) bool
	Apply(context.Context, *sql.Tx, events.Record) error
}

// run consumes the log as p's consumer group the way the projector does:
// every event inside a savepoint of the group's transaction, which also
// stores the offset. It stops when stop is called or the test ends.
func run(t *testing.T, db *sql.DB, p projection) (stop func()) {
	t.Helper()
	sub, err := eventstore.NewSubscriber(db, eventstore.SubscriberConfig{ConsumerGroup: p.Name(), BatchSize: 100, PollInterval: 10 * time.Millisecond}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	msgs, err := sub.Subscribe(ctx, eventstore.Topic)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		failed := false
		for m := range msgs {
			rec, err := eventstore.RecordFromMessage(m)
			if err != nil {
				t.Errorf("%s: %v", p.Name(), err)
				return
			}
			if !p.Handles(rec.Type()) {
				m.Ack()
				continue
			}
			tx, ok := wsql.TxFromContext(m.Context())
			if !ok {
				t.Errorf("%s: no subscriber transaction", p.Name())
				return
			}
			mctx := m.Context()
			if _, err := tx.ExecContext(mctx, `SAVEPOINT apply`); err != nil {
				m.Nack()
				continue
			}
			if err := p.Apply(mctx, tx, rec); err != nil {
				if !failed && ctx.Err() == nil {
					t.Errorf("%s: %v", p.Name(), err)
					failed = true
				}
				_, _ = tx.ExecContext(mctx, `ROLLBACK TO SAVEPOINT apply`)
				m.Nack()
				continue
			}
			if _, err := tx.ExecContext(mctx, `RELEASE SAVEPOINT apply`); err != nil {
				m.Nack()
				continue
			}
			m.Ack()
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			sub.Close()
			cancel()
			wg.Wait()
		})
	}
	t.Cleanup(stop)
	return stop
}

// catchUp waits until every group has acked the newest event of the log,
// including the events the groups appended themselves.
func catchUp(t *testing.T, db *sql.DB, groups ...string) {
	t.Helper()
	// Consumers read only below the oldest running transaction of the
	// whole server, so other packages' tests running at once can hold
	// them back for a while.
	deadline := time.Now().Add(60 * time.Second)
	for {
		var last sql.NullInt64
		if err := db.QueryRow(`SELECT max(position) FROM events`).Scan(&last); err != nil {
			t.Fatal(err)
		}
		done := true
		for _, g := range groups {
			var acked sql.NullInt64
			err := db.QueryRow(`SELECT offset_acked FROM event_offsets WHERE consumer_group = $1`, g).Scan(&acked)
			if err != nil && err != sql.ErrNoRows {
				t.Fatal(err)
			}
			if last.Valid && acked.Int64 < last.Int64 {
				done = false
			}
		}
		if done {
			// A group (the alerter) may have appended events in the
			// transaction that moved its offset past last: done only if
			// the log did not grow while the offsets were read.
			var now sql.NullInt64
			if err := db.QueryRow(`SELECT max(position) FROM events`).Scan(&now); err != nil {
				t.Fatal(err)
			}
			if now == last {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("groups %v did not reach position %d", groups, last.Int64)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// clock is a wall clock the test moves.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

// newClock starts at the real time, truncated to microseconds as
// PostgreSQL stores times, so that durations read back are exact.
func newClock() *clock { return &clock{now: time.Now().UTC().Truncate(time.Microsecond)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// History builders. Each event goes to its natural stream with its shop
// in the envelope, at t0 plus the given minutes.

func at(minutes int) time.Time { return t0.Add(time.Duration(minutes) * time.Minute) }

func imported(shop, listing int64, title string, keys ...string) events.Event {
	vs := make([]events.Variant, len(keys))
	for i, k := range keys {
		vs[i] = events.Variant{Key: k, Properties: "Size: " + k, Enabled: true}
	}
	return events.New(events.ListingStream(listing), shop, t0.Add(-time.Hour), events.ListingImported{
		ListingID: listing, ShopID: shop, Title: title, State: "active", URL: "https://www.etsy.com/listing/1", Variants: vs,
	})
}

func adjusted(shop, listing int64, key string, delta int64, minute int) events.Event {
	return events.New(events.ListingStream(listing), shop, at(minute), events.StockAdjusted{
		ListingID: listing, VariantKey: key, Delta: delta, Reason: events.ReasonRestock,
	})
}

func sold(shop, listing int64, key string, qty int64, minute int) events.Event {
	return events.New(events.ListingStream(listing), shop, at(minute), events.StockSold{
		ListingID: listing, VariantKey: key, Quantity: qty,
	})
}

func threshold(scope string, shop, listing int64, key string, n int64, minute int) events.Event {
	stream := events.ListingStream(listing)
	if scope == events.ScopeShop {
		stream = events.ShopStream(shop)
	}
	return events.New(stream, shop, at(minute), events.StockThresholdSet{
		Scope: scope, ShopID: shop, ListingID: listing, VariantKey: key, Threshold: n, Actor: "test",
	})
}

func thresholdCleared(scope string, shop, listing int64, key string, minute int) events.Event {
	stream := events.ListingStream(listing)
	if scope == events.ScopeShop {
		stream = events.ShopStream(shop)
	}
	return events.New(stream, shop, at(minute), events.StockThresholdCleared{
		Scope: scope, ShopID: shop, ListingID: listing, VariantKey: key, Actor: "test",
	})
}

func settings(shop int64, def *int64, channels []events.AlertChannel, minute int) events.Event {
	return events.New(events.ShopStream(shop), shop, at(minute), events.ShopSettingsChanged{
		ShopID: shop, DefaultLowStockThreshold: def, AlertChannels: channels,
	})
}

func appendAll(t *testing.T, s *eventstore.Store, evs ...events.Event) {
	t.Helper()
	for _, e := range evs {
		if _, err := s.Append(context.Background(), e.StreamID, eventstore.Any, e); err != nil {
			t.Fatalf("append %s: %v", e.Type(), err)
		}
	}
}

// alertEvents returns the alert events in the log, in commit order.
func alertEvents(t *testing.T, db *sql.DB) []events.Record {
	t.Helper()
	// Committed rows in commit order, without ReadAll's wait for older
	// transactions: those of other tests on the server may be running.
	end := eventstore.Cursor{TransactionID: math.MaxInt64, Position: math.MaxInt64}
	recs, err := eventstore.ReadTypeThrough(context.Background(), db, end, events.TypeAlertLowStockRaised, events.TypeAlertLowStockCleared)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}
