package etsysim

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/shopledger/shopledger/etsy"
)

// counters back Stats.
type counters struct {
	requestsServed   int64
	rateLimited      int64
	tokenExchanges   int64
	refreshCalls     int64
	refreshFailures  int64
	authorizations   int64
	orders           int64
	webhookMessages  int64
	webhookAttempts  int64
	webhookSucceeded int64
	webhookFailed    int64
	webhookDropped   int64
	// resource fetches slowed down or refused by APIFaults
	resourceDelayed   int64
	resourceThrottled int64
}

var shopWords = []string{"Amber", "Birch", "Cedar", "Dune", "Ember", "Fern", "Grove", "Harbor", "Indigo", "Juniper", "Kiln", "Linen", "Moss", "Nook", "Olive", "Pine"}
var shopSuffixes = []string{"Studio", "Goods", "Works", "Crafts", "Atelier", "Supply"}

// CreateShop adds a shop and the user who owns it.
func (s *Sim) CreateShop(spec ShopSpec) (ShopInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ShopInfo{}, ErrClosed
	}
	cur := strings.ToUpper(spec.Currency)
	if cur == "" {
		cur = "USD"
	}
	if len(cur) != 3 {
		return ShopInfo{}, fmt.Errorf("create shop: currency %q: %w", spec.Currency, ErrInvalid)
	}
	name := spec.Name
	if name == "" {
		name = shopWords[s.rng.IntN(len(shopWords))] + shopSuffixes[s.rng.IntN(len(shopSuffixes))] + fmt.Sprint(len(s.shops)+1)
	}
	if strings.ContainsAny(name, " /?#") {
		return ShopInfo{}, fmt.Errorf("create shop: name %q has spaces or URL characters: %w", name, ErrInvalid)
	}
	now := s.clock.now()
	u := &user{id: s.ids.next("user"), firstName: "Seller", lastName: name}
	sh := &shop{id: s.ids.next("shop"), userID: u.id, name: name, currency: cur, created: now, updated: now}
	u.shopID = sh.id
	u.email = strings.ToLower(name) + "@example.com"
	s.users[u.id] = u
	s.shops[sh.id] = sh
	s.shopIDs = append(s.shopIDs, sh.id)
	return s.shopInfoLocked(sh), nil
}

func (s *Sim) shopInfoLocked(sh *shop) ShopInfo {
	n := 0
	for _, id := range sh.listingIDs {
		if !s.listing[id].deleted {
			n++
		}
	}
	return ShopInfo{ShopID: sh.id, UserID: sh.userID, Name: sh.name, Currency: sh.currency, ListingCount: n, CreatedAt: sh.created}
}

// Shops lists the shops in creation order.
func (s *Sim) Shops() []ShopInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []ShopInfo{}
	for _, id := range s.shopIDs {
		out = append(out, s.shopInfoLocked(s.shops[id]))
	}
	return out
}

// CreateListing adds a listing (listing.created fires).
func (s *Sim) CreateListing(shopID int64, spec ListingSpec) (ListingTruth, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, err := s.createListingLocked(shopID, spec)
	if err != nil {
		return ListingTruth{}, fmt.Errorf("create listing: %w", err)
	}
	return s.listingTruthLocked(l), nil
}

