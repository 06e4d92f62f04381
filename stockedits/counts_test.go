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

// countReads counts the pushes' reads of the shop's transaction count.
type countReads struct {
	stockedits.EtsyAPI
	counts atomic.Int64
}

func (c *countReads) GetShopTransactions(ctx context.Context, ts etsy.TokenSource, shopID int64, limit, offset int) (etsy.TransactionsPage, error) {
	c.counts.Add(1)
	return c.EtsyAPI.GetShopTransactions(ctx, ts, shopID, limit, offset)
}

// Pushes running at once under the rate limit share their reads of the
// shop's transaction count: a stocktake over many listings reads it fewer
// times than the two each push needs (after its inventory read and after
// its write), and Etsy ends holding every count.
func TestConcurrentPushesShareCountReads(t *testing.T) {
	const listings, perListing = 16, 3
	e := newEnvQPS(t, 10, 100000)
	var csv strings.Builder
	csv.WriteString("sku,counted\n")
	want := map[string]int{}
	for l := range listings {
		spec := etsysim.ListingSpec{Title: fmt.Sprintf("Jar %d", l), Price: 900}
		for i := range perListing {
			sku := fmt.Sprintf("J-%02d-%d", l, i)
			spec.Products = append(spec.Products, etsysim.ProductSpec{SKU: sku, Quantity: 5,
				PropertyValues: []etsysim.PropertyValueSpec{{PropertyName: "Size", Value: fmt.Sprintf("s%d", i)}}})
			fmt.Fprintf(&csv, "%s,%d\n", sku, 6+i)
			want[sku] = 6 + i
		}
		if _, err := e.sim.CreateListing(e.shop.ShopID, spec); err != nil {
			t.Fatal(err)
		}
	}
	e.reconcile()
	e.project(listings * perListing)
	if st, err := e.svc.ApplyStocktake(context.Background(), e.actor(), e.shop.ShopID, strings.NewReader(csv.String()), "jars"); err != nil || !st.Applied {
		t.Fatalf("apply: %v, %d errors", err, st.Errors)
	}
	api := &countReads{EtsyAPI: e.client}
	p, err := stockedits.NewPusher(stockedits.PusherConfig{DB: e.db.DB, Events: e.es, Etsy: api, Tokens: e.store,
		Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(ctx) }()
	waitDrained(t, e)
	cancel()
	<-done

	for _, l := range e.sim.Listings(e.shop.ShopID) {
		for _, v := range l.Variants {
			if v.Quantity != want[v.SKU] {
				t.Errorf("%s at Etsy = %d, want %d", v.SKU, v.Quantity, want[v.SKU])
			}
		}
	}
	if n := api.counts.Load(); n >= 2*listings {
		t.Errorf("%d reads of the transaction count for %d pushes, want fewer than %d: pushes at the same time share them", n, listings, 2*listings)
	} else {
		t.Logf("%d reads of the transaction count for %d pushes", n, listings)
	}
}
