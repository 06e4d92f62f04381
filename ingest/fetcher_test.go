package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shopledger/shopledger/domain"
	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/etsy/etsysim"
	"github.com/shopledger/shopledger/etsymap"
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/ingest"
	"github.com/shopledger/shopledger/service/servicetest"
)

func (e *etsyRig) receiptURL(shopID, receiptID int64) string {
	return fmt.Sprintf("%s/v3/application/shops/%d/receipts/%d", e.srv.URL, shopID, receiptID)
}

func (e *etsyRig) listingURL(listingID int64) string {
	return fmt.Sprintf("%s/v3/application/listings/%d", e.srv.URL, listingID)
}

// shopWithListing creates a connected shop with a two-variant listing.
func shopWithListing(t *testing.T, e *etsyRig) (etsysim.ShopInfo, etsysim.ListingTruth) {
	t.Helper()
	shop, err := e.sim.CreateShop(etsysim.ShopSpec{Name: "MugShop"})
	if err != nil {
		t.Fatal(err)
	}
	e.connect(t, shop.ShopID)
	l, err := e.sim.CreateListing(shop.ShopID, etsysim.ListingSpec{
		Title: "Mug", Price: 1500,
		Products: []etsysim.ProductSpec{
			{SKU: "RED", Quantity: 5, PropertyValues: []etsysim.PropertyValueSpec{{PropertyName: "Color", Value: "Red"}}},
			{SKU: "BLUE", Quantity: 3, PropertyValues: []etsysim.PropertyValueSpec{{PropertyName: "Color", Value: "Blue"}}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return shop, l
}

func handle(t *testing.T, p *pipeline, rec events.Record) {
	t.Helper()
	if err := p.fetcher.Handle(context.Background(), rec); err != nil {
		t.Fatalf("Handle %s: %v", rec.ID, err)
	}
}

// listingPipeline starts a pipeline with cfg on a fresh simulator holding
// one shop with one listing.
func listingPipeline(t *testing.T, cfg ingest.FetcherConfig) (*etsyRig, *pipeline, etsysim.ShopInfo, etsysim.ListingTruth) {
	t.Helper()
	e := newEtsyRig(t, etsysim.Options{})
	p := newPipeline(t, e, cfg)
	shop, l := shopWithListing(t, e)
	return e, p, shop, l
}

// importedListing starts a pipeline on a fresh simulator holding one shop
// with one listing, and imports the listing.
func importedListing(t *testing.T) (*etsyRig, *pipeline, etsysim.ShopInfo, etsysim.ListingTruth) {
	t.Helper()
	e, p, shop, l := listingPipeline(t, ingest.FetcherConfig{})
	handle(t, p, p.deliver(t, "msg_import", etsy.EventListingCreated, e.listingURL(l.ListingID), shop.ShopID))
	return e, p, shop, l
}

// balanceDiff compares a listing's balances at Etsy and in the ledger
// (-etsy +ledger).
func balanceDiff(t *testing.T, e *etsyRig, p *pipeline, listingID int64) string {
	t.Helper()
	return cmp.Diff(truthBalances(t, e, listingID), ledgerBalances(t, p, listingID))
}

// ledgerBalances is the ledger's stock per variant of a listing.
func ledgerBalances(t *testing.T, p *pipeline, listingID int64) map[string]int64 {
	t.Helper()
	b := domain.ReplayListing(listingID, streamOf(t, p.store, events.ListingStream(listingID))).Balances()
	for k, v := range b {
		if v == 0 {
			delete(b, k)
		}
	}
	return b
}

// truthBalances is the simulator's stock per variant of a listing.
func truthBalances(t *testing.T, e *etsyRig, listingID int64) map[string]int64 {
	t.Helper()
	l, err := e.sim.Listing(listingID)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, v := range l.Variants {
		if v.Enabled && v.Quantity != 0 {
			out[v.VariantKey] += int64(v.Quantity)
		}
	}
	return out
}

func TestFetcherOrderPaidRecordsSaleAndStock(t *testing.T) {
	t.Parallel()
	e, p, shop, l := listingPipeline(t, ingest.FetcherConfig{})

	imp := p.deliver(t, "msg_created", etsy.EventListingCreated, e.listingURL(l.ListingID), shop.ShopID)
	handle(t, p, imp)
	if diff := balanceDiff(t, e, p, l.ListingID); diff != "" {
		t.Fatalf("after import, balances (-etsy +ledger):\n%s", diff)
	}

	order, err := e.sim.CreateOrder(shop.ShopID, etsysim.OrderSpec{Items: []etsysim.OrderItem{{ListingID: l.ListingID, SKU: "RED", Quantity: 2}}, TaxCost: 120})
	if err != nil {
		t.Fatal(err)
	}
	paid := p.deliver(t, "msg_paid", etsy.EventOrderPaid, e.receiptURL(shop.ShopID, order.ReceiptID), shop.ShopID)
	handle(t, p, paid)

	recs := streamOf(t, p.store, events.ReceiptStream(order.ReceiptID))
	if diff := cmp.Diff([]string{events.TypeSaleRecorded, events.TypeSalePaid}, typesOf(recs)); diff != "" {
		t.Fatalf("receipt stream (-want +got):\n%s", diff)
	}
	sale := recs[0].Data.(events.SaleRecorded)
	cur := order.Currency
	wantTotals := []events.Money{{Amount: order.Subtotal, Currency: cur}, {Amount: order.ShippingCost, Currency: cur}, {Amount: order.TaxCost, Currency: cur}, {Amount: order.Discount, Currency: cur}, {Amount: order.GrandTotal, Currency: cur}}
	gotTotals := []events.Money{sale.Subtotal, sale.Shipping, sale.Tax, sale.Discount, sale.GrandTotal}
	if diff := cmp.Diff(wantTotals, gotTotals, cmp.Comparer(func(a, b events.Money) bool {
		return a.Amount == b.Amount && (a.Amount == 0 || a.Currency == b.Currency)
	})); diff != "" {
		t.Errorf("totals subtotal, shipping, tax, discount, grand (-etsy +ledger):\n%s", diff)
	}
	if len(sale.Items) != 1 || sale.Items[0].TransactionID != order.Items[0].TransactionID ||
		sale.Items[0].VariantKey != order.Items[0].VariantKey || sale.Items[0].Quantity != 2 || sale.Items[0].UnitPrice.Amount != order.Items[0].Price {
		t.Errorf("items = %+v, want the simulator's %+v", sale.Items, order.Items)
	}

	var sold []events.Record
	for _, r := range streamOf(t, p.store, events.ListingStream(l.ListingID)) {
		if r.Type() == events.TypeStockSold {
			sold = append(sold, r)
		}
	}
	if len(sold) != 1 || sold[0].DedupeKey != fmt.Sprintf("etsy-txn:%d:sold", order.Items[0].TransactionID) {
		t.Fatalf("stock.sold = %+v, want one keyed by the transaction", sold)
	}
	for _, r := range append(recs, sold...) {
		if r.Metadata.CausationID != paid.ID.String() || r.Metadata.CorrelationID != paid.Metadata.CorrelationID || r.Metadata.Source != etsymap.SourceWebhook {
			t.Errorf("%s metadata = %+v, want causation %s and correlation %s", r.Type(), r.Metadata, paid.ID, paid.Metadata.CorrelationID)
		}
	}
	if diff := balanceDiff(t, e, p, l.ListingID); diff != "" {
		t.Errorf("after the sale, balances (-etsy +ledger):\n%s", diff)
	}

	// A redelivery (after a crash, say) adds nothing.
	before := eventCount(t, p.db.DB)
	handle(t, p, paid)
	if after := eventCount(t, p.db.DB); after != before {
		t.Errorf("handling the same evidence again added %d events", after-before)
	}
}

func TestFetcherInventoryChangeAdjustsToEtsy(t *testing.T) {
	t.Parallel()
	e, p, shop, l := importedListing(t)

	if _, err := e.sim.RestockListing(l.ListingID, etsysim.Restock{SKU: "BLUE", Delta: 4}); err != nil {
		t.Fatal(err)
	}
	before := len(streamOf(t, p.store, events.ListingStream(l.ListingID)))
	ev := p.deliver(t, "msg_restock", etsy.EventInventoryUpdated, e.listingURL(l.ListingID)+"/inventory", shop.ShopID)
	handle(t, p, ev)
	added := streamOf(t, p.store, events.ListingStream(l.ListingID))[before:]
	var got []events.Payload
	for _, r := range added {
		got = append(got, r.Data)
		if r.Metadata.CausationID != ev.ID.String() {
			t.Errorf("%s caused by %q, want the evidence %s", r.Type(), r.Metadata.CausationID, ev.ID)
		}
	}
	want := []events.Payload{
		events.StockObserved{ListingID: l.ListingID, VariantKey: "sku:BLUE", Quantity: 7, Source: etsymap.SourceWebhook},
		events.StockAdjusted{ListingID: l.ListingID, VariantKey: "sku:BLUE", Delta: 4, Reason: events.ReasonEtsyChange, Cause: "webhook:msg_restock"},
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b time.Time) bool { return true })); diff != "" {
		t.Errorf("events for a restock (-want +got):\n%s", diff)
	}
	if diff := balanceDiff(t, e, p, l.ListingID); diff != "" {
		t.Errorf("balances (-etsy +ledger):\n%s", diff)
	}
}

// Webhooks are not delivered in order: when inventory.out_of_stock is
// handled before the order.paid that caused it, the sale is settled from
// Etsy's receipts first, so it is recorded as a sale and not as a change
// at Etsy.
func TestFetcherSettlesSalesBeforeComparingStock(t *testing.T) {
	t.Parallel()
	e, p, shop, l := importedListing(t)

	order, err := e.sim.CreateOrder(shop.ShopID, etsysim.OrderSpec{Items: []etsysim.OrderItem{{ListingID: l.ListingID, SKU: "BLUE", Quantity: 3}}})
	if err != nil {
		t.Fatal(err)
	}
	handle(t, p, p.deliver(t, "msg_oos", etsy.EventInventoryOutOfStock, e.listingURL(l.ListingID)+"/inventory", shop.ShopID))
	handle(t, p, p.deliver(t, "msg_paid", etsy.EventOrderPaid, e.receiptURL(shop.ShopID, order.ReceiptID), shop.ShopID))

	var adjustments []events.StockAdjusted
	sold := 0
	for _, r := range streamOf(t, p.store, events.ListingStream(l.ListingID)) {
		switch d := r.Data.(type) {
		case events.StockAdjusted:
			if d.Reason != events.ReasonInitialImport {
				adjustments = append(adjustments, d)
			}
		case events.StockSold:
			sold++
		}
	}
	if len(adjustments) != 0 || sold != 1 {
		t.Errorf("got adjustments %+v and %d sales, want no adjustment and 1 sale", adjustments, sold)
	}
	if diff := balanceDiff(t, e, p, l.ListingID); diff != "" {
		t.Errorf("balances (-etsy +ledger):\n%s", diff)
	}
}

func TestFetcherListingDeleted(t *testing.T) {
	t.Parallel()
	e, p, shop, l := importedListing(t)
	if err := e.sim.DeleteListing(l.ListingID); err != nil {
		t.Fatal(err)
	}
	handle(t, p, p.deliver(t, "msg_deleted", etsy.EventListingDeleted, e.listingURL(l.ListingID), shop.ShopID))
	recs := streamOf(t, p.store, events.ListingStream(l.ListingID))
	if last := recs[len(recs)-1]; last.Type() != events.TypeListingDeleted {
		t.Errorf("last listing event = %s, want %s", last.Type(), events.TypeListingDeleted)
	}
}

func fetchFailures(t *testing.T, p *pipeline, webhookID string) []events.FetchFailed {
	t.Helper()
	var out []events.FetchFailed
	for _, r := range streamOf(t, p.store, events.WebhookStream(webhookID)) {
		if f, ok := r.Data.(events.FetchFailed); ok {
			if r.DedupeKey != ingest.FetchFailedKey(webhookID) {
				t.Errorf("fetch_failed dedupe key %q", r.DedupeKey)
			}
			out = append(out, f)
		}
	}
	return out
}

func TestUnconnectedShopIsParkedWithoutAffectingOthers(t *testing.T) {
	t.Parallel()
	e, p, shop, l := listingPipeline(t, ingest.FetcherConfig{})
	stranger, err := e.sim.CreateShop(etsysim.ShopSpec{Name: "NotConnected"})
	if err != nil {
		t.Fatal(err)
	}
	order, err := e.sim.CreateOrder(shop.ShopID, etsysim.OrderSpec{Items: []etsysim.OrderItem{{ListingID: l.ListingID, SKU: "RED", Quantity: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	stop := p.run(t)
	defer stop()
	// The unconnected shop's webhook is stored and acknowledged, then
	// parked as fetch_failed without a call to Etsy; the connected shop's
	// webhook behind it is applied.
	p.deliver(t, "msg_stranger", etsy.EventOrderPaid, e.receiptURL(stranger.ShopID, 1), stranger.ShopID)
	p.deliver(t, "msg_connected", etsy.EventOrderPaid, e.receiptURL(shop.ShopID, order.ReceiptID), shop.ShopID)
	waitFor(t, func() bool { return len(streamOf(t, p.store, events.ReceiptStream(order.ReceiptID))) >= 2 })
	waitFor(t, func() bool { return len(fetchFailures(t, p, "msg_stranger")) == 1 })
	f := fetchFailures(t, p, "msg_stranger")[0]
	if f.Attempts != 0 || !strings.Contains(f.Reason, "not connected") {
		t.Errorf("fetch_failed = %+v, want 0 attempts and a reason naming the unconnected shop", f)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 20 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fakeEtsy answers every API call with status and counts the calls.
func fakeEtsy(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func fakeClient(t *testing.T, baseURL string) *etsy.Client {
	t.Helper()
	c, err := etsy.NewClient(etsy.Config{
		BaseURL: baseURL, KeyString: "k", SharedSecret: "s",
		HTTPClient: ingest.EtsyHTTPClient(5 * time.Second), MaxRetries: -1,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// fakeEtsyPipeline is a pipeline whose fetcher asks the fake Etsy at
// baseURL, trying 4 times 1 ms apart.
func fakeEtsyPipeline(t *testing.T, baseURL string) *pipeline {
	t.Helper()
	r := newRig(t, rigOptions{realClock: true})
	tr, err := etsymap.NewTranslator(r.store, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(baseURL)
	f, err := ingest.NewFetcher(r.db.DB, r.store, fakeClient(t, baseURL), staticTokens{}, tr, ingest.FetcherConfig{
		Policy: ingest.URLPolicy{Hosts: []string{u.Host}, AllowHTTP: true}, MaxAttempts: 4, Backoff: time.Millisecond,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &pipeline{rig: r, fetcher: f}
}

// staticTokens connects every shop with a fixed token.
type staticTokens struct{}

func (staticTokens) ForShop(context.Context, int64) (etsy.TokenSource, error) {
	return etsy.StaticTokenSource("1.token"), nil
}

// A 5xx is retried up to MaxAttempts, a 404 is not; either way the
// failure is recorded once, naming the status, even if the evidence comes
// again.
func TestFetcherRecordsEtsyFailure(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name      string
		status    int
		body      string
		webhookID string
		attempts  int64
	}{
		{"server error is retried", http.StatusInternalServerError, `{"error":"Server Error"}`, "msg_500", 4},
		{"not found is not retried", http.StatusNotFound, `{"error":"Receipt not found"}`, "msg_404", 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			srv, calls := fakeEtsy(t, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(c.status)
				fmt.Fprint(w, c.body)
			})
			p := fakeEtsyPipeline(t, srv.URL)
			rec := p.deliver(t, c.webhookID, etsy.EventOrderPaid, srv.URL+"/v3/application/shops/3/receipts/4", 3)
			handle(t, p, rec)
			if n := calls.Load(); n != c.attempts {
				t.Errorf("Etsy called %d times for a %d, want %d", n, c.status, c.attempts)
			}
			got := fetchFailures(t, p, c.webhookID)
			if len(got) != 1 || int64(got[0].Attempts) != c.attempts || got[0].WebhookEventID != rec.ID.String() || !strings.Contains(got[0].Reason, strconv.Itoa(c.status)) {
				t.Fatalf("fetch_failed = %+v, want one after %d attempts naming the %d", got, c.attempts, c.status)
			}
			handle(t, p, rec)
			if got := fetchFailures(t, p, c.webhookID); len(got) != 1 {
				t.Errorf("%d fetch_failed events after a redelivery, want 1", len(got))
			}
		})
	}
}

func TestResourceURLPolicy(t *testing.T) {
	t.Parallel()
	policy := ingest.URLPolicy{Hosts: []string{"openapi.etsy.com", "api.etsy.com"}}
	const shop = 42
	ok := func(kind ingest.ResourceKind, shopID, receipt, listing int64) ingest.Resource {
		return ingest.Resource{Kind: kind, ShopID: shopID, ReceiptID: receipt, ListingID: listing}
	}
	for _, c := range []struct {
		url  string
		want ingest.Resource // zero: refused
	}{
		{"https://openapi.etsy.com/v3/application/shops/42/receipts/7", ok(ingest.ResourceReceipt, 42, 7, 0)},
		{"https://api.etsy.com/v3/application/shops/42/receipts/7", ok(ingest.ResourceReceipt, 42, 7, 0)},
		{"https://OPENAPI.ETSY.COM/v3/application/shops/42/receipts/7", ok(ingest.ResourceReceipt, 42, 7, 0)},
		{"https://openapi.etsy.com:443/v3/application/shops/42/receipts/7", ok(ingest.ResourceReceipt, 42, 7, 0)},
		{"https://openapi.etsy.com/v3/application/shops/42/receipts/7/transactions", ok(ingest.ResourceReceipt, 42, 7, 0)},
		{"https://openapi.etsy.com/v3/application/listings/9", ok(ingest.ResourceListing, 0, 0, 9)},
		{"https://openapi.etsy.com/v3/application/listings/9/inventory", ok(ingest.ResourceListing, 0, 0, 9)},
		{"https://openapi.etsy.com/v3/application/listings/9/inventory/products/5", ok(ingest.ResourceListing, 0, 0, 9)},
		{"https://openapi.etsy.com/v3/application/shops/42/listings/9", ok(ingest.ResourceListing, 42, 0, 9)},
		{"https://openapi.etsy.com/v3/application/shops/42/receipts/7?legacy=false", ok(ingest.ResourceReceipt, 42, 7, 0)},
		// Mismatched shop.
		{"https://openapi.etsy.com/v3/application/shops/43/receipts/7", ingest.Resource{}},
		{"https://openapi.etsy.com/v3/application/shops/43/listings/9", ingest.Resource{}},
		// Evil hosts.
		{"https://evil.example/v3/application/shops/42/receipts/7", ingest.Resource{}},
		{"https://openapi.etsy.com.evil.example/v3/application/shops/42/receipts/7", ingest.Resource{}},
		{"https://evilopenapi.etsy.com/v3/application/shops/42/receipts/7", ingest.Resource{}},
		{"https://openapi.etsy.com./v3/application/shops/42/receipts/7", ingest.Resource{}},
		{"https://openapi.etsy.com:8443/v3/application/shops/42/receipts/7", ingest.Resource{}},
		{"https://127.0.0.1/v3/application/shops/42/receipts/7", ingest.Resource{}},
		{"https://[::1]/v3/application/shops/42/receipts/7", ingest.Resource{}},
		{"https://169.254.169.254/latest/meta-data", ingest.Resource{}},
		// Userinfo and parser tricks.
		{"https://openapi.etsy.com@evil.example/v3/application/shops/42/receipts/7", ingest.Resource{}},
		{"https://user:pass@openapi.etsy.com/v3/application/shops/42/receipts/7", ingest.Resource{}},
		{"https://evil.example\\@openapi.etsy.com/v3/application/shops/42/receipts/7", ingest.Resource{}},
		{"https://evil.example#@openapi.etsy.com/v3/application/shops/42/receipts/7", ingest.Resource{}},
		{"https://evil.example?@openapi.etsy.com/v3/application/shops/42/receipts/7", ingest.Resource{}},
		{"https://openapi.etsy.com%2F@evil.example/v3/application/shops/42/receipts/7", ingest.Resource{}},
		{"//openapi.etsy.com/v3/application/shops/42/receipts/7", ingest.Resource{}},
		{"/v3/application/shops/42/receipts/7", ingest.Resource{}},
		{" https://openapi.etsy.com/v3/application/shops/42/receipts/7", ingest.Resource{}},
		// Schemes.
		{"http://openapi.etsy.com/v3/application/shops/42/receipts/7", ingest.Resource{}},
		{"ftp://openapi.etsy.com/v3/application/shops/42/receipts/7", ingest.Resource{}},
		{"javascript:alert(1)", ingest.Resource{}},
		{"file:///etc/passwd", ingest.Resource{}},
		// Paths.
		{"https://openapi.etsy.com/v3/application/shops/42/receipts/7/../../43/receipts/7", ingest.Resource{}},
		{"https://openapi.etsy.com/v3/application/shops/42/receipts/%37", ingest.Resource{}},
		{"https://openapi.etsy.com/v3/application/shops/42%2Freceipts/7", ingest.Resource{}},
		{"https://openapi.etsy.com/v3/application/shops/42/receipts/7/", ingest.Resource{}},
		{"https://openapi.etsy.com/v3/application/shops/042/receipts/7", ingest.Resource{}},
		{"https://openapi.etsy.com/v3/application/shops/42/receipts/-7", ingest.Resource{}},
		{"https://openapi.etsy.com/v3/application/shops/42/receipts/99999999999999999999", ingest.Resource{}},
		{"https://openapi.etsy.com/v3/application/shops/42", ingest.Resource{}},
		{"https://openapi.etsy.com/v3/application/users/me", ingest.Resource{}},
		{"https://openapi.etsy.com/v2/shops/42/receipts/7", ingest.Resource{}},
		{"https://openapi.etsy.com/v3/application/shops/42/receipts/7#x", ingest.Resource{}},
		{"", ingest.Resource{}},
	} {
		got, err := policy.Check(c.url, shop)
		if c.want == (ingest.Resource{}) {
			if !errors.Is(err, ingest.ErrResourceURL) {
				t.Errorf("Check(%q) = %+v, %v; want refused", c.url, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("Check(%q) = %+v, %v; want %+v", c.url, got, err, c.want)
		}
	}
	if _, err := policy.Check("https://openapi.etsy.com/v3/application/shops/42/receipts/7", 0); err == nil {
		t.Error("a webhook without a shop id was accepted")
	}
	local := ingest.URLPolicy{Hosts: []string{"127.0.0.1:8090"}, AllowHTTP: true}
	if _, err := local.Check("http://127.0.0.1:8090/v3/application/listings/1", shop); err != nil {
		t.Errorf("simulator URL refused: %v", err)
	}
	if _, err := local.Check("http://127.0.0.1:8091/v3/application/listings/1", shop); err == nil {
		t.Error("another port of the simulator host was accepted")
	}
}

// A refused resource_url is never requested, and the evidence is parked
// as fetch_failed.
func TestRefusedURLIsNeverFetched(t *testing.T) {
	t.Parallel()
	api, apiCalls := fakeEtsy(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	evil, evilCalls := fakeEtsy(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	r := newRig(t, rigOptions{realClock: true})
	tr, _ := etsymap.NewTranslator(r.store, nil, nil)
	u, _ := url.Parse(api.URL)
	f, err := ingest.NewFetcher(r.db.DB, r.store, fakeClient(t, api.URL), staticTokens{}, tr, ingest.FetcherConfig{
		Policy: ingest.URLPolicy{Hosts: []string{u.Host}, AllowHTTP: true},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := &pipeline{rig: r, fetcher: f}
	for i, bad := range []string{
		evil.URL + "/v3/application/shops/3/receipts/4",
		"http://" + u.Host + "@" + mustHost(t, evil.URL) + "/v3/application/shops/3/receipts/4",
		api.URL + "/v3/application/shops/4/receipts/4", // another shop
	} {
		id := fmt.Sprintf("msg_evil_%d", i)
		handle(t, p, p.deliver(t, id, etsy.EventOrderPaid, bad, 3))
		if got := fetchFailures(t, p, id); len(got) != 1 || !strings.Contains(got[0].Reason, "resource url refused") {
			t.Errorf("%s: fetch_failed = %+v, want one naming the refusal", bad, got)
		}
	}
	if apiCalls.Load() != 0 || evilCalls.Load() != 0 {
		t.Errorf("calls: api %d, evil %d; want none", apiCalls.Load(), evilCalls.Load())
	}
}

func mustHost(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// Etsy's answer redirecting elsewhere is not followed.
func TestRedirectsAreNotFollowed(t *testing.T) {
	t.Parallel()
	evil, evilCalls := fakeEtsy(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"receipt_id":4,"status":"paid","is_paid":true,"transactions":[]}`)
	})
	api, _ := fakeEtsy(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", evil.URL+r.URL.Path)
		w.WriteHeader(http.StatusFound)
	})
	r := newRig(t, rigOptions{realClock: true})
	tr, _ := etsymap.NewTranslator(r.store, nil, nil)
	u, _ := url.Parse(api.URL)
	f, err := ingest.NewFetcher(r.db.DB, r.store, fakeClient(t, api.URL), staticTokens{}, tr, ingest.FetcherConfig{
		Policy: ingest.URLPolicy{Hosts: []string{u.Host}, AllowHTTP: true}, Backoff: time.Millisecond,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := &pipeline{rig: r, fetcher: f}
	handle(t, p, p.deliver(t, "msg_redirect", etsy.EventOrderPaid, api.URL+"/v3/application/shops/3/receipts/4", 3))
	if n := evilCalls.Load(); n != 0 {
		t.Errorf("redirect target called %d times", n)
	}
	if got := fetchFailures(t, p, "msg_redirect"); len(got) != 1 || !strings.Contains(got[0].Reason, "302") {
		t.Errorf("fetch_failed = %+v, want one naming the 302", got)
	}
	if n := len(streamOf(t, p.store, events.ReceiptStream(4))); n != 0 {
		t.Errorf("%d receipt events from a redirect", n)
	}
}

// The webhook path and reconciliation call the same
// ApplyReceipt, and a receipt seen by both is recorded once.
func TestWebhookAndReconciliationShareApplyReceipt(t *testing.T) {
	t.Parallel()
	e, p, shop, l := listingPipeline(t, ingest.FetcherConfig{SettleWindow: -1})
	order, err := e.sim.CreateOrder(shop.ShopID, etsysim.OrderSpec{Items: []etsysim.OrderItem{
		{ListingID: l.ListingID, SKU: "RED", Quantity: 1}, {ListingID: l.ListingID, SKU: "BLUE", Quantity: 2},
	}})
	if err != nil {
		t.Fatal(err)
	}
	handle(t, p, p.deliver(t, "msg_both", etsy.EventOrderPaid, e.receiptURL(shop.ShopID, order.ReceiptID), shop.ShopID))

	// Reconciliation polls the same receipt and hands it to the same
	// function.
	ts, _ := e.tokens.ForShop(context.Background(), shop.ShopID)
	page, err := e.client.GetShopReceipts(context.Background(), ts, shop.ShopID, etsy.ReceiptsQuery{Limit: 100})
	if err != nil || len(page.Results) != 1 {
		t.Fatalf("poll receipts: %d, %v", len(page.Results), err)
	}
	applied, err := p.translator.ApplyReceipt(context.Background(), shop.ShopID, page.Results[0], etsymap.Cause{Source: etsymap.SourceReconciliation, Ref: "reconciliation"})
	if err != nil {
		t.Fatal(err)
	}
	if applied.Appended != 0 || applied.Duplicates != 2 {
		t.Errorf("reconciliation applied %+v, want 0 new and the 2 sales as duplicates", applied)
	}
	calls := map[string]float64{}
	for _, src := range []string{etsymap.SourceWebhook, etsymap.SourceReconciliation} {
		calls[src] = servicetest.Metric(t, p.reg, "ingest_translate_calls_total", map[string]string{"kind": "receipt", "source": src})
	}
	if diff := cmp.Diff(map[string]float64{etsymap.SourceWebhook: 1, etsymap.SourceReconciliation: 1}, calls); diff != "" {
		t.Errorf("ApplyReceipt calls by path (-want +got):\n%s", diff)
	}
	var recorded, sold int
	if err := p.db.DB.QueryRow(`SELECT count(*) FILTER (WHERE type = 'sale.recorded'), count(*) FILTER (WHERE type = 'stock.sold') FROM events`).Scan(&recorded, &sold); err != nil {
		t.Fatal(err)
	}
	if recorded != 1 || sold != 2 {
		t.Errorf("log has %d sale.recorded and %d stock.sold, want 1 and 2", recorded, sold)
	}
}

// Two ingest processes run a fetcher each: one works while the other
// waits, so no piece of evidence is fetched twice.
func TestOneFetcherOfTheGroupWorksAtATime(t *testing.T) {
	t.Parallel()
	srv, calls := fakeEtsy(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"error":"Receipt not found"}`)
	})
	r := newRig(t, rigOptions{realClock: true})
	u, _ := url.Parse(srv.URL)
	for range 2 {
		tr, err := etsymap.NewTranslator(r.store, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		f, err := ingest.NewFetcher(r.db.DB, r.store, fakeClient(t, srv.URL), staticTokens{}, tr, ingest.FetcherConfig{
			Policy: ingest.URLPolicy{Hosts: []string{u.Host}, AllowHTTP: true}, Backoff: time.Millisecond, PollInterval: 20 * time.Millisecond,
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		(&pipeline{rig: r, fetcher: f}).run(t)
	}
	const n = 20
	for i := range n {
		body := fmt.Sprintf(`{"event_type":"order.paid","resource_url":"%s/v3/application/shops/3/receipts/%d","shop_id":3}`, srv.URL, i+1)
		if code := r.send(t, signed(t, secretA, fmt.Sprintf("msg_twice_%d", i), time.Now(), body)); code != http.StatusOK {
			t.Fatalf("deliver %d: %d", i, code)
		}
	}
	waitFor(t, func() bool {
		var failed int
		if err := r.db.DB.QueryRow(`SELECT count(*) FROM events WHERE type = $1`, events.TypeFetchFailed).Scan(&failed); err != nil {
			t.Fatal(err)
		}
		return failed == n
	})
	time.Sleep(300 * time.Millisecond)
	if got := calls.Load(); got != n {
		t.Errorf("Etsy called %d times for %d webhooks, want one call each", got, n)
	}
}
