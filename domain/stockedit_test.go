package domain_test

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shopledger/shopledger/domain"
	"github.com/shopledger/shopledger/events"
)

// twoVariants is a listing of two variants, A with 5 and B with 2.
func twoVariants() []events.Payload {
	return []events.Payload{
		events.ListingImported{ListingID: 1, ShopID: 7, Title: "Mug", State: "active", Price: usd(1000),
			Variants: []events.Variant{{Key: "A", Price: usd(1000), Enabled: true}, {Key: "B", Price: usd(1000), Enabled: true}}},
		events.StockAdjusted{ListingID: 1, VariantKey: "A", Delta: 5, Reason: events.ReasonInitialImport},
		events.StockAdjusted{ListingID: 1, VariantKey: "B", Delta: 2, Reason: events.ReasonInitialImport},
	}
}

var meta = domain.EditMeta{CommandID: "c9", Actor: "user:ann", RequestID: "r9", At: t1}

// Given a listing's past, a command records its delta against the
// balance the seller sees, or is refused with the field at fault.
func TestRequestEdit(t *testing.T) {
	pending := events.StockEditRequested{CommandID: "c1", Kind: events.EditReceived, ShopID: 7, ListingID: 1, VariantKey: "A", Quantity: 3, Delta: 3, BalanceAtCommand: 5, Actor: "x", RequestID: "r1"}
	cases := []struct {
		name      string
		past      []events.Payload
		cmd       domain.EditCommand
		wantDelta int64
		wantBal   int64
		wantErr   error
		wantField string
	}{
		{"count", twoVariants(), domain.EditCommand{Kind: events.EditCount, VariantKey: "A", Quantity: 9}, 4, 5, nil, ""},
		{"count after an unpushed receipt", append(twoVariants(), pending), domain.EditCommand{Kind: events.EditCount, VariantKey: "A", Quantity: 9}, 1, 8, nil, ""},
		{"count after the receipt was pushed", append(twoVariants(), pending,
			events.StockEditPushed{CommandIDs: []string{"c1"}, ListingID: 1},
			events.StockAdjusted{ListingID: 1, VariantKey: "A", Delta: 3, Reason: "received", Cause: "edit:c1"}),
			domain.EditCommand{Kind: events.EditCount, VariantKey: "A", Quantity: 9}, 1, 8, nil, ""},
		{"received", twoVariants(), domain.EditCommand{Kind: events.EditReceived, VariantKey: "B", Quantity: 4, SupplierRef: "PO-1"}, 4, 2, nil, ""},
		{"damaged", twoVariants(), domain.EditCommand{Kind: events.EditCorrection, Reason: "damaged", VariantKey: "B", Quantity: -2}, -2, 2, nil, ""},
		{"count the last stock to zero", append(twoVariants(), events.StockSold{ListingID: 1, VariantKey: "B", Quantity: 2}),
			domain.EditCommand{Kind: events.EditCount, VariantKey: "A", Quantity: 0}, 0, 0, domain.ErrZeroStock, "quantity"},
		{"disable the last variant with stock", append(twoVariants(), events.StockSold{ListingID: 1, VariantKey: "B", Quantity: 2}),
			domain.EditCommand{Kind: events.EditDisable, VariantKey: "A"}, 0, 0, domain.ErrZeroStock, "quantity"},
		{"count one variant to zero", twoVariants(), domain.EditCommand{Kind: events.EditCount, VariantKey: "B", Quantity: 0}, -2, 2, nil, ""},
		{"below zero", twoVariants(), domain.EditCommand{Kind: events.EditCorrection, Reason: "lost", VariantKey: "B", Quantity: -3}, 0, 0, domain.ErrInvalidEdit, "quantity"},
		{"found is positive", twoVariants(), domain.EditCommand{Kind: events.EditCorrection, Reason: "found", VariantKey: "B", Quantity: -1}, 0, 0, domain.ErrInvalidEdit, "quantity"},
		{"no reason", twoVariants(), domain.EditCommand{Kind: events.EditCorrection, VariantKey: "B", Quantity: -1}, 0, 0, domain.ErrInvalidEdit, "reason"},
		{"count above 999", twoVariants(), domain.EditCommand{Kind: events.EditCount, VariantKey: "A", Quantity: 1000}, 0, 0, domain.ErrInvalidEdit, "quantity"},
		{"supplier on a count", twoVariants(), domain.EditCommand{Kind: events.EditCount, VariantKey: "A", Quantity: 1, SupplierRef: "x"}, 0, 0, domain.ErrInvalidEdit, "supplier_ref"},
		{"price too low", twoVariants(), domain.EditCommand{Kind: events.EditPrice, VariantKey: "A", Price: &events.Money{Amount: 19}}, 0, 0, domain.ErrInvalidEdit, "price"},
		{"other currency", twoVariants(), domain.EditCommand{Kind: events.EditPrice, VariantKey: "A", Price: &events.Money{Amount: 1200, Currency: "EUR"}}, 0, 0, domain.ErrInvalidEdit, "currency"},
		{"unknown variant", twoVariants(), domain.EditCommand{Kind: events.EditReceived, VariantKey: "Z", Quantity: 1}, 0, 0, domain.ErrUnknownVariant, "variant_key"},
		{"deleted listing", append(twoVariants(), events.ListingDeleted{ListingID: 1}), domain.EditCommand{Kind: events.EditReceived, VariantKey: "A", Quantity: 1}, 0, 0, domain.ErrUnknownVariant, "listing_id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := domain.ReplayListing(1, given(7, c.past...))
			ev, err := l.RequestEdit(c.cmd, meta)
			if c.wantErr != nil {
				var ee *domain.EditError
				if !errors.Is(err, c.wantErr) || !errors.As(err, &ee) || ee.Field != c.wantField {
					t.Fatalf("err = %v, want %v on %q", err, c.wantErr, c.wantField)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := ev.Data.(events.StockEditRequested)
			if got.Delta != c.wantDelta || got.BalanceAtCommand != c.wantBal || got.Actor != "user:ann" || ev.DedupeKey != domain.EditRequestedKey(7, "r9") {
				t.Errorf("recorded %+v (key %s), want delta %d against %d", got, ev.DedupeKey, c.wantDelta, c.wantBal)
			}
			if diff := cmp.Diff([]string{"c9"}, ids(l.PendingEdits())); c.name == "count" && diff != "" {
				t.Errorf("pending (-want +got):\n%s", diff)
			}
		})
	}
}

func ids(rs []events.StockEditRequested) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.CommandID)
	}
	return out
}

