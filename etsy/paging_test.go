package etsy_test

import (
	"errors"
	"testing"
	"time"

	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/etsy/etsysim"
)

func TestAllListingsByShopPagesBeyond100(t *testing.T) {
	e := newEnv(t, envOptions{sim: etsysim.Options{FreezeClock: true}})
	ctx := ctxT(t)
	want, err := e.sim.GenerateCatalogue(e.shop.ShopID, 250)
	if err != nil {
		t.Fatal(err)
	}
	// A sold-out or inactive listing must not show under "active".
	inactive := "inactive"
	if _, err := e.sim.EditListing(want[7].ListingID, etsysim.ListingEdit{State: &inactive}); err != nil {
		t.Fatal(err)
	}
	before := e.sim.Stats().RequestsServed
	seen := map[int64]int{}
	for l, err := range e.client.AllListingsByShop(ctx, e.ts, e.shop.ShopID, etsy.ListingActive, true) {
		if err != nil {
			t.Fatal(err)
		}
		if l.Inventory == nil {
			t.Fatalf("listing %d without inventory", l.ListingID)
		}
		seen[l.ListingID]++
	}
	if len(seen) != 249 {
		t.Errorf("iterated %d listings, want 249", len(seen))
	}
	for id, n := range seen {
		if n != 1 || id == want[7].ListingID {
			t.Errorf("listing %d yielded %d times", id, n)
		}
	}
	if got := e.sim.Stats().RequestsServed - before; got != 3 {
		t.Errorf("%d requests for 249 listings, want 3 pages of 100", got)
	}
}

// orders places n single-unit orders, each `step` apart on the simulated
// clock, restocking as needed.
func placeOrders(t *testing.T, e *env, n int, step time.Duration) {
	t.Helper()
	l, err := e.sim.CreateListing(e.shop.ShopID, etsysim.ListingSpec{Title: "Bulk", Price: 500, Quantity: 999})
	if err != nil {
		t.Fatal(err)
	}
	set := 999
	for i := range n {
		if i > 0 && i%998 == 0 {
			if _, err := e.sim.RestockListing(l.ListingID, etsysim.Restock{Set: &set}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := e.sim.CreateOrder(e.shop.ShopID, etsysim.OrderSpec{Items: []etsysim.OrderItem{{ListingID: l.ListingID, Quantity: 1}}}); err != nil {
			t.Fatal(err)
		}
		e.sim.Advance(step)
	}
}

func TestAllShopReceiptsBeyondMaxOffset(t *testing.T) {
	if testing.Short() {
		t.Skip("places 12,500 orders")
	}
	e := newEnv(t, envOptions{sim: etsysim.Options{FreezeClock: true}})
	ctx := ctxT(t)
	const n = 12500
	placeOrders(t, e, n, 37*time.Second)
	truth := e.sim.Receipts(e.shop.ShopID)
	if len(truth) != n {
		t.Fatalf("simulator has %d receipts, want %d", len(truth), n)
	}

	// One page beyond the offset limit is refused outright…
	_, err := e.client.GetShopReceipts(ctx, e.ts, e.shop.ShopID, etsy.ReceiptsQuery{Limit: 100, Offset: 12100})
	if !errors.Is(err, etsy.ErrBadRequest) {
		t.Fatalf("offset 12100 = %v, want ErrBadRequest", err)
	}
	// …but the iterator narrows by time and reads everything once.
	seen := make(map[int64]int, n)
	var last time.Time
	for r, err := range e.client.AllShopReceipts(ctx, e.ts, e.shop.ShopID, etsy.ReceiptsQuery{}) {
		if err != nil {
			t.Fatal(err)
		}
		if r.CreatedAt.Before(last) {
			t.Fatalf("receipt %d created %v before the previous one (%v)", r.ReceiptID, r.CreatedAt, last)
		}
		last = r.CreatedAt
		seen[r.ReceiptID]++
	}
	if len(seen) != n {
		t.Errorf("iterated %d receipts, want %d", len(seen), n)
	}
	for _, r := range truth {
		if seen[r.ReceiptID] != 1 {
			t.Errorf("receipt %d yielded %d times", r.ReceiptID, seen[r.ReceiptID])
		}
	}

	// A filtered walk stays inside the filter while narrowing.
	from := truth[1000].CreatedAt
	count := 0
	for r, err := range e.client.AllShopReceipts(ctx, e.ts, e.shop.ShopID, etsy.ReceiptsQuery{MinCreated: from}) {
		if err != nil {
			t.Fatal(err)
		}
		if r.CreatedAt.Before(from) {
			t.Fatalf("receipt %d created %v before min_created %v", r.ReceiptID, r.CreatedAt, from)
		}
		count++
	}
	if count != n-1000 {
		t.Errorf("filtered walk read %d receipts, want %d", count, n-1000)
	}
}

func TestAllShopReceiptsStallsInOneSecond(t *testing.T) {
	if testing.Short() {
		t.Skip("places 12,150 orders")
	}
	e := newEnv(t, envOptions{sim: etsysim.Options{FreezeClock: true}})
	ctx := ctxT(t)
	// More receipts than offset paging can reach, all in the same second:
	// narrowing cannot help, and the iterator says so instead of looping.
	placeOrders(t, e, 12150, 0)
	n := 0
	var err error
	for _, err = range e.client.AllShopReceipts(ctx, e.ts, e.shop.ShopID, etsy.ReceiptsQuery{}) {
		if err != nil {
			break
		}
		n++
	}
	if !errors.Is(err, etsy.ErrPagingStalled) {
		t.Fatalf("after %d receipts: %v, want ErrPagingStalled", n, err)
	}
	if n != 12100 {
		t.Errorf("yielded %d receipts before stalling, want the 12,100 reachable", n)
	}
}

func TestAllListingsByShopReportsUnreachable(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 12,150 listings")
	}
	e := newEnv(t, envOptions{sim: etsysim.Options{FreezeClock: true}})
	ctx := ctxT(t)
	for range 12150 {
		if _, err := e.sim.CreateListing(e.shop.ShopID, etsysim.ListingSpec{Title: "Thing", Quantity: 1}); err != nil {
			t.Fatal(err)
		}
	}
	// getListingsByShop has no time filter to narrow by: everything up to
	// offset 12,000 is read, then the iterator says what it could not do.
	n := 0
	var err error
	for _, err = range e.client.AllListingsByShop(ctx, e.ts, e.shop.ShopID, etsy.ListingActive, false) {
		if err != nil {
			break
		}
		n++
	}
	if !errors.Is(err, etsy.ErrOffsetLimit) || n != 12100 {
		t.Fatalf("after %d listings: %v; want 12100 then ErrOffsetLimit", n, err)
	}
}