func (s *Sim) createListingLocked(shopID int64, spec ListingSpec) (*listing, error) {
	sh := s.shops[shopID]
	if sh == nil {
		return nil, fmt.Errorf("shop %d: %w", shopID, ErrNotFound)
	}
	state := spec.State
	if state == "" {
		state = etsy.ListingActive
	}
	if !slices.Contains([]string{etsy.ListingActive, etsy.ListingInactive, etsy.ListingDraft}, state) {
		return nil, fmt.Errorf("state %q (active, inactive or draft): %w", state, ErrInvalid)
	}
	if spec.Price == 0 {
		spec.Price = 1500
	}
	if spec.Title == "" {
		spec.Title = s.randomTitleLocked()
	}
	if spec.Description == "" {
		spec.Description = "Made by hand in small batches. " + spec.Title + "."
	}
	in := inventoryInput{}
	if len(spec.Products) == 0 {
		in.products = []productInput{{sku: spec.SKU, price: spec.Price, quantity: spec.Quantity, enabled: true, offerings: 1}}
	}
	propNames := map[string]int64{}
	for _, p := range spec.Products {
		pi := productInput{sku: p.SKU, price: cmp.Or(p.Price, spec.Price), quantity: p.Quantity, enabled: !p.Disabled, offerings: 1}
		for _, pv := range p.PropertyValues {
			id := pv.PropertyID
			if id == 0 {
				// Custom properties get 513, then 514, by name.
				if known, ok := propNames[pv.PropertyName]; ok {
					id = known
				} else {
					id = propertyCustom1 + int64(len(propNames))
					propNames[pv.PropertyName] = id
				}
			}
			pi.values = append(pi.values, propValue{propertyID: id, propertyName: pv.PropertyName, values: []string{pv.Value}})
		}
		in.products = append(in.products, pi)
	}
	// Quantity and SKU vary on every property when there are several
	// products; price only where prices differ.
	if len(in.products) > 1 {
		var props []int64
		for _, v := range in.products[0].values {
			props = append(props, v.propertyID)
		}
		in.quantityOnProperty, in.skuOnProperty = props, slices.Clone(props)
		for _, p := range in.products[1:] {
			if p.price != in.products[0].price {
				in.priceOnProperty = slices.Clone(props)
				break
			}
		}
	}
	now := s.clock.now()
	l := &listing{
		id: s.ids.next("listing"), shopID: shopID, userID: sh.userID, title: spec.Title,
		description: spec.Description, state: state, created: now, updated: now, stateTS: now,
		shippingCost: spec.ShippingCost, tags: []string{"handmade"},
	}
	// The same rules as the API's write apply; creation is reported as
	// listing.created rather than as an inventory update.
	if err := s.applyInventoryLocked(l, in, now, false); err != nil {
		return nil, err
	}
	s.listing[l.id] = l
	sh.listingIDs = append(sh.listingIDs, l.id)
	s.emitLocked(etsy.EventListingCreated, shopID, s.listingURL(l.id))
	return l, nil
}

var titleNouns = []string{"Mug", "Scarf", "Candle", "Notebook", "Tote Bag", "Necklace", "Print", "Planter", "Coaster Set", "Beanie"}
var titleAdjectives = []string{"Hand-thrown", "Knitted", "Soy", "Leather-bound", "Linen", "Silver", "Botanical", "Ceramic", "Walnut", "Merino"}

func (s *Sim) randomTitleLocked() string {
	return titleAdjectives[s.rng.IntN(len(titleAdjectives))] + " " + titleNouns[s.rng.IntN(len(titleNouns))]
}

// Listing returns the truth about one listing.
func (s *Sim) Listing(listingID int64) (ListingTruth, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.listing[listingID]
	if l == nil {
		return ListingTruth{}, fmt.Errorf("listing %d: %w", listingID, ErrNotFound)
	}
	return s.listingTruthLocked(l), nil
}

// Listings returns the truth about a shop's listings (0: every shop), in
// creation order, deleted ones included and marked.
func (s *Sim) Listings(shopID int64) []ListingTruth {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.listingsLocked(shopID)
}

func (s *Sim) listingsLocked(shopID int64) []ListingTruth {
	return perShopLocked(s, shopID, func(sh *shop) []int64 { return sh.listingIDs },
		func(id int64) ListingTruth { return s.listingTruthLocked(s.listing[id]) })
}

// perShopLocked is the truth about what ids lists of each shop (0: every
// shop), shops in creation order.
func perShopLocked[T any](s *Sim, shopID int64, ids func(*shop) []int64, truth func(id int64) T) []T {
	out := []T{}
	for _, sid := range s.shopIDs {
		if shopID != 0 && sid != shopID {
			continue
		}
		for _, id := range ids(s.shops[sid]) {
			out = append(out, truth(id))
		}
	}
	return out
}

