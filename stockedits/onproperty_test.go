package stockedits_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shopledger/shopledger/domain"
	"github.com/shopledger/shopledger/etsy/etsysim"
	"github.com/shopledger/shopledger/events"
)

// A count on one variant of a listing whose quantities vary on colour
// only cannot be written with quantity_on_property as it was: Etsy would
// refuse products of one colour with different quantities. The push
// widens the array to colour and size and lands, with every other
// variant as it was.
func TestCountOnOneVariantWidensQuantityOnProperty(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	spec := etsysim.ListingSpec{Title: "Beanie", Price: 2000}
	for _, c := range []string{"Navy", "Red"} {
		for _, s := range []string{"S", "L"} {
			spec.Products = append(spec.Products, etsysim.ProductSpec{SKU: "B-" + c + "-" + s, Quantity: 4, PropertyValues: []etsysim.PropertyValueSpec{
				{PropertyID: 200, PropertyName: "Primary color", Value: c}, {PropertyName: "Size", Value: s}}})
		}
	}
	l, err := e.sim.CreateListing(e.shop.ShopID, spec)
	if err != nil {
		t.Fatal(err)
	}
	// The seller stocks by colour: quantities vary on colour only.
	ts := mustTokens(t, e)
	inv, err := e.client.GetListingInventory(ctx, ts, l.ListingID)
	if err != nil {
		t.Fatal(err)
	}
	u := inv.Update()
	for i := range u.Products {
		if u.Products[i].SKU == "B-Red-S" || u.Products[i].SKU == "B-Red-L" {
			u.Products[i].Offerings[0].Quantity = 6
		}
	}
	u.QuantityOnProperty = []int64{200}
	if _, err := e.client.UpdateListingInventory(ctx, ts, l.ListingID, u); err != nil {
		t.Fatal(err)
	}
	e.reconcile()

	e.submit(l.ListingID, domain.EditCommand{Kind: events.EditCount, VariantKey: "sku:B-Navy-S", Quantity: 1}, "req-1")
	e.drain()

	if n := e.count(l.ListingID, events.TypeStockEditFailed); n != 0 {
		t.Fatalf("%d failed pushes, want none", n)
	}
	if n := e.count(l.ListingID, events.TypeStockEditPushed); n != 1 {
		t.Fatalf("%d pushed events, want 1", n)
	}
	want := map[string]int{"sku:B-Navy-S": 1, "sku:B-Navy-L": 4, "sku:B-Red-S": 6, "sku:B-Red-L": 6}
	got := map[string]int{}
	for _, v := range e.truth(l.ListingID).Variants {
		got[v.VariantKey] = v.Quantity
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Etsy's quantities (-want +got):\n%s", diff)
	}
	after, err := e.client.GetListingInventory(ctx, ts, l.ListingID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int64{200, 513}, after.QuantityOnProperty); diff != "" {
		t.Errorf("quantity_on_property (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(inv.SKUOnProperty, after.SKUOnProperty); diff != "" {
		t.Errorf("sku_on_property changed (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(inv.PriceOnProperty, after.PriceOnProperty); diff != "" {
		t.Errorf("price_on_property changed (-before +after):\n%s", diff)
	}
	if got := e.balance(l.ListingID, "sku:B-Navy-S"); got != 1 {
		t.Errorf("ledger balance = %d, want 1", got)
	}
	e.wantNoDrift(t, "after the push")
}

// A price set on one variant of a listing whose prices do not vary at all
// widens price_on_property to the one property the prices now vary on.
func TestPriceOnOneVariantWidensPriceOnProperty(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	spec := etsysim.ListingSpec{Title: "Beanie", Price: 2000}
	for _, s := range []string{"S", "M", "L"} {
		spec.Products = append(spec.Products, etsysim.ProductSpec{SKU: "B-" + s, Quantity: 4, PropertyValues: []etsysim.PropertyValueSpec{
			{PropertyName: "Size", Value: s}}})
	}
	l, err := e.sim.CreateListing(e.shop.ShopID, spec)
	if err != nil {
		t.Fatal(err)
	}
	e.reconcile()
	price := events.Money{Amount: 2500, Currency: "EUR"}
	e.submit(l.ListingID, domain.EditCommand{Kind: events.EditPrice, VariantKey: "sku:B-L", Price: &price}, "req-1")
	e.drain()

	if n := e.count(l.ListingID, events.TypeStockEditFailed); n != 0 {
		t.Fatalf("%d failed pushes, want none", n)
	}
	if got := e.variant(l.ListingID, "sku:B-L").Price; got != 2500 {
		t.Errorf("price at Etsy = %d, want 2500", got)
	}
	after, err := e.client.GetListingInventory(ctx, mustTokens(t, e), l.ListingID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int64{513}, after.PriceOnProperty); diff != "" {
		t.Errorf("price_on_property (-want +got):\n%s", diff)
	}
}
