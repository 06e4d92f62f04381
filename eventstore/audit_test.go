package eventstore_test

import (
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
)

// sealedRow is what a filter of ListSealed looks at in one sealed event.
type sealedRow struct {
	seq      int64
	shop     int64
	stream   string
	typ      string
	occurred time.Time
}

// TestListSealedPagesLikeAFilteredScanOfTheSeal pages a log of three
// shops, interleaved, with every filter and small pages, and wants the
// seqs a plain scan of the seal in seq order keeps: whatever query a
// filter's shape gets, the pages are the same.
func TestListSealedPagesLikeAFilteredScanOfTheSeal(t *testing.T) {
	db, s, ctx := newStore(t)
	var evs []events.Event
	for i := range 60 {
		shop := int64(1 + i%3)
		at := t0.Add(time.Duration(i%20) * 24 * time.Hour)
		listing := 100*shop + int64(i%4)
		switch {
		case i < 3:
			evs = append(evs, events.New(events.ShopStream(shop), shop, at, events.ShopConnected{ShopID: shop, ShopName: "Shop", UserID: 1}))
		case i%5 == 0:
			evs = append(evs, listingEvent(shop, listing, events.StockAdjusted{ListingID: listing, VariantKey: "sku:A", Delta: 5, Reason: events.ReasonRestock}))
		default:
			evs = append(evs, listingEvent(shop, listing, events.StockSold{ListingID: listing, VariantKey: "sku:A", Quantity: 1, ReceiptID: int64(i)}))
		}
		evs[len(evs)-1].OccurredAt = at
	}
	appendAll(t, s, evs...)
	if _, err := db.DB.ExecContext(ctx, `SELECT seal_events(ARRAY(SELECT position FROM events ORDER BY transaction_id, position))`); err != nil {
		t.Fatal(err)
	}
	// Appended after the seal: never listed.
	appendAll(t, s, listingEvent(1, 100, events.StockAdjusted{ListingID: 100, VariantKey: "sku:A", Delta: 1, Reason: events.ReasonRestock}))

	rows, err := db.DB.QueryContext(ctx, `SELECT s.seq, e.shop_id, e.stream_id, e.type, e.occurred_at
		FROM event_seal s JOIN events e ON e.position = s.position ORDER BY s.seq`)
	if err != nil {
		t.Fatal(err)
	}
	var sealed []sealedRow
	for rows.Next() {
		var r sealedRow
		if err := rows.Scan(&r.seq, &r.shop, &r.stream, &r.typ, &r.occurred); err != nil {
			t.Fatal(err)
		}
		sealed = append(sealed, r)
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}

	mine := []int64{1, 2}
	check := func(t *testing.T) {
		for _, tc := range []struct {
			name string
			f    eventstore.SealedFilter
		}{
			{"all", eventstore.SealedFilter{}},
			{"shop", eventstore.SealedFilter{ShopID: 2}},
			{"other shop", eventstore.SealedFilter{ShopID: 3}},
			{"type", eventstore.SealedFilter{Type: events.TypeStockAdjusted}},
			{"rare type", eventstore.SealedFilter{Type: events.TypeShopConnected}},
			{"shop and type", eventstore.SealedFilter{ShopID: 1, Type: events.TypeStockSold}},
			{"stream", eventstore.SealedFilter{Stream: events.ListingStream(201)}},
			{"stream and type", eventstore.SealedFilter{Stream: events.ListingStream(101), Type: events.TypeStockSold}},
			{"from", eventstore.SealedFilter{From: t0.Add(15 * 24 * time.Hour)}},
			{"to", eventstore.SealedFilter{To: t0.Add(3 * 24 * time.Hour)}},
			{"from, to, shop and type", eventstore.SealedFilter{ShopID: 1, Type: events.TypeStockSold, From: t0.Add(2 * 24 * time.Hour), To: t0.Add(12 * 24 * time.Hour)}},
			{"through seq", eventstore.SealedFilter{ToSeq: 31}},
			{"type through seq", eventstore.SealedFilter{Type: events.TypeStockSold, ToSeq: 31}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var want []int64
				for _, r := range sealed {
					f := tc.f
					if slices.Contains(mine, r.shop) && (f.ShopID == 0 || r.shop == f.ShopID) && (f.Type == "" || r.typ == f.Type) &&
						(f.Stream == "" || r.stream == f.Stream) && (f.From.IsZero() || !r.occurred.Before(f.From)) &&
						(f.To.IsZero() || r.occurred.Before(f.To)) && (f.ToSeq == 0 || r.seq <= f.ToSeq) {
						want = append(want, r.seq)
					}
				}
				f := tc.f
				f.Shops, f.Limit = mine, 4
				var got []int64
				for page := 0; ; page++ {
					if page > len(sealed) {
						t.Fatalf("paging does not end: %v", got)
					}
					evs, err := s.ListSealed(ctx, f)
					if err != nil {
						t.Fatal(err)
					}
					for _, ev := range evs {
						got = append(got, ev.Seq)
					}
					if len(evs) < f.Limit {
						break
					}
					f.AfterSeq = evs[len(evs)-1].Seq
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("seqs (-want +got):\n%s", diff)
				}
			})
		}
	}
	t.Run("typed seals", check)
	// A log sealed partly before seal rows carried the type: its first
	// 24 rows have none, and event_seal_typed_from says where typed rows
	// start. Seal rows are never updated; this test's own database lets
	// the trigger that guards them step aside to make such a log.
	for _, q := range []string{
		`ALTER TABLE event_seal DISABLE TRIGGER USER`,
		`UPDATE event_seal SET type = NULL WHERE seq < 25`,
		`UPDATE event_seal_typed_from SET seq = 25`,
		`ALTER TABLE event_seal ENABLE TRIGGER USER`,
	} {
		if _, err := db.DB.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("seals from before types", check)
	if len(sealed) != 60 {
		t.Errorf("sealed %d events, want 60", len(sealed))
	}
}
