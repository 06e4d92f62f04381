package stockedits_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopledger/shopledger/etsy/etsysim"
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/projections"
	"github.com/shopledger/shopledger/projections/engine"
	"github.com/shopledger/shopledger/stockedits"
)

// project runs the read models until every variant of the shop is in
// product_variants.
func (e *env) project(variants int) {
	e.t.Helper()
	e.projectUntil(func() bool {
		var n int
		if err := e.db.DB.QueryRow(`SELECT count(*) FROM product_variants WHERE shop_id = $1 AND active`, e.shop.ShopID).Scan(&n); err != nil {
			e.t.Fatal(err)
		}
		return n >= variants
	})
}

// projectUntil runs the read models until done says so.
func (e *env) projectUntil(done func() bool) {
	e.t.Helper()
	r, err := engine.NewRunner(e.db.DB, projections.Default(), engine.RunnerConfig{PollInterval: 20 * time.Millisecond},
		slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { defer close(stopped); _ = r.Run(ctx) }()
	defer func() { cancel(); <-stopped }()
	for range 1000 {
		if done() {
			return
		}
		sleepShort()
	}
	e.t.Fatal("read models never caught up")
}

// A stocktake file with unknown SKUs, duplicates, negative or
// non-integer counts is refused line by line and nothing is applied; a
// good one records a count for each change, once, and Etsy follows.
func TestStocktakePreviewAndApply(t *testing.T) {
	e := newEnv(t)
	l := e.listing(5, 7)
	tea, err := e.sim.CreateListing(e.shop.ShopID, etsysim.ListingSpec{Title: "Tea", Price: 900, Quantity: 3, SKU: "TEA-1"})
	if err != nil {
		t.Fatal(err)
	}
	e.reconcile()
	e.project(3)
	ctx := context.Background()

	bad := "sku,counted\nMUG-S,4\nNOPE,2\nMUG-M,-1\nTEA-1,2.5\nMUG-S,6\nTEA-2,x\n"
	st, err := e.svc.ApplyStocktake(ctx, e.actor(), e.shop.ShopID, strings.NewReader(bad), "st-bad")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ln := range st.Lines {
		got = append(got, ln.Error)
	}
	want := []string{
		"SKU listed twice (again on line 6)",
		"unknown SKU: no variant of this shop has it",
		"counted -1 is negative",
		`counted "2.5" is not a whole number`,
		"SKU listed twice (first on line 2)",
		`counted "x" is not a whole number`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("line errors (-want +got):\n%s", diff)
	}
	if st.Applied || st.Errors != 6 {
		t.Errorf("applied %v with %d errors, want not applied with 6", st.Applied, st.Errors)
	}
	if n := e.count(l.ListingID, events.TypeStockEditRequested) + e.count(tea.ListingID, events.TypeStockEditRequested); n != 0 {
		t.Fatalf("a refused stocktake recorded %d commands", n)
	}
	if _, err := e.svc.PreviewStocktake(ctx, e.actor(), e.shop.ShopID, strings.NewReader("code,qty\nA,1\n")); !errors.Is(err, stockedits.ErrBadStocktake) {
		t.Errorf("wrong header: err = %v", err)
	}
	if _, err := e.svc.PreviewStocktake(ctx, stockedits.Actor{Name: "x", Shops: []int64{1}}, e.shop.ShopID, strings.NewReader("sku,counted\n")); !errors.Is(err, stockedits.ErrNotFound) {
		t.Errorf("another organisation's shop: err = %v", err)
	}

	good := "sku,counted\nMUG-S,4\nMUG-M,7\nTEA-1,10\n"
	pre, err := e.svc.PreviewStocktake(ctx, e.actor(), e.shop.ShopID, strings.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	var deltas []int64
	for _, ln := range pre.Lines {
		deltas = append(deltas, ln.Delta)
	}
	if diff := cmp.Diff([]int64{-1, 0, 7}, deltas); diff != "" || pre.Changes != 2 || pre.Errors != 0 {
		t.Errorf("preview deltas (-want +got):\n%s changes %d errors %d", diff, pre.Changes, pre.Errors)
	}
	if n := e.count(l.ListingID, events.TypeStockEditRequested); n != 0 {
		t.Fatalf("a preview recorded %d commands", n)
	}
	for range 2 {
		if st, err := e.svc.ApplyStocktake(ctx, e.actor(), e.shop.ShopID, strings.NewReader(good), "st-1"); err != nil || !st.Applied {
			t.Fatalf("apply: %+v, %v", st, err)
		}
	}
	if n := e.count(l.ListingID, events.TypeStockEditRequested) + e.count(tea.ListingID, events.TypeStockEditRequested); n != 2 {
		t.Errorf("%d counts recorded by applying the same stocktake twice, want 2", n)
	}
	e.drain()
	if q := e.variant(l.ListingID, "sku:MUG-S").Quantity; q != 4 {
		t.Errorf("MUG-S at Etsy = %d, want 4", q)
	}
	if q := e.variant(tea.ListingID, "sku:TEA-1").Quantity; q != 10 {
		t.Errorf("TEA-1 at Etsy = %d, want 10", q)
	}

	// The stock history explains the balance with the count in it: its
	// reason, the command as cause and the seller as actor.
	read := projections.NewReader(e.db.DB, projections.ReaderConfig{})
	var moves []projections.Movement
	e.projectUntil(func() bool {
		var err error
		moves, err = read.History(ctx, projections.HistoryFilter{Shops: []int64{e.shop.ShopID}, ListingID: l.ListingID, VariantKey: "sku:MUG-S", Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		return len(moves) >= 2
	})
	var sum int64
	var counted *projections.Movement
	for i, m := range moves {
		sum += m.Delta
		if m.Reason == events.EditCount {
			counted = &moves[i]
		}
	}
	if sum != 4 || counted == nil || counted.Delta != -1 || !strings.HasPrefix(counted.Cause, "edit:") || counted.Actor != "user:alice" {
		t.Errorf("history %+v: want the movements to sum to 4, with the count (-1, cause edit:…, actor user:alice)", moves)
	}
}
