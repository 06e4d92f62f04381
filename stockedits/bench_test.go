package stockedits_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/etsy/etsysim"
	"github.com/shopledger/shopledger/stockedits"
)

// countingAPI counts the requests a push sends to Etsy and the 429s it
// saw come back.
type countingAPI struct {
	stockedits.EtsyAPI
	calls, limited atomic.Int64
}

func (c *countingAPI) note(err error) {
	c.calls.Add(1)
	if err != nil && strings.Contains(err.Error(), "429") {
		c.limited.Add(1)
	}
}

func (c *countingAPI) GetListingInventory(ctx context.Context, ts etsy.TokenSource, id int64) (etsy.Inventory, error) {
	inv, err := c.EtsyAPI.GetListingInventory(ctx, ts, id)
	c.note(err)
	return inv, err
}

func (c *countingAPI) UpdateListingInventory(ctx context.Context, ts etsy.TokenSource, id int64, u etsy.InventoryUpdate) (etsy.Inventory, error) {
	inv, err := c.EtsyAPI.UpdateListingInventory(ctx, ts, id, u)
	c.note(err)
	return inv, err
}

func (c *countingAPI) GetShopTransactions(ctx context.Context, ts etsy.TokenSource, shopID int64, limit, offset int) (etsy.TransactionsPage, error) {
	p, err := c.EtsyAPI.GetShopTransactions(ctx, ts, shopID, limit, offset)
	c.note(err)
	return p, err
}

// BenchmarkStocktake5000 applies a stocktake of 5,000 variants (50
// listings of 100) at the simulator's default rate limit and reports the
// time until Etsy holds every count, the bound the rate limit sets
// (requests sent ÷ QPS) and their ratio.
func BenchmarkStocktake5000(b *testing.B) {
	const listings, perListing = 50, 100
	for range b.N {
		e := newEnvQPS(b, etsysim.DefaultQPS, etsysim.DefaultQPD)
		var csv strings.Builder
		csv.WriteString("sku,counted\n")
		for l := range listings {
			spec := etsysim.ListingSpec{Title: fmt.Sprintf("Bench %d", l), Price: 1500}
			for i := range perListing {
				sku := fmt.Sprintf("B-%02d-%03d", l, i)
				spec.Products = append(spec.Products, etsysim.ProductSpec{SKU: sku, Price: 1500, Quantity: 20,
					PropertyValues: []etsysim.PropertyValueSpec{
						{PropertyName: "Colour", Value: fmt.Sprintf("c%d", i/10)}, {PropertyName: "Size", Value: fmt.Sprintf("s%d", i%10)}}})
				fmt.Fprintf(&csv, "%s,%d\n", sku, 10+i%20)
			}
			if _, err := e.sim.CreateListing(e.shop.ShopID, spec); err != nil {
				b.Fatal(err)
			}
		}
		e.reconcile()
		e.project(listings * perListing)
		api := &countingAPI{EtsyAPI: e.client}
		// The pusher's default number of workers, as cmd/ingest runs it.
		p, err := stockedits.NewPusher(stockedits.PusherConfig{DB: e.db.DB, Events: e.es, Etsy: api, Tokens: e.store,
			Poll: 20 * time.Millisecond})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		b.ResetTimer()
		start := time.Now()
		// The pusher runs from the start: each listing's counts are
		// recorded in one transaction, so its push carries them all.
		go func() { defer close(done); _ = p.Run(ctx) }()
		st, err := e.svc.ApplyStocktake(ctx, e.actor(), e.shop.ShopID, strings.NewReader(csv.String()), "bench")
		if err != nil || !st.Applied || st.Errors != 0 {
			b.Fatalf("apply: %v, %d errors", err, st.Errors)
		}
		applied := time.Since(start)
		waitDrainedTB(b, e, 10*time.Minute)
		elapsed := time.Since(start)
		cancel()
		<-done
		b.StopTimer()
		var failed int
		if err := e.db.DB.QueryRow(`SELECT count(*) FROM stock_edit_outbox WHERE state <> 'pushed'`).Scan(&failed); err != nil || failed != 0 {
			b.Fatalf("%d commands not pushed (%v)", failed, err)
		}
		bound := float64(api.calls.Load()) / float64(etsysim.DefaultQPS)
		fmt.Printf("BENCH stocktake_5000_seconds %.2f s\n", elapsed.Seconds())
		fmt.Printf("BENCH stocktake_5000_rate_bound_seconds %.2f s\n", bound)
		fmt.Printf("BENCH stocktake_5000_ratio %.3f\n", elapsed.Seconds()/bound)
		fmt.Printf("BENCH stocktake_5000_apply_seconds %.2f s\n", applied.Seconds())
		fmt.Printf("BENCH stocktake_5000_etsy_requests %d\n", api.calls.Load())
		fmt.Printf("BENCH stocktake_5000_unhandled_429 %d\n", api.limited.Load())
	}
}

func waitDrainedTB(tb testing.TB, e *env, limit time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		var n int
		if err := e.db.DB.QueryRow(`SELECT count(*) FROM stock_edit_outbox WHERE state = 'queued'`).Scan(&n); err != nil {
			tb.Fatal(err)
		}
		if n == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	tb.Fatal("outbox never drained")
}