// EditListing changes title, state or price as a seller would; a price
// change is an inventory write (new product ids).
func (s *Sim) EditListing(listingID int64, e ListingEdit) (ListingTruth, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, err := s.liveListingLocked(listingID)
	if err != nil {
		return ListingTruth{}, fmt.Errorf("edit listing: %w", err)
	}
	now := s.clock.now()
	if e.Price != nil {
		in := currentInput(l)
		for i := range in.products {
			in.products[i].price = *e.Price
		}
		if err := s.writeInventoryLocked(l, in, now); err != nil {
			return ListingTruth{}, fmt.Errorf("edit listing %d: %w", listingID, err)
		}
	}
	changed := false
	if e.Title != nil && *e.Title != l.title {
		if strings.TrimSpace(*e.Title) == "" {
			return ListingTruth{}, fmt.Errorf("edit listing %d: empty title: %w", listingID, ErrInvalid)
		}
		l.title, changed = *e.Title, true
	}
	if e.State != nil && *e.State != l.state {
		switch *e.State {
		case etsy.ListingActive:
			if l.quantity() == 0 {
				// Etsy: activating a sold-out listing sets its
				// quantity to 1 and renews it.
				in := currentInput(l)
				in.products[0].quantity, in.products[0].enabled = 1, true
				if err := s.writeInventoryLocked(l, in, now); err != nil {
					return ListingTruth{}, fmt.Errorf("edit listing %d: %w", listingID, err)
				}
			}
		case etsy.ListingInactive:
		default:
			return ListingTruth{}, fmt.Errorf("edit listing %d: state %q (active or inactive): %w", listingID, *e.State, ErrInvalid)
		}
		l.state, l.stateTS, changed = *e.State, now, true
	}
	if changed {
		l.updated = now
		s.emitLocked(etsy.EventListingUpdated, l.shopID, s.listingURL(l.id))
	}
	return s.listingTruthLocked(l), nil
}

func (s *Sim) liveListingLocked(id int64) (*listing, error) {
	l := s.listing[id]
	if l == nil || l.deleted {
		return nil, fmt.Errorf("listing %d: %w", id, ErrNotFound)
	}
	return l, nil
}

// RestockListing changes stock through an inventory write, as a seller
// restocking on Etsy does: product and offering ids are regenerated.
func (s *Sim) RestockListing(listingID int64, r Restock) (ListingTruth, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, err := s.restockLocked(listingID, r)
	if err != nil {
		return ListingTruth{}, fmt.Errorf("restock: %w", err)
	}
	return s.listingTruthLocked(l), nil
}

func (s *Sim) restockLocked(listingID int64, r Restock) (*listing, error) {
	l, err := s.liveListingLocked(listingID)
	if err != nil {
		return nil, err
	}
	var target *product
	if r.VariantKey != "" || r.SKU != "" {
		if target, err = l.findVariant(r.VariantKey, r.SKU, nil); err != nil {
			return nil, err
		}
	}
	in := currentInput(l)
	for i, p := range l.inv.products {
		if target != nil && p != target {
			continue
		}
		q := in.products[i].quantity + r.Delta
		if r.Set != nil {
			q = *r.Set
		}
		in.products[i].quantity = min(max(q, 0), maxQuantity)
	}
	if err := s.writeInventoryLocked(l, in, s.clock.now()); err != nil {
		return nil, fmt.Errorf("listing %d: %w", listingID, err)
	}
	return l, nil
}

// DeleteListing deletes a listing (listing.deleted fires); the API then
// answers 404 for it.
func (s *Sim) DeleteListing(listingID int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, err := s.liveListingLocked(listingID)
	if err != nil {
		return fmt.Errorf("delete listing: %w", err)
	}
	l.deleted = true
	l.updated = s.clock.now()
	s.emitLocked(etsy.EventListingDeleted, l.shopID, s.listingURL(l.id))
	return nil
}

// CreateOrder places and pays an order in a shop.
func (s *Sim) CreateOrder(shopID int64, spec OrderSpec) (ReceiptTruth, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.createOrderLocked(shopID, spec, s.clock.now())
	if err != nil {
		return ReceiptTruth{}, fmt.Errorf("create order: %w", err)
	}
	return s.receiptTruthLocked(r), nil
}

func (s *Sim) receiptLocked(id int64) (*receipt, error) {
	r := s.receipt[id]
	if r == nil {
		return nil, fmt.Errorf("receipt %d: %w", id, ErrNotFound)
	}
	return r, nil
}

