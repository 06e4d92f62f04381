package domain

import (
	"errors"
	"fmt"
	"strings"

	"github.com/shopledger/shopledger/events"
)

// DefaultLowStockThreshold is the line in force where neither a variant,
// its listing nor its shop sets one and the operator configured no other
// default (SHOPLEDGER_DEFAULT_LOW_STOCK_THRESHOLD).
const DefaultLowStockThreshold = 5

// MaxThreshold keeps thresholds within what a seller could mean.
const MaxThreshold = 1_000_000

// ErrInvalidThreshold means a threshold command cannot be recorded as
// asked: a number out of range, or a target without a shop, a listing
// for its variant, or an actor.
var ErrInvalidThreshold = errors.New("invalid threshold")

// Where the line in force for a variant comes from.
const (
	SourceVariant = events.ScopeVariant
	SourceListing = events.ScopeListing
	SourceShop    = events.ScopeShop
	SourceDefault = "default"
)

// Lines are the low-stock thresholds set for a variant, its listing and
// its shop; nil where none is set.
type Lines struct {
	Variant, Listing, Shop *int64
}

// Resolve returns the line in force for the variant and where it comes
// from: its own, else its listing's, else its shop's default, else def,
// the configured default.
func (l Lines) Resolve(def int64) (threshold int64, source string) {
	switch {
	case l.Variant != nil:
		return *l.Variant, SourceVariant
	case l.Listing != nil:
		return *l.Listing, SourceListing
	case l.Shop != nil:
		return *l.Shop, SourceShop
	}
	return def, SourceDefault
}

// LowStock reports whether a balance is low against a threshold: at or
// below it.
func LowStock(balance, threshold int64) bool { return balance <= threshold }

// Crossing is what a variant's alert state must do after its balance,
// its threshold or its listing changed.
type Crossing int

const (
	// NoCrossing leaves the alert state as it is.
	NoCrossing Crossing = iota
	// Raise opens a low-stock alert: the variant is low and none is open.
	Raise
	// Clear closes the open alert: the variant is no longer low.
	Clear
	// ClearDeleted closes the open alert because the listing is gone.
	ClearDeleted
)

// LowStockCrossing decides the alert of a variant with balance against
// threshold, given whether an alert is open and whether its listing was
// deleted. A deleted listing raises nothing.
func LowStockCrossing(balance, threshold int64, open, deleted bool) Crossing {
	low := LowStock(balance, threshold)
	switch {
	case open && deleted:
		return ClearDeleted
	case open && !low:
		return Clear
	case !open && low && !deleted:
		return Raise
	}
	return NoCrossing
}

// ThresholdTarget names the line a threshold command sets or clears: a
// shop's default (no listing), a listing's line (no variant key) or a
// variant's own line.
type ThresholdTarget struct {
	ShopID     int64
	ListingID  int64
	VariantKey string
}

// Scope is the event scope of the target.
func (t ThresholdTarget) Scope() string {
	switch {
	case t.VariantKey != "":
		return events.ScopeVariant
	case t.ListingID != 0:
		return events.ScopeListing
	}
	return events.ScopeShop
}

// Stream is the stream the target's threshold events belong to.
func (t ThresholdTarget) Stream() string {
	if t.Scope() == events.ScopeShop {
		return events.ShopStream(t.ShopID)
	}
	return events.ListingStream(t.ListingID)
}

// String names the target for people.
func (t ThresholdTarget) String() string {
	switch t.Scope() {
	case events.ScopeVariant:
		return fmt.Sprintf("variant %q of listing %d", t.VariantKey, t.ListingID)
	case events.ScopeListing:
		return fmt.Sprintf("listing %d", t.ListingID)
	}
	return fmt.Sprintf("default of shop %d", t.ShopID)
}

func (t ThresholdTarget) check(actor string) error {
	switch {
	case t.ShopID <= 0:
		return fmt.Errorf("no shop: %w", ErrInvalidThreshold)
	case t.ListingID < 0:
		return fmt.Errorf("listing %d: %w", t.ListingID, ErrInvalidThreshold)
	case t.VariantKey != "" && t.ListingID == 0:
		return fmt.Errorf("variant %q without its listing: %w", t.VariantKey, ErrInvalidThreshold)
	case strings.TrimSpace(actor) == "":
		return fmt.Errorf("no actor: every threshold change names who made it: %w", ErrInvalidThreshold)
	}
	return nil
}

// CheckThreshold reports whether n is a threshold a seller may set.
func CheckThreshold(n int64) error {
	if n < 0 || n > MaxThreshold {
		return fmt.Errorf("threshold %d is not between 0 and %d: %w", n, MaxThreshold, ErrInvalidThreshold)
	}
	return nil
}

// SetThreshold checks a command to set the target's line to n on behalf
// of actor and returns the fact to record in t.Stream().
func SetThreshold(t ThresholdTarget, n int64, actor string) (events.StockThresholdSet, error) {
	if err := t.check(actor); err != nil {
		return events.StockThresholdSet{}, fmt.Errorf("set threshold of %s: %w", t, err)
	}
	if err := CheckThreshold(n); err != nil {
		return events.StockThresholdSet{}, fmt.Errorf("set threshold of %s: %w", t, err)
	}
	return events.StockThresholdSet{Scope: t.Scope(), ShopID: t.ShopID, ListingID: t.ListingID, VariantKey: t.VariantKey,
		Threshold: n, Actor: strings.TrimSpace(actor)}, nil
}

// ClearThreshold checks a command to take the target's line back and
// returns the fact to record in t.Stream().
func ClearThreshold(t ThresholdTarget, actor, reason string) (events.StockThresholdCleared, error) {
	if err := t.check(actor); err != nil {
		return events.StockThresholdCleared{}, fmt.Errorf("clear threshold of %s: %w", t, err)
	}
	return events.StockThresholdCleared{Scope: t.Scope(), ShopID: t.ShopID, ListingID: t.ListingID, VariantKey: t.VariantKey,
		Actor: strings.TrimSpace(actor), Reason: strings.TrimSpace(reason)}, nil
}

// Drift returns, for a listing the ledger already described, a
// stock.drift_detected for every variant whose quantity in Etsy's view
// differs from the ledger's balance: the webhooks should have kept them
// equal, so the ledger expected otherwise. A first import is not drift,
// and a view Observe would refuse yields none (Observe reports it).
func (l *Listing) Drift(v ListingView, obs Observation) []events.StockDriftDetected {
	if !l.imported {
		return nil
	}
	would := *l
	would.balances = l.Balances()
	would.changes = nil
	evs, err := would.Observe(v, obs)
	if err != nil {
		return nil
	}
	var out []events.StockDriftDetected
	for _, ev := range evs {
		adj, ok := ev.Data.(events.StockAdjusted)
		if !ok || adj.Reason != events.ReasonEtsyChange {
			continue
		}
		expected := l.Balance(adj.VariantKey)
		out = append(out, events.StockDriftDetected{
			ListingID: l.id, VariantKey: adj.VariantKey, Expected: expected, Observed: expected + adj.Delta,
		})
	}
	return out
}
