package eventstore_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/pgtest"
)

func TestAppendEachCommittedStoresOnePerStreamAndReportsDuplicates(t *testing.T) {
	db, s, ctx := newStore(t)
	// One connection, so its prepared statements can be inspected below.
	db.DB.SetMaxOpenConns(1)
	if _, err := s.Append(ctx, events.WebhookStream("old"), eventstore.Any, evidence("old")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "listing-9", eventstore.Any, adjusted(9, 1), adjusted(9, 1)); err != nil {
		t.Fatal(err)
	}
	// Often enough that PostgreSQL would switch plans if it were going to.
	for round := range 8 {
		evs := []events.Event{evidence("a"), evidence("old"), evidence("b"), evidence("a"), adjusted(9, 3)}
		got, err := s.AppendEachCommitted(ctx, evs)
		if err != nil {
			t.Fatalf("round %d: AppendEachCommitted: %v", round, err)
		}
		gotOut := outcomesOf(got)
		want := []outcome{{false, 1}, {true, 1}, {false, 1}, {true, 1}, {false, int64(3 + round)}}
		if round > 0 {
			want[0].Duplicate, want[2].Duplicate = true, true
		}
		if diff := cmp.Diff(want, gotOut); diff != "" {
			t.Errorf("round %d: outcomes (-want +got):\n%s", round, diff)
		}
		if got[3].EventID != got[0].EventID {
			t.Errorf("round %d: repeat in batch names event %s, want the first one %s", round, got[3].EventID, got[0].EventID)
		}
	}
	for _, key := range []string{"etsy-webhook:a", "etsy-webhook:b", "etsy-webhook:old"} {
		if n := countKey(t, s, key); n != 1 {
			t.Errorf("%s stored %d times, want 1", key, n)
		}
	}
	// The point of the pgx path: the INSERT is never planned afresh.
	var generic, custom int
	if err := db.DB.QueryRow(`SELECT coalesce(sum(generic_plans), 0), coalesce(sum(custom_plans), 0) FROM pg_prepared_statements WHERE statement LIKE '%ORDER BY i.stream_id%'`).Scan(&generic, &custom); err != nil {
		t.Fatal(err)
	}
	if generic < 8 || custom != 0 {
		t.Errorf("the INSERT ran with %d generic and %d custom plans, want at least 8 generic and no custom", generic, custom)
	}
}

// A failed INSERT stops the pipeline before its COMMIT: nothing of the
// batch is stored, and no connection goes back to the pool inside the
// aborted transaction (the next appends would fail otherwise).
func TestAppendEachCommittedFailureStoresNothingAndLeavesNoOpenTransaction(t *testing.T) {
	db, s, ctx := newStore(t)
	if _, err := db.DB.Exec(`
		CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.stream_id = 'etsy-webhook-boom' THEN RAISE EXCEPTION 'boom'; END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER refuse_boom BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_boom();`); err != nil {
		t.Fatal(err)
	}
	db.DB.SetMaxOpenConns(1)
	_, err := s.AppendEachCommitted(ctx, []events.Event{evidence("a"), evidence("boom")})
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("err = %v, want the trigger's", err)
	}
	if n := countKey(t, s, "etsy-webhook:a"); n != 0 {
		t.Errorf("the failed batch stored a %d times, want 0", n)
	}
	for i := range 3 {
		if _, err := s.AppendEachCommitted(ctx, []events.Event{evidence(string(rune('p' + i)))}); err != nil {
			t.Fatalf("append after a failed batch: %v", err)
		}
	}
	var open int
	if err := db.DB.QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'`).Scan(&open); err != nil {
		t.Fatal(err)
	}
	if open != 0 {
		t.Errorf("%d connections idle in a transaction, want 0", open)
	}
}

// Appends encode with segmentio's encoder; what PostgreSQL stores must be
// what encoding/json's encoding gives, on the group-commit path and on
// the single and batch appends alike.
func TestAppendsStoreWhatEncodingJSONWould(t *testing.T) {
	db := pgtest.New(t)
	s := eventstore.New(db.DB)
	at := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
	tricky := func(id string) events.Event {
		return events.New(events.WebhookStream(id), 42, at, events.WebhookReceived{
			WebhookID: id, Timestamp: at.Unix(), EtsyEventType: "order.paid<&>", ResourceURL: "https://x/\u2028?a=1&b=<2>",
			ShopID: 42, Headers: map[string]string{"user-agent": "bad \xff utf-8", "z": "\"quoted\"\\", "a": "\x01\t\n", "webhook-id": id},
			RawBody: []byte("{\"x\":\"\xfe\x00\"}"), ReceivedAt: at,
		}).WithDedupe("etsy-webhook:" + id).WithMetadata(events.Metadata{CorrelationID: "c<1>", Source: "etsy-webhook", RequestID: id})
	}
	ctx := context.Background()
	committed, single := tricky("tricky-1"), tricky("tricky-2")
	batch := []events.Event{tricky("tricky-3"), tricky("tricky-4")}
	batch[1].StreamID = batch[0].StreamID
	if _, err := s.AppendEachCommitted(ctx, []events.Event{committed}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, single.StreamID, eventstore.Any, single); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, batch[0].StreamID, eventstore.Any, batch...); err != nil {
		t.Fatal(err)
	}
	for _, ev := range append([]events.Event{committed, single}, batch...) {
		data, err := json.Marshal(ev.Data)
		if err != nil {
			t.Fatal(err)
		}
		meta, err := json.Marshal(ev.Metadata)
		if err != nil {
			t.Fatal(err)
		}
		var same bool
		if err := db.DB.QueryRow(`SELECT data = $1::jsonb AND metadata = $2::jsonb FROM events WHERE event_id = $3`, string(data), string(meta), ev.ID).Scan(&same); err != nil {
			t.Fatal(err)
		}
		if !same {
			t.Errorf("%s: stored data or metadata differs from encoding/json's encoding", ev.DedupeKey)
		}
	}
}
