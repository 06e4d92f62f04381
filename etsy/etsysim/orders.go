package etsysim

import (
	"fmt"
	"time"

	"github.com/shopledger/shopledger/etsy"
)

type receipt struct {
	id          int64
	shopID      int64
	sellerID    int64
	buyerID     int64
	status      string
	paid        bool
	shipped     bool
	delivered   bool
	canceled    bool
	created     time.Time
	updated     time.Time
	currency    string
	totalPrice  int64
	discount    int64
	shipping    int64
	tax         int64
	refunds     []refund
	shipments   []shipment
	txs         []*transaction
	buyer       buyer
	paymentType string
	// cached is the receipt's JSON, kept because pollers read the same
	// receipts again and again; every change clears it.
	cached []byte
}

type buyer struct {
	name, firstLine, city, state, zip, country string
}

type refund struct {
	amount  int64
	created time.Time
	reason  string
}

type shipment struct {
	id       int64
	carrier  string
	tracking string
	notified time.Time
}

type transaction struct {
	id           int64
	receiptID    int64
	listingID    int64
	productID    int64
	variantKey   string
	sku          string
	title        string
	quantity     int
	price        int64
	shippingCost int64
	values       []propValue
	created      time.Time
	paid         time.Time
	shipped      time.Time
}

func (r *receipt) subtotal() int64   { return r.totalPrice - r.discount }
func (r *receipt) grandtotal() int64 { return r.subtotal() + r.shipping + r.tax }
func (r *receipt) refunded() int64 {
	var n int64
	for _, f := range r.refunds {
		n += f.amount
	}
	return n
}

var buyerNames = []string{"Ada Lovelace", "Grace Hopper", "Alan Turing", "Edsger Dijkstra", "Barbara Liskov", "Ken Thompson", "Frances Allen", "Donald Knuth"}
var cities = []struct{ city, state, zip, country string }{
	{"Portland", "OR", "97201", "US"}, {"Austin", "TX", "73301", "US"}, {"Brooklyn", "NY", "11201", "US"},
	{"Leeds", "", "LS1 1AA", "GB"}, {"Lyon", "", "69001", "FR"}, {"Toronto", "ON", "M5H 2N2", "CA"},
}

// createOrderLocked places and pays an order: stock goes down, a receipt
// with one transaction per line appears, order.paid fires, and a product
// or listing reaching zero fires inventory.out_of_stock and turns the
// listing sold_out.
func (s *Sim) createOrderLocked(shopID int64, spec OrderSpec, now time.Time) (*receipt, error) {
	sh, ok := s.shops[shopID]
	if !ok {
		return nil, fmt.Errorf("shop %d: %w", shopID, ErrNotFound)
	}
	if len(spec.Items) == 0 {
		return nil, fmt.Errorf("order without items: %w", ErrInvalid)
	}
	type line struct {
		l   *listing
		p   *product
		qty int
	}
	var lines []line
	want := make(map[*product]int)
	for _, it := range spec.Items {
		l, ok := s.listing[it.ListingID]
		if !ok || l.deleted {
			return nil, fmt.Errorf("listing %d: %w", it.ListingID, ErrNotFound)
		}
		if l.shopID != shopID {
			return nil, fmt.Errorf("listing %d is not in shop %d: %w", l.id, shopID, ErrInvalid)
		}
		if l.state != etsy.ListingActive {
			return nil, fmt.Errorf("listing %d is %s: %w", l.id, l.state, ErrInvalid)
		}
		p, err := l.findVariant(it.VariantKey, it.SKU, it.ValueIDs)
		if err != nil {
			return nil, err
		}
		if it.Quantity <= 0 {
			return nil, fmt.Errorf("quantity %d: %w", it.Quantity, ErrInvalid)
		}
		want[p] += it.Quantity
		if want[p] > p.available() {
			return nil, fmt.Errorf("listing %d variant %s has %d, order wants %d: %w", l.id, p.key(l.id), p.available(), want[p], ErrInvalid)
		}
		lines = append(lines, line{l, p, it.Quantity})
	}

	var totalPrice, shipping int64
	for _, ln := range lines {
		totalPrice += ln.p.offer.price * int64(ln.qty)
		shipping += ln.l.shippingCost
	}
	if spec.ShippingCost != nil {
		shipping = *spec.ShippingCost
	}
	if spec.Discount < 0 || spec.Discount > totalPrice || spec.TaxCost < 0 || shipping < 0 {
		return nil, fmt.Errorf("order amounts out of range: %w", ErrInvalid)
	}

	pick := cities[s.rng.IntN(len(cities))]
	name := spec.BuyerName
	if name == "" {
		name = buyerNames[s.rng.IntN(len(buyerNames))]
	}
	r := &receipt{
		id: s.ids.next("receipt"), shopID: shopID, sellerID: sh.userID, buyerID: s.ids.next("buyer"),
		status: etsy.ReceiptPaid, paid: true, created: now, updated: now, currency: sh.currency,
		totalPrice: totalPrice, discount: spec.Discount, shipping: shipping, tax: spec.TaxCost,
		paymentType: "cc",
		buyer: buyer{
			name: name, firstLine: fmt.Sprintf("%d Main St", 1+s.rng.IntN(999)),
			city: pick.city, state: pick.state, zip: pick.zip, country: pick.country,
		},
	}
	for _, ln := range lines {
		ln.p.offer.quantity -= ln.qty
		r.txs = append(r.txs, &transaction{
			id: s.ids.next("transaction"), receiptID: r.id, listingID: ln.l.id, productID: ln.p.id,
			variantKey: ln.p.key(ln.l.id), sku: ln.p.sku, title: ln.l.title, quantity: ln.qty,
			price: ln.p.offer.price, shippingCost: ln.l.shippingCost, values: ln.p.values,
			created: now, paid: now,
		})
	}
	s.receipt[r.id] = r
	sh.receiptIDs = append(sh.receiptIDs, r.id)
	s.stats.orders++
	s.emitLocked(etsy.EventOrderPaid, shopID, s.receiptURL(shopID, r.id))
	touched := make(map[*listing]bool)
	for _, ln := range lines {
		if ln.p.offer.quantity == 0 && !touched[ln.l] {
			s.emitLocked(etsy.EventInventoryOutOfStock, shopID, s.listingURL(ln.l.id)+"/inventory")
			touched[ln.l] = true
		}
		ln.l.updated = now
		if ln.l.quantity() == 0 && ln.l.state == etsy.ListingActive {
			ln.l.state, ln.l.stateTS = etsy.ListingSoldOut, now
			s.emitLocked(etsy.EventListingUpdated, shopID, s.listingURL(ln.l.id))
		}
	}
	return r, nil
}

