package domain

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/shopledger/shopledger/events"
)

// Bounds of what a stock edit may ask for. Etsy takes quantities up to
// 999 and prices from 0.20 to 50,000.00.
const (
	MaxEditQuantity = 999
	MinPriceMinor   = 20
	MaxPriceMinor   = 5_000_000
	maxEditText     = 500
)

var (
	// ErrInvalidEdit means a stock edit cannot be recorded as asked; the
	// EditError says which field and why.
	ErrInvalidEdit = errors.New("invalid stock edit")
	// ErrUnknownVariant means the listing has no such variant (or the
	// listing is unknown or deleted).
	ErrUnknownVariant = errors.New("unknown variant")
	// ErrZeroStock means the edit would leave no stock at all on the
	// listing, which Etsy refuses ("One offering must have quantity
	// greater than 0").
	ErrZeroStock = errors.New("edit would leave the listing without stock")
)

// EditError is a refused stock edit: the field at fault and a message
// for the seller.
type EditError struct {
	Field string
	Msg   string
	Err   error // ErrInvalidEdit, ErrZeroStock or ErrUnknownVariant
}

func (e *EditError) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

func (e *EditError) Unwrap() error { return e.Err }

func invalidEdit(field, format string, args ...any) error {
	return &EditError{Field: field, Msg: fmt.Sprintf(format, args...), Err: ErrInvalidEdit}
}

// EditCommand is a seller's stock command on one variant, as entered.
type EditCommand struct {
	Kind       string
	VariantKey string
	// Quantity is the count (count), the units received (received), or
	// the signed change (correction).
	Quantity    int64
	Price       *events.Money // price
	Reason      string        // correction: damaged, lost, found, returned
	SupplierRef string        // received, optional
	Note        string        // optional
}

// EditMeta says who asked and under which request id.
type EditMeta struct {
	CommandID string
	Actor     string
	RequestID string
	At        time.Time
}

// CorrectionReasons are the reasons a correction may carry, and the sign
// each implies: damaged and lost take stock away, found and returned add.
var CorrectionReasons = map[string]int{
	events.CorrectionDamaged: -1, events.CorrectionLost: -1,
	events.CorrectionFound: +1, events.CorrectionReturned: +1,
}

// CheckEdit checks a command's own fields, before any listing is looked
// at, so that a form or a CSV line can be refused with its reason.
func CheckEdit(c EditCommand) error {
	if strings.TrimSpace(c.VariantKey) == "" {
		return invalidEdit("variant_key", "required")
	}
	if len(c.Note) > maxEditText || len(c.SupplierRef) > maxEditText {
		return invalidEdit("note", "at most %d characters", maxEditText)
	}
	switch c.Kind {
	case events.EditCount:
		if c.Quantity < 0 || c.Quantity > MaxEditQuantity {
			return invalidEdit("quantity", "a count is between 0 and %d", MaxEditQuantity)
		}
	case events.EditReceived:
		if c.Quantity <= 0 || c.Quantity > MaxEditQuantity {
			return invalidEdit("quantity", "units received are between 1 and %d", MaxEditQuantity)
		}
	case events.EditCorrection:
		sign, ok := CorrectionReasons[c.Reason]
		if !ok {
			return invalidEdit("reason", "want damaged, lost, found or returned")
		}
		if c.Quantity == 0 || c.Quantity > MaxEditQuantity || c.Quantity < -MaxEditQuantity {
			return invalidEdit("quantity", "a correction is a non-zero change between -%d and %d", MaxEditQuantity, MaxEditQuantity)
		}
		if (c.Quantity > 0) != (sign > 0) {
			return invalidEdit("quantity", "a %s correction %s stock: want a %s quantity", c.Reason,
				map[bool]string{true: "adds", false: "takes away"}[sign > 0], map[bool]string{true: "positive", false: "negative"}[sign > 0])
		}
	case events.EditPrice:
		if c.Price == nil {
			return invalidEdit("price", "required")
		}
		if c.Price.Amount < MinPriceMinor || c.Price.Amount > MaxPriceMinor {
			return invalidEdit("price", "Etsy takes prices from 0.20 to 50000.00")
		}
	case events.EditEnable, events.EditDisable:
	default:
		return invalidEdit("kind", "want count, received, correction, price, enable or disable")
	}
	if c.Kind != events.EditCorrection && c.Reason != "" {
		return invalidEdit("reason", "only a correction carries a reason")
	}
	if c.Kind != events.EditReceived && c.SupplierRef != "" {
		return invalidEdit("supplier_ref", "only goods received carry a supplier reference")
	}
	return nil
}

