package projections_test

import (
	"context"
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

// TestClearedThresholdsFallBack sets lines at every scope, clears them
// again, and reads what applies, live and after a rebuild alike.
func TestClearedThresholdsFallBack(t *testing.T) {
	db := pgtest.New(t)
	s := eventstore.New(db.DB)
	ctx := context.Background()
	at := func(m int) time.Time { return projtest.T0.Add(time.Duration(m) * time.Minute) }
	shop, listing := int64(7), int64(70)
	ls, ss := events.ListingStream(listing), events.ShopStream(shop)
	set := func(scope, key string, n int64) events.StockThresholdSet {
		p := events.StockThresholdSet{Scope: scope, ShopID: shop, Threshold: n, Actor: "ann"}
		if scope != events.ScopeShop {
			p.ListingID, p.VariantKey = listing, key
		}
		return p
	}
	clear := func(scope, key string) events.StockThresholdCleared {
		p := events.StockThresholdCleared{Scope: scope, ShopID: shop, Actor: "bob", Reason: "set by mistake"}
		if scope != events.ScopeShop {
			p.ListingID, p.VariantKey = listing, key
		}
		return p
	}
	projtest.AppendAll(t, s, []projtest.Batch{
		{Stream: ss, Events: []events.Event{events.New(ss, shop, at(0), events.ShopConnected{ShopID: shop, ShopName: "Knots", UserID: 77, Currency: "EUR"})}},
		{Stream: ls, Events: []events.Event{
			events.New(ls, shop, at(1), events.ListingImported{ListingID: listing, ShopID: shop, Title: "Mug", State: "active", Price: eur(1250), EtsyUpdatedAt: at(1),
				Variants: []events.Variant{{Key: "sku:BLUE", SKU: "BLUE", Price: eur(1250), Enabled: true}, {Key: "sku:RED", SKU: "RED", Price: eur(1250), Enabled: true}}}),
			events.New(ls, shop, at(2), set(events.ScopeListing, "", 8)),
			events.New(ls, shop, at(3), set(events.ScopeVariant, "sku:RED", 1)),
			events.New(ls, shop, at(4), set(events.ScopeVariant, "sku:BLUE", 40)),
		}},
		{Stream: ss, Events: []events.Event{events.New(ss, shop, at(5), set(events.ScopeShop, "", 3))}},
		{Stream: ls, Events: []events.Event{
			events.New(ls, shop, at(6), clear(events.ScopeVariant, "sku:BLUE")), // BLUE falls back to the listing's 8
			events.New(ls, shop, at(7), clear(events.ScopeListing, "")),         // and then to the shop's 3
		}},
	})
	projs := projections.Default()
	projtest.StartRunner(t, db.DB, projs, projtest.FastConfig(), nil)
	projtest.WaitCaughtUp(t, db.DB, projtest.Names(projs), 30*time.Second)

	type line struct {
		Key       string
		Threshold int64
		Source    string
	}
	lines := func() []line {
		t.Helper()
		p, err := reader(db.DB).GetProduct(ctx, []int64{shop}, listing)
		if err != nil {
			t.Fatal(err)
		}
		if p.LowStockThreshold != nil {
			t.Errorf("listing threshold = %d after it was cleared", *p.LowStockThreshold)
		}
		var out []line
		for _, v := range p.Variants {
			out = append(out, line{v.VariantKey, v.LowStockThreshold, v.ThresholdSource})
		}
		return out
	}
	want := []line{{"sku:BLUE", 3, "shop"}, {"sku:RED", 1, "variant"}}
	if diff := cmp.Diff(want, lines()); diff != "" {
		t.Errorf("lines after clearing the variant's and the listing's (-want +got):\n%s", diff)
	}

	projtest.AppendAll(t, s, []projtest.Batch{{Stream: ss, Events: []events.Event{events.New(ss, shop, at(8), clear(events.ScopeShop, ""))}}})
	projtest.WaitCaughtUp(t, db.DB, projtest.Names(projs), 30*time.Second)
	sh, err := reader(db.DB).GetShop(ctx, []int64{shop}, shop)
	if err != nil {
		t.Fatal(err)
	}
	if sh.DefaultLowStockThreshold != testDefaultThreshold {
		t.Errorf("shop default = %d after it was cleared, want the configured %d", sh.DefaultLowStockThreshold, testDefaultThreshold)
	}
	want = []line{{"sku:BLUE", testDefaultThreshold, "default"}, {"sku:RED", 1, "variant"}}
	if diff := cmp.Diff(want, lines()); diff != "" {
		t.Errorf("lines after clearing the shop's (-want +got):\n%s", diff)
	}

	targets, _ := projtest.Rebuildable(t)
	projtest.RebuildShadow(t, db.Pool, db.DB, targets)
	// The tables these events reach; the others are empty here.
	projtest.RequireSameTables(t, db.DB, []string{"shops", "products", "product_variants"}, engine.ShadowSuffix)
}

// TestShopReportsTheIntervalInForce: the shop's sync interval is the one
// its last reconciliation ran under, or its own setting, whichever came
// last; a run that recorded none leaves it.
func TestShopReportsTheIntervalInForce(t *testing.T) {
	db := pgtest.New(t)
	s := eventstore.New(db.DB)
	at := func(m int) time.Time { return projtest.T0.Add(time.Duration(m) * time.Minute) }
	shop := int64(9)
	ss, rs := events.ShopStream(shop), "reconciliation-shop-9"
	done := func(m int, interval int64) events.Event {
		return events.New(rs, shop, at(m), events.ReconciliationCompleted{ShopID: shop, StartedAt: at(m), FinishedAt: at(m), Watermark: at(m), Scope: "all", IntervalSeconds: interval})
	}
	hour := int64(3600)
	projs := projections.Default()
	projtest.StartRunner(t, db.DB, projs, projtest.FastConfig(), nil)
	interval := func() int64 {
		t.Helper()
		projtest.WaitCaughtUp(t, db.DB, projtest.Names(projs), 30*time.Second)
		sh, err := reader(db.DB).GetShop(context.Background(), []int64{shop}, shop)
		if err != nil {
			t.Fatal(err)
		}
		return sh.SyncIntervalSeconds
	}
	var got []int64
	projtest.AppendAll(t, s, []projtest.Batch{{Stream: ss, Events: []events.Event{events.New(ss, shop, at(0), events.ShopConnected{ShopID: shop, ShopName: "Clocks", UserID: 90})}}})
	got = append(got, interval())
	projtest.AppendAll(t, s, []projtest.Batch{{Stream: rs, Events: []events.Event{done(1, 300)}}})
	got = append(got, interval())
	projtest.AppendAll(t, s, []projtest.Batch{{Stream: ss, Events: []events.Event{events.New(ss, shop, at(2), events.ShopSettingsChanged{ShopID: shop, SyncIntervalSeconds: &hour})}}})
	got = append(got, interval())
	projtest.AppendAll(t, s, []projtest.Batch{{Stream: rs, Events: []events.Event{done(3, 0)}}})
	got = append(got, interval())
	if diff := cmp.Diff([]int64{900, 300, 3600, 3600}, got); diff != "" {
		t.Errorf("sync_interval_seconds after each event (-want +got):\n%s", diff)
	}
}