// receiptOp runs an operation on one receipt under the lock.
func (s *Sim) receiptOp(name string, id int64, op func(r *receipt, now time.Time) error) (ReceiptTruth, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.receiptLocked(id)
	if err == nil {
		err = op(r, s.clock.now())
	}
	if err != nil {
		return ReceiptTruth{}, fmt.Errorf("%s: %w", name, err)
	}
	return s.receiptTruthLocked(r), nil
}

// CancelOrder cancels an unshipped order with a full refund;
// restock puts the units back.
func (s *Sim) CancelOrder(receiptID int64, restock bool) (ReceiptTruth, error) {
	return s.receiptOp("cancel order", receiptID, func(r *receipt, now time.Time) error {
		return s.cancelLocked(r, restock, now)
	})
}

// ShipOrder adds shipping information; empty carrier and tracking are
// generated.
func (s *Sim) ShipOrder(receiptID int64, carrier, tracking string) (ReceiptTruth, error) {
	return s.receiptOp("ship order", receiptID, func(r *receipt, now time.Time) error {
		return s.shipLocked(r, carrier, tracking, now)
	})
}

// DeliverOrder marks a shipped order delivered.
func (s *Sim) DeliverOrder(receiptID int64) (ReceiptTruth, error) {
	return s.receiptOp("deliver order", receiptID, func(r *receipt, now time.Time) error {
		return s.deliverLocked(r, now)
	})
}

// RefundOrder refunds part or all of an order (no webhook: Etsy has no
// refund event).
func (s *Sim) RefundOrder(receiptID, amount int64, reason string) (ReceiptTruth, error) {
	return s.receiptOp("refund order", receiptID, func(r *receipt, now time.Time) error {
		return s.refundLocked(r, amount, reason, now)
	})
}

// Receipt returns the truth about one receipt.
func (s *Sim) Receipt(receiptID int64) (ReceiptTruth, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.receiptLocked(receiptID)
	if err != nil {
		return ReceiptTruth{}, err
	}
	return s.receiptTruthLocked(r), nil
}

// Receipts returns the truth about a shop's receipts (0: every shop),
// oldest first.
func (s *Sim) Receipts(shopID int64) []ReceiptTruth {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.receiptsLocked(shopID)
}

func (s *Sim) receiptsLocked(shopID int64) []ReceiptTruth {
	return perShopLocked(s, shopID, func(sh *shop) []int64 { return sh.receiptIDs },
		func(id int64) ReceiptTruth { return s.receiptTruthLocked(s.receipt[id]) })
}

// Truth returns shops, listings and receipts of one shop (0: all).
func (s *Sim) Truth(shopID int64) Truth {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := Truth{Shops: []ShopInfo{}, Listings: s.listingsLocked(shopID), Receipts: s.receiptsLocked(shopID)}
	for _, id := range s.shopIDs {
		if shopID == 0 || id == shopID {
			t.Shops = append(t.Shops, s.shopInfoLocked(s.shops[id]))
		}
	}
	return t
}

// Stats returns the simulator's counters.
func (s *Sim) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.stats
	st := Stats{
		RequestsServed: c.requestsServed, RateLimited: c.rateLimited, Keys: map[string]KeyStats{},
		TokenExchanges: c.tokenExchanges, RefreshCalls: c.refreshCalls, RefreshFailures: c.refreshFailures,
		Authorizations: c.authorizations, Orders: c.orders, WebhookMessages: c.webhookMessages,
		WebhookAttempts: c.webhookAttempts, WebhookSucceeded: c.webhookSucceeded,
		WebhookFailed: c.webhookFailed, WebhookDropped: c.webhookDropped,
		ResourceDelayed: c.resourceDelayed, ResourceThrottled: c.resourceThrottled,
	}
	now := s.clock.now()
	for key, k := range s.limits {
		st.Keys[key] = KeyStats{Served: k.served, RateLimited: k.limited, MaxQPS: k.maxQPS, DayUsed: k.dayUsed(now)}
	}
	for _, m := range s.hooks.msgs {
		if m.pending {
			st.WebhookPending++
		}
	}
	return st
}
