package etsysim

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/shopledger/shopledger/etsy"
)

var colors = []string{"Black", "White", "Sage", "Rust", "Navy", "Mustard", "Blush", "Charcoal"}
var sizes = []string{"S", "M", "L", "XL"}

// GenerateCatalogue adds n demo listings to a shop: about half simple, a
// quarter with colour variations, the rest colour × size (some variants
// without SKUs, so their identity is their property values), and roughly
// one in five low on stock.
func (s *Sim) GenerateCatalogue(shopID int64, n int) ([]ListingTruth, error) {
	if n < 0 || n > 100000 {
		return nil, fmt.Errorf("generate catalogue: %d listings: %w", n, ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shops[shopID] == nil {
		return nil, fmt.Errorf("generate catalogue: shop %d: %w", shopID, ErrNotFound)
	}
	out := make([]ListingTruth, 0, n)
	for range n {
		spec := s.demoListingLocked()
		l, err := s.createListingLocked(shopID, spec)
		if err != nil {
			return out, fmt.Errorf("generate catalogue: %w", err)
		}
		out = append(out, s.listingTruthLocked(l))
	}
	return out, nil
}

func (s *Sim) demoListingLocked() ListingSpec {
	r := s.rng
	// SKUs are unique per simulator: a shared SKU would merge two
	// listings' stock under shopledger's variant identity.
	s.demoSeq++
	seq := s.demoSeq
	price := int64(800+r.IntN(80)*100) - []int64{0, 1}[r.IntN(2)]
	stock := func() int {
		if r.IntN(5) == 0 {
			return r.IntN(4) // low: 0..3
		}
		return 4 + r.IntN(37)
	}
	spec := ListingSpec{
		Title: s.randomTitleLocked(), Price: price,
		ShippingCost: []int64{0, 350, 500}[r.IntN(3)],
	}
	switch k := r.IntN(100); {
	case k < 50:
		spec.Quantity = max(stock(), 1)
		spec.SKU = fmt.Sprintf("SL-%05d", seq)
	case k < 75:
		picked := pick(r.Perm(len(colors)), 2+r.IntN(3))
		for _, c := range picked {
			spec.Products = append(spec.Products, ProductSpec{
				SKU:            fmt.Sprintf("SL-%05d-%s", seq, strings.ToUpper(colors[c][:3])),
				PropertyValues: []PropertyValueSpec{{PropertyID: propertyColor, PropertyName: "Primary color", Value: colors[c]}},
				Quantity:       stock(),
			})
		}
	default:
		withSKU := r.IntN(2) == 0
		for _, c := range pick(r.Perm(len(colors)), 2) {
			for _, sz := range sizes[:2+r.IntN(3)] {
				p := ProductSpec{
					PropertyValues: []PropertyValueSpec{
						{PropertyID: propertyColor, PropertyName: "Primary color", Value: colors[c]},
						{PropertyName: "Size", Value: sz},
					},
					Quantity: stock(),
					Price:    price + int64(slices.Index(sizes, sz))*200,
				}
				if withSKU {
					p.SKU = fmt.Sprintf("SL-%05d-%s-%s", seq, strings.ToUpper(colors[c][:3]), sz)
				}
				spec.Products = append(spec.Products, p)
			}
		}
	}
	// Etsy refuses a product set without stock; keep the first variant
	// sellable.
	if len(spec.Products) > 0 {
		has := false
		for _, p := range spec.Products {
			has = has || p.Quantity > 0
		}
		if !has {
			spec.Products[0].Quantity = 1
		}
	}
	return spec
}

func pick(perm []int, n int) []int { return perm[:min(n, len(perm))] }

// Scenario sets how often things happen, per minute of simulated time.
type Scenario struct {
	OrdersPerMinute     float64 `json:"orders_per_minute"`
	RestocksPerMinute   float64 `json:"restocks_per_minute"`
	EditsPerMinute      float64 `json:"edits_per_minute"`
	CancelsPerMinute    float64 `json:"cancels_per_minute"`
	ShipmentsPerMinute  float64 `json:"shipments_per_minute"`
	DeliveriesPerMinute float64 `json:"deliveries_per_minute"`
	// ShopIDs limits the scenario to these shops; default all.
	ShopIDs []int64 `json:"shop_ids,omitempty"`
	// LowStock is the quantity at or below which a listing is a restock
	// candidate; default 3.
	LowStock int `json:"low_stock,omitempty"`
}

// Scenario step kinds.
const (
	StepOrder   = "order"
	StepRestock = "restock"
	StepEdit    = "edit"
	StepCancel  = "cancel"
	StepShip    = "ship"
	StepDeliver = "deliver"
)

// ErrNothingToDo means a scenario step found nothing to act on (no stock
// to sell, no order to ship).
var ErrNothingToDo = errors.New("etsysim: nothing to do")

// RunScenario drives the shops until ctx ends: events arrive as a Poisson
// process at the configured rates on the simulated clock, so TimeScale
// speeds them up. Steps with nothing to do are skipped.
func (s *Sim) RunScenario(ctx context.Context, sc Scenario) error {
	rates := []struct {
		kind string
		rate float64
	}{
		{StepOrder, sc.OrdersPerMinute}, {StepRestock, sc.RestocksPerMinute}, {StepEdit, sc.EditsPerMinute},
		{StepCancel, sc.CancelsPerMinute}, {StepShip, sc.ShipmentsPerMinute}, {StepDeliver, sc.DeliveriesPerMinute},
	}
	total := 0.0
	for _, r := range rates {
		if r.rate < 0 {
			return fmt.Errorf("run scenario: negative rate for %s: %w", r.kind, ErrInvalid)
		}
		total += r.rate
	}
	if total == 0 {
		<-ctx.Done()
		return nil
	}
	if s.clock.realDuration(time.Minute) < 0 {
		return fmt.Errorf("run scenario: the clock is frozen, use ScenarioStep: %w", ErrInvalid)
	}
	// Register with Close under the lock, so Close either waits for this
	// run or this run sees closed.
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return ErrClosed
		}
		gap := time.Duration(-math.Log(1-s.rng.Float64()) / total * float64(time.Minute))
		x := s.rng.Float64() * total
		kind := rates[len(rates)-1].kind
		for _, r := range rates {
			if x < r.rate {
				kind = r.kind
				break
			}
			x -= r.rate
		}
		s.mu.Unlock()
		t := time.NewTimer(s.clock.realDuration(gap))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-s.ctx.Done():
			t.Stop()
			return ErrClosed
		case <-t.C:
		}
		desc, err := s.ScenarioStep(kind, sc)
		switch {
		case errors.Is(err, ErrNothingToDo):
		case err != nil:
			s.log.Warn("scenario step failed", "kind", kind, "err", err)
		default:
			s.log.Debug("scenario step", "kind", kind, "what", desc)
		}
	}
}

