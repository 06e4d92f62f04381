package events_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shopledger/shopledger/events"
)

var at = time.Date(2026, 11, 2, 10, 30, 0, 0, time.UTC)

func yes() *bool { b := true; return &b }

func n(v int64) *int64 { return &v }

// samples holds one filled payload per registered type.
var samples = []events.Payload{
	events.WebhookReceived{WebhookID: "msg_1", Timestamp: 1614265330, EtsyEventType: "order.paid", ResourceURL: "https://openapi.etsy.com/v3/application/shops/1/receipts/2", ShopID: 1, Headers: map[string]string{"webhook-id": "msg_1"}, RawBody: []byte(`{"a": 1}`), ReceivedAt: at},
	events.FetchFailed{WebhookEventID: "e", WebhookID: "msg_1", ResourceURL: "u", Reason: "404", Attempts: 3},
	events.ShopConnected{ShopID: 1, ShopName: "Knots", UserID: 9, Currency: "EUR", Scopes: []string{"listings_r"}},
	events.ShopDisconnected{ShopID: 1, Reason: "seller asked"},
	events.ShopSettingsChanged{ShopID: 1, SyncEnabled: yes(), SyncIntervalSeconds: n(900), DefaultLowStockThreshold: n(5), AlertChannels: []events.AlertChannel{{Kind: "email", Target: "a@example.com"}}},
	events.ShopReauthRequired{ShopID: 1, Reason: "invalid_grant"},
	events.ReconciliationCompleted{ShopID: 1, StartedAt: at, FinishedAt: at.Add(time.Second), Watermark: at, ReceiptsSeen: 3, ListingsSeen: 4, EventsAppended: 5, DriftFound: 1, APICalls: 7, DurationMillis: 1000, Scope: "all", IntervalSeconds: 300},
	events.ListingImported{ListingID: 2, ShopID: 1, Title: "Mug", State: "active", URL: "https://etsy.com/listing/2", Price: events.Money{Amount: 1250, Currency: "EUR"}, Variants: []events.Variant{{Key: "sku:M-1", SKU: "M-1", ProductID: 3, Properties: "Color: Blue", Price: events.Money{Amount: 1250, Currency: "EUR"}, Enabled: true}}, EtsyUpdatedAt: at},
	events.ListingUpdated{ListingID: 2, ShopID: 1, Title: "Mug", State: "active", Price: events.Money{Amount: 1300, Currency: "EUR"}, EtsyUpdatedAt: at},
	events.ListingStateChanged{ListingID: 2, From: "active", To: "sold_out"},
	events.ListingDeleted{ListingID: 2},
	events.StockSold{ListingID: 2, VariantKey: "sku:M-1", Quantity: 2, ReceiptID: 5, TransactionID: 6},
	events.StockAdjusted{ListingID: 2, VariantKey: "sku:M-1", Delta: -3, Reason: events.ReasonEtsyChange, Cause: "webhook:msg_1"},
	events.StockObserved{ListingID: 2, VariantKey: "sku:M-1", Quantity: 4, ObservedAt: at, Source: "webhook"},
	events.StockDriftDetected{ListingID: 2, VariantKey: "sku:M-1", Expected: 5, Observed: 4},
	events.StockEditRequested{CommandID: "c1", Kind: events.EditCorrection, ShopID: 1, ListingID: 2, VariantKey: "sku:M-1", Quantity: -2, BalanceAtCommand: 5, Delta: -2, Price: &events.Money{Amount: 1300, Currency: "EUR"}, Reason: events.CorrectionDamaged, SupplierRef: "PO-1", Note: "dropped", Actor: "user:ann", RequestID: "r1"},
	events.StockEditPushStarted{CommandIDs: []string{"c1"}, Attempt: 1, ListingID: 2, VariantKeys: []string{"sku:M-1"}, ProductIDsBefore: map[string]int64{"sku:M-1": 3}, QuantitiesBefore: map[string]int64{"sku:M-1": 5}, Expected: map[string]int64{"sku:M-1": 3}, CommandDeltas: map[string]int64{"c1": -2}, TransactionCount: 9},
	events.StockEditPushed{CommandIDs: []string{"c1"}, Attempt: 1, ListingID: 2, Quantities: map[string]int64{"sku:M-1": 3}, ProductIDs: map[string]int64{"sku:M-1": 4}, Deltas: map[string]int64{"sku:M-1": -2}, Recovered: true, LostSalesRestored: map[string]int64{"sku:M-1": 1}},
	events.StockEditFailed{CommandIDs: []string{"c1"}, Attempt: 1, ListingID: 2, Code: "etsy_refused", Message: "One offering must have quantity greater than 0", Status: 400, Retryable: false},
	events.StockThresholdSet{Scope: events.ScopeVariant, ShopID: 1, ListingID: 2, VariantKey: "sku:M-1", Threshold: 3, Actor: "token:abc"},
	events.StockThresholdCleared{Scope: events.ScopeVariant, ShopID: 1, ListingID: 2, VariantKey: "sku:M-1", Actor: "ann", Reason: "set on the wrong variant"},
	events.SaleRecorded{ReceiptID: 5, ShopID: 1, Status: "paid", Items: []events.SaleItem{{TransactionID: 6, ListingID: 2, VariantKey: "sku:M-1", SKU: "M-1", Title: "Mug", Quantity: 2, UnitPrice: events.Money{Amount: 1250, Currency: "EUR"}}}, Subtotal: events.Money{Amount: 2500, Currency: "EUR"}, Shipping: events.Money{Amount: 400, Currency: "EUR"}, Tax: events.Money{Amount: 0, Currency: "EUR"}, Discount: events.Money{Amount: 0, Currency: "EUR"}, GrandTotal: events.Money{Amount: 2900, Currency: "EUR"}, CreatedAt: at, EtsyUpdatedAt: at},
	events.SalePaid{ReceiptID: 5},
	events.SaleShipped{ReceiptID: 5, Carrier: "dhl", TrackingCode: "T1"},
	events.SaleDelivered{ReceiptID: 5},
	events.SaleCanceled{ReceiptID: 5, Reason: "buyer"},
	events.SaleRefunded{ReceiptID: 5, Amount: events.Money{Amount: 2900, Currency: "EUR"}, Reason: "broken", RefundKey: "1700000000"},
	events.LowStockRaised{AlertID: "a1", ShopID: 1, ListingID: 2, VariantKey: "sku:M-1", Quantity: 2, Threshold: 3, Muted: true},
	events.LowStockCleared{AlertID: "a1", ShopID: 1, ListingID: 2, VariantKey: "sku:M-1", Quantity: 9, Threshold: 3, Reason: events.ClearedStockAbove},
}