// cancelLocked cancels an unshipped order the way a seller does: status
// canceled, a full refund, and (restock) the units back in stock.
func (s *Sim) cancelLocked(r *receipt, restock bool, now time.Time) error {
	if r.canceled {
		return fmt.Errorf("receipt %d is already canceled: %w", r.id, ErrInvalid)
	}
	if r.shipped {
		return fmt.Errorf("receipt %d has shipped: %w", r.id, ErrInvalid)
	}
	r.canceled = true
	r.status = etsy.ReceiptCanceled
	r.updated = now
	r.cached = nil
	if owed := r.grandtotal() - r.refunded(); owed > 0 {
		r.refunds = append(r.refunds, refund{amount: owed, created: now, reason: "Order canceled"})
	}
	if restock {
		for _, tx := range r.txs {
			l, ok := s.listing[tx.listingID]
			if !ok || l.deleted {
				continue
			}
			// The sold product may have been replaced by a write since;
			// its variant key still finds it.
			p, err := l.findVariant(tx.variantKey, "", nil)
			if err != nil {
				continue
			}
			p.offer.quantity = min(p.offer.quantity+tx.quantity, maxQuantity)
			l.updated = now
			if l.state == etsy.ListingSoldOut && l.quantity() > 0 {
				l.state, l.stateTS = etsy.ListingActive, now
				s.emitLocked(etsy.EventListingUpdated, l.shopID, s.listingURL(l.id))
			}
		}
	}
	s.emitLocked(etsy.EventOrderCanceled, r.shopID, s.receiptURL(r.shopID, r.id))
	return nil
}

func (s *Sim) shipLocked(r *receipt, carrier, tracking string, now time.Time) error {
	if r.canceled {
		return fmt.Errorf("receipt %d is canceled: %w", r.id, ErrInvalid)
	}
	if carrier == "" {
		carrier = "usps"
	}
	if tracking == "" {
		tracking = fmt.Sprintf("9400%018d", s.rng.Int64N(1e18))
	}
	r.shipments = append(r.shipments, shipment{id: s.ids.next("shipment"), carrier: carrier, tracking: tracking, notified: now})
	r.shipped = true
	r.status = etsy.ReceiptCompleted
	r.updated = now
	r.cached = nil
	for _, tx := range r.txs {
		if tx.shipped.IsZero() {
			tx.shipped = now
		}
	}
	s.emitLocked(etsy.EventOrderShipped, r.shopID, s.receiptURL(r.shopID, r.id))
	return nil
}

func (s *Sim) deliverLocked(r *receipt, now time.Time) error {
	if !r.shipped {
		return fmt.Errorf("receipt %d has not shipped: %w", r.id, ErrInvalid)
	}
	if r.delivered {
		return fmt.Errorf("receipt %d is already delivered: %w", r.id, ErrInvalid)
	}
	r.delivered = true
	r.updated = now
	r.cached = nil
	s.emitLocked(etsy.EventOrderDelivered, r.shopID, s.receiptURL(r.shopID, r.id))
	return nil
}

func (s *Sim) refundLocked(r *receipt, amount int64, reason string, now time.Time) error {
	left := r.grandtotal() - r.refunded()
	if amount <= 0 || amount > left {
		return fmt.Errorf("refund %d of %d left: %w", amount, left, ErrInvalid)
	}
	r.refunds = append(r.refunds, refund{amount: amount, created: now, reason: reason})
	r.updated = now
	r.cached = nil
	if !r.canceled {
		if r.refunded() == r.grandtotal() {
			r.status = etsy.ReceiptFullyRefunded
		} else {
			r.status = etsy.ReceiptPartiallyRefunded
		}
	}
	return nil
}

func (s *Sim) receiptTruthLocked(r *receipt) ReceiptTruth {
	t := ReceiptTruth{
		ReceiptID: r.id, ShopID: r.shopID, BuyerUserID: r.buyerID, Status: r.status,
		IsPaid: r.paid, IsShipped: r.shipped, IsDelivered: r.delivered, IsCanceled: r.canceled,
		Currency: r.currency, TotalPrice: r.totalPrice, Discount: r.discount, Subtotal: r.subtotal(),
		ShippingCost: r.shipping, TaxCost: r.tax, GrandTotal: r.grandtotal(), Refunded: r.refunded(),
		Items: []ItemTruth{}, CreatedAt: r.created, UpdatedAt: r.updated,
	}
	for _, tx := range r.txs {
		t.Items = append(t.Items, ItemTruth{
			TransactionID: tx.id, ListingID: tx.listingID, ProductID: tx.productID,
			VariantKey: tx.variantKey, SKU: tx.sku, Quantity: tx.quantity, Price: tx.price,
		})
	}
	return t
}
