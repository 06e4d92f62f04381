package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/pgtest"
)

func evidence(id string) events.Event {
	return events.New(events.WebhookStream(id), 7, t0, events.WebhookReceived{WebhookID: id, EtsyEventType: "order.paid"}).
		WithDedupe("etsy-webhook:" + id)
}

func countKey(t *testing.T, s *eventstore.Store, key string) int {
	t.Helper()
	got, err := s.Recorded(context.Background(), []string{key})
	if err != nil {
		t.Fatal(err)
	}
	return len(got)
}

func TestAppendEachInStoresOnePerStreamAndReportsDuplicates(t *testing.T) {
	db, s, ctx := newStore(t)

	if _, err := s.Append(ctx, events.WebhookStream("old"), eventstore.Any, evidence("old")); err != nil {
		t.Fatal(err)
	}
	// A stream that already has events gets the next version.
	if _, err := s.Append(ctx, "listing-9", eventstore.Any, adjusted(9, 1), adjusted(9, 1)); err != nil {
		t.Fatal(err)
	}
	evs := []events.Event{evidence("a"), evidence("old"), evidence("b"), evidence("a"), adjusted(9, 3)}
	tx, err := db.DB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.AppendEachIn(ctx, tx, evs)
	if err != nil {
		t.Fatalf("AppendEachIn: %v", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	gotOut := outcomesOf(got)
	want := []outcome{{false, 1}, {true, 1}, {false, 1}, {true, 1}, {false, 3}}
	if diff := cmp.Diff(want, gotOut); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
	if got[3].EventID != got[0].EventID {
		t.Errorf("repeat in batch names event %s, want the first one %s", got[3].EventID, got[0].EventID)
	}
	for _, key := range []string{"etsy-webhook:a", "etsy-webhook:b", "etsy-webhook:old"} {
		if n := countKey(t, s, key); n != 1 {
			t.Errorf("%s stored %d times, want 1", key, n)
		}
	}
}

func TestAppendEachInRollsBackWithTransaction(t *testing.T) {
	db, s, ctx := newStore(t)
	tx, err := db.DB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendEachIn(ctx, tx, []events.Event{evidence("x")}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if n := countKey(t, s, "etsy-webhook:x"); n != 0 {
		t.Errorf("rolled back evidence stored %d times", n)
	}
}

func TestAppendEachInRejectsTwoEventsOnOneStream(t *testing.T) {
	db := pgtest.New(t)
	s := eventstore.New(db.DB)
	_, err := s.AppendEachIn(context.Background(), db.DB, []events.Event{adjusted(1, 1), adjusted(1, 2)})
	if !errors.Is(err, eventstore.ErrInvalidEvent) {
		t.Errorf("err = %v, want ErrInvalidEvent", err)
	}
}

// Concurrent transactions carrying the same facts and racing for the same
// stream versions must neither fail nor store anything twice.
func TestAppendEachInConcurrentTransactions(t *testing.T) {
	db, s, ctx := newStore(t)
	const writers = 16
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			evs := []events.Event{evidence("shared-1"), evidence("shared-2"), evidence(fmt.Sprintf("own-%d", w)), adjusted(5, 1)}
			tx, err := db.DB.BeginTx(ctx, nil)
			if err != nil {
				errs <- err
				return
			}
			defer tx.Rollback() //nolint:errcheck
			if _, err := s.AppendEachIn(ctx, tx, evs); err != nil {
				errs <- err
				return
			}
			errs <- tx.Commit()
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("writer: %v", err)
		}
	}
	for _, key := range []string{"etsy-webhook:shared-1", "etsy-webhook:shared-2", "etsy-webhook:own-3"} {
		if n := countKey(t, s, key); n != 1 {
			t.Errorf("%s stored %d times, want 1", key, n)
		}
	}
	recs, err := s.ReadStream(ctx, "listing-5", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != writers {
		t.Fatalf("listing-5 has %d events, want %d", len(recs), writers)
	}
	for i, r := range recs {
		if r.StreamVersion != int64(i+1) {
			t.Errorf("event %d at version %d: gap or duplicate", i, r.StreamVersion)
		}
	}
}

// outcome is what an append reports of one event, as the AppendEach tests
// compare it.
type outcome struct {
	Duplicate bool
	Version   int64
}

func outcomesOf(got []eventstore.Appended) []outcome {
	out := make([]outcome, 0, len(got))
	for _, a := range got {
		out = append(out, outcome{a.Duplicate, a.StreamVersion})
	}
	return out
}
