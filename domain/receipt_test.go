package domain_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shopledger/shopledger/domain"
	"github.com/shopledger/shopledger/events"
)

func item(txn, listing int64, key string, qty int64) events.SaleItem {
	return events.SaleItem{TransactionID: txn, ListingID: listing, VariantKey: key, Quantity: qty, UnitPrice: usd(1500)}
}

func receiptView(mod func(*domain.ReceiptView)) domain.ReceiptView {
	v := domain.ReceiptView{
		ReceiptID: 50, ShopID: 7, Status: "paid", Paid: true,
		Items:    []events.SaleItem{item(501, 1, "sku:RED", 2), item(502, 2, "listing:2", 1)},
		Subtotal: usd(4500), Shipping: usd(500), Tax: usd(0), Discount: usd(0), GrandTotal: usd(5000),
		CreatedAt: t0, UpdatedAt: t0, PaidAt: t0,
	}
	if mod != nil {
		mod(&v)
	}
	return v
}

func recorded(v domain.ReceiptView) fact {
	return fact{"receipt-50", "etsy-receipt:50:recorded", events.SaleRecorded{
		ReceiptID: 50, ShopID: 7, Status: v.Status, Items: v.Items,
		Subtotal: v.Subtotal, Shipping: v.Shipping, Tax: v.Tax, Discount: v.Discount, GrandTotal: v.GrandTotal,
		CreatedAt: v.CreatedAt, EtsyUpdatedAt: v.UpdatedAt,
	}}
}

func TestReceiptObserve(t *testing.T) {
	paid := receiptView(nil)
	refund := domain.RefundView{Amount: usd(1500), CreatedAt: t1, Reason: "damaged"}
	refundKey := domain.RefundKey(refund)
	for _, c := range []struct {
		name    string
		past    []events.Payload
		view    domain.ReceiptView
		want    []fact
		wantErr error
	}{
		{
			name: "a paid order is recorded, then paid",
			view: paid,
			want: []fact{recorded(paid), {"receipt-50", "etsy-receipt:50:paid", events.SalePaid{ReceiptID: 50}}},
		},
		{
			name: "seen again: nothing new",
			past: []events.Payload{recorded(paid).Data, events.SalePaid{ReceiptID: 50}},
			view: paid,
		},
		{
			name: "first seen already shipped and delivered (webhooks reordered)",
			view: receiptView(func(v *domain.ReceiptView) {
				v.Status, v.Shipped, v.Delivered, v.Carrier, v.TrackingCode = "completed", true, true, "usps", "9400"
			}),
			want: []fact{
				recorded(receiptView(func(v *domain.ReceiptView) { v.Status = "completed" })),
				{"receipt-50", "etsy-receipt:50:paid", events.SalePaid{ReceiptID: 50}},
				{"receipt-50", "etsy-receipt:50:shipped", events.SaleShipped{ReceiptID: 50, Carrier: "usps", TrackingCode: "9400"}},
				{"receipt-50", "etsy-receipt:50:delivered", events.SaleDelivered{ReceiptID: 50}},
			},
		},
		{
			name: "canceled and refunded after being recorded",
			past: []events.Payload{recorded(paid).Data, events.SalePaid{ReceiptID: 50}},
			view: receiptView(func(v *domain.ReceiptView) {
				v.Status, v.Canceled, v.Refunds = "canceled", true, []domain.RefundView{refund}
			}),
			want: []fact{
				{"receipt-50", "etsy-receipt:50:canceled", events.SaleCanceled{ReceiptID: 50}},
				{"receipt-50", "etsy-receipt:50:refund:" + refundKey, events.SaleRefunded{ReceiptID: 50, Amount: usd(1500), Reason: "damaged", RefundKey: refundKey}},
			},
		},
		{
			name: "a refund already recorded is not repeated",
			past: []events.Payload{recorded(paid).Data, events.SaleRefunded{ReceiptID: 50, Amount: usd(1500), RefundKey: refundKey}},
			view: receiptView(func(v *domain.ReceiptView) { v.Paid = false; v.Refunds = []domain.RefundView{refund} }),
		},
		{
			name: "facts are never taken back",
			past: []events.Payload{recorded(paid).Data, events.SalePaid{ReceiptID: 50}, events.SaleShipped{ReceiptID: 50}},
			view: receiptView(func(v *domain.ReceiptView) { v.Paid, v.Status = false, "open" }),
		},
		{
			name:    "view of another receipt",
			view:    receiptView(func(v *domain.ReceiptView) { v.ReceiptID = 51 }),
			wantErr: domain.ErrWrongReceipt,
		},
		{
			name:    "another shop's receipt",
			past:    []events.Payload{recorded(paid).Data},
			view:    receiptView(func(v *domain.ReceiptView) { v.ShopID = 8 }),
			wantErr: domain.ErrWrongShop,
		},
		{
			name:    "an item with no quantity",
			view:    receiptView(func(v *domain.ReceiptView) { v.Items = []events.SaleItem{item(501, 1, "sku:RED", 0)} }),
			wantErr: domain.ErrInvalidView,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := domain.ReplayReceipt(50, given(7, c.past...))
			got, err := r.Observe(c.view, t1)
			then(t, got, err, c.want, c.wantErr)
		})
	}
}

func TestSalesOf(t *testing.T) {
	v := receiptView(func(v *domain.ReceiptView) {
		v.Items = append(v.Items, item(503, 0, "listing:0", 1)) // listing deleted at Etsy
	})
	want := []fact{
		{"listing-1", "etsy-txn:501:sold", events.StockSold{ListingID: 1, VariantKey: "sku:RED", Quantity: 2, ReceiptID: 50, TransactionID: 501}},
		{"listing-2", "etsy-txn:502:sold", events.StockSold{ListingID: 2, VariantKey: "listing:2", Quantity: 1, ReceiptID: 50, TransactionID: 502}},
	}
	got := domain.SalesOf(v, t1)
	if diff := cmp.Diff(want, facts(got)); diff != "" {
		t.Errorf("sales (-want +got):\n%s", diff)
	}
	for _, e := range got {
		if !e.OccurredAt.Equal(t0) || e.ShopID != 7 {
			t.Errorf("sold at %v in shop %d, want paid time %v and shop 7", e.OccurredAt, e.ShopID, t0)
		}
	}
	if got := domain.SalesOf(domain.ReceiptView{ReceiptID: 1, ShopID: 7, Items: []events.SaleItem{item(9, 1, "k", 1)}}, t1); got[0].OccurredAt != t1.UTC() {
		t.Errorf("receipt without times: sold at %v, want now %v", got[0].OccurredAt, t1)
	}
}
