package projections_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/shopledger/shopledger/projections/engine"
	"github.com/shopledger/shopledger/projections/internal/projtest"

	"github.com/google/go-cmp/cmp"

	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/projections"
)

// receiptFacts returns the facts of n receipts in the order they happened:
// a first description, sometimes a newer one (more items, a later Etsy
// updated time), status facts, refunds, cancellations.
func receiptFacts(rng *rand.Rand, n int) [][]events.Event {
	var out [][]events.Event
	for r := range n {
		id := int64(50000 + r)
		shop := int64(1 + r%3)
		rs := events.ReceiptStream(id)
		at := projtest.T0.Add(time.Duration(r) * 7 * time.Minute)
		step := func(m int) time.Time { return at.Add(time.Duration(m) * time.Minute) }
		describe := func(items int, updated time.Time) events.SaleRecorded {
			p := events.SaleRecorded{ReceiptID: id, ShopID: shop, Status: "open", CreatedAt: at, EtsyUpdatedAt: updated}
			var total int64
			for i := range items {
				q := int64(1 + (r+i)%3)
				p.Items = append(p.Items, events.SaleItem{TransactionID: id*10 + int64(i), ListingID: 9, VariantKey: fmt.Sprintf("k%d", i), Quantity: q, UnitPrice: eur(1000)})
				total += q * 1000
			}
			p.Subtotal, p.Shipping, p.Tax, p.Discount, p.GrandTotal = eur(total), eur(300), eur(0), eur(0), eur(total+300)
			return p
		}
		facts := []events.Event{events.New(rs, shop, step(0), describe(1, step(0)))}
		if rng.IntN(4) == 0 {
			facts = append(facts, events.New(rs, shop, step(1), describe(2, step(1))))
		}
		facts = append(facts, events.New(rs, shop, step(2), events.SalePaid{ReceiptID: id}))
		switch k := rng.IntN(10); {
		case k == 0:
			facts = append(facts, events.New(rs, shop, step(3), events.SaleCanceled{ReceiptID: id, Reason: "buyer"}))
		case k < 7:
			facts = append(facts, events.New(rs, shop, step(3), events.SaleShipped{ReceiptID: id, Carrier: "dhl", TrackingCode: fmt.Sprint("T", id)}))
			if k < 5 {
				facts = append(facts, events.New(rs, shop, step(4), events.SaleDelivered{ReceiptID: id}))
			}
		}
		if rng.IntN(5) == 0 {
			facts = append(facts, events.New(rs, shop, step(5), events.SaleRefunded{ReceiptID: id, Amount: eur(500), RefundKey: fmt.Sprint("rf", id)}))
		}
		out = append(out, facts)
	}
	return out
}

// shuffleAndRepeat returns the same facts in a random order, some of them
// twice (as new events: a webhook and a poll that both saw them).
func shuffleAndRepeat(rng *rand.Rand, facts []events.Event) []events.Event {
	var out []events.Event
	for _, e := range facts {
		out = append(out, e)
		if rng.IntN(3) == 0 {
			again := events.New(e.StreamID, e.ShopID, e.OccurredAt, e.Data)
			out = append(out, again)
		}
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

func projectSales(t *testing.T, receipts [][]events.Event) *sql.DB {
	t.Helper()
	db := pgtest.New(t)
	s := eventstore.New(db.DB)
	ctx := context.Background()
	for _, facts := range receipts {
		if _, err := s.Append(ctx, facts[0].StreamID, eventstore.Any, facts...); err != nil {
			t.Fatal(err)
		}
	}
	projs := []engine.Projection{projections.NewSales()}
	_, stop := projtest.StartRunner(t, db.DB, projs, projtest.FastConfig(), nil)
	projtest.WaitCaughtUp(t, db.DB, projtest.Names(projs), 60*time.Second)
	stop()
	return db.DB
}

// salesRows is everything the sales projection wrote, row by row in key
// order, as JSON: the fold's result, unrecorded receipts included.
type salesRows struct {
	Sales, Items, Daily string
	Count               int
}

func allSales(t *testing.T, db *sql.DB) salesRows {
	t.Helper()
	var r salesRows
	for _, q := range []struct {
		dest       *string
		table, key string
	}{{&r.Sales, "sales", "receipt_id"}, {&r.Items, "sale_items", "receipt_id, line"}, {&r.Daily, "sales_daily", "shop_id, day, currency"}} {
		if err := db.QueryRow(`SELECT coalesce(json_agg(x ORDER BY ` + q.key + `), '[]')::text FROM ` + q.table + ` x`).Scan(q.dest); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.QueryRow(`SELECT count(*) FROM sales`).Scan(&r.Count); err != nil {
		t.Fatal(err)
	}
	return r
}

func saleStatuses(t *testing.T, db *sql.DB) map[int64]string {
	t.Helper()
	rows, err := db.Query(`SELECT receipt_id, status FROM sales`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64]string{}
	for rows.Next() {
		var id int64
		var status string
		if err := rows.Scan(&id, &status); err != nil {
			t.Fatal(err)
		}
		out[id] = status
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSalesIgnoreArrivalOrderAndRepeats is checklist item 27: the facts of
// 1000 receipts, shuffled and partly repeated, give the same sales, items
// and daily sums as the same facts in order.
func TestSalesIgnoreArrivalOrderAndRepeats(t *testing.T) {
	rng := rand.New(rand.NewPCG(27, 27))
	inOrder := receiptFacts(rng, 1000)
	var shuffled [][]events.Event
	for _, facts := range inOrder {
		shuffled = append(shuffled, shuffleAndRepeat(rng, facts))
	}
	want := allSales(t, projectSales(t, inOrder))
	got := allSales(t, projectSales(t, shuffled))
	if want.Count != 1000 {
		t.Fatalf("in order: %d sales, want 1000", want.Count)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("sales, items and daily sums from shuffled, repeated facts (-in order +shuffled):\n%s", diff)
	}
}

// A partial refund gives the same status whether the receipt was first
// recorded before the refund (a webhook) or after it (a poll that saw
// Etsy's "partially refunded" status).
func TestPartialRefundStatusDoesNotDependOnWhenTheSaleWasFirstSeen(t *testing.T) {
	history := func(id int64, firstStatus string) []events.Event {
		rs := events.ReceiptStream(id)
		rec := events.SaleRecorded{ReceiptID: id, ShopID: 1, Status: firstStatus, CreatedAt: projtest.T0, EtsyUpdatedAt: projtest.T0,
			Items:    []events.SaleItem{{TransactionID: id * 10, ListingID: 9, VariantKey: "k", Quantity: 1, UnitPrice: eur(2000)}},
			Subtotal: eur(2000), Shipping: eur(0), Tax: eur(0), Discount: eur(0), GrandTotal: eur(2000)}
		return []events.Event{
			events.New(rs, 1, projtest.T0, rec),
			events.New(rs, 1, projtest.T0.Add(time.Minute), events.SalePaid{ReceiptID: id}),
			events.New(rs, 1, projtest.T0.Add(2*time.Minute), events.SaleShipped{ReceiptID: id}),
			events.New(rs, 1, projtest.T0.Add(3*time.Minute), events.SaleRefunded{ReceiptID: id, Amount: eur(500), RefundKey: "r1"}),
		}
	}
	db := projectSales(t, [][]events.Event{history(1, "paid"), history(2, "partially refunded")})
	got := saleStatuses(t, db)
	want := map[int64]string{1: projections.SalePartiallyRefunded, 2: projections.SalePartiallyRefunded}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("status by receipt (-want +got):\n%s", diff)
	}
}
