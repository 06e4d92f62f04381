package projections_test

import (
	"context"
	"testing"

	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/projections"
)

func TestReadersOnEmptyDatabase(t *testing.T) {
	db := pgtest.New(t)
	r := projections.NewReader(db.DB)
	ctx := context.Background()
	all := projections.AllShops()
	if _, err := r.ListShops(ctx, projections.ShopFilter{Scope: all}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ListProducts(ctx, projections.ProductFilter{Scope: all, LowStockOnly: true, Search: "x"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ListVariants(ctx, projections.VariantFilter{Scope: all, LowStockOnly: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ListMovements(ctx, projections.MovementFilter{Scope: all}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ListSales(ctx, projections.SaleFilter{Scope: projections.ShopScope(1)}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ListSalesDaily(ctx, projections.DailyFilter{Scope: all}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ListSealed(ctx, projections.SealFilter{Scope: all}); err != nil {
		t.Fatal(err)
	}
	if _, err := projections.VerifySeal(ctx, db.DB); err != nil {
		t.Fatal(err)
	}
}
