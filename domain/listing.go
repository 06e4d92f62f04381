// Package domain holds the ledger's rules: what a listing's and a receipt's
// past events mean (variant balances, statuses) and which new events a
// fresh view from Etsy implies. It decides; it stores nothing and imports
// no infrastructure.
package domain

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/shopledger/shopledger/events"
)

var (
	// ErrWrongListing means a view or command names another listing.
	ErrWrongListing = errors.New("view is of another listing")
	// ErrWrongShop means the listing or receipt belongs to another shop
	// than the one the command claims.
	ErrWrongShop = errors.New("belongs to another shop")
	// ErrInvalidView means Etsy's view cannot be right (a negative
	// quantity, a variant without identity).
	ErrInvalidView = errors.New("invalid view")
)

// VariantView is one variant as Etsy shows it now.
type VariantView struct {
	events.Variant
	// Quantity is Etsy's sellable stock of the variant.
	Quantity int64
}

// ListingView is a listing as Etsy shows it now, with its inventory.
type ListingView struct {
	ListingID int64
	ShopID    int64
	Title     string
	State     string
	URL       string
	Price     events.Money
	Variants  []VariantView
	// UpdatedAt is Etsy's last change to the listing; a view older than
	// what the ledger recorded does not roll descriptions back.
	UpdatedAt time.Time
}

// Observation says when and why a view was taken.
type Observation struct {
	At time.Time
	// Source is "webhook" or "reconciliation".
	Source string
	// Cause is recorded on stock adjustments, e.g. "webhook:<id>".
	Cause string
}

// Listing is what the ledger knows about one listing, rebuilt from its
// stream: description, state and the balance of each variant.
type Listing struct {
	id            int64
	shopID        int64
	imported      bool
	deleted       bool
	title         string
	state         string
	url           string
	price         events.Money
	variants      []events.Variant
	etsyUpdatedAt time.Time
	balances      map[string]int64
	edits         editState

	changes []events.Event
}

// NewListing returns the state of a listing with no history.
func NewListing(id int64) *Listing {
	return &Listing{id: id, balances: map[string]int64{}}
}

// ReplayListing rebuilds a listing from its stream's events.
func ReplayListing(id int64, past []events.Record) *Listing {
	l := NewListing(id)
	replay(past, &l.shopID, l.apply)
	return l
}

// replay applies past events in order; the shop is the first one a record
// names, for streams whose early events carry none.
func replay(past []events.Record, shopID *int64, apply func(events.Payload)) {
	for _, r := range past {
		if *shopID == 0 && r.ShopID != 0 {
			*shopID = r.ShopID
		}
		apply(r.Data)
	}
}

// ID is the listing id.
func (l *Listing) ID() int64 { return l.id }

// ShopID is the shop the listing belongs to, 0 while unknown.
func (l *Listing) ShopID() int64 { return l.shopID }

// Imported reports whether the ledger has described the listing.
func (l *Listing) Imported() bool { return l.imported }

// Deleted reports whether Etsy deleted the listing.
func (l *Listing) Deleted() bool { return l.deleted }

// State is the last recorded Etsy state.
func (l *Listing) State() string { return l.state }

// Balance is the ledger's stock of a variant: the sum of its movements.
func (l *Listing) Balance(variantKey string) int64 { return l.balances[variantKey] }

// Balances returns every variant's balance.
func (l *Listing) Balances() map[string]int64 {
	out := make(map[string]int64, len(l.balances))
	for k, v := range l.balances {
		out[k] = v
	}
	return out
}

// apply is the only place a listing's state changes.
func (l *Listing) apply(p events.Payload) {
	switch e := p.(type) {
	case events.ListingImported:
		l.describe(e)
	case events.ListingUpdated:
		l.describe(events.ListingImported(e))
	case events.ListingStateChanged:
		l.state = e.To
	case events.ListingDeleted:
		l.deleted = true
	case events.StockSold:
		l.balances[e.VariantKey] -= e.Quantity
	case events.StockAdjusted:
		l.balances[e.VariantKey] += e.Delta
	default:
		l.applyEdit(p)
	}
}

