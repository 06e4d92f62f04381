// Package etsymap translates Etsy's receipts and listings into domain
// events and appends them. The webhook fetcher (ingest) and polling
// reconciliation (reconcile) both call it, so a fact seen by both paths is
// decided by the same rules and stored once.
package etsymap

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopledger/shopledger/domain"
	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/telemetry"
)

// Sources of domain events, recorded in metadata and on stock
// observations.
const (
	SourceWebhook        = "webhook"
	SourceReconciliation = "reconciliation"
)

// ErrNoInventory means a listing was passed without its inventory; fetch
// it with GetListing(…, true) or GetListingInventory.
var ErrNoInventory = errors.New("listing without inventory")

// Cause says what made the ledger look at Etsy. Every event a translation
// appends carries it: causation_id = EventID, the same correlation_id.
type Cause struct {
	// EventID is the event that caused the look: a webhook's evidence, or
	// whatever reconciliation records for its run.
	EventID       uuid.UUID
	CorrelationID string
	// Source is SourceWebhook or SourceReconciliation.
	Source string
	// Ref is recorded on stock adjustments ("webhook:<id>",
	// "reconciliation").
	Ref string
	// EtsyEvent is the webhook event type that led here, if any. An
	// order.delivered webhook is Etsy saying the order was delivered,
	// which its receipt object has no field for.
	EtsyEvent string
	// TraceParent continues the trace of what led here in the events
	// appended for it.
	TraceParent string
}

// WebhookCause is the cause of everything the fetcher appends for one
// piece of evidence.
func WebhookCause(evidence events.Record) Cause {
	ev, _ := evidence.Data.(events.WebhookReceived)
	corr := evidence.Metadata.CorrelationID
	if corr == "" {
		corr = evidence.ID.String()
	}
	return Cause{
		EventID: evidence.ID, CorrelationID: corr, Source: SourceWebhook,
		Ref: "webhook:" + ev.WebhookID, EtsyEvent: ev.EtsyEventType,
	}
}

// Metadata is what every event appended for the cause carries.
func (c Cause) Metadata() events.Metadata {
	return events.Metadata{CorrelationID: c.CorrelationID, CausationID: c.EventID.String(), Source: c.Source, TraceParent: c.TraceParent}
}

// Applied reports what one translation stored.
type Applied struct {
	// Appended counts new events; Duplicates counts facts the log
	// already held (seen by the other path, or a redelivery).
	Appended   int
	Duplicates int
}

func (a *Applied) add(r eventstore.Result) {
	n := r.NewCount()
	a.Appended += n
	a.Duplicates += len(r.Events) - n
}

// Translator turns Etsy's receipts and listings into domain events. The
// webhook fetcher and reconciliation both call it, so a fact seen by both
// is decided by the same rules and stored once.
type Translator struct {
	store *eventstore.Store
	now   func() time.Time
	calls *prometheus.CounterVec
}

// NewTranslator registers ingest_translate_calls_total{kind,source} on reg
// (nil: not registered). now defaults to time.Now.
func NewTranslator(store *eventstore.Store, now func() time.Time, reg prometheus.Registerer) (*Translator, error) {
	if now == nil {
		now = time.Now
	}
	t := &Translator{
		store: store,
		now:   now,
		calls: telemetry.CounterVec("ingest_translate_calls_total",
			"Translations of an Etsy object into domain events, by kind (receipt, listing, listing_deleted) and source (webhook, reconciliation).", "kind", "source"),
	}
	if err := telemetry.Register(reg, t.calls); err != nil {
		return nil, fmt.Errorf("new translator: %w", err)
	}
	return t, nil
}