// While a push is open its variants' observations wait; other variants
// and a closed push are observed as before.
func TestObserveLeavesOpenPushAlone(t *testing.T) {
	req := events.StockEditRequested{CommandID: "c1", Kind: events.EditReceived, ListingID: 1, VariantKey: "A", Quantity: 3, Delta: 3}
	open := events.StockEditPushStarted{CommandIDs: []string{"c1"}, Attempt: 1, ListingID: 1, VariantKeys: []string{"A"}}
	cases := []struct {
		name string
		past []events.Payload
		want []events.Payload
	}{
		{"open push: A waits, B is observed", append(twoVariants(), req, open), []events.Payload{
			events.StockObserved{ListingID: 1, VariantKey: "B", Quantity: 1, ObservedAt: t1, Source: "webhook"},
			events.StockAdjusted{ListingID: 1, VariantKey: "B", Delta: -1, Reason: events.ReasonEtsyChange, Cause: "webhook:msg_1"},
		}},
		{"pushed: A matches, nothing for it", append(twoVariants(), req, open,
			events.StockEditPushed{CommandIDs: []string{"c1"}, ListingID: 1},
			events.StockAdjusted{ListingID: 1, VariantKey: "A", Delta: 3, Reason: "received", Cause: "edit:c1"}), []events.Payload{
			events.StockObserved{ListingID: 1, VariantKey: "B", Quantity: 1, ObservedAt: t1, Source: "webhook"},
			events.StockAdjusted{ListingID: 1, VariantKey: "B", Delta: -1, Reason: events.ReasonEtsyChange, Cause: "webhook:msg_1"},
		}},
		{"failed: the write did not land, A is observed", append(twoVariants(), req, open,
			events.StockEditFailed{CommandIDs: []string{"c1"}, Attempt: 1, ListingID: 1, Code: "etsy_refused", Retryable: false}), []events.Payload{
			events.StockObserved{ListingID: 1, VariantKey: "A", Quantity: 8, ObservedAt: t1, Source: "webhook"},
			events.StockAdjusted{ListingID: 1, VariantKey: "A", Delta: 3, Reason: events.ReasonEtsyChange, Cause: "webhook:msg_1"},
			events.StockObserved{ListingID: 1, VariantKey: "B", Quantity: 1, ObservedAt: t1, Source: "webhook"},
			events.StockAdjusted{ListingID: 1, VariantKey: "B", Delta: -1, Reason: events.ReasonEtsyChange, Cause: "webhook:msg_1"},
		}},
	}
	v := domain.ListingView{ListingID: 1, ShopID: 7, Title: "Mug", State: "active", Price: usd(1000), UpdatedAt: t0,
		Variants: []domain.VariantView{
			{Variant: events.Variant{Key: "A", Price: usd(1000), Enabled: true}, Quantity: 8},
			{Variant: events.Variant{Key: "B", Price: usd(1000), Enabled: true}, Quantity: 1},
		}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			evs, err := domain.ReplayListing(1, given(7, c.past...)).Observe(v, obs)
			if err != nil {
				t.Fatal(err)
			}
			var got []events.Payload
			for _, e := range evs {
				got = append(got, e.Data)
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
