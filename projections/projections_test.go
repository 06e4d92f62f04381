package projections_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/shopledger/shopledger/projections/internal/projtest"

	"github.com/google/go-cmp/cmp"

	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/projections"
)

func eur(n int64) events.Money { return events.Money{Amount: n, Currency: "EUR"} }

func ptr[T any](v T) *T { return &v }

// TestReadModelsFollowTheLog walks one shop through a listing, a sale, its
// status facts, a refund and thresholds at every scope, and reads every
// read model back.
func TestReadModelsFollowTheLog(t *testing.T) {
	db := pgtest.New(t)
	s := eventstore.New(db.DB)
	ctx := context.Background()
	at := func(m int) time.Time { return projtest.T0.Add(time.Duration(m) * time.Minute) }
	shop, listing, receipt := int64(7), int64(70), int64(700)
	ls, rs, ss := events.ListingStream(listing), events.ReceiptStream(receipt), events.ShopStream(shop)
	projtest.AppendAll(t, s, []projtest.Batch{
		{Stream: ss, Events: []events.Event{events.New(ss, shop, at(0), events.ShopConnected{ShopID: shop, ShopName: "Knots", UserID: 77, Currency: "EUR", Scopes: []string{"listings_r"}})}},
		{Stream: ls, Events: []events.Event{
			events.New(ls, shop, at(1), events.ListingImported{ListingID: listing, ShopID: shop, Title: "Mug", State: "active", Price: eur(1250), EtsyUpdatedAt: at(1),
				Variants: []events.Variant{{Key: "sku:BLUE", SKU: "BLUE", Properties: "Color: Blue", Price: eur(1250), Enabled: true}, {Key: "sku:RED", SKU: "RED", Properties: "Color: Red", Price: eur(1300), Enabled: true}}}),
			events.New(ls, shop, at(1), events.StockAdjusted{ListingID: listing, VariantKey: "sku:BLUE", Delta: 10, Reason: events.ReasonInitialImport, Cause: "reconciliation"}),
			events.New(ls, shop, at(1), events.StockAdjusted{ListingID: listing, VariantKey: "sku:RED", Delta: 2, Reason: events.ReasonInitialImport, Cause: "reconciliation"}),
		}},
		{Stream: rs, Events: []events.Event{events.New(rs, shop, at(2), events.SaleRecorded{ReceiptID: receipt, ShopID: shop, Status: "open",
			Items:    []events.SaleItem{{TransactionID: 9001, ListingID: listing, VariantKey: "sku:BLUE", SKU: "BLUE", Title: "Mug", Quantity: 3, UnitPrice: eur(1250)}},
			Subtotal: eur(3750), Shipping: eur(400), Tax: eur(0), Discount: eur(0), GrandTotal: eur(4150), CreatedAt: at(2), EtsyUpdatedAt: at(2)})}},
		{Stream: ls, Events: []events.Event{events.New(ls, shop, at(2), events.StockSold{ListingID: listing, VariantKey: "sku:BLUE", Quantity: 3, ReceiptID: receipt, TransactionID: 9001})}},
		{Stream: rs, Events: []events.Event{
			events.New(rs, shop, at(3), events.SalePaid{ReceiptID: receipt}),
			events.New(rs, shop, at(4), events.SaleShipped{ReceiptID: receipt, Carrier: "dhl", TrackingCode: "T1"}),
			events.New(rs, shop, at(5), events.SaleRefunded{ReceiptID: receipt, Amount: eur(1000), RefundKey: "r1"}),
			events.New(rs, shop, at(6), events.SaleRefunded{ReceiptID: receipt, Amount: eur(1000), RefundKey: "r1"}), // the same refund again
		}},
		{Stream: ls, Events: []events.Event{
			events.New(ls, shop, at(7), events.StockThresholdSet{Scope: events.ScopeListing, ShopID: shop, ListingID: listing, Threshold: 8}),
			events.New(ls, shop, at(8), events.StockThresholdSet{Scope: events.ScopeVariant, ShopID: shop, ListingID: listing, VariantKey: "sku:RED", Threshold: 1}),
			events.New(ls, shop, at(9), events.StockObserved{ListingID: listing, VariantKey: "sku:BLUE", Quantity: 7, ObservedAt: at(9), Source: "reconciliation"}),
			// Etsy's answer to our own write observes each variant; a key
			// the ledger does not know makes no variant.
			events.New(ls, shop, at(9), events.StockEditPushed{CommandIDs: []string{"c1"}, Attempt: 1, ListingID: listing,
				Quantities: map[string]int64{"sku:RED": 2, "sku:GONE": 5}, ProductIDs: map[string]int64{"sku:RED": 71, "sku:GONE": 72}}),
		}},
		{Stream: ss, Events: []events.Event{events.New(ss, shop, at(10), events.StockThresholdSet{Scope: events.ScopeShop, ShopID: shop, Threshold: 3})}},
	})
	projs := projections.Default()
	projtest.StartRunner(t, db.DB, projs, projtest.FastConfig(), nil)
	projtest.WaitCaughtUp(t, db.DB, projtest.Names(projs), 30*time.Second)

	r := reader(db.DB)
	mine := []int64{shop}

	p, err := r.GetProduct(ctx, mine, listing)
	if err != nil {
		t.Fatal(err)
	}
	if p.Quantity != 9 || p.Title != "Mug" || p.LowStockThreshold == nil || *p.LowStockThreshold != 8 || p.VariantCount != 2 || p.LowStockVariants != 1 {
		t.Errorf("product = quantity %d, title %q, threshold %v, %d variants, %d low; want 9, Mug, 8, 2, 1",
			p.Quantity, p.Title, p.LowStockThreshold, p.VariantCount, p.LowStockVariants)
	}
	type vsum struct {
		Key              string
		Quantity         int64
		Threshold        int64
		Source           string
		LowStock         bool
		ObservedQuantity *int64
	}
	var gotV []vsum
	for _, v := range p.Variants {
		gotV = append(gotV, vsum{v.VariantKey, v.Quantity, v.LowStockThreshold, v.ThresholdSource, v.LowStock, v.ObservedQuantity})
	}
	wantV := []vsum{
		{"sku:BLUE", 7, 8, "listing", true, ptr(int64(7))},
		{"sku:RED", 2, 1, "variant", false, ptr(int64(2))},
	}
	if diff := cmp.Diff(wantV, gotV); diff != "" {
		t.Errorf("variants (-want +got):\n%s", diff)
	}

	moves, err := r.History(ctx, projections.HistoryFilter{Shops: mine, ListingID: listing, VariantKey: "sku:BLUE", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	type msum struct {
		Seq, Delta, Balance int64
		Reason              string
		ReceiptID           *int64
	}
	var gotM []msum
	for _, m := range moves {
		gotM = append(gotM, msum{m.Seq, m.Delta, m.Balance, m.Reason, m.ReceiptID})
	}
	wantM := []msum{{1, 10, 10, events.ReasonInitialImport, nil}, {2, -3, 7, projections.ReasonSale, ptr(receipt)}}
	if diff := cmp.Diff(wantM, gotM); diff != "" {
		t.Errorf("movements (-want +got):\n%s", diff)
	}
	levels, err := r.ShopStockAt(ctx, mine, shop, at(1), 0, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	wantLevels := []projections.VariantStock{
		{ListingID: listing, VariantKey: "sku:BLUE", SKU: "BLUE", Quantity: 10, Movements: 1, LastMovementAt: ptr(at(1))},
		{ListingID: listing, VariantKey: "sku:RED", SKU: "RED", Quantity: 2, Movements: 1, LastMovementAt: ptr(at(1))},
	}
	if diff := cmp.Diff(wantLevels, levels); diff != "" {
		t.Errorf("stock at minute 1 (-want +got):\n%s", diff)
	}
	one, err := r.VariantStockAt(ctx, mine, listing, "sku:BLUE", at(2))
	if err != nil {
		t.Fatal(err)
	}
	if one.Quantity != 7 || one.Movements != 2 {
		t.Errorf("stock of sku:BLUE at minute 2 = %d after %d movements, want 7 after 2", one.Quantity, one.Movements)
	}

	sale, err := r.GetSale(ctx, mine, receipt)
	if err != nil {
		t.Fatal(err)
	}
	wantSale := projections.SaleDetail{
		Sale: projections.Sale{ShopID: shop, ReceiptID: receipt, Status: projections.SalePartiallyRefunded, Currency: "EUR",
			Subtotal: 3750, Shipping: 400, GrandTotal: 4150, Refunded: 1000, ItemCount: 1, Units: 3,
			CreatedAt: at(2), PaidAt: ptr(at(3)), ShippedAt: ptr(at(4)), Carrier: "dhl", RefundedAt: ptr(at(5))},
		Items: []projections.SaleItem{{TransactionID: 9001, ListingID: listing, VariantKey: "sku:BLUE", SKU: "BLUE", Title: "Mug", Quantity: 3, UnitPrice: eur(1250)}}}
	if diff := cmp.Diff(wantSale, sale); diff != "" {
		t.Errorf("sale (-want +got):\n%s", diff)
	}
	daily, err := r.DailySales(ctx, mine, shop, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	wantDaily := []projections.DailySales{{Day: "2026-03-01", Currency: "EUR", Orders: 1, Units: 3, Gross: 4150, Refunded: 1000}}
	if diff := cmp.Diff(wantDaily, daily); diff != "" {
		t.Errorf("daily sales (-want +got):\n%s", diff)
	}

	sh, err := r.GetShop(ctx, mine, shop)
	if err != nil {
		t.Fatal(err)
	}
	wantShop := projections.Shop{ShopID: shop, Name: "Knots", Currency: "EUR", ConnectionState: projections.ShopConnected,
		SyncEnabled: true, SyncIntervalSeconds: 900, DefaultLowStockThreshold: 3, ConnectedAt: ptr(at(0)), UpdatedAt: at(10)}
	if diff := cmp.Diff(wantShop, sh); diff != "" {
		t.Errorf("shop (-want +got):\n%s", diff)
	}

	// Tenancy: another seller's shops see none of it, and no shops see
	// nothing.
	for _, theirs := range [][]int64{{8}, nil} {
		if _, err := r.GetProduct(ctx, theirs, listing); !errors.Is(err, projections.ErrNotFound) {
			t.Errorf("GetProduct for shops %v: err = %v, want ErrNotFound", theirs, err)
		}
		if _, err := r.GetSale(ctx, theirs, receipt); !errors.Is(err, projections.ErrNotFound) {
			t.Errorf("GetSale for shops %v: err = %v, want ErrNotFound", theirs, err)
		}
		if _, err := r.VariantShop(ctx, theirs, listing, "sku:BLUE"); !errors.Is(err, projections.ErrNotFound) {
			t.Errorf("VariantShop for shops %v: err = %v, want ErrNotFound", theirs, err)
		}
		if ms, err := r.History(ctx, projections.HistoryFilter{Shops: theirs, ListingID: listing, VariantKey: "sku:BLUE", Limit: 10}); err != nil || len(ms) != 0 {
			t.Errorf("History for shops %v = %d rows, %v; want none", theirs, len(ms), err)
		}
		if ps, err := r.ListProducts(ctx, projections.ProductFilter{Shops: theirs, Sort: projections.ProductSort{Key: "listing_id"}, Limit: 10}); err != nil || len(ps) != 0 {
			t.Errorf("ListProducts for shops %v = %d rows, %v; want none", theirs, len(ps), err)
		}
		if ss, err := r.ListShops(ctx, theirs); err != nil || len(ss) != 0 {
			t.Errorf("ListShops for shops %v = %d rows, %v; want none", theirs, len(ss), err)
		}
	}
}