// ApplyReceipt records what Etsy's receipt says: sale.recorded with its
// lines and integer totals, then each status fact (paid, shipped,
// delivered, canceled, refunds) the ledger lacks, on the receipt's stream;
// and per transaction a stock.sold on the listing's stream keyed
// etsy-txn:<transaction_id>:sold.
func (t *Translator) ApplyReceipt(ctx context.Context, shopID int64, r etsy.Receipt, cause Cause) (Applied, error) {
	t.calls.WithLabelValues("receipt", cause.Source).Inc()
	var out Applied
	if r.ShopID != 0 && r.ShopID != shopID {
		return out, fmt.Errorf("apply receipt %d: fetched for shop %d, not %d: %w", r.ReceiptID, r.ShopID, shopID, domain.ErrWrongShop)
	}
	view := ReceiptView(shopID, r, cause.EtsyEvent == etsy.EventOrderDelivered)
	now := t.now()
	meta := cause.Metadata()
	res, err := t.store.Update(ctx, events.ReceiptStream(r.ReceiptID), func(past []events.Record) ([]events.Event, error) {
		evs, err := domain.ReplayReceipt(r.ReceiptID, past).Observe(view, now)
		return withMetadata(evs, meta), err
	})
	if err != nil {
		return out, fmt.Errorf("apply receipt %d: %w", r.ReceiptID, err)
	}
	out.add(res)
	// Sales go to each listing's stream. A sale is a fact with its own
	// key, so it needs no look at the listing's past: appending at Any
	// keeps a listing decision running under Update consistent, because
	// that one appends at an exact version and retries.
	byStream := map[string][]events.Event{}
	var order []string
	for _, ev := range withMetadata(domain.SalesOf(view, now), meta) {
		if _, ok := byStream[ev.StreamID]; !ok {
			order = append(order, ev.StreamID)
		}
		byStream[ev.StreamID] = append(byStream[ev.StreamID], ev)
	}
	for _, stream := range order {
		res, err := t.store.Append(ctx, stream, eventstore.Any, byStream[stream]...)
		if err != nil {
			return out, fmt.Errorf("apply receipt %d: sales: %w", r.ReceiptID, err)
		}
		out.add(res)
	}
	return out, nil
}

// ApplyListing records what Etsy's listing and inventory say: the first
// description or what changed, and for each variant whose Etsy quantity
// differs from the ledger's balance a stock.observed plus the
// stock.adjusted that makes them equal. Balance and decision are computed
// and appended atomically on the listing's stream.
func (t *Translator) ApplyListing(ctx context.Context, shopID int64, l etsy.Listing, cause Cause) (Applied, error) {
	t.calls.WithLabelValues("listing", cause.Source).Inc()
	var out Applied
	if l.Inventory == nil {
		return out, fmt.Errorf("apply listing %d: %w", l.ListingID, ErrNoInventory)
	}
	if l.ShopID != shopID {
		return out, fmt.Errorf("apply listing %d: listing of shop %d, not %d: %w", l.ListingID, l.ShopID, shopID, domain.ErrWrongShop)
	}
	view := ListingView(l)
	obs := domain.Observation{At: t.now(), Source: cause.Source, Cause: cause.Ref}
	meta := cause.Metadata()
	res, err := t.store.Update(ctx, events.ListingStream(l.ListingID), func(past []events.Record) ([]events.Event, error) {
		evs, err := domain.ReplayListing(l.ListingID, past).Observe(view, obs)
		return withMetadata(evs, meta), err
	})
	if err != nil {
		return out, fmt.Errorf("apply listing %d: %w", l.ListingID, err)
	}
	out.add(res)
	return out, nil
}

// ApplyListingDeleted records that Etsy no longer has the listing.
func (t *Translator) ApplyListingDeleted(ctx context.Context, shopID, listingID int64, cause Cause) (Applied, error) {
	t.calls.WithLabelValues("listing_deleted", cause.Source).Inc()
	var out Applied
	now := t.now()
	meta := cause.Metadata()
	res, err := t.store.Update(ctx, events.ListingStream(listingID), func(past []events.Record) ([]events.Event, error) {
		evs, err := domain.ReplayListing(listingID, past).Delete(shopID, now)
		return withMetadata(evs, meta), err
	})
	if err != nil {
		return out, fmt.Errorf("apply listing %d deleted: %w", listingID, err)
	}
	out.add(res)
	return out, nil
}

func withMetadata(evs []events.Event, m events.Metadata) []events.Event {
	for i := range evs {
		evs[i] = evs[i].WithMetadata(m)
	}
	return evs
}

