package etsy_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
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

// placeOrders places n single-unit orders, each step apart on the
// simulated clock, restocking as needed, and cancels every 50th.
func placeOrders(t *testing.T, e *env, n int, step time.Duration) (canceled int) {
	t.Helper()
	l, err := e.sim.CreateListing(e.shop.ShopID, etsysim.ListingSpec{Title: "Bulk", Price: 500, Quantity: 999})
	if err != nil {
		t.Fatal(err)
	}
	set := 999
	for i := range n {
		if i > 0 && i%990 == 0 {
			if _, err := e.sim.RestockListing(l.ListingID, etsysim.Restock{Set: &set}); err != nil {
				t.Fatal(err)
			}
		}
		r, err := e.sim.CreateOrder(e.shop.ShopID, etsysim.OrderSpec{Items: []etsysim.OrderItem{{ListingID: l.ListingID, Quantity: 1}}})
		if err != nil {
			t.Fatal(err)
		}
		if i%50 == 49 {
			if _, err := e.sim.CancelOrder(r.ReceiptID, false); err != nil {
				t.Fatal(err)
			}
			canceled++
		}
		e.sim.Advance(step)
	}
	return canceled
}

func TestAllShopReceiptsBeyondMaxOffset(t *testing.T) {
	e := newEnv(t, envOptions{sim: etsysim.Options{FreezeClock: true}})
	// About 125 pages of 100 receipts; generous for a loaded machine
	// running with -race.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const n = 12500
	canceled := placeOrders(t, e, n, 37*time.Second)

	// One page beyond the offset limit is refused outright…
	_, err := e.client.GetShopReceipts(ctx, e.ts, e.shop.ShopID, etsy.ReceiptsQuery{Limit: 100, Offset: 12100})
	if !errors.Is(err, etsy.ErrBadRequest) {
		t.Fatalf("offset 12100 = %v, want ErrBadRequest", err)
	}
	// …but the iterator narrows by time, keeps the filter, and reads
	// every matching receipt once, oldest first.
	no := false
	before := e.sim.Stats().RequestsServed
	seen := make(map[int64]int, n)
	var last time.Time
	for r, err := range e.client.AllShopReceipts(ctx, e.ts, e.shop.ShopID, etsy.ReceiptsQuery{WasCanceled: &no}) {
		if err != nil {
			t.Fatal(err)
		}
		if r.CreatedAt.Before(last) {
			t.Fatalf("receipt %d created %v before the previous one (%v)", r.ReceiptID, r.CreatedAt, last)
		}
		if r.Status == etsy.ReceiptCanceled {
			t.Fatalf("receipt %d is canceled; the filter was lost", r.ReceiptID)
		}
		last = r.CreatedAt
		seen[r.ReceiptID]++
	}
	pages := e.sim.Stats().RequestsServed - before
	t.Logf("%d receipts in %d requests", len(seen), pages)
	want := 0
	for _, r := range e.sim.Receipts(e.shop.ShopID) {
		if r.IsCanceled {
			continue
		}
		want++
		if seen[r.ReceiptID] != 1 {
			t.Errorf("receipt %d yielded %d times", r.ReceiptID, seen[r.ReceiptID])
		}
	}
	if want != n-canceled || len(seen) != want {
		t.Errorf("iterated %d receipts, want %d", len(seen), want)
	}
	if pages <= 121 {
		t.Errorf("%d requests: the walk never went past offset 12,000", pages)
	}
}

// fakePages serves count minimal results per page, as Etsy would for a
// shop too big to read by offset: listing ids by offset, and receipts all
// created in the same second.
func fakePages(t *testing.T, count int) *env {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		offset, _ := strconv.Atoi(q.Get("offset"))
		limit, _ := strconv.Atoi(q.Get("limit"))
		if offset > etsy.MaxOffset || limit > etsy.MaxLimit {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":"offset too large"}`)
			return
		}
		field := "listing_id"
		if strings.HasSuffix(r.URL.Path, "/receipts") {
			field = "receipt_id"
		}
		var items []string
		for i := offset; i < min(offset+limit, count); i++ {
			items = append(items, fmt.Sprintf(`{%q:%d,"created_timestamp":1770000000}`, field, i+1))
		}
		fmt.Fprintf(w, `{"count":%d,"results":[%s]}`, count, strings.Join(items, ","))
	}))
	t.Cleanup(srv.Close)
	lim, err := etsy.NewLimiter(etsy.LimiterConfig{QPS: 10000, QPD: 1000000}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := etsy.NewClient(etsy.Config{BaseURL: srv.URL, KeyString: "k", SharedSecret: "s", Limiter: lim}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &env{client: c}
}

func TestAllShopReceiptsStallsInOneSecond(t *testing.T) {
	// More receipts than offset paging can reach, all in one second:
	// narrowing cannot help, and the iterator says so instead of looping.
	e := fakePages(t, 12150)
	n := 0
	var err error
	for _, err = range e.client.AllShopReceipts(ctxT(t), etsy.StaticTokenSource("1.x"), 1, etsy.ReceiptsQuery{}) {
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
	// getListingsByShop has no time filter to narrow by: everything up to
	// offset 12,000 is read, then the iterator says what it could not do.
	e := fakePages(t, 12150)
	n := 0
	var err error
	for _, err = range e.client.AllListingsByShop(ctxT(t), etsy.StaticTokenSource("1.x"), 1, etsy.ListingActive, false) {
		if err != nil {
			break
		}
		n++
	}
	if !errors.Is(err, etsy.ErrOffsetLimit) || n != 12100 {
		t.Fatalf("after %d listings: %v; want 12100 then ErrOffsetLimit", n, err)
	}
}
