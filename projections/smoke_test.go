package projections_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/projections"
)

// testDefaultThreshold is the configured default of the tests' readers,
// apart from the built-in one so that a reader ignoring it shows.
const testDefaultThreshold = 7

func reader(db *sql.DB) *projections.Reader {
	return projections.NewReader(db, projections.ReaderConfig{DefaultThreshold: testDefaultThreshold})
}

func TestReadersOnEmptyDatabase(t *testing.T) {
	db := pgtest.New(t)
	r := reader(db.DB)
	ctx := context.Background()
	mine := []int64{1}
	if _, err := r.ListShops(ctx, mine); err != nil {
		t.Fatal(err)
	}
	if _, err := r.SellerShopIDs(ctx, 77); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"listing_id", "title", "quantity", "updated_at"} {
		f := projections.ProductFilter{Shops: mine, LowStockOnly: true, Search: "x%_", Sort: projections.ProductSort{Key: key, Desc: true},
			After: &projections.ProductCursor{ListingID: 1, Title: "a", Quantity: 1, UpdatedAt: time.Now()}, Limit: 10}
		if _, err := r.ListProducts(ctx, f); err != nil {
			t.Fatalf("sort %s: %v", key, err)
		}
	}
	if _, err := r.History(ctx, projections.HistoryFilter{Shops: mine, ListingID: 1, VariantKey: "k", From: time.Now().Add(-time.Hour), To: time.Now(), AfterSeq: 3, Desc: true, Limit: 10}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ShopStockAt(ctx, mine, 1, time.Now(), 0, "", 10); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ListSales(ctx, projections.SaleFilter{Shops: mine, ShopID: 1, Status: "paid", From: time.Now().Add(-time.Hour), To: time.Now(),
		After: &projections.SaleCursor{CreatedAt: time.Now(), ReceiptID: 1}, Limit: 10}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.DailySales(ctx, mine, 1, time.Now().Add(-48*time.Hour), time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := r.TopProducts(ctx, mine, 1, time.Now().Add(-48*time.Hour), time.Now(), true, 10); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ListEvents(ctx, projections.EventFilter{Shops: mine, Limit: 10}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Causation(ctx, mine, uuid.New()); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ChainStatus(ctx, mine); err != nil {
		t.Fatal(err)
	}
	if _, err := projections.VerifySeal(ctx, db.DB); err != nil {
		t.Fatal(err)
	}
}
