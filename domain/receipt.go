package domain

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/shopledger/shopledger/events"
)

// ErrWrongReceipt means a view names another receipt.
var ErrWrongReceipt = errors.New("view is of another receipt")

// RefundView is one refund Etsy lists on a receipt.
type RefundView struct {
	Amount    events.Money
	CreatedAt time.Time
	Reason    string
}

// ReceiptView is a receipt as Etsy shows it now. Buyer details are not
// part of it: the ledger keeps a reference, not the person.
type ReceiptView struct {
	ReceiptID int64
	ShopID    int64
	Status    string
	Paid      bool
	Shipped   bool
	Delivered bool
	Canceled  bool
	Items     []events.SaleItem

	Subtotal   events.Money
	Shipping   events.Money
	Tax        events.Money
	Discount   events.Money
	GrandTotal events.Money

	CreatedAt time.Time
	UpdatedAt time.Time
	PaidAt    time.Time
	ShippedAt time.Time

	Carrier      string
	TrackingCode string
	Refunds      []RefundView
}

// Receipt is what the ledger knows about one receipt, rebuilt from its
// stream.
type Receipt struct {
	id        int64
	shopID    int64
	recorded  bool
	paid      bool
	shipped   bool
	delivered bool
	canceled  bool
	refunds   map[string]bool

	changes []events.Event
}

// NewReceipt returns the state of a receipt with no history.
func NewReceipt(id int64) *Receipt {
	return &Receipt{id: id, refunds: map[string]bool{}}
}

// ReplayReceipt rebuilds a receipt from its stream's events.
func ReplayReceipt(id int64, past []events.Record) *Receipt {
	r := NewReceipt(id)
	replay(past, &r.shopID, r.apply)
	return r
}

// Recorded reports whether the sale is in the ledger.
func (r *Receipt) Recorded() bool { return r.recorded }

func (r *Receipt) apply(p events.Payload) {
	switch e := p.(type) {
	case events.SaleRecorded:
		r.recorded = true
		if r.shopID == 0 {
			r.shopID = e.ShopID
		}
	case events.SalePaid:
		r.paid = true
	case events.SaleShipped:
		r.shipped = true
	case events.SaleDelivered:
		r.delivered = true
	case events.SaleCanceled:
		r.canceled = true
	case events.SaleRefunded:
		r.refunds[e.RefundKey] = true
	}
}

func (r *Receipt) record(at time.Time, p events.Payload, dedupe string) {
	ev := events.New(events.ReceiptStream(r.id), r.shopID, at, p).WithDedupe(dedupe)
	r.apply(p)
	r.changes = append(r.changes, ev)
}

// ReceiptFactKey is the natural key of one fact about a receipt
// ("recorded", "paid", "refund:<key>"...), so a fact seen by a webhook and
// by a poll is stored once.
func ReceiptFactKey(receiptID int64, fact string) string {
	return fmt.Sprintf("etsy-receipt:%d:%s", receiptID, fact)
}

// SoldKey is the natural key of the stock a transaction took.
func SoldKey(transactionID int64) string {
	return fmt.Sprintf("etsy-txn:%d:sold", transactionID)
}

// RefundKey identifies a refund at Etsy, which gives refunds no id: its
// time and amount.
func RefundKey(f RefundView) string {
	return strconv.FormatInt(f.CreatedAt.Unix(), 10) + ":" + strconv.FormatInt(f.Amount.Amount, 10) + f.Amount.Currency
}

// Observe decides what a fresh view of the receipt adds: sale.recorded the
// first time, then each status fact Etsy's receipt now states and the
// ledger lacks (paid, shipped, delivered, canceled, each refund). Facts are
// never taken back: a receipt Etsy once called paid stays paid.
func (r *Receipt) Observe(v ReceiptView, now time.Time) ([]events.Event, error) {
	if v.ReceiptID != r.id {
		return nil, fmt.Errorf("observe receipt %d: view of receipt %d: %w", r.id, v.ReceiptID, ErrWrongReceipt)
	}
	if v.ShopID == 0 || (r.shopID != 0 && v.ShopID != r.shopID) {
		return nil, fmt.Errorf("observe receipt %d: shop %d, ledger has %d: %w", r.id, v.ShopID, r.shopID, ErrWrongShop)
	}
	for _, it := range v.Items {
		if it.Quantity <= 0 || it.VariantKey == "" || it.TransactionID == 0 {
			return nil, fmt.Errorf("observe receipt %d: item %d: %w", r.id, it.TransactionID, ErrInvalidView)
		}
	}
	r.shopID = v.ShopID
	updated := firstSet(v.UpdatedAt, v.CreatedAt, now)
	if !r.recorded {
		r.record(firstSet(v.CreatedAt, updated), events.SaleRecorded{
			ReceiptID: r.id, ShopID: v.ShopID, Status: v.Status, Items: v.Items,
			Subtotal: v.Subtotal, Shipping: v.Shipping, Tax: v.Tax, Discount: v.Discount, GrandTotal: v.GrandTotal,
			CreatedAt: v.CreatedAt.UTC(), EtsyUpdatedAt: v.UpdatedAt.UTC(),
		}, ReceiptFactKey(r.id, "recorded"))
	}
	if v.Paid && !r.paid {
		r.record(firstSet(v.PaidAt, updated), events.SalePaid{ReceiptID: r.id}, ReceiptFactKey(r.id, "paid"))
	}
	if v.Shipped && !r.shipped {
		r.record(firstSet(v.ShippedAt, updated), events.SaleShipped{
			ReceiptID: r.id, Carrier: v.Carrier, TrackingCode: v.TrackingCode,
		}, ReceiptFactKey(r.id, "shipped"))
	}
	if v.Delivered && !r.delivered {
		r.record(updated, events.SaleDelivered{ReceiptID: r.id}, ReceiptFactKey(r.id, "delivered"))
	}
	if v.Canceled && !r.canceled {
		r.record(updated, events.SaleCanceled{ReceiptID: r.id}, ReceiptFactKey(r.id, "canceled"))
	}
	for _, f := range v.Refunds {
		key := RefundKey(f)
		if r.refunds[key] {
			continue
		}
		r.record(firstSet(f.CreatedAt, updated), events.SaleRefunded{
			ReceiptID: r.id, Amount: f.Amount, Reason: f.Reason, RefundKey: key,
		}, ReceiptFactKey(r.id, "refund:"+key))
	}
	out := r.changes
	r.changes = nil
	return out, nil
}

// SalesOf returns the stock each line of a receipt took: one stock.sold per
// transaction on its listing's stream, keyed by the transaction so it is
// stored once whichever path sees it first. Lines without a listing (a
// listing since deleted) move no tracked stock. now stands in for a
// receipt that carries no time at all.
func SalesOf(v ReceiptView, now time.Time) []events.Event {
	at := firstSet(v.PaidAt, v.CreatedAt, v.UpdatedAt, now)
	var out []events.Event
	for _, it := range v.Items {
		if it.ListingID == 0 || it.Quantity <= 0 {
			continue
		}
		out = append(out, events.New(events.ListingStream(it.ListingID), v.ShopID, at, events.StockSold{
			ListingID: it.ListingID, VariantKey: it.VariantKey, Quantity: it.Quantity,
			ReceiptID: v.ReceiptID, TransactionID: it.TransactionID,
		}).WithDedupe(SoldKey(it.TransactionID)))
	}
	return out
}

func firstSet(ts ...time.Time) time.Time {
	for _, t := range ts {
		if !t.IsZero() {
			return t
		}
	}
	return time.Time{}
}
