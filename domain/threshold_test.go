package domain_test

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shopledger/shopledger/domain"
	"github.com/shopledger/shopledger/events"
)

func n(v int64) *int64 { return &v }

func TestLinesResolve(t *testing.T) {
	for _, c := range []struct {
		name       string
		lines      domain.Lines
		want       int64
		wantSource string
	}{
		{"nothing set: the configured default", domain.Lines{}, 7, domain.SourceDefault},
		{"shop default", domain.Lines{Shop: n(3)}, 3, domain.SourceShop},
		{"listing over shop, zero counts", domain.Lines{Listing: n(0), Shop: n(3)}, 0, domain.SourceListing},
		{"variant over all", domain.Lines{Variant: n(9), Listing: n(0), Shop: n(3)}, 9, domain.SourceVariant},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, source := c.lines.Resolve(7)
			if got != c.want || source != c.wantSource {
				t.Errorf("Resolve(7) = %d, %s; want %d, %s", got, source, c.want, c.wantSource)
			}
		})
	}
}

func TestLowStockCrossing(t *testing.T) {
	for _, c := range []struct {
		name               string
		balance, threshold int64
		open, deleted      bool
		want               domain.Crossing
	}{
		{"falls to the line: raise", 5, 5, false, false, domain.Raise},
		{"above the line: nothing", 6, 5, false, false, domain.NoCrossing},
		{"still low, already open: nothing", 2, 5, true, false, domain.NoCrossing},
		{"rises above: clear", 6, 5, true, false, domain.Clear},
		{"deleted listing with open alert: clear as deleted", 0, 5, true, true, domain.ClearDeleted},
		{"deleted listing never raises", 0, 5, false, true, domain.NoCrossing},
		{"negative balance is low", -1, 0, false, false, domain.Raise},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := domain.LowStockCrossing(c.balance, c.threshold, c.open, c.deleted); got != c.want {
				t.Errorf("LowStockCrossing(%d, %d, %v, %v) = %d, want %d", c.balance, c.threshold, c.open, c.deleted, got, c.want)
			}
		})
	}
}

func TestSetThreshold(t *testing.T) {
	for _, c := range []struct {
		name       string
		target     domain.ThresholdTarget
		n          int64
		actor      string
		want       events.StockThresholdSet
		wantStream string
		wantErr    error
	}{
		{name: "shop default", target: domain.ThresholdTarget{ShopID: 7}, n: 3, actor: " ann ",
			want: events.StockThresholdSet{Scope: events.ScopeShop, ShopID: 7, Threshold: 3, Actor: "ann"}, wantStream: "shop-7"},
		{name: "listing", target: domain.ThresholdTarget{ShopID: 7, ListingID: 1}, n: 0, actor: "ann",
			want: events.StockThresholdSet{Scope: events.ScopeListing, ShopID: 7, ListingID: 1, Threshold: 0, Actor: "ann"}, wantStream: "listing-1"},
		{name: "variant", target: domain.ThresholdTarget{ShopID: 7, ListingID: 1, VariantKey: "sku:RED"}, n: domain.MaxThreshold, actor: "ann",
			want:       events.StockThresholdSet{Scope: events.ScopeVariant, ShopID: 7, ListingID: 1, VariantKey: "sku:RED", Threshold: domain.MaxThreshold, Actor: "ann"},
			wantStream: "listing-1"},
		{name: "negative", target: domain.ThresholdTarget{ShopID: 7}, n: -1, actor: "ann", wantErr: domain.ErrInvalidThreshold},
		{name: "too large", target: domain.ThresholdTarget{ShopID: 7}, n: domain.MaxThreshold + 1, actor: "ann", wantErr: domain.ErrInvalidThreshold},
		{name: "no shop", target: domain.ThresholdTarget{ListingID: 1}, n: 3, actor: "ann", wantErr: domain.ErrInvalidThreshold},
		{name: "variant without listing", target: domain.ThresholdTarget{ShopID: 7, VariantKey: "sku:RED"}, n: 3, actor: "ann", wantErr: domain.ErrInvalidThreshold},
		{name: "no actor", target: domain.ThresholdTarget{ShopID: 7}, n: 3, actor: "  ", wantErr: domain.ErrInvalidThreshold},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := domain.SetThreshold(c.target, c.n, c.actor)
			if !errors.Is(err, c.wantErr) {
				t.Fatalf("SetThreshold: error %v, want %v", err, c.wantErr)
			}
			if err != nil {
				return
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("event (-want +got):\n%s", diff)
			}
			if s := c.target.Stream(); s != c.wantStream {
				t.Errorf("stream %q, want %q", s, c.wantStream)
			}
		})
	}
}

func TestClearThreshold(t *testing.T) {
	got, err := domain.ClearThreshold(domain.ThresholdTarget{ShopID: 7, ListingID: 1}, "ann", " wrong listing ")
	if err != nil {
		t.Fatal(err)
	}
	want := events.StockThresholdCleared{Scope: events.ScopeListing, ShopID: 7, ListingID: 1, Actor: "ann", Reason: "wrong listing"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("event (-want +got):\n%s", diff)
	}
	if _, err := domain.ClearThreshold(domain.ThresholdTarget{ShopID: 7}, "", ""); !errors.Is(err, domain.ErrInvalidThreshold) {
		t.Errorf("clear without actor: error %v, want ErrInvalidThreshold", err)
	}
}

func TestListingDrift(t *testing.T) {
	red, blue := variant("sku:RED", 5), variant("sku:BLUE", 2)
	for _, c := range []struct {
		name string
		past []events.Payload
		view domain.ListingView
		want []events.StockDriftDetected
	}{
		{name: "never imported: a first import is not drift", view: view(red)},
		{name: "agrees: no drift", past: []events.Payload{imported(red, blue),
			events.StockAdjusted{ListingID: 1, VariantKey: "sku:RED", Delta: 5, Reason: events.ReasonInitialImport},
			events.StockAdjusted{ListingID: 1, VariantKey: "sku:BLUE", Delta: 2, Reason: events.ReasonInitialImport}},
			view: view(red, blue)},
		{name: "a sale the ledger missed", past: []events.Payload{imported(red),
			events.StockAdjusted{ListingID: 1, VariantKey: "sku:RED", Delta: 5, Reason: events.ReasonInitialImport}},
			view: view(variant("sku:RED", 3)),
			want: []events.StockDriftDetected{{ListingID: 1, VariantKey: "sku:RED", Expected: 5, Observed: 3}}},
		{name: "a variant Etsy no longer lists", past: []events.Payload{imported(red, blue),
			events.StockAdjusted{ListingID: 1, VariantKey: "sku:RED", Delta: 5, Reason: events.ReasonInitialImport},
			events.StockAdjusted{ListingID: 1, VariantKey: "sku:BLUE", Delta: 2, Reason: events.ReasonInitialImport}},
			view: view(red),
			want: []events.StockDriftDetected{{ListingID: 1, VariantKey: "sku:BLUE", Expected: 2, Observed: 0}}},
		{name: "an invalid view yields none", past: []events.Payload{imported(red)}, view: view(variant("sku:RED", -1))},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := domain.ReplayListing(1, given(7, c.past...))
			before := l.Balances()
			got := l.Drift(c.view, obs)
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("drift (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(before, l.Balances()); diff != "" {
				t.Errorf("Drift changed the listing's balances (-before +after):\n%s", diff)
			}
		})
	}
}