func TestEveryTypeRoundTrips(t *testing.T) {
	covered := map[string]bool{}
	for _, p := range samples {
		typ, ver, data, err := events.Encode(p)
		if err != nil {
			t.Fatalf("Encode(%T): %v", p, err)
		}
		got, err := events.Decode(typ, ver, data)
		if err != nil {
			t.Fatalf("Decode(%s): %v", typ, err)
		}
		if diff := cmp.Diff(p, got); diff != "" {
			t.Errorf("%s round trip (-want +got):\n%s", typ, diff)
		}
		covered[typ] = true
	}
	for _, typ := range events.Types() {
		if !covered[typ] {
			t.Errorf("registered type %s has no round-trip sample", typ)
		}
	}
}

func TestPayloadsUseSnakeCaseTags(t *testing.T) {
	for _, p := range samples {
		_, _, data, err := events.Encode(p)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		for k := range m {
			for _, r := range k {
				if r >= 'A' && r <= 'Z' {
					t.Errorf("%s: field %q is not snake_case", p.EventType(), k)
				}
			}
		}
	}
}

func TestThresholdV1UpcastsToV2(t *testing.T) {
	v1 := []byte(`{"shop_id":1,"listing_id":2,"variant_key":"sku:M-1","threshold":4,"actor":"seller"}`)
	got, err := events.Decode(events.TypeStockThresholdSet, 1, v1)
	if err != nil {
		t.Fatal(err)
	}
	want := events.StockThresholdSet{Scope: events.ScopeVariant, ShopID: 1, ListingID: 2, VariantKey: "sku:M-1", Threshold: 4, Actor: "seller"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("upcast v1 (-want +got):\n%s", diff)
	}
	if v, _ := events.SchemaVersion(events.TypeStockThresholdSet); v != 2 {
		t.Errorf("current version = %d, want 2", v)
	}
}

func TestUnknownTypeAndFutureVersion(t *testing.T) {
	if _, err := events.Decode("order.teleported", 1, []byte(`{}`)); !errors.Is(err, events.ErrUnknownType) {
		t.Errorf("unknown type: err = %v, want ErrUnknownType", err)
	}
	if _, err := events.Decode(events.TypeSalePaid, 9, []byte(`{}`)); err == nil {
		t.Error("a payload newer than the code decoded without error")
	}
}
