package etsysim_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/etsy/etsysim"
)

var start = time.Date(2026, 5, 4, 8, 0, 0, 0, time.UTC)

func newSim(t *testing.T, o etsysim.Options) *etsysim.Sim {
	t.Helper()
	if o.Start.IsZero() {
		o.Start = start
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	sim, err := etsysim.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	return sim
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// call sends one API request to the simulator with the default key.
func call(t *testing.T, sim http.Handler, method, path, token, body string) *httptest.ResponseRecorder {
	t.Helper()
	var rb io.Reader
	if body != "" {
		rb = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rb)
	req.Header.Set("x-api-key", etsysim.DefaultKeyString+":"+etsysim.DefaultSharedSecret)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	sim.ServeHTTP(rec, req)
	return rec
}

func errorBody(t *testing.T, rec *httptest.ResponseRecorder) (string, string) {
	t.Helper()
	var b struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil || b.Error == "" {
		t.Fatalf("status %d body %q is not Etsy's {\"error\": …}", rec.Code, rec.Body)
	}
	return b.Error, b.Description
}

type world struct {
	sim   *etsysim.Sim
	shop  etsysim.ShopInfo
	token etsy.Token
}

func newWorld(t *testing.T, o etsysim.Options) world {
	t.Helper()
	o.FreezeClock = true
	sim := newSim(t, o)
	shop, err := sim.CreateShop(etsysim.ShopSpec{})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := sim.IssueToken(shop.ShopID, nil)
	if err != nil {
		t.Fatal(err)
	}
	return world{sim, shop, tok}
}

func TestAPIKeyAndBearer(t *testing.T) {
	w := newWorld(t, etsysim.Options{})
	me := "/v3/application/users/me"
	for _, tt := range []struct {
		name   string
		key    string
		token  string
		status int
		code   string
	}{
		{"no key", "", w.token.AccessToken, 403, "Missing x-api-key header"},
		{"keystring only", etsysim.DefaultKeyString, w.token.AccessToken, 403, "Invalid API key: x-api-key must be keystring:shared_secret"},
		{"wrong secret", etsysim.DefaultKeyString + ":nope", w.token.AccessToken, 403, "Invalid API key"},
		{"no token", etsysim.DefaultKeyString + ":" + etsysim.DefaultSharedSecret, "", 401, "invalid_request"},
		{"unknown token", etsysim.DefaultKeyString + ":" + etsysim.DefaultSharedSecret, "1.nope", 401, "invalid_token"},
		{"good", etsysim.DefaultKeyString + ":" + etsysim.DefaultSharedSecret, w.token.AccessToken, 200, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", me, nil)
			if tt.key != "" {
				req.Header.Set("x-api-key", tt.key)
			}
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			rec := httptest.NewRecorder()
			w.sim.ServeHTTP(rec, req)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			if tt.code != "" {
				if code, _ := errorBody(t, rec); code != tt.code {
					t.Errorf("error %q, want %q", code, tt.code)
				}
			}
		})
	}

	t.Run("expiry", func(t *testing.T) {
		w.sim.Advance(time.Hour)
		rec := call(t, w.sim, "GET", me, w.token.AccessToken, "")
		code, desc := errorBody(t, rec)
		if rec.Code != 401 || code != "invalid_token" || desc != "access token is expired" {
			t.Errorf("after an hour: %d %q %q", rec.Code, code, desc)
		}
	})
	t.Run("scope", func(t *testing.T) {
		tok, err := w.sim.IssueToken(w.shop.ShopID, []string{"listings_r"})
		if err != nil {
			t.Fatal(err)
		}
		rec := call(t, w.sim, "GET", me, tok.AccessToken, "")
		if code, _ := errorBody(t, rec); rec.Code != 403 || code != "insufficient_scope" {
			t.Errorf("shops_r missing: %d %q", rec.Code, code)
		}
	})
}

func TestRateLimitHeadersAnd429(t *testing.T) {
	w := newWorld(t, etsysim.Options{QPS: 3, QPD: 5})
	ping := "/v3/application/openapi-ping"
	for i := range 3 {
		rec := call(t, w.sim, "GET", ping, "", "")
		want := map[string]string{"x-limit-per-second": "3", "x-remaining-this-second": strconv.Itoa(2 - i), "x-limit-per-day": "5", "x-remaining-today": strconv.Itoa(4 - i)}
		for h, v := range want {
			if got := rec.Header().Get(h); got != v {
				t.Errorf("request %d: %s = %q, want %q", i, h, got, v)
			}
		}
	}
	rec := call(t, w.sim, "GET", ping, "", "")
	if code, _ := errorBody(t, rec); rec.Code != 429 || code != "Exceeded per second rate limit" || rec.Header().Get("retry-after") != "1" {
		t.Fatalf("fourth request in a second: %d %q retry-after %q", rec.Code, code, rec.Header().Get("retry-after"))
	}
	// Wait out the second (real time: QPS is about real load).
	time.Sleep(1100 * time.Millisecond)
	for range 2 {
		if rec := call(t, w.sim, "GET", ping, "", ""); rec.Code != 200 {
			t.Fatalf("after a second: %d", rec.Code)
		}
	}
	rec = call(t, w.sim, "GET", ping, "", "")
	ra, _ := strconv.Atoi(rec.Header().Get("retry-after"))
	if code, _ := errorBody(t, rec); rec.Code != 429 || code != "Exceeded daily rate limit" || ra < 23*3600 || rec.Header().Get("x-remaining-today") != "0" {
		t.Fatalf("sixth request of the day: %d %q retry-after %d", rec.Code, code, ra)
	}
	// The rolling day slides on the simulated clock.
	w.sim.Advance(24*time.Hour + 5*time.Minute)
	if rec := call(t, w.sim, "GET", ping, "", ""); rec.Code != 200 {
		t.Errorf("a day later: %d %s", rec.Code, rec.Body)
	}
	st := w.sim.Stats()
	k := st.Keys[etsysim.DefaultKeyString]
	if k.Served != 6 || k.RateLimited != 2 || st.RequestsServed != 6 || st.RateLimited != 2 {
		t.Errorf("stats %+v", st)
	}
	if k.MaxQPS < 4 {
		t.Errorf("max observed QPS %d, want at least the 4 that arrived in one second", k.MaxQPS)
	}
}

func TestInventoryRules(t *testing.T) {
	w := newWorld(t, etsysim.Options{})
	l, err := w.sim.CreateListing(w.shop.ShopID, etsysim.ListingSpec{Title: "Mug", Price: 2000, Products: []etsysim.ProductSpec{
		{SKU: "MUG-BLK", Quantity: 1, PropertyValues: []etsysim.PropertyValueSpec{{PropertyID: 200, PropertyName: "Primary color", Value: "Black"}}},
		{SKU: "MUG-WHT", Quantity: 2, PropertyValues: []etsysim.PropertyValueSpec{{PropertyID: 200, PropertyName: "Primary color", Value: "White"}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	invPath := "/v3/application/listings/" + strconv.FormatInt(l.ListingID, 10) + "/inventory"
	put := func(body string) *httptest.ResponseRecorder {
		return call(t, w.sim, "PUT", invPath, w.token.AccessToken, body)
	}

	for _, tt := range []struct{ name, body, want string }{
		{"all zero", `{"products":[{"sku":"A","property_values":[],"offerings":[{"price":1.0,"quantity":0,"is_enabled":true}]}]}`, "One offering must have quantity greater than 0"},
		{"only disabled stock", `{"products":[{"sku":"A","property_values":[],"offerings":[{"price":1.0,"quantity":4,"is_enabled":false}]}]}`, "One offering must have quantity greater than 0"},
		{"empty values", `{"products":[{"sku":"A","property_values":[{"property_id":200,"value_ids":[],"values":[]}],"offerings":[{"price":1.0,"quantity":1,"is_enabled":true}]}]}`, "Property values can't be empty"},
		{"read-only field", `{"products":[{"product_id":5,"sku":"A","property_values":[],"offerings":[{"price":1.0,"quantity":1,"is_enabled":true}]}]}`, "Unexpected parameter product_id: remove read-only fields before updating inventory"},
		{"no products", `{"products":[]}`, "Products can't be empty"},
		{"missing is_enabled", `{"products":[{"sku":"A","property_values":[],"offerings":[{"price":1.0,"quantity":1}]}]}`, "Missing or invalid offering is_enabled"},
		{"too many", `{"products":[{"sku":"A","property_values":[],"offerings":[{"price":1.0,"quantity":1000,"is_enabled":true}]}]}`, "Quantity must be between 0 and 999"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := put(tt.body)
			if code, _ := errorBody(t, rec); rec.Code != 400 || code != tt.want {
				t.Errorf("%d %q, want 400 %q", rec.Code, code, tt.want)
			}
		})
	}
	after, _ := w.sim.Listing(l.ListingID)
	if diff := cmp.Diff(l.Variants, after.Variants); diff != "" {
		t.Errorf("refused writes changed the listing (-before +after):\n%s", diff)
	}

	// A sale to zero of one variant fires out_of_stock; of the listing,
	// sold_out. Product ids do not change on a sale.
	hook := newReceiver(t)
	if _, err := w.sim.AddWebhook(etsysim.WebhookSpec{URL: hook.srv.URL}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.sim.CreateOrder(w.shop.ShopID, etsysim.OrderSpec{Items: []etsysim.OrderItem{{ListingID: l.ListingID, SKU: "MUG-BLK", Quantity: 1}}}); err != nil {
		t.Fatal(err)
	}
	mid, _ := w.sim.Listing(l.ListingID)
	if mid.State != "active" || mid.Quantity != 2 || mid.Variants[0].ProductID != l.Variants[0].ProductID {
		t.Errorf("after selling the black mug: %+v", mid)
	}
	if _, err := w.sim.CreateOrder(w.shop.ShopID, etsysim.OrderSpec{Items: []etsysim.OrderItem{{ListingID: l.ListingID, SKU: "MUG-WHT", Quantity: 2}}}); err != nil {
		t.Fatal(err)
	}
	sold, _ := w.sim.Listing(l.ListingID)
	if sold.State != etsy.ListingSoldOut || sold.Quantity != 0 {
		t.Errorf("after selling everything: state %s quantity %d", sold.State, sold.Quantity)
	}
	if _, err := w.sim.CreateOrder(w.shop.ShopID, etsysim.OrderSpec{Items: []etsysim.OrderItem{{ListingID: l.ListingID, SKU: "MUG-WHT", Quantity: 1}}}); !errors.Is(err, etsysim.ErrInvalid) {
		t.Errorf("ordering a sold-out listing = %v, want ErrInvalid", err)
	}
	if err := w.sim.WaitDeliveries(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	events := hook.events()
	want := []string{"order.paid", "inventory.out_of_stock", "order.paid", "inventory.out_of_stock", "listing.updated"}
	if diff := cmp.Diff(want, events); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}

	// A full write regenerates every id and, with stock, renews the
	// listing.
	body := `{"products":[` +
		`{"sku":"MUG-BLK","property_values":[{"property_id":200,"property_name":"Primary color","value_ids":[` + strconv.FormatInt(l.Variants[0].ValueIDs[0], 10) + `],"values":["Black"]}],"offerings":[{"price":20.00,"quantity":5,"is_enabled":true}]},` +
		`{"sku":"MUG-WHT","property_values":[{"property_id":200,"property_name":"Primary color","value_ids":[` + strconv.FormatInt(l.Variants[1].ValueIDs[0], 10) + `],"values":["White"]}],"offerings":[{"price":19.990000000000002,"quantity":0,"is_enabled":true}]}],` +
		`"price_on_property":[200],"quantity_on_property":[200],"sku_on_property":[200]}`
	if rec := put(body); rec.Code != 200 {
		t.Fatalf("restock write: %d %s", rec.Code, rec.Body)
	}
	re, _ := w.sim.Listing(l.ListingID)
	if re.State != etsy.ListingActive || re.Quantity != 5 || re.Variants[1].Price != 1999 {
		t.Errorf("after restock: %+v", re)
	}
	for i := range re.Variants {
		if re.Variants[i].ProductID == l.Variants[i].ProductID || re.Variants[i].OfferingID == l.Variants[i].OfferingID {
			t.Errorf("variant %d kept its ids across a write", i)
		}
		if re.Variants[i].VariantKey != l.Variants[i].VariantKey {
			t.Errorf("variant %d key %q became %q", i, l.Variants[i].VariantKey, re.Variants[i].VariantKey)
		}
	}
}

func TestOrdersLifecycle(t *testing.T) {
	w := newWorld(t, etsysim.Options{})
	l, err := w.sim.CreateListing(w.shop.ShopID, etsysim.ListingSpec{Title: "Print", Price: 4500, Quantity: 3, ShippingCost: 500})
	if err != nil {
		t.Fatal(err)
	}
	r, err := w.sim.CreateOrder(w.shop.ShopID, etsysim.OrderSpec{Items: []etsysim.OrderItem{{ListingID: l.ListingID, Quantity: 2}}, Discount: 900, TaxCost: 300})
	if err != nil {
		t.Fatal(err)
	}
	want := etsysim.ReceiptTruth{
		ReceiptID: r.ReceiptID, ShopID: w.shop.ShopID, BuyerUserID: r.BuyerUserID, Status: "paid", IsPaid: true,
		Currency: "USD", TotalPrice: 9000, Discount: 900, Subtotal: 8100, ShippingCost: 500, TaxCost: 300, GrandTotal: 8900,
		Items:     []etsysim.ItemTruth{{TransactionID: r.Items[0].TransactionID, ListingID: l.ListingID, ProductID: l.Variants[0].ProductID, VariantKey: l.Variants[0].VariantKey, Quantity: 2, Price: 4500}},
		CreatedAt: start, UpdatedAt: start,
	}
	if diff := cmp.Diff(want, r); diff != "" {
		t.Errorf("receipt (-want +got):\n%s", diff)
	}
	w.sim.Advance(time.Minute)
	c, err := w.sim.CancelOrder(r.ReceiptID, true)
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != "canceled" || !c.IsCanceled || c.Refunded != 8900 || !c.UpdatedAt.Equal(start.Add(time.Minute)) {
		t.Errorf("canceled receipt %+v", c)
	}
	if back, _ := w.sim.Listing(l.ListingID); back.Quantity != 3 {
		t.Errorf("quantity after a restocking cancel = %d, want 3", back.Quantity)
	}
	if _, err := w.sim.ShipOrder(r.ReceiptID, "", ""); !errors.Is(err, etsysim.ErrInvalid) {
		t.Errorf("shipping a canceled order = %v, want ErrInvalid", err)
	}
	r2, _ := w.sim.CreateOrder(w.shop.ShopID, etsysim.OrderSpec{Items: []etsysim.OrderItem{{ListingID: l.ListingID, Quantity: 1}}})
	if s, err := w.sim.ShipOrder(r2.ReceiptID, "", ""); err != nil || s.Status != "completed" || !s.IsShipped {
		t.Errorf("ship = %+v, %v", s, err)
	}
	if d, err := w.sim.DeliverOrder(r2.ReceiptID); err != nil || !d.IsDelivered {
		t.Errorf("deliver = %+v, %v", d, err)
	}
	if f, err := w.sim.RefundOrder(r2.ReceiptID, 1000, "late"); err != nil || f.Status != "partially refunded" || f.Refunded != 1000 {
		t.Errorf("refund = %+v, %v", f, err)
	}
	if _, err := w.sim.Receipt(42); !errors.Is(err, etsysim.ErrNotFound) {
		t.Errorf("unknown receipt = %v", err)
	}
}

func TestDeterministicUnderSeed(t *testing.T) {
	run := func() etsysim.Truth {
		sim := newSim(t, etsysim.Options{Seed: 99, FreezeClock: true})
		shop, err := sim.CreateShop(etsysim.ShopSpec{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sim.GenerateCatalogue(shop.ShopID, 30); err != nil {
			t.Fatal(err)
		}
		for _, kind := range []string{"order", "order", "restock", "edit", "order", "ship", "cancel", "deliver", "order"} {
			if _, err := sim.ScenarioStep(kind, etsysim.Scenario{}); err != nil && !errors.Is(err, etsysim.ErrNothingToDo) {
				t.Fatal(err)
			}
			sim.Advance(time.Minute)
		}
		return sim.Truth(0)
	}
	a, b := run(), run()
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("two runs with one seed differ (-first +second):\n%s", diff)
	}
	if len(a.Receipts) < 3 {
		t.Errorf("only %d receipts", len(a.Receipts))
	}
}

func TestDemoCatalogue(t *testing.T) {
	w := newWorld(t, etsysim.Options{Seed: 5})
	ls, err := w.sim.GenerateCatalogue(w.shop.ShopID, 60)
	if err != nil {
		t.Fatal(err)
	}
	var variations, low, noSKU int
	skus := map[string]int64{}
	for _, l := range ls {
		for _, v := range l.Variants {
			if other, dup := skus[v.SKU]; dup && v.SKU != "" {
				t.Errorf("SKU %q on listings %d and %d", v.SKU, other, l.ListingID)
			}
			skus[v.SKU] = l.ListingID
		}
		if l.HasVariations {
			variations++
		}
		if l.Quantity <= 3 || func() bool {
			for _, v := range l.Variants {
				if v.Quantity <= 3 {
					return true
				}
			}
			return false
		}() {
			low++
		}
		for _, v := range l.Variants {
			if v.SKU == "" {
				noSKU++
				break
			}
		}
		if l.Quantity == 0 {
			t.Errorf("listing %d has no stock at all", l.ListingID)
		}
	}
	t.Logf("60 listings: %d with variations, %d low on stock, %d with SKU-less variants", variations, low, noSKU)
	if variations < 10 || low < 5 || noSKU < 2 {
		t.Errorf("catalogue lacks variety: %d with variations, %d low, %d without SKUs", variations, low, noSKU)
	}
}

func TestRunScenario(t *testing.T) {
	// At 600× a minute of simulated time takes 100 ms.
	sim := newSim(t, etsysim.Options{TimeScale: 600})
	shop, _ := sim.CreateShop(etsysim.ShopSpec{})
	if _, err := sim.GenerateCatalogue(shop.ShopID, 20); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctxT(t))
	done := make(chan error)
	go func() {
		done <- sim.RunScenario(ctx, etsysim.Scenario{OrdersPerMinute: 60, ShipmentsPerMinute: 20, RestocksPerMinute: 10})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for sim.Stats().Orders < 5 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := sim.Stats().Orders; n < 5 {
		t.Errorf("%d orders in up to 10 s at 60 a simulated minute", n)
	}
	frozen := newSim(t, etsysim.Options{FreezeClock: true})
	if err := frozen.RunScenario(ctxT(t), etsysim.Scenario{OrdersPerMinute: 1}); !errors.Is(err, etsysim.ErrInvalid) {
		t.Errorf("RunScenario on a frozen clock = %v, want ErrInvalid", err)
	}
}

func TestOrderIDOffsetKeepsCatalogueAndMovesOrderIDs(t *testing.T) {
	run := func(offset int64) (int64, []int64) {
		sim := newSim(t, etsysim.Options{Seed: 7, FreezeClock: true, OrderIDOffset: offset})
		shop, err := sim.CreateShop(etsysim.ShopSpec{})
		if err != nil {
			t.Fatal(err)
		}
		ls, err := sim.GenerateCatalogue(shop.ShopID, 5)
		if err != nil {
			t.Fatal(err)
		}
		r, err := sim.RandomOrder(shop.ShopID)
		if err != nil {
			t.Fatal(err)
		}
		var listings []int64
		for _, l := range ls {
			listings = append(listings, l.ListingID)
		}
		return r.ReceiptID, listings
	}
	r0, l0 := run(0)
	r1, l1 := run(100_000_000)
	if diff := cmp.Diff(l0, l1); diff != "" {
		t.Errorf("catalogue changed with the offset (-without +with):\n%s", diff)
	}
	if r1 != r0+100_000_000 {
		t.Errorf("receipt id with offset = %d, want %d", r1, r0+100_000_000)
	}
}

// gridBody is an updateListingInventory body for a colour × size grid,
// one product per cell: sku, quantity and price (minor units) by cell.
type gridCell struct {
	colour, size string
	sku          string
	quantity     int
	price        int64
}

func gridBody(t *testing.T, cells []gridCell, priceOn, quantityOn, skuOn []int64) string {
	t.Helper()
	type pv struct {
		PropertyID   int64    `json:"property_id"`
		PropertyName string   `json:"property_name"`
		ValueIDs     []int64  `json:"value_ids"`
		Values       []string `json:"values"`
	}
	type offering struct {
		Price     float64 `json:"price"`
		Quantity  int     `json:"quantity"`
		IsEnabled bool    `json:"is_enabled"`
	}
	type product struct {
		SKU            string     `json:"sku"`
		PropertyValues []pv       `json:"property_values"`
		Offerings      []offering `json:"offerings"`
	}
	body := struct {
		Products           []product `json:"products"`
		PriceOnProperty    []int64   `json:"price_on_property"`
		QuantityOnProperty []int64   `json:"quantity_on_property"`
		SKUOnProperty      []int64   `json:"sku_on_property"`
	}{PriceOnProperty: priceOn, QuantityOnProperty: quantityOn, SKUOnProperty: skuOn}
	for _, c := range cells {
		body.Products = append(body.Products, product{
			SKU: c.sku,
			PropertyValues: []pv{
				{PropertyID: 200, PropertyName: "Primary color", ValueIDs: []int64{}, Values: []string{c.colour}},
				{PropertyID: 513, PropertyName: "Size", ValueIDs: []int64{}, Values: []string{c.size}},
			},
			Offerings: []offering{{Price: float64(c.price) / 100, Quantity: c.quantity, IsEnabled: true}},
		})
	}
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestInventoryOnPropertyConsistency(t *testing.T) {
	w := newWorld(t, etsysim.Options{})
	var spec etsysim.ListingSpec
	spec.Title, spec.Price = "Beanie", 2000
	for _, c := range []string{"Navy", "Red"} {
		for _, s := range []string{"S", "L"} {
			spec.Products = append(spec.Products, etsysim.ProductSpec{SKU: "B-" + c + "-" + s, Quantity: 3, PropertyValues: []etsysim.PropertyValueSpec{
				{PropertyID: 200, PropertyName: "Primary color", Value: c}, {PropertyName: "Size", Value: s}}})
		}
	}
	l, err := w.sim.CreateListing(w.shop.ShopID, spec)
	if err != nil {
		t.Fatal(err)
	}
	invPath := "/v3/application/listings/" + strconv.FormatInt(l.ListingID, 10) + "/inventory"
	// cells: quantity and SKU per colour, price per size, by default.
	cells := func(edit func(c *gridCell)) []gridCell {
		var out []gridCell
		for _, c := range []string{"Navy", "Red"} {
			for i, s := range []string{"S", "L"} {
				cell := gridCell{colour: c, size: s, sku: "B-" + c, quantity: 4, price: 2000 + 500*int64(i)}
				if c == "Red" {
					cell.quantity = 6
				}
				if edit != nil {
					edit(&cell)
				}
				out = append(out, cell)
			}
		}
		return out
	}
	refusals := []struct {
		name                       string
		cells                      []gridCell
		priceOn, quantityOn, skuOn []int64
		want                       string
	}{
		{"a quantity varies on a property not listed", cells(func(c *gridCell) {
			c.sku += "-" + c.size
			if c.colour == "Navy" && c.size == "L" {
				c.quantity = 5
			}
		}), []int64{513}, []int64{200}, []int64{200, 513}, "quantity_on_property: products with the same values for the listed properties must have the same quantity"},
		{"quantities differ with none listed", cells(nil), []int64{513}, []int64{}, []int64{200},
			"quantity_on_property: products with the same values for the listed properties must have the same quantity"},
		{"prices differ with none listed", cells(nil), nil, []int64{200}, []int64{200},
			"price_on_property: products with the same values for the listed properties must have the same price"},
		{"a price listed on the wrong property", cells(nil), []int64{200}, []int64{200}, []int64{200},
			"price_on_property: products with the same values for the listed properties must have the same price"},
		{"SKUs vary on a property not listed", cells(func(c *gridCell) { c.sku += "-" + c.size }), []int64{513}, []int64{200, 513}, []int64{200},
			"sku_on_property: products with the same values for the listed properties must have the same sku"},
	}
	for _, tt := range refusals {
		t.Run("refused/"+tt.name, func(t *testing.T) {
			rec := call(t, w.sim, "PUT", invPath, w.token.AccessToken, gridBody(t, tt.cells, tt.priceOn, tt.quantityOn, tt.skuOn))
			if code, _ := errorBody(t, rec); rec.Code != 400 || code != tt.want {
				t.Errorf("%d %q, want 400 %q", rec.Code, code, tt.want)
			}
		})
	}
	after, _ := w.sim.Listing(l.ListingID)
	if diff := cmp.Diff(l.Variants, after.Variants); diff != "" {
		t.Errorf("refused writes changed the listing (-before +after):\n%s", diff)
	}

	accepted := []struct {
		name                       string
		cells                      []gridCell
		priceOn, quantityOn, skuOn []int64
	}{
		{"each field on the property it varies on", cells(nil), []int64{513}, []int64{200}, []int64{200}},
		{"a field listed on more properties than it varies on", cells(nil), []int64{200, 513}, []int64{200, 513}, []int64{200, 513}},
		{"equal everywhere, none listed", cells(func(c *gridCell) { c.quantity, c.price, c.sku = 2, 1500, "B" }), []int64{}, []int64{}, []int64{}},
		{"every cell its own", cells(func(c *gridCell) {
			c.sku += "-" + c.size
			if c.size == "L" {
				c.quantity++
			}
		}), []int64{513}, []int64{200, 513}, []int64{200, 513}},
	}
	for _, tt := range accepted {
		t.Run("accepted/"+tt.name, func(t *testing.T) {
			rec := call(t, w.sim, "PUT", invPath, w.token.AccessToken, gridBody(t, tt.cells, tt.priceOn, tt.quantityOn, tt.skuOn))
			if rec.Code != 200 {
				t.Fatalf("%d %s", rec.Code, rec.Body)
			}
			var got struct {
				QuantityOnProperty []int64 `json:"quantity_on_property"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.quantityOn, got.QuantityOnProperty); diff != "" {
				t.Errorf("quantity_on_property (-sent +stored):\n%s", diff)
			}
		})
	}
}