// describe takes a full description, which an import and an update both
// carry.
func (l *Listing) describe(e events.ListingImported) {
	l.imported, l.deleted = true, false
	l.shopID = cmp.Or(l.shopID, e.ShopID)
	l.title, l.state, l.url, l.price = e.Title, e.State, e.URL, e.Price
	l.variants = slices.Clone(e.Variants)
	l.etsyUpdatedAt = later(l.etsyUpdatedAt, e.EtsyUpdatedAt)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// record applies an event and keeps it for the caller to append.
func (l *Listing) record(at time.Time, p events.Payload, dedupe string) {
	ev := events.New(events.ListingStream(l.id), l.shopID, at, p)
	if dedupe != "" {
		ev = ev.WithDedupe(dedupe)
	}
	l.apply(p)
	l.changes = append(l.changes, ev)
}

func (l *Listing) takeChanges() []events.Event {
	out := l.changes
	l.changes = nil
	return out
}

// ListingImportedKey is the natural key of a listing's first description.
func ListingImportedKey(listingID int64) string {
	return fmt.Sprintf("etsy-listing:%d:imported", listingID)
}

// Observe decides what a fresh view of the listing from Etsy adds to the
// ledger: its first description (listing.imported) or what changed
// (listing.state_changed, listing.updated), and for every variant whose
// Etsy quantity differs from the ledger's balance a stock.observed and a
// stock.adjusted that bring the balance to Etsy's number. Variants the
// ledger holds stock of but Etsy no longer lists are brought to zero.
// Nothing is recorded when the ledger already agrees.
func (l *Listing) Observe(v ListingView, obs Observation) ([]events.Event, error) {
	if v.ListingID != l.id {
		return nil, fmt.Errorf("observe listing %d: view of listing %d: %w", l.id, v.ListingID, ErrWrongListing)
	}
	if v.ShopID == 0 || (l.shopID != 0 && v.ShopID != l.shopID) {
		return nil, fmt.Errorf("observe listing %d: shop %d, ledger has %d: %w", l.id, v.ShopID, l.shopID, ErrWrongShop)
	}
	if obs.At.IsZero() {
		return nil, fmt.Errorf("observe listing %d: no observation time: %w", l.id, ErrInvalidView)
	}
	variants, err := mergeVariants(v.Variants)
	if err != nil {
		return nil, fmt.Errorf("observe listing %d: %w", l.id, err)
	}
	l.shopID = v.ShopID
	described := make([]events.Variant, len(variants))
	for i, vv := range variants {
		described[i] = vv.Variant
	}
	at := v.UpdatedAt
	if at.IsZero() {
		at = obs.At
	}

	firstImport := !l.imported
	switch {
	case firstImport:
		l.record(at, events.ListingImported{
			ListingID: l.id, ShopID: v.ShopID, Title: v.Title, State: v.State, URL: v.URL,
			Price: v.Price, Variants: described, EtsyUpdatedAt: v.UpdatedAt,
		}, ListingImportedKey(l.id))
	case !v.UpdatedAt.IsZero() && v.UpdatedAt.Before(l.etsyUpdatedAt):
		// An older view than the one recorded: its description is stale.
		// Its stock is still Etsy's number at the time of the fetch.
	default:
		if v.State != l.state {
			l.record(at, events.ListingStateChanged{ListingID: l.id, From: l.state, To: v.State}, "")
		}
		if v.Title != l.title || v.URL != l.url || v.Price != l.price || !sameVariants(described, l.variants) {
			l.record(at, events.ListingUpdated{
				ListingID: l.id, ShopID: v.ShopID, Title: v.Title, State: v.State, URL: v.URL,
				Price: v.Price, Variants: described, EtsyUpdatedAt: v.UpdatedAt,
			}, "")
		}
	}

	reason := events.ReasonEtsyChange
	if firstImport {
		reason = events.ReasonInitialImport
	}
	seen := map[string]bool{}
	for _, vv := range variants {
		seen[vv.Key] = true
		l.settle(vv.Key, vv.Quantity, reason, obs)
	}
	var gone []string
	for key, bal := range l.balances {
		if !seen[key] && bal != 0 {
			gone = append(gone, key)
		}
	}
	slices.Sort(gone)
	for _, key := range gone {
		l.settle(key, 0, events.ReasonEtsyChange, obs)
	}
	return l.takeChanges(), nil
}

// settle records Etsy's quantity and the movement that explains the
// difference, if there is one.
func (l *Listing) settle(key string, quantity int64, reason string, obs Observation) {
	if l.pushing(key) {
		// Our own write is in flight: Etsy's number may or may not hold
		// it yet. Its outcome settles the variant.
		return
	}
	delta := quantity - l.balances[key]
	if delta == 0 {
		return
	}
	l.record(obs.At, events.StockObserved{
		ListingID: l.id, VariantKey: key, Quantity: quantity, ObservedAt: obs.At.UTC(), Source: obs.Source,
	}, "")
	l.record(obs.At, events.StockAdjusted{
		ListingID: l.id, VariantKey: key, Delta: delta, Reason: reason, Cause: obs.Cause,
	}, "")
}

// Delete records that Etsy deleted the listing, once.
func (l *Listing) Delete(shopID int64, at time.Time) ([]events.Event, error) {
	if l.shopID != 0 && shopID != l.shopID {
		return nil, fmt.Errorf("delete listing %d: shop %d, ledger has %d: %w", l.id, shopID, l.shopID, ErrWrongShop)
	}
	if l.deleted {
		return nil, nil
	}
	l.shopID = shopID
	l.record(at, events.ListingDeleted{ListingID: l.id}, "")
	return l.takeChanges(), nil
}

// mergeVariants checks a view's variants and folds products that share an
// identity. Etsy requires products sharing a SKU to carry equal quantities
// when they share stock, so equal quantities count once; unequal ones are
// separate units under one label and add up.
func mergeVariants(in []VariantView) ([]VariantView, error) {
	var out []VariantView
	idx := map[string]int{}
	for _, v := range in {
		if v.Key == "" {
			return nil, fmt.Errorf("variant without key: %w", ErrInvalidView)
		}
		if v.Quantity < 0 {
			return nil, fmt.Errorf("variant %s quantity %d: %w", v.Key, v.Quantity, ErrInvalidView)
		}
		i, ok := idx[v.Key]
		if !ok {
			idx[v.Key] = len(out)
			out = append(out, v)
			continue
		}
		if out[i].Quantity != v.Quantity {
			out[i].Quantity += v.Quantity
		}
		out[i].Enabled = out[i].Enabled || v.Enabled
	}
	slices.SortFunc(out, func(a, b VariantView) int { return cmp.Compare(a.Key, b.Key) })
	return out, nil
}

// sameVariants compares variant sets ignoring product ids, which Etsy
// regenerates on every inventory write.
func sameVariants(a, b []events.Variant) bool {
	if len(a) != len(b) {
		return false
	}
	norm := func(vs []events.Variant) []events.Variant {
		out := slices.Clone(vs)
		for i := range out {
			out[i].ProductID = 0
		}
		slices.SortFunc(out, func(x, y events.Variant) int { return cmp.Compare(x.Key, y.Key) })
		return out
	}
	return slices.Equal(norm(a), norm(b))
}
