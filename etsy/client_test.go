package etsy_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/etsy/etsysim"
	"github.com/shopledger/shopledger/service/servicetest"
)

// catalogue is a small, explicit shop: a simple listing, one with colour
// variations (SKUs), one with colour × size without SKUs.
func catalogue(t *testing.T, e *env) (simple, colours, grid etsysim.ListingTruth) {
	t.Helper()
	var err error
	simple, err = e.sim.CreateListing(e.shop.ShopID, etsysim.ListingSpec{Title: "Walnut Spoon", Price: 1250, Quantity: 7, SKU: "SPOON-1", ShippingCost: 350})
	if err != nil {
		t.Fatal(err)
	}
	colours, err = e.sim.CreateListing(e.shop.ShopID, etsysim.ListingSpec{Title: "Linen Scarf", Price: 3400, Products: []etsysim.ProductSpec{
		{SKU: "SCARF-SAGE", Quantity: 3, PropertyValues: []etsysim.PropertyValueSpec{{PropertyID: 200, PropertyName: "Primary color", Value: "Sage"}}},
		{SKU: "SCARF-RUST", Quantity: 0, PropertyValues: []etsysim.PropertyValueSpec{{PropertyID: 200, PropertyName: "Primary color", Value: "Rust"}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	grid, err = e.sim.CreateListing(e.shop.ShopID, etsysim.ListingSpec{Title: "Merino Beanie", Price: 2800, Products: []etsysim.ProductSpec{
		{Quantity: 2, PropertyValues: []etsysim.PropertyValueSpec{{PropertyID: 200, PropertyName: "Primary color", Value: "Navy"}, {PropertyName: "Size", Value: "S"}}},
		{Quantity: 5, Price: 3000, PropertyValues: []etsysim.PropertyValueSpec{{PropertyID: 200, PropertyName: "Primary color", Value: "Navy"}, {PropertyName: "Size", Value: "L"}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return simple, colours, grid
}

// stock maps variant keys to quantities, from the simulator's truth.
func truthStock(l etsysim.ListingTruth) map[string]int {
	m := map[string]int{}
	for _, v := range l.Variants {
		m[v.VariantKey] = v.Quantity
	}
	return m
}

func clientStock(listingID int64, inv etsy.Inventory) map[string]int {
	m := map[string]int{}
	for _, p := range inv.Products {
		m[p.VariantKey(listingID)] = p.Offerings[0].Quantity
	}
	return m
}

func TestClientMeShopAndPing(t *testing.T) {
	e := newEnv(t, envOptions{sim: etsysim.Options{FreezeClock: true}})
	ctx := ctxT(t)
	me, err := e.client.GetMe(ctx, e.ts)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(etsy.Me{UserID: e.shop.UserID, ShopID: e.shop.ShopID}, me); diff != "" {
		t.Errorf("GetMe (-want +got):\n%s", diff)
	}
	shop, err := e.client.GetShop(ctx, nil, e.shop.ShopID)
	if err != nil {
		t.Fatal(err)
	}
	want := etsy.Shop{
		ShopID: e.shop.ShopID, UserID: e.shop.UserID, ShopName: "TestShop", Title: "TestShop — handmade",
		CurrencyCode: "USD", URL: "https://www.etsy.com/shop/TestShop", CreatedAt: testStart, UpdatedAt: testStart,
	}
	if diff := cmp.Diff(want, shop); diff != "" {
		t.Errorf("GetShop (-want +got):\n%s", diff)
	}
	if _, err := e.client.GetShop(ctx, nil, 999); !errors.Is(err, etsy.ErrNotFound) {
		t.Errorf("GetShop(unknown) = %v, want ErrNotFound", err)
	}
	app, err := e.client.Ping(ctx)
	if err != nil || app == 0 {
		t.Errorf("Ping = %d, %v", app, err)
	}
}

func TestClientListings(t *testing.T) {
	e := newEnv(t, envOptions{sim: etsysim.Options{FreezeClock: true}})
	ctx := ctxT(t)
	simple, colours, grid := catalogue(t, e)

	page, err := e.client.GetListingsByShop(ctx, e.ts, e.shop.ShopID, etsy.ListingsQuery{State: etsy.ListingActive, Includes: []string{etsy.IncludeInventory}, SortOn: "created", SortOrder: "asc"})
	if err != nil {
		t.Fatal(err)
	}
	if page.Count != 3 || len(page.Results) != 3 {
		t.Fatalf("page has count %d and %d results, want 3 and 3", page.Count, len(page.Results))
	}
	for i, want := range []etsysim.ListingTruth{simple, colours, grid} {
		got := page.Results[i]
		if got.ListingID != want.ListingID || got.Quantity != want.Quantity || got.Price.Amount != want.Price || got.State != want.State {
			t.Errorf("listing %d: got id %d qty %d price %s state %s, want %+v", i, got.ListingID, got.Quantity, got.Price, got.State, want)
		}
		if got.Inventory == nil {
			t.Fatalf("listing %d has no inventory", got.ListingID)
		}
		if diff := cmp.Diff(truthStock(want), clientStock(got.ListingID, *got.Inventory)); diff != "" {
			t.Errorf("listing %d stock by variant (-want +got):\n%s", got.ListingID, diff)
		}
		if !got.CreatedAt.Equal(testStart) || got.CreatedAt.Location() != time.UTC {
			t.Errorf("listing %d created %v, want %v UTC", got.ListingID, got.CreatedAt, testStart)
		}
	}
	if got := page.Results[1]; !got.HasVariations || !slices.Equal(got.SKUs, []string{"SCARF-SAGE", "SCARF-RUST"}) {
		t.Errorf("colour listing: has_variations %v skus %v", got.HasVariations, got.SKUs)
	}
	if got := page.Results[2].Price; got != (etsy.Money{Amount: 2800, Currency: "USD"}) {
		t.Errorf("grid listing price %v, want the lowest variant price 28.00 USD", got)
	}

	l, err := e.client.GetListing(ctx, nil, simple.ListingID, false)
	if err != nil {
		t.Fatal(err)
	}
	wantURL := fmt.Sprintf("https://www.etsy.com/listing/%d/walnut-spoon", simple.ListingID)
	if l.Title != "Walnut Spoon" || l.Inventory != nil || l.URL != wantURL || l.ShopID != e.shop.ShopID {
		t.Errorf("GetListing without inventory = %+v", l)
	}
	// SKUs are the owner's business: without the owner's token Etsy
	// leaves them out, and variant keys would not match.
	if len(l.SKUs) != 0 {
		t.Errorf("SKUs %v shown without the owner's token", l.SKUs)
	}
	if l, err = e.client.GetListing(ctx, e.ts, simple.ListingID, true); err != nil || !slices.Equal(l.SKUs, []string{"SPOON-1"}) || l.Inventory.Products[0].SKU != "SPOON-1" {
		t.Errorf("GetListing with the owner's token: skus %v, %v", l.SKUs, err)
	}
	l, err = e.client.GetListing(ctx, e.ts, grid.ListingID, true)
	if err != nil {
		t.Fatal(err)
	}
	if l.Inventory == nil || len(l.Inventory.Products) != 2 {
		t.Fatalf("GetListing with inventory: %+v", l.Inventory)
	}
	if _, err := e.client.GetListing(ctx, nil, 1, false); !errors.Is(err, etsy.ErrNotFound) {
		t.Errorf("GetListing(unknown) = %v, want ErrNotFound", err)
	}
	// Another seller's shop is not ours to list.
	other, _ := e.sim.CreateShop(etsysim.ShopSpec{Name: "Other"})
	if _, err := e.client.GetListingsByShop(ctx, e.ts, other.ShopID, etsy.ListingsQuery{}); !errors.Is(err, etsy.ErrForbidden) {
		t.Errorf("GetListingsByShop(other seller) = %v, want ErrForbidden", err)
	}
	if _, err := e.client.GetListingsByShop(ctx, e.ts, e.shop.ShopID, etsy.ListingsQuery{Limit: 101}); !errors.Is(err, etsy.ErrBadRequest) {
		t.Errorf("limit 101 = %v, want ErrBadRequest", err)
	}
	if _, err := e.client.GetListingsByShop(ctx, e.ts, e.shop.ShopID, etsy.ListingsQuery{Offset: 12001}); !errors.Is(err, etsy.ErrBadRequest) {
		t.Errorf("offset 12001 = %v, want ErrBadRequest", err)
	}
}

func TestClientInventoryReadWrite(t *testing.T) {
	e := newEnv(t, envOptions{sim: etsysim.Options{FreezeClock: true}})
	ctx := ctxT(t)
	_, colours, grid := catalogue(t, e)

	inv, err := e.client.GetListingInventory(ctx, e.ts, grid.ListingID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(truthStock(grid), clientStock(grid.ListingID, inv)); diff != "" {
		t.Errorf("inventory (-want +got):\n%s", diff)
	}
	oldIDs := map[int64]bool{}
	for _, p := range inv.Products {
		oldIDs[p.ProductID] = true
	}
	// Sell out the small size, restock the large one: the read turned
	// into a write, as Etsy's tutorial says.
	u := inv.Update()
	u.Products[0].Offerings[0].Quantity = 0
	u.Products[1].Offerings[0].Quantity = 9
	u.Products[1].Offerings[0].Price = etsy.Money{Amount: 3150, Currency: "USD"}
	got, err := e.client.UpdateListingInventory(ctx, e.ts, grid.ListingID, u)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range got.Products {
		if oldIDs[p.ProductID] {
			t.Errorf("product id %d survived a write; Etsy regenerates them", p.ProductID)
		}
	}
	after, err := e.sim.Listing(grid.ListingID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(truthStock(after), clientStock(grid.ListingID, got)); diff != "" {
		t.Errorf("written inventory (-want +got):\n%s", diff)
	}
	// Variant keys survive the write even though product ids do not.
	if diff := cmp.Diff(slices.Sorted(maps.Keys(truthStock(grid))), slices.Sorted(maps.Keys(truthStock(after)))); diff != "" {
		t.Errorf("variant keys changed (-before +after):\n%s", diff)
	}
	if got.Products[1].Offerings[0].Price.Amount != 3150 {
		t.Errorf("price after write %v, want 31.50", got.Products[1].Offerings[0].Price)
	}

	// Etsy refuses to zero a listing through the API.
	inv, err = e.client.GetListingInventory(ctx, e.ts, colours.ListingID)
	if err != nil {
		t.Fatal(err)
	}
	u = inv.Update()
	for i := range u.Products {
		u.Products[i].Offerings[0].Quantity = 0
	}
	_, err = e.client.UpdateListingInventory(ctx, e.ts, colours.ListingID, u)
	var apiErr *etsy.APIError
	if !errors.As(err, &apiErr) || !errors.Is(err, etsy.ErrBadRequest) || apiErr.Code != "One offering must have quantity greater than 0" {
		t.Errorf("all-zero write = %v, want 400 One offering must have quantity greater than 0", err)
	}
}

func TestClientReceipts(t *testing.T) {
	e := newEnv(t, envOptions{sim: etsysim.Options{FreezeClock: true}})
	ctx := ctxT(t)
	simple, colours, grid := catalogue(t, e)
	first, err := e.sim.CreateOrder(e.shop.ShopID, etsysim.OrderSpec{
		Items: []etsysim.OrderItem{
			{ListingID: simple.ListingID, Quantity: 2},
			{ListingID: colours.ListingID, SKU: "SCARF-SAGE", Quantity: 1},
		},
		Discount: 100, TaxCost: 260, BuyerName: "Grace Hopper",
	})
	if err != nil {
		t.Fatal(err)
	}
	e.sim.Advance(time.Hour)
	second, err := e.sim.CreateOrder(e.shop.ShopID, etsysim.OrderSpec{Items: []etsysim.OrderItem{{ListingID: grid.ListingID, VariantKey: grid.Variants[0].VariantKey, Quantity: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	e.sim.Advance(time.Hour)
	if _, err := e.sim.ShipOrder(first.ReceiptID, "usps", "9400111"); err != nil {
		t.Fatal(err)
	}

	page, err := e.client.GetShopReceipts(ctx, e.ts, e.shop.ShopID, etsy.ReceiptsQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if page.Count != 2 || page.Results[0].ReceiptID != second.ReceiptID {
		t.Fatalf("receipts: count %d, first %d; want 2, newest (%d) first", page.Count, page.Results[0].ReceiptID, second.ReceiptID)
	}
	yes, no := true, false
	for _, tt := range []struct {
		name string
		q    etsy.ReceiptsQuery
		want []int64
	}{
		{"shipped", etsy.ReceiptsQuery{WasShipped: &yes}, []int64{first.ReceiptID}},
		{"not shipped", etsy.ReceiptsQuery{WasShipped: &no}, []int64{second.ReceiptID}},
		{"paid, created since the second", etsy.ReceiptsQuery{WasPaid: &yes, MinCreated: testStart.Add(time.Hour)}, []int64{second.ReceiptID}},
		{"modified since the shipment", etsy.ReceiptsQuery{MinLastModified: testStart.Add(2 * time.Hour)}, []int64{first.ReceiptID}},
		{"created before the second", etsy.ReceiptsQuery{MaxCreated: testStart.Add(time.Hour - time.Second)}, []int64{first.ReceiptID}},
		{"canceled", etsy.ReceiptsQuery{WasCanceled: &yes}, nil},
		{"by id ascending", etsy.ReceiptsQuery{SortOn: "receipt_id", SortOrder: "asc"}, []int64{first.ReceiptID, second.ReceiptID}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := e.client.GetShopReceipts(ctx, e.ts, e.shop.ShopID, tt.q)
			if err != nil {
				t.Fatal(err)
			}
			var ids []int64
			for _, r := range p.Results {
				ids = append(ids, r.ReceiptID)
			}
			if diff := cmp.Diff(tt.want, ids); diff != "" {
				t.Errorf("receipt ids (-want +got):\n%s", diff)
			}
		})
	}

	r, err := e.client.GetShopReceipt(ctx, e.ts, e.shop.ShopID, first.ReceiptID)
	if err != nil {
		t.Fatal(err)
	}
	usd := func(n int64) etsy.Money { return etsy.Money{Amount: n, Currency: "USD"} }
	type totals struct{ Total, Discount, Sub, Ship, Tax, Grand etsy.Money }
	wantTotals := totals{usd(first.TotalPrice), usd(100), usd(first.Subtotal), usd(first.ShippingCost), usd(260), usd(first.GrandTotal)}
	gotTotals := totals{r.TotalPrice, r.DiscountAmt, r.Subtotal, r.TotalShippingCost, r.TotalTaxCost, r.GrandTotal}
	if diff := cmp.Diff(wantTotals, gotTotals); diff != "" {
		t.Errorf("receipt totals (-want +got):\n%s", diff)
	}
	if first.TotalPrice != 2*1250+3400 || first.GrandTotal != first.TotalPrice-100+350+260 {
		t.Errorf("simulator totals %+v do not add up", first)
	}
	if r.ShopID != e.shop.ShopID || r.Status != etsy.ReceiptCompleted || !r.IsPaid || !r.IsShipped || len(r.Shipments) != 1 || r.Shipments[0].TrackingCode != "9400111" {
		t.Errorf("receipt = %v shipments %+v", r, r.Shipments)
	}
	if r.Buyer.Name != "Grace Hopper" {
		t.Errorf("buyer name %q not decoded", r.Buyer.Name)
	}

	txs, err := e.client.GetShopReceiptTransactionsByReceipt(ctx, e.ts, e.shop.ShopID, first.ReceiptID)
	if err != nil {
		t.Fatal(err)
	}
	var gotItems, wantItems []string
	for _, tx := range txs {
		gotItems = append(gotItems, fmt.Sprintf("%d %s x%d @%s", tx.TransactionID, tx.VariantKey(), tx.Quantity, tx.Price))
	}
	for _, it := range first.Items {
		wantItems = append(wantItems, fmt.Sprintf("%d %s x%d @%s", it.TransactionID, it.VariantKey, it.Quantity, usd(it.Price)))
	}
	if diff := cmp.Diff(wantItems, gotItems); diff != "" {
		t.Errorf("transactions (-want +got):\n%s", diff)
	}
	// A transaction of a variant without SKU is identified by its values.
	txs, err = e.client.GetShopReceiptTransactionsByReceipt(ctx, e.ts, e.shop.ShopID, second.ReceiptID)
	if err != nil {
		t.Fatal(err)
	}
	if got := txs[0].VariantKey(); got != grid.Variants[0].VariantKey || !strings.Contains(got, ":values:") {
		t.Errorf("transaction variant key %q, want %q", got, grid.Variants[0].VariantKey)
	}
	if _, err := e.client.GetShopReceipt(ctx, e.ts, e.shop.ShopID, 12345); !errors.Is(err, etsy.ErrNotFound) {
		t.Errorf("GetShopReceipt(unknown) = %v, want ErrNotFound", err)
	}
}

func TestReceiptKeepsBuyerOutOfOutput(t *testing.T) {
	r := etsy.Receipt{ReceiptID: 7, ShopID: 3, Status: "paid", Buyer: etsy.BuyerDetails{Name: "Ada Lovelace", Email: "ada@example.com", FirstLine: "12 Analytical Way"}}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("got", "receipt", r, "buyer", r.Buyer)
	tok := etsy.Token{AccessToken: "1.secretaccess", RefreshToken: "1.secretrefresh", UserID: 1}
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("token", "token", tok)
	for _, out := range []string{
		r.String(), fmt.Sprint(r), fmt.Sprintf("%+v", r), fmt.Sprintf("%#v", r), logs.String(),
		fmt.Sprint(tok), fmt.Sprintf("%+v", tok), fmt.Sprintf("%#v", tok),
	} {
		for _, secret := range []string{"Ada", "ada@example.com", "Analytical", "secretaccess", "secretrefresh"} {
			if strings.Contains(out, secret) {
				t.Errorf("output leaks %q: %s", secret, out)
			}
		}
	}
}

func TestClientMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, envOptions{sim: etsysim.Options{FreezeClock: true}, registry: reg})
	ctx := ctxT(t)
	for range 3 {
		if _, err := e.client.GetMe(ctx, e.ts); err != nil {
			t.Fatal(err)
		}
	}
	_, _ = e.client.GetShop(ctx, nil, 1)
	// A second client on the same registry shares the collectors.
	if _, err := etsy.NewClient(etsy.Config{KeyString: "k", SharedSecret: "s", Limiter: e.client.Limiter()}, reg); err != nil {
		t.Fatalf("second client on one registry: %v", err)
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"etsy_requests_total", map[string]string{"endpoint": "getMe", "status": "200"}, 3},
		{"etsy_requests_total", map[string]string{"endpoint": "getShop", "status": "404"}, 1},
		{"etsy_ratelimit_remaining", map[string]string{"limiter": "etsy", "window": "day"}, 1000000 - 4},
	} {
		if got := servicetest.Metric(t, reg, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if !servicetest.MetricExists(t, reg, "etsy_ratelimit_remaining", map[string]string{"limiter": "etsy", "window": "second"}) {
		t.Error("no per-second remaining gauge")
	}
}