// ScenarioStep performs one step of a kind (StepOrder, StepRestock, …)
// with the seeded random source and describes what it did.
func (s *Sim) ScenarioStep(kind string, sc Scenario) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	desc, _, err := s.stepLocked(kind, sc)
	return desc, err
}

// stepLocked does one scenario step; for orders it also returns the
// receipt.
func (s *Sim) stepLocked(kind string, sc Scenario) (string, *receipt, error) {
	now := s.clock.now()
	low := sc.LowStock
	if low == 0 {
		low = 3
	}
	shops := sc.ShopIDs
	if len(shops) == 0 {
		shops = s.shopIDs
	}
	inScope := func(shopID int64) bool { return slices.Contains(shops, shopID) }
	var listings []*listing
	for _, sid := range shops {
		if sh := s.shops[sid]; sh != nil {
			for _, id := range sh.listingIDs {
				if l := s.listing[id]; !l.deleted {
					listings = append(listings, l)
				}
			}
		}
	}
	receipts := func(ok func(r *receipt) bool) []*receipt {
		var out []*receipt
		for _, sid := range shops {
			if sh := s.shops[sid]; sh != nil {
				for _, id := range sh.receiptIDs {
					if r := s.receipt[id]; ok(r) {
						out = append(out, r)
					}
				}
			}
		}
		return out
	}
	switch kind {
	case StepOrder:
		var sellable []*listing
		for _, l := range listings {
			if l.state == etsy.ListingActive && l.quantity() > 0 && inScope(l.shopID) {
				sellable = append(sellable, l)
			}
		}
		if len(sellable) == 0 {
			return "", nil, ErrNothingToDo
		}
		l := sellable[s.rng.IntN(len(sellable))]
		spec := OrderSpec{}
		for _, extra := range []bool{false, s.rng.IntN(4) == 0} {
			if extra {
				l = sellable[s.rng.IntN(len(sellable))]
			}
			var avail []*product
			for _, p := range l.inv.products {
				if p.available() > 0 {
					avail = append(avail, p)
				}
			}
			if len(avail) == 0 || slices.ContainsFunc(spec.Items, func(it OrderItem) bool { return it.ListingID == l.id }) {
				continue
			}
			p := avail[s.rng.IntN(len(avail))]
			spec.Items = append(spec.Items, OrderItem{ListingID: l.id, VariantKey: p.key(l.id), Quantity: 1 + s.rng.IntN(min(p.available(), 2))})
		}
		// Orders only contain one shop's listings.
		shopID := s.listing[spec.Items[0].ListingID].shopID
		spec.Items = slices.DeleteFunc(spec.Items, func(it OrderItem) bool { return s.listing[it.ListingID].shopID != shopID })
		if s.rng.IntN(5) == 0 {
			var total int64
			for _, it := range spec.Items {
				p, _ := s.listing[it.ListingID].findVariant(it.VariantKey, "", nil)
				total += p.offer.price * int64(it.Quantity)
			}
			spec.Discount = total / 10
		}
		if s.rng.IntN(3) == 0 {
			spec.TaxCost = int64(50 + s.rng.IntN(300))
		}
		r, err := s.createOrderLocked(shopID, spec, now)
		if err != nil {
			return "", nil, err
		}
		return fmt.Sprintf("order %d in shop %d: %d lines, total %d", r.id, shopID, len(r.txs), r.grandtotal()), r, nil
	case StepRestock:
		var cands []*listing
		for _, l := range listings {
			if l.quantity() <= low && (l.state == etsy.ListingActive || l.state == etsy.ListingSoldOut) {
				cands = append(cands, l)
			}
		}
		if len(cands) == 0 {
			return "", nil, ErrNothingToDo
		}
		l := cands[s.rng.IntN(len(cands))]
		lowest := l.inv.products[0]
		for _, p := range l.inv.products {
			if p.offer.quantity < lowest.offer.quantity {
				lowest = p
			}
		}
		delta := 5 + s.rng.IntN(16)
		if _, err := s.restockLocked(l.id, Restock{VariantKey: lowest.key(l.id), Delta: delta}); err != nil {
			return "", nil, err
		}
		return fmt.Sprintf("restocked listing %d variant %s by %d", l.id, lowest.key(l.id), delta), nil, nil
	case StepEdit:
		var cands []*listing
		for _, l := range listings {
			if l.state == etsy.ListingActive {
				cands = append(cands, l)
			}
		}
		if len(cands) == 0 {
			return "", nil, ErrNothingToDo
		}
		l := cands[s.rng.IntN(len(cands))]
		if s.rng.IntN(2) == 0 {
			l.title = strings.TrimSuffix(l.title, " (new)")
			if s.rng.IntN(2) == 0 {
				l.title += " (new)"
			}
			l.updated = now
			s.emitLocked(etsy.EventListingUpdated, l.shopID, s.listingURL(l.id))
			return fmt.Sprintf("retitled listing %d to %q", l.id, l.title), nil, nil
		}
		in := currentInput(l)
		factor := 0.9 + 0.2*s.rng.Float64()
		for i := range in.products {
			in.products[i].price = max(minPrice, int64(float64(in.products[i].price)*factor))
		}
		if err := s.writeInventoryLocked(l, in, now); err != nil {
			return "", nil, err
		}
		return fmt.Sprintf("repriced listing %d by %.0f%%", l.id, (factor-1)*100), nil, nil
	case StepCancel:
		rs := receipts(func(r *receipt) bool { return r.paid && !r.shipped && !r.canceled })
		if len(rs) == 0 {
			return "", nil, ErrNothingToDo
		}
		r := rs[s.rng.IntN(len(rs))]
		if err := s.cancelLocked(r, true, now); err != nil {
			return "", nil, err
		}
		return fmt.Sprintf("canceled receipt %d", r.id), nil, nil
	case StepShip:
		rs := receipts(func(r *receipt) bool { return r.paid && !r.shipped && !r.canceled })
		if len(rs) == 0 {
			return "", nil, ErrNothingToDo
		}
		r := rs[s.rng.IntN(len(rs))]
		if err := s.shipLocked(r, "", "", now); err != nil {
			return "", nil, err
		}
		return fmt.Sprintf("shipped receipt %d", r.id), nil, nil
	case StepDeliver:
		rs := receipts(func(r *receipt) bool { return r.shipped && !r.delivered })
		if len(rs) == 0 {
			return "", nil, ErrNothingToDo
		}
		r := rs[s.rng.IntN(len(rs))]
		if err := s.deliverLocked(r, now); err != nil {
			return "", nil, err
		}
		return fmt.Sprintf("delivered receipt %d", r.id), nil, nil
	}
	return "", nil, fmt.Errorf("scenario step %q: %w", kind, ErrInvalid)
}

// RandomOrder places a random order in a shop (0: any shop).
func (s *Sim) RandomOrder(shopID int64) (ReceiptTruth, error) {
	sc := Scenario{}
	if shopID != 0 {
		sc.ShopIDs = []int64{shopID}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, r, err := s.stepLocked(StepOrder, sc)
	if err != nil {
		return ReceiptTruth{}, fmt.Errorf("random order: %w", err)
	}
	return s.receiptTruthLocked(r), nil
}
