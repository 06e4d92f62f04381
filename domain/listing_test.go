package domain_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shopledger/shopledger/domain"
	"github.com/shopledger/shopledger/events"
)

var (
	t0  = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	t1  = t0.Add(time.Hour)
	usd = func(n int64) events.Money { return events.Money{Amount: n, Currency: "USD"} }
	obs = domain.Observation{At: t1, Source: "webhook", Cause: "webhook:msg_1"}
)

// fact is an event as the tests compare it: stream, natural key, payload.
type fact struct {
	Stream string
	Dedupe string
	Data   events.Payload
}

func facts(evs []events.Event) []fact {
	var out []fact
	for _, e := range evs {
		out = append(out, fact{e.StreamID, e.DedupeKey, e.Data})
	}
	return out
}

// then fails the test unless a command returned wantErr and recorded the
// events want.
func then(t *testing.T, got []events.Event, err error, want []fact, wantErr error) {
	t.Helper()
	if !errors.Is(err, wantErr) {
		t.Fatalf("err = %v, want %v", err, wantErr)
	}
	if diff := cmp.Diff(want, facts(got)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

// given turns payloads into the records a stream would hold.
func given(shopID int64, ps ...events.Payload) []events.Record {
	var out []events.Record
	for i, p := range ps {
		out = append(out, events.Record{Event: events.Event{Data: p, ShopID: shopID}, StreamVersion: int64(i + 1)})
	}
	return out
}

func variant(key string, qty int64) domain.VariantView {
	return domain.VariantView{Variant: events.Variant{Key: key, Price: usd(1000), Enabled: true}, Quantity: qty}
}

func view(variants ...domain.VariantView) domain.ListingView {
	return domain.ListingView{
		ListingID: 1, ShopID: 7, Title: "Mug", State: "active", URL: "https://etsy.example/l/1",
		Price: usd(1000), Variants: variants, UpdatedAt: t0,
	}
}

func described(vs ...domain.VariantView) []events.Variant {
	var out []events.Variant
	for _, v := range vs {
		out = append(out, v.Variant)
	}
	return out
}

func imported(vs ...domain.VariantView) events.ListingImported {
	return events.ListingImported{ListingID: 1, ShopID: 7, Title: "Mug", State: "active", URL: "https://etsy.example/l/1", Price: usd(1000), Variants: described(vs...), EtsyUpdatedAt: t0}
}

func observed(key string, qty int64) fact {
	return fact{"listing-1", "", events.StockObserved{ListingID: 1, VariantKey: key, Quantity: qty, ObservedAt: t1, Source: "webhook"}}
}

func adjustedBy(key string, delta int64, reason string) fact {
	return fact{"listing-1", "", events.StockAdjusted{ListingID: 1, VariantKey: key, Delta: delta, Reason: reason, Cause: "webhook:msg_1"}}
}

func TestListingObserve(t *testing.T) {
	red, blue := variant("sku:RED", 5), variant("sku:BLUE", 2)
	for _, c := range []struct {
		name    string
		past    []events.Payload
		view    domain.ListingView
		want    []fact
		wantErr error
	}{
		{
			name: "first view imports the listing and its stock",
			view: view(red, blue),
			want: []fact{
				{"listing-1", "etsy-listing:1:imported", imported(blue, red)},
				observed("sku:BLUE", 2), adjustedBy("sku:BLUE", 2, events.ReasonInitialImport),
				observed("sku:RED", 5), adjustedBy("sku:RED", 5, events.ReasonInitialImport),
			},
		},
		{
			name: "nothing changed records nothing",
			past: []events.Payload{imported(red), events.StockAdjusted{ListingID: 1, VariantKey: "sku:RED", Delta: 5}},
			view: view(red),
		},
		{
			name: "sales already explain Etsy's number",
			past: []events.Payload{
				imported(red), events.StockAdjusted{ListingID: 1, VariantKey: "sku:RED", Delta: 7},
				events.StockSold{ListingID: 1, VariantKey: "sku:RED", Quantity: 2, TransactionID: 9},
			},
			view: view(red),
		},
		{
			name: "a restock at Etsy is an etsy_change",
			past: []events.Payload{imported(red), events.StockAdjusted{ListingID: 1, VariantKey: "sku:RED", Delta: 3}},
			view: view(red),
			want: []fact{observed("sku:RED", 5), adjustedBy("sku:RED", 2, events.ReasonEtsyChange)},
		},
		{
			name: "sales recorded before the import are part of the initial stock",
			past: []events.Payload{events.StockSold{ListingID: 1, VariantKey: "sku:RED", Quantity: 1, TransactionID: 9}},
			view: view(red),
			want: []fact{
				{"listing-1", "etsy-listing:1:imported", imported(red)},
				observed("sku:RED", 5), adjustedBy("sku:RED", 6, events.ReasonInitialImport),
			},
		},
		{
			name: "a variant Etsy no longer lists goes to zero",
			past: []events.Payload{imported(red, blue), events.StockAdjusted{ListingID: 1, VariantKey: "sku:RED", Delta: 5}, events.StockAdjusted{ListingID: 1, VariantKey: "sku:BLUE", Delta: 2}},
			view: view(red),
			want: []fact{
				{"listing-1", "", events.ListingUpdated{ListingID: 1, ShopID: 7, Title: "Mug", State: "active", URL: "https://etsy.example/l/1", Price: usd(1000), Variants: described(red), EtsyUpdatedAt: t0}},
				observed("sku:BLUE", 0), adjustedBy("sku:BLUE", -2, events.ReasonEtsyChange),
			},
		},
		{
			name: "state change alone",
			past: []events.Payload{imported(red), events.StockAdjusted{ListingID: 1, VariantKey: "sku:RED", Delta: 5}},
			view: func() domain.ListingView { v := view(red); v.State = "sold_out"; v.UpdatedAt = t1; return v }(),
			want: []fact{{"listing-1", "", events.ListingStateChanged{ListingID: 1, From: "active", To: "sold_out"}}},
		},
		{
			name: "new title is an update carrying the whole description",
			past: []events.Payload{imported(red), events.StockAdjusted{ListingID: 1, VariantKey: "sku:RED", Delta: 5}},
			view: func() domain.ListingView { v := view(red); v.Title = "Big mug"; v.UpdatedAt = t1; return v }(),
			want: []fact{{"listing-1", "", events.ListingUpdated{ListingID: 1, ShopID: 7, Title: "Big mug", State: "active", URL: "https://etsy.example/l/1", Price: usd(1000), Variants: described(red), EtsyUpdatedAt: t1}}},
		},
		{
			name: "regenerated product ids are not a change",
			past: []events.Payload{imported(red), events.StockAdjusted{ListingID: 1, VariantKey: "sku:RED", Delta: 5}},
			view: func() domain.ListingView {
				r := red
				r.ProductID = 123456
				return view(r)
			}(),
		},
		{
			name: "a stale view does not roll the title back but its stock counts",
			past: []events.Payload{
				func() events.ListingImported { e := imported(red); e.Title = "Newer"; e.EtsyUpdatedAt = t1; return e }(),
				events.StockAdjusted{ListingID: 1, VariantKey: "sku:RED", Delta: 4},
			},
			view: view(red),
			want: []fact{observed("sku:RED", 5), adjustedBy("sku:RED", 1, events.ReasonEtsyChange)},
		},
		{
			name: "products sharing a SKU with equal quantities share stock",
			view: view(variant("sku:S", 3), variant("sku:S", 3)),
			want: []fact{
				{"listing-1", "etsy-listing:1:imported", imported(variant("sku:S", 3))},
				observed("sku:S", 3), adjustedBy("sku:S", 3, events.ReasonInitialImport),
			},
		},
		{
			name:    "view of another listing",
			view:    func() domain.ListingView { v := view(red); v.ListingID = 2; return v }(),
			wantErr: domain.ErrWrongListing,
		},
		{
			name:    "view from another shop",
			past:    []events.Payload{imported(red)},
			view:    func() domain.ListingView { v := view(red); v.ShopID = 8; return v }(),
			wantErr: domain.ErrWrongShop,
		},
		{
			name:    "negative quantity",
			view:    view(variant("sku:RED", -1)),
			wantErr: domain.ErrInvalidView,
		},
		{
			name:    "variant without identity",
			view:    view(variant("", 1)),
			wantErr: domain.ErrInvalidView,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := domain.ReplayListing(1, given(7, c.past...))
			got, err := l.Observe(c.view, obs)
			then(t, got, err, c.want, c.wantErr)
		})
	}
}

// After any observation the ledger's balance equals Etsy's number.
func TestListingObserveLeavesBalanceAtEtsysNumber(t *testing.T) {
	past := given(7, imported(variant("sku:A", 0)),
		events.StockAdjusted{ListingID: 1, VariantKey: "sku:A", Delta: 10},
		events.StockSold{ListingID: 1, VariantKey: "sku:A", Quantity: 3},
		events.StockAdjusted{ListingID: 1, VariantKey: "sku:B", Delta: 4},
	)
	l := domain.ReplayListing(1, past)
	if got := l.Balance("sku:A"); got != 7 {
		t.Fatalf("balance from history = %d, want 7", got)
	}
	evs, err := l.Observe(view(variant("sku:A", 2), variant("sku:C", 9)), obs)
	if err != nil {
		t.Fatal(err)
	}
	again := domain.ReplayListing(1, append(past, records(evs)...))
	want := map[string]int64{"sku:A": 2, "sku:B": 0, "sku:C": 9}
	if diff := cmp.Diff(want, again.Balances()); diff != "" {
		t.Errorf("balances after observing (-want +got):\n%s", diff)
	}
	if evs, _ := again.Observe(view(variant("sku:A", 2), variant("sku:C", 9)), obs); len(evs) != 0 {
		t.Errorf("observing the same view again recorded %v", facts(evs))
	}
}

func records(evs []events.Event) []events.Record {
	var out []events.Record
	for _, e := range evs {
		out = append(out, events.Record{Event: e})
	}
	return out
}

func TestListingDelete(t *testing.T) {
	for _, c := range []struct {
		name    string
		past    []events.Payload
		shop    int64
		want    []fact
		wantErr error
	}{
		{name: "deletes once", past: []events.Payload{imported()}, shop: 7, want: []fact{{"listing-1", "", events.ListingDeleted{ListingID: 1}}}},
		{name: "already deleted", past: []events.Payload{imported(), events.ListingDeleted{ListingID: 1}}, shop: 7},
		{name: "another shop", past: []events.Payload{imported()}, shop: 8, wantErr: domain.ErrWrongShop},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := domain.ReplayListing(1, given(7, c.past...)).Delete(c.shop, t1)
			then(t, got, err, c.want, c.wantErr)
		})
	}
}
