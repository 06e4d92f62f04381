package etsysim_test

import (
	"errors"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/etsy/etsysim"
)

// TestControlClient drives a simulator over HTTP, as whole-system tests
// drive cmd/etsysim, and checks it sees what the in-process methods see.
func TestControlClient(t *testing.T) {
	sim := newSim(t, etsysim.Options{FreezeClock: true})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	c := &etsysim.Control{BaseURL: srv.URL}
	ctx := ctxT(t)

	if err := c.Health(ctx); err != nil {
		t.Fatal(err)
	}
	apps, err := c.Apps(ctx)
	if err != nil || len(apps) != 1 || apps[0].KeyString != etsysim.DefaultKeyString {
		t.Fatalf("apps %+v, %v", apps, err)
	}
	shop, err := c.CreateShop(ctx, etsysim.ShopSpec{Name: "ViaHTTP", Currency: "eur"})
	if err != nil {
		t.Fatal(err)
	}
	if shop.Currency != "EUR" {
		t.Errorf("currency %q", shop.Currency)
	}
	shops, err := c.Shops(ctx)
	if err != nil || len(shops) != 1 {
		t.Fatalf("shops %v, %v", shops, err)
	}
	l, err := c.CreateListing(ctx, shop.ShopID, etsysim.ListingSpec{Title: "Lamp", Price: 9900, Quantity: 4, SKU: "LAMP"})
	if err != nil {
		t.Fatal(err)
	}
	cat, err := c.GenerateCatalogue(ctx, shop.ShopID, 5)
	if err != nil || len(cat) != 5 {
		t.Fatalf("catalogue %d, %v", len(cat), err)
	}
	hook := newReceiver(t)
	ep, err := c.AddWebhook(ctx, etsysim.WebhookSpec{URL: hook.srv.URL, EventTypes: []string{etsy.EventOrderPaid, etsy.EventOrderShipped}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.CreateOrder(ctx, shop.ShopID, etsysim.OrderSpec{Items: []etsysim.OrderItem{{ListingID: l.ListingID, SKU: "LAMP", Quantity: 3}}})
	if err != nil {
		t.Fatal(err)
	}
	if r.GrandTotal != 29700 || r.Currency != "EUR" {
		t.Errorf("receipt %+v", r)
	}
	if _, err := c.RandomOrder(ctx, shop.ShopID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ShipOrder(ctx, r.ReceiptID, "dhl", "JD0001"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeliverOrder(ctx, r.ReceiptID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RefundOrder(ctx, r.ReceiptID, 100, "dent"); err != nil {
		t.Fatal(err)
	}
	set := 10
	rl, err := c.RestockListing(ctx, l.ListingID, etsysim.Restock{SKU: "LAMP", Set: &set})
	if err != nil || rl.Quantity != 10 {
		t.Fatalf("restock %+v, %v", rl, err)
	}
	title := "Desk Lamp"
	if el, err := c.EditListing(ctx, l.ListingID, etsysim.ListingEdit{Title: &title}); err != nil || el.Title != title {
		t.Errorf("edit %+v, %v", el, err)
	}
	inProcess, err := sim.Listing(l.ListingID)
	if err != nil {
		t.Fatal(err)
	}
	overHTTP, err := c.Listing(ctx, l.ListingID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(inProcess, overHTTP); diff != "" {
		t.Errorf("listing truth over HTTP (-in process +http):\n%s", diff)
	}
	truth, err := c.Truth(ctx, shop.ShopID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sim.Truth(shop.ShopID), truth); diff != "" {
		t.Errorf("truth over HTTP (-in process +http):\n%s", diff)
	}
	if err := c.WaitDeliveries(ctx, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	ds, err := c.Deliveries(ctx, etsysim.DeliveryFilter{EndpointID: ep.ID, State: etsysim.DeliverySucceeded})
	if err != nil {
		t.Fatal(err)
	}
	var events []string
	for _, d := range ds {
		events = append(events, d.EventType)
	}
	if diff := cmp.Diff([]string{"order.paid", "order.paid", "order.shipped"}, events); diff != "" {
		t.Errorf("deliveries (-want +got):\n%s", diff)
	}
	if err := c.Redeliver(ctx, ds[0].MessageID); err != nil {
		t.Fatal(err)
	}

	tok, err := c.IssueToken(ctx, shop.ShopID, nil)
	if err != nil || tok.UserID != shop.UserID || tok.AccessToken == "" {
		t.Fatalf("token %v, %v", tok, err)
	}
	if err := c.ExpireAccessTokens(ctx, shop.UserID); err != nil {
		t.Fatal(err)
	}
	if err := c.RevokeTokens(ctx, shop.UserID); err != nil {
		t.Fatal(err)
	}
	now, err := c.Advance(ctx, 90*time.Second)
	if err != nil || !now.Equal(start.Add(90*time.Second)) {
		t.Errorf("advance → %v, %v", now, err)
	}
	if got, _ := c.Now(ctx); !got.Equal(now) {
		t.Errorf("now %v, want %v", got, now)
	}
	if err := c.SetFaults(ctx, etsysim.Faults{Drop: 0.25, MaxDelay: time.Second}); err != nil {
		t.Fatal(err)
	}
	if f, err := c.Faults(ctx); err != nil || f.Drop != 0.25 || f.MaxDelay != time.Second {
		t.Errorf("faults %+v, %v", f, err)
	}
	done, skipped, err := c.ScenarioStep(ctx, etsysim.StepOrder, 3, etsysim.Scenario{})
	if err != nil || len(done)+skipped != 3 {
		t.Errorf("scenario steps %v skipped %d, %v", done, skipped, err)
	}
	st, err := c.Stats(ctx)
	if err != nil || st.Orders < 3 {
		t.Errorf("stats %+v, %v", st, err)
	}
	hooks, err := c.Webhooks(ctx)
	if err != nil || len(hooks) != 1 {
		t.Errorf("webhooks %v, %v", hooks, err)
	}
	if err := c.RemoveWebhook(ctx, ep.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteListing(ctx, l.ListingID); err != nil {
		t.Fatal(err)
	}

	// Errors keep their kind across HTTP.
	if _, err := c.Listing(ctx, l.ListingID+999999); !errors.Is(err, etsysim.ErrNotFound) {
		t.Errorf("unknown listing = %v, want ErrNotFound", err)
	}
	if _, err := c.CancelOrder(ctx, r.ReceiptID, true); !errors.Is(err, etsysim.ErrInvalid) {
		t.Errorf("canceling a shipped order = %v, want ErrInvalid", err)
	}
	if _, err := c.CreateShop(ctx, etsysim.ShopSpec{Currency: "EURO"}); !errors.Is(err, etsysim.ErrInvalid) {
		t.Errorf("bad currency = %v, want ErrInvalid", err)
	}
	if err := c.RemoveWebhook(ctx, "ep_nope"); !errors.Is(err, etsysim.ErrNotFound) {
		t.Errorf("unknown webhook = %v, want ErrNotFound", err)
	}
}

// API faults slow down or rate-limit the fetches a webhook's resource_url
// leads to, and nothing else.
func TestAPIFaultsHitResourceFetchesOnly(t *testing.T) {
	w := newWorld(t, etsysim.Options{})
	srv := httptest.NewServer(w.sim)
	t.Cleanup(srv.Close)
	c := &etsysim.Control{BaseURL: srv.URL}
	ctx := ctxT(t)
	l, err := w.sim.CreateListing(w.shop.ShopID, etsysim.ListingSpec{Quantity: 2})
	if err != nil {
		t.Fatal(err)
	}
	listing := "/v3/application/listings/" + strconv.FormatInt(l.ListingID, 10)
	shopPath := "/v3/application/shops/" + strconv.FormatInt(w.shop.ShopID, 10)

	want := etsysim.APIFaults{ResourceRetryAfter: 60 * time.Second}
	if err := c.SetAPIFaults(ctx, want); err != nil {
		t.Fatal(err)
	}
	if got, err := c.APIFaults(ctx); err != nil || got != want {
		t.Fatalf("api faults = %+v, %v; want %+v", got, err, want)
	}
	rec := call(t, w.sim, "GET", listing, w.token.AccessToken, "")
	if rec.Code != 429 || rec.Header().Get("retry-after") != "60" {
		t.Errorf("resource fetch while rate limited: %d retry-after %q, want 429 and 60", rec.Code, rec.Header().Get("retry-after"))
	}
	if rec := call(t, w.sim, "GET", shopPath, w.token.AccessToken, ""); rec.Code != 200 {
		t.Errorf("getShop while resource fetches are rate limited: %d, want 200", rec.Code)
	}

	if err := c.SetAPIFaults(ctx, etsysim.APIFaults{ResourceDelay: 300 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if rec := call(t, w.sim, "GET", listing, w.token.AccessToken, ""); rec.Code != 200 || time.Since(began) < 300*time.Millisecond {
		t.Errorf("delayed resource fetch: %d after %v, want 200 after at least 300ms", rec.Code, time.Since(began))
	}
	if err := c.SetAPIFaults(ctx, etsysim.APIFaults{}); err != nil {
		t.Fatal(err)
	}
	st := w.sim.Stats()
	if st.ResourceThrottled != 1 || st.ResourceDelayed != 1 {
		t.Errorf("stats throttled %d, delayed %d; want 1 and 1", st.ResourceThrottled, st.ResourceDelayed)
	}
	if err := c.SetAPIFaults(ctx, etsysim.APIFaults{ResourceDelay: -time.Second}); !errors.Is(err, etsysim.ErrInvalid) {
		t.Errorf("negative delay: err = %v, want ErrInvalid", err)
	}
}