// ReceiptView is Etsy's receipt in the ledger's terms. Buyer details are
// left behind. delivered carries Etsy's word from an order.delivered
// webhook (or a was_delivered poll), since the receipt has no such field.
func ReceiptView(shopID int64, r etsy.Receipt, delivered bool) domain.ReceiptView {
	v := domain.ReceiptView{
		ReceiptID: r.ReceiptID, ShopID: shopID, Status: r.Status,
		Paid:      r.IsPaid,
		Shipped:   r.IsShipped || len(r.Shipments) > 0,
		Delivered: delivered,
		Canceled:  r.Status == etsy.ReceiptCanceled,
		Subtotal:  money(r.Subtotal), Shipping: money(r.TotalShippingCost),
		Tax:      addMoney(money(r.TotalTaxCost), money(r.TotalVATCost)),
		Discount: money(r.DiscountAmt), GrandTotal: money(r.GrandTotal),
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
	}
	for _, tx := range r.Transactions {
		v.Items = append(v.Items, events.SaleItem{
			TransactionID: tx.TransactionID, ListingID: tx.ListingID, VariantKey: tx.VariantKey(),
			SKU: tx.SKU, Title: tx.Title, Quantity: int64(tx.Quantity), UnitPrice: money(tx.Price),
		})
		if !tx.PaidAt.IsZero() && (v.PaidAt.IsZero() || tx.PaidAt.Before(v.PaidAt)) {
			v.PaidAt = tx.PaidAt
		}
		if !tx.ShippedAt.IsZero() && (v.ShippedAt.IsZero() || tx.ShippedAt.Before(v.ShippedAt)) {
			v.ShippedAt = tx.ShippedAt
		}
	}
	if len(r.Shipments) > 0 {
		s := r.Shipments[0]
		v.Carrier, v.TrackingCode = s.CarrierName, s.TrackingCode
		if !s.NotifiedAt.IsZero() {
			v.ShippedAt = s.NotifiedAt
		}
	}
	for _, f := range r.Refunds {
		v.Refunds = append(v.Refunds, domain.RefundView{Amount: money(f.Amount), CreatedAt: f.CreatedAt, Reason: f.Reason})
	}
	return v
}

// ListingView is Etsy's listing and inventory in the ledger's terms. A
// listing without an inventory record is one variant holding its
// quantity.
func ListingView(l etsy.Listing) domain.ListingView {
	v := domain.ListingView{
		ListingID: l.ListingID, ShopID: l.ShopID, Title: l.Title, State: l.State, URL: l.URL,
		Price: money(l.Price), UpdatedAt: l.UpdatedAt,
	}
	if l.LastModifiedAt.After(v.UpdatedAt) {
		v.UpdatedAt = l.LastModifiedAt
	}
	var products []etsy.Product
	if l.Inventory != nil {
		for _, p := range l.Inventory.Products {
			if !p.IsDeleted {
				products = append(products, p)
			}
		}
	}
	if len(products) == 0 {
		v.Variants = []domain.VariantView{{
			Variant:  events.Variant{Key: etsy.Product{}.VariantKey(l.ListingID), Price: money(l.Price), Enabled: true},
			Quantity: int64(l.Quantity),
		}}
		return v
	}
	for _, p := range products {
		vv := domain.VariantView{
			Variant: events.Variant{
				Key: p.VariantKey(l.ListingID), SKU: p.SKU, ProductID: p.ProductID,
				Properties: properties(p.PropertyValues),
			},
			Quantity: int64(p.Quantity()),
		}
		for _, o := range p.Offerings {
			if o.IsDeleted {
				continue
			}
			if vv.Price == (events.Money{}) {
				vv.Price = money(o.Price)
			}
			vv.Enabled = vv.Enabled || o.IsEnabled
		}
		v.Variants = append(v.Variants, vv)
	}
	return v
}

func properties(pvs []etsy.PropertyValue) string {
	parts := make([]string, 0, len(pvs))
	for _, pv := range pvs {
		parts = append(parts, pv.PropertyName+": "+strings.Join(pv.Values, "/"))
	}
	return strings.Join(parts, ", ")
}

func money(m etsy.Money) events.Money { return events.Money{Amount: m.Amount, Currency: m.Currency} }

// addMoney sums two amounts of one currency; a zero amount takes the
// other's currency.
func addMoney(a, b events.Money) events.Money {
	if b.Amount == 0 {
		return a
	}
	if a.Amount == 0 {
		return b
	}
	return events.Money{Amount: a.Amount + b.Amount, Currency: a.Currency}
}