// RequestEdit checks a command against what the ledger knows of the
// listing and returns the stock.edit_requested to record on its stream.
// The delta is fixed now: a count of N becomes N minus the balance the
// seller saw, so a sale after the count still comes off.
//
// Zero stock: Etsy refuses a write that leaves every offering at 0. A
// count or correction that would bring the last variant with stock to 0
// is refused with ErrZeroStock; the seller deactivates the listing at
// Etsy instead (or lets the last unit sell). A disable of the last
// variant with stock is refused alike.
func (l *Listing) RequestEdit(c EditCommand, m EditMeta) (events.Event, error) {
	if err := CheckEdit(c); err != nil {
		return events.Event{}, err
	}
	if strings.TrimSpace(m.Actor) == "" || m.CommandID == "" || m.RequestID == "" {
		return events.Event{}, invalidEdit("", "a stock edit names its actor, command id and request id")
	}
	if !l.imported || l.deleted {
		return events.Event{}, &EditError{Field: "listing_id", Msg: "the ledger holds no such listing", Err: ErrUnknownVariant}
	}
	var v *events.Variant
	for i := range l.variants {
		if l.variants[i].Key == c.VariantKey {
			v = &l.variants[i]
		}
	}
	if v == nil {
		return events.Event{}, &EditError{Field: "variant_key", Msg: "the listing has no such variant", Err: ErrUnknownVariant}
	}
	// The balance the seller sees includes commands still on their way
	// to Etsy: a count after "received 5" that is not pushed yet counts
	// those 5.
	bal := l.balances[c.VariantKey]
	for _, p := range l.edits.pending {
		if p.VariantKey == c.VariantKey {
			bal += p.Delta
		}
	}
	var delta int64
	switch c.Kind {
	case events.EditCount:
		delta = c.Quantity - bal
	case events.EditReceived, events.EditCorrection:
		delta = c.Quantity
		if delta < 0 && bal+delta < 0 {
			return events.Event{}, invalidEdit("quantity", "the balance is %d: a change of %d would make it negative", bal, delta)
		}
	}
	after := l.Balances()
	for _, p := range l.edits.pending {
		after[p.VariantKey] += p.Delta
	}
	after[c.VariantKey] += delta
	if c.Kind == events.EditDisable {
		after[c.VariantKey] = 0
	}
	if delta < 0 || c.Kind == events.EditDisable {
		stock := false
		for _, vv := range l.variants {
			if after[vv.Key] > 0 && (vv.Enabled || vv.Key == c.VariantKey && c.Kind != events.EditDisable) {
				stock = true
			}
		}
		if !stock {
			return events.Event{}, &EditError{Field: "quantity", Err: ErrZeroStock,
				Msg: "Etsy keeps at least one unit on an active listing (\"One offering must have quantity greater than 0\"): " +
					"deactivate the listing at Etsy, or let the last unit sell"}
		}
	}
	var price *events.Money
	if c.Price != nil {
		p := *c.Price
		if p.Currency == "" {
			p.Currency = v.Price.Currency
		}
		if v.Price.Currency != "" && p.Currency != v.Price.Currency {
			return events.Event{}, invalidEdit("currency", "the listing is priced in %s", v.Price.Currency)
		}
		price = &p
	}
	req := events.StockEditRequested{
		CommandID: m.CommandID, Kind: c.Kind, ShopID: l.shopID, ListingID: l.id, VariantKey: c.VariantKey,
		Quantity: c.Quantity, BalanceAtCommand: bal, Delta: delta, Price: price,
		Reason: c.Reason, SupplierRef: strings.TrimSpace(c.SupplierRef), Note: strings.TrimSpace(c.Note),
		Actor: strings.TrimSpace(m.Actor), RequestID: m.RequestID,
	}
	ev := events.New(events.ListingStream(l.id), l.shopID, m.At, req).WithDedupe(EditRequestedKey(l.shopID, m.RequestID))
	l.apply(req)
	return ev, nil
}

// EditRequestedKey is the natural key of a command: one per shop and
// client request id, so a repeated request records nothing new.
func EditRequestedKey(shopID int64, requestID string) string {
	return fmt.Sprintf("stock-edit:%d:%s", shopID, requestID)
}

// EditPushedKey and EditFailedKey make each outcome of an attempt a fact
// recorded once.
func EditPushedKey(commandID string) string { return "stock-edit:" + commandID + ":pushed" }
func EditFailedKey(commandID string, attempt int) string {
	return fmt.Sprintf("stock-edit:%s:failed:%d", commandID, attempt)
}

// editState is what a listing's stream says of its stock edits.
type editState struct {
	pending []events.StockEditRequested
	open    *events.StockEditPushStarted
}

func (l *Listing) applyEdit(p events.Payload) {
	switch e := p.(type) {
	case events.StockEditRequested:
		l.edits.pending = append(slices.Clone(l.edits.pending), e)
	case events.StockEditPushStarted:
		e2 := e
		l.edits.open = &e2
	case events.StockEditPushed:
		l.edits.pending = without(l.edits.pending, e.CommandIDs)
		l.edits.open = nil
	case events.StockEditFailed:
		if !e.Retryable {
			l.edits.pending = without(l.edits.pending, e.CommandIDs)
		}
		// A recorded failure means the write surely did not land.
		l.edits.open = nil
	}
}

func without(pending []events.StockEditRequested, ids []string) []events.StockEditRequested {
	return slices.DeleteFunc(slices.Clone(pending), func(r events.StockEditRequested) bool {
		return slices.Contains(ids, r.CommandID)
	})
}

// pushing reports whether a write that changes the variant is in flight.
func (l *Listing) pushing(key string) bool {
	return l.edits.open != nil && slices.Contains(l.edits.open.VariantKeys, key)
}

// PendingEdits are the commands not yet pushed nor finally refused, in
// the order they were recorded.
func (l *Listing) PendingEdits() []events.StockEditRequested { return slices.Clone(l.edits.pending) }

// OpenPush is the push whose outcome is unknown (started, neither pushed
// nor failed), or nil.
func (l *Listing) OpenPush() *events.StockEditPushStarted { return l.edits.open }

// Variants is the listing's variant set as last described.
func (l *Listing) Variants() []events.Variant { return slices.Clone(l.variants) }

// EditReason is the reason a pushed edit's stock movement carries:
// count, received, or correction:<reason>.
func EditReason(r events.StockEditRequested) string {
	if r.Kind == events.EditCorrection {
		return events.EditCorrection + ":" + r.Reason
	}
	return r.Kind
}
