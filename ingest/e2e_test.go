package ingest_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/etsy/etsysim"
	"github.com/shopledger/shopledger/etsymap"
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/ingest"
	"github.com/shopledger/shopledger/service/servicetest"
)

// The whole path against the simulator: its webhooks (10% delivered twice,
// 10% held back behind later ones) reach the endpoint over HTTP, the
// fetcher follows them, and the ledger ends with exactly the simulator's
// receipts and stock movements.
func TestEndToEndOrdersWithDuplicatedAndReorderedWebhooks(t *testing.T) {
	t.Parallel()
	orders := 1000
	if testing.Short() {
		orders = 150
	}
	e := newEtsyRig(t, etsysim.Options{
		Seed:   7,
		Faults: etsysim.Faults{Duplicate: 0.1, Reorder: 0.1, MaxDelay: 300 * time.Millisecond},
	})
	p := newPipeline(t, e, ingest.FetcherConfig{})
	shop, err := e.sim.CreateShop(etsysim.ShopSpec{Name: "E2E"})
	if err != nil {
		t.Fatal(err)
	}
	e.connect(t, shop.ShopID)
	var listingIDs []int64
	for i := range 12 {
		spec := etsysim.ListingSpec{Title: fmt.Sprintf("Item %d", i), Price: int64(1000 + 100*i)}
		stock := 90
		if i%4 == 3 {
			stock = 4 // sells out: inventory.out_of_stock and listing.updated fire
		}
		for v, color := range []string{"Red", "Green", "Blue"} {
			ps := etsysim.ProductSpec{Quantity: stock, PropertyValues: []etsysim.PropertyValueSpec{{PropertyName: "Color", Value: color}}}
			if v != 2 {
				ps.SKU = fmt.Sprintf("SKU-%d-%s", i, color) // the third variant is known by its property values
			}
			spec.Products = append(spec.Products, ps)
		}
		l, err := e.sim.CreateListing(shop.ShopID, spec)
		if err != nil {
			t.Fatal(err)
		}
		listingIDs = append(listingIDs, l.ListingID)
	}

	// Reconciliation would import the catalogue; do what it does.
	ctx := context.Background()
	ts, _ := e.tokens.ForShop(ctx, shop.ShopID)
	for l, err := range e.client.AllListingsByShop(ctx, ts, shop.ShopID, etsy.ListingActive, true) {
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.translator.ApplyListing(ctx, shop.ShopID, l, etsymap.Cause{Source: etsymap.SourceReconciliation, Ref: "reconciliation"}); err != nil {
			t.Fatal(err)
		}
	}

	if _, err := e.sim.AddWebhook(etsysim.WebhookSpec{URL: p.srv.URL + ingest.WebhookPath, Secret: secretA}); err != nil {
		t.Fatal(err)
	}
	stop := p.run(t)
	defer stop()
	for range orders {
		if _, err := e.sim.RandomOrder(shop.ShopID); err != nil {
			t.Fatalf("order: %v", err)
		}
	}

	// Quiescence: the simulator has delivered everything and the fetcher
	// has a final outcome for every piece of evidence.
	waitUntil(t, 3*time.Minute, func() bool {
		return len(e.sim.Deliveries(etsysim.DeliveryFilter{State: etsysim.DeliveryPending})) == 0
	})
	var evidence int
	waitUntil(t, 3*time.Minute, func() bool {
		if err := p.db.DB.QueryRow(`SELECT count(*) FROM events WHERE type = $1`, events.TypeWebhookReceived).Scan(&evidence); err != nil {
			t.Fatal(err)
		}
		done := 0.0
		for _, o := range []string{ingest.OutcomeApplied, ingest.OutcomeIgnored, ingest.OutcomeFailed} {
			done += servicetest.Metric(t, p.reg, "ingest_fetch_total", map[string]string{"outcome": o})
		}
		return int(done) >= evidence
	})

	deliveries := e.sim.Deliveries(etsysim.DeliveryFilter{})
	var dups, reordered int
	for _, d := range deliveries {
		if d.State != etsysim.DeliverySucceeded {
			t.Errorf("delivery %s ended %s", d.MessageID, d.State)
		}
		for _, f := range d.Faults {
			switch f {
			case "duplicate":
				dups++
			case "reorder":
				reordered++
			}
		}
	}
	t.Logf("%d orders, %d webhook messages (%d duplicated, %d reordered), %d evidence events", orders, len(deliveries), dups, reordered, evidence)
	if dups == 0 || reordered == 0 {
		t.Errorf("faults did not happen: %d duplicated, %d reordered", dups, reordered)
	}
	if evidence != len(deliveries) {
		t.Errorf("%d evidence events for %d webhook messages: each message once", evidence, len(deliveries))
	}
	var failed int
	if err := p.db.DB.QueryRow(`SELECT count(*) FROM events WHERE type = $1`, events.TypeFetchFailed).Scan(&failed); err != nil {
		t.Fatal(err)
	}
	if failed != 0 {
		t.Errorf("%d fetch_failed events, want 0", failed)
	}

	truth := e.sim.Truth(shop.ShopID)
	if len(truth.Receipts) != orders {
		t.Fatalf("simulator has %d receipts, want %d", len(truth.Receipts), orders)
	}

	// Receipts: one sale.recorded per receipt with the simulator's lines
	// and totals, paid once.
	type line struct {
		Txn, Listing int64
		Key          string
		Qty, Price   int64
	}
	type sale struct {
		Lines                                []line
		Subtotal, Shipping, Tax, Disc, Grand int64
		Paid                                 int
	}
	wantSales := map[int64]sale{}
	wantSold := map[int64]int64{} // transaction -> quantity
	for _, r := range truth.Receipts {
		s := sale{Subtotal: r.Subtotal, Shipping: r.ShippingCost, Tax: r.TaxCost, Disc: r.Discount, Grand: r.GrandTotal, Paid: 1}
		for _, it := range r.Items {
			s.Lines = append(s.Lines, line{Txn: it.TransactionID, Listing: it.ListingID, Key: it.VariantKey, Qty: int64(it.Quantity), Price: it.Price})
			wantSold[it.TransactionID] = int64(it.Quantity)
		}
		wantSales[r.ReceiptID] = s
	}
	gotSales := map[int64]sale{}
	gotSold := map[int64]int64{}
	rows, err := p.db.DB.Query(`SELECT ` + eventstore.RecordColumns + ` FROM events WHERE type IN ('sale.recorded', 'sale.paid', 'stock.sold') ORDER BY position`)
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range scanAll(t, rows) {
		switch d := rec.Data.(type) {
		case events.SaleRecorded:
			if _, dup := gotSales[d.ReceiptID]; dup {
				t.Errorf("receipt %d recorded twice", d.ReceiptID)
			}
			s := gotSales[d.ReceiptID]
			s.Subtotal, s.Shipping, s.Tax, s.Disc, s.Grand = d.Subtotal.Amount, d.Shipping.Amount, d.Tax.Amount, d.Discount.Amount, d.GrandTotal.Amount
			for _, it := range d.Items {
				s.Lines = append(s.Lines, line{Txn: it.TransactionID, Listing: it.ListingID, Key: it.VariantKey, Qty: it.Quantity, Price: it.UnitPrice.Amount})
			}
			gotSales[d.ReceiptID] = s
		case events.SalePaid:
			s := gotSales[d.ReceiptID]
			s.Paid++
			gotSales[d.ReceiptID] = s
		case events.StockSold:
			if _, dup := gotSold[d.TransactionID]; dup {
				t.Errorf("transaction %d sold twice", d.TransactionID)
			}
			gotSold[d.TransactionID] = d.Quantity
		}
	}
	if diff := cmp.Diff(wantSales, gotSales); diff != "" {
		t.Errorf("sales (-simulator +ledger):\n%s", diff)
	}
	if diff := cmp.Diff(wantSold, gotSold); diff != "" {
		t.Errorf("stock sold per transaction (-simulator +ledger):\n%s", diff)
	}

	// Stock: the only movements after the import are the sales, and every
	// balance is the simulator's quantity.
	var changes int
	if err := p.db.DB.QueryRow(`SELECT count(*) FROM events WHERE type = 'stock.adjusted' AND data->>'reason' <> $1`, events.ReasonInitialImport).Scan(&changes); err != nil {
		t.Fatal(err)
	}
	if changes != 0 {
		t.Errorf("%d stock adjustments besides the import: sales were taken for changes at Etsy", changes)
	}
	for _, id := range listingIDs {
		if diff := balanceDiff(t, e, p, id); diff != "" {
			t.Errorf("listing %d balances (-simulator +ledger):\n%s", id, diff)
		}
	}
}

func waitUntil(t *testing.T, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not reached within %v", within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func scanAll(t *testing.T, rows *sql.Rows) []events.Record {
	t.Helper()
	defer rows.Close()
	var out []events.Record
	for rows.Next() {
		r, err := eventstore.ScanRecord(rows)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
