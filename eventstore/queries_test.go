package eventstore_test

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/pgtest"
)

func appendAll(t *testing.T, s *eventstore.Store, evs ...events.Event) []events.Record {
	t.Helper()
	var out []events.Record
	for _, e := range evs {
		res, err := s.Append(context.Background(), e.StreamID, eventstore.Any, e)
		if err != nil {
			t.Fatalf("append %s: %v", e.Type(), err)
		}
		rec, err := s.Get(context.Background(), res.Events[0].EventID)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rec)
	}
	return out
}

func ids(recs []events.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.Type() + "@" + r.StreamID
	}
	return out
}

func listingEvent(shop, listing int64, d events.Payload) events.Event {
	return events.New(events.ListingStream(listing), shop, t0, d)
}

func TestRecordedFindsStoredDedupeKeysOnly(t *testing.T) {
	s := eventstore.New(pgtest.New(t).DB)
	stored := appendAll(t, s, evidence("w1"))
	got, err := s.Recorded(context.Background(), []string{"etsy-webhook:w1", "etsy-webhook:w2"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got["etsy-webhook:w1"].EventID != stored[0].ID || !got["etsy-webhook:w1"].Duplicate {
		t.Errorf("Recorded = %+v, want only etsy-webhook:w1 as event %s", got, stored[0].ID)
	}
	if got, err := s.Recorded(context.Background(), nil); err != nil || len(got) != 0 {
		t.Errorf("Recorded(nil) = %v, %v; want nothing", got, err)
	}
}

func TestLastOfTypeIsEachStreamsLatestOfTheTypes(t *testing.T) {
	s := eventstore.New(pgtest.New(t).DB)
	appendAll(t, s,
		listingEvent(7, 1, events.ListingImported{ListingID: 1, ShopID: 7, Title: "mug"}),
		listingEvent(7, 2, events.ListingImported{ListingID: 2, ShopID: 7, Title: "bowl"}),
		listingEvent(7, 1, events.ListingUpdated{ListingID: 1, ShopID: 7, Title: "big mug"}),
		listingEvent(7, 2, events.ListingDeleted{ListingID: 2}),
		// Not among the types: the latest of them on listing-1 stays the update.
		listingEvent(7, 1, events.StockAdjusted{ListingID: 1, VariantKey: "sku:A", Delta: 1, Reason: events.ReasonRestock}),
		// Another shop's listing.
		listingEvent(8, 3, events.ListingImported{ListingID: 3, ShopID: 8, Title: "vase"}),
	)
	got, err := s.LastOfType(context.Background(), 7, events.TypeListingImported, events.TypeListingUpdated, events.TypeListingDeleted)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"listing.updated@listing-1", "listing.deleted@listing-2"}
	if diff := cmp.Diff(want, ids(got)); diff != "" {
		t.Errorf("LastOfType (-want +got):\n%s", diff)
	}
}

func TestReadStreamsOfTypeKeepsEachStreamInVersionOrder(t *testing.T) {
	s := eventstore.New(pgtest.New(t).DB)
	on := true
	appendAll(t, s,
		events.New(events.ShopStream(2), 2, t0, events.ShopSettingsChanged{ShopID: 2, SyncEnabled: &on}),
		events.New(events.ShopStream(1), 1, t0, events.ShopSettingsChanged{ShopID: 1}),
		events.New(events.ShopStream(2), 2, t0, events.ShopSettingsChanged{ShopID: 2}),
		events.New(events.ShopStream(3), 3, t0, events.ShopSettingsChanged{ShopID: 3}),
	)
	got, err := s.ReadStreamsOfType(context.Background(), []string{events.ShopStream(1), events.ShopStream(2)}, events.TypeShopSettingsChanged)
	if err != nil {
		t.Fatal(err)
	}
	var where []string
	for _, r := range got {
		where = append(where, fmt.Sprintf("%s/%d", r.StreamID, r.StreamVersion))
	}
	if diff := cmp.Diff([]string{"shop-1/1", "shop-2/1", "shop-2/2"}, where); diff != "" {
		t.Errorf("ReadStreamsOfType (-want +got):\n%s", diff)
	}
	if d, ok := got[1].Data.(events.ShopSettingsChanged); !ok || d.SyncEnabled == nil || !*d.SyncEnabled {
		t.Errorf("payload not decoded: %#v", got[1].Data)
	}
}

func TestReadTypeThroughStopsAtTheCursor(t *testing.T) {
	db := pgtest.New(t)
	s := eventstore.New(db.DB)
	recs := appendAll(t, s, adjusted(1, 5), evidence("w1"), adjusted(1, -2), adjusted(2, 1))
	ctx := context.Background()
	got, err := eventstore.ReadTypeThrough(ctx, db.DB, eventstore.CursorOf(recs[2]), events.TypeStockAdjusted)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != recs[0].ID || got[1].ID != recs[2].ID {
		t.Errorf("ReadTypeThrough = %v, want the first and third events", ids(got))
	}
	end := eventstore.Cursor{TransactionID: math.MaxInt64, Position: math.MaxInt64}
	if got, err := eventstore.ReadTypeThrough(ctx, db.DB, end, events.TypeStockAdjusted, events.TypeWebhookReceived); err != nil || len(got) != 4 {
		t.Errorf("ReadTypeThrough to the end = %v, %v; want all 4", ids(got), err)
	}
}

func TestEmptyTxSeesTheFirstEvent(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	empty := func() bool {
		t.Helper()
		tx, err := db.Pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx) //nolint:errcheck // read only
		e, err := eventstore.EmptyTx(ctx, tx)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	if !empty() {
		t.Error("a fresh log is not empty")
	}
	appendAll(t, eventstore.New(db.DB), adjusted(1, 1))
	if empty() {
		t.Error("a log with an event is empty")
	}
}

func TestWholeLogCountsAndSealingEverything(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t).DB
	s := eventstore.New(db)
	appendAll(t, s, evidence("w1"), evidence("w2"),
		listingEvent(7, 1, events.StockAdjusted{ListingID: 1, VariantKey: "sku:A", Delta: 2, Reason: events.ReasonRestock}))
	// Evidence of w1 a second time, under another dedupe key: the count
	// must show it, since it is what the key exists to stop.
	again := evidence("w1")
	again.DedupeKey = "other:w1"
	appendAll(t, s, again)

	if n, err := eventstore.CountAll(ctx, db); err != nil || n != 4 {
		t.Errorf("CountAll = %d, %v; want 4", n, err)
	}
	got, err := eventstore.WebhookEvidence(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]int{"w1": 2, "w2": 1}, got); diff != "" {
		t.Errorf("WebhookEvidence (-want +got):\n%s", diff)
	}
	if n, err := eventstore.CountAllUnsealed(ctx, db); err != nil || n != 4 {
		t.Fatalf("before sealing, CountAllUnsealed = %d, %v; want 4", n, err)
	}
	if err := eventstore.SealAllUnsealed(ctx, db); err != nil {
		t.Fatal(err)
	}
	if n, err := eventstore.CountAllUnsealed(ctx, db); err != nil || n != 0 {
		t.Errorf("after sealing, CountAllUnsealed = %d, %v; want 0", n, err)
	}
	if n, err := eventstore.CountPastSeal(ctx, db); err != nil || n != 0 {
		t.Errorf("after sealing, CountPastSeal = %d, %v; want 0", n, err)
	}
	// Sealing with nothing left to seal changes nothing.
	if err := eventstore.SealAllUnsealed(ctx, db); err != nil {
		t.Errorf("sealing an already sealed log: %v", err)
	}
}
