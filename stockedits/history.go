package stockedits

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/shopledger/shopledger/events"
)

// Entry is one command on a variant with everything that became of it:
// who asked and why, each push attempt, and Etsy's answer. It is the
// readable line a variant's history shows for a stock edit.
type Entry struct {
	CommandID   string        `json:"command_id"`
	VariantKey  string        `json:"variant_key"`
	Kind        string        `json:"kind"`
	RequestedAt time.Time     `json:"requested_at"`
	Actor       string        `json:"actor"`
	RequestID   string        `json:"request_id"`
	Quantity    int64         `json:"quantity"`
	Delta       int64         `json:"delta"`
	Balance     int64         `json:"balance_at_command"`
	Price       *events.Money `json:"price,omitempty"`
	Reason      string        `json:"reason,omitempty"`
	SupplierRef string        `json:"supplier_ref,omitempty"`
	Note        string        `json:"note,omitempty"`
	// State is queued, pushed or failed.
	State    string `json:"state"`
	Attempts int    `json:"attempts"`
	// Moved is the stock movement the push recorded (0 for prices, or
	// when Etsy's stock could not absorb the change).
	Moved int64 `json:"moved"`
	// PushedAt, EtsyQuantity and EtsyProductID are Etsy's answer.
	PushedAt          *time.Time `json:"pushed_at,omitempty"`
	EtsyQuantity      *int64     `json:"etsy_quantity,omitempty"`
	EtsyProductID     int64      `json:"etsy_product_id,omitempty"`
	Recovered         bool       `json:"recovered,omitempty"`
	LostSalesRestored int64      `json:"lost_sales_restored,omitempty"`
	// Error, ErrorCode and Retryable describe the last failure: Etsy's
	// message when Etsy refused.
	Error     string     `json:"error,omitempty"`
	ErrorCode string     `json:"error_code,omitempty"`
	Retryable bool       `json:"retryable,omitempty"`
	FailedAt  *time.Time `json:"failed_at,omitempty"`
}

// History returns the stock edits of a variant (every variant when key
// is empty), newest first, from the listing's stream. A listing of a
// shop outside shops is ErrNotFound.
func (s *Service) History(ctx context.Context, shops []int64, listingID int64, key string) ([]Entry, error) {
	past, err := s.es.ReadStream(ctx, events.ListingStream(listingID), 0)
	if err != nil {
		return nil, fmt.Errorf("stock edit history: %w", err)
	}
	if len(past) == 0 || !slices.Contains(shops, past[0].ShopID) {
		return nil, ErrNotFound
	}
	byID := map[string]*Entry{}
	var order []string
	for _, r := range past {
		switch d := r.Data.(type) {
		case events.StockEditRequested:
			if key != "" && d.VariantKey != key {
				continue
			}
			byID[d.CommandID] = &Entry{
				CommandID: d.CommandID, VariantKey: d.VariantKey, Kind: d.Kind, RequestedAt: r.OccurredAt, Actor: d.Actor, RequestID: d.RequestID,
				Quantity: d.Quantity, Delta: d.Delta, Balance: d.BalanceAtCommand, Price: d.Price, Reason: d.Reason,
				SupplierRef: d.SupplierRef, Note: d.Note, State: StateQueued,
			}
			order = append(order, d.CommandID)
		case events.StockEditPushStarted:
			for _, id := range d.CommandIDs {
				if e := byID[id]; e != nil {
					e.Attempts = max(e.Attempts, d.Attempt)
					e.Moved = d.CommandDeltas[id]
				}
			}
		case events.StockEditPushed:
			for _, id := range d.CommandIDs {
				e := byID[id]
				if e == nil {
					continue
				}
				at := r.OccurredAt
				k := e.VariantKey
				q := d.Quantities[k]
				e.State, e.PushedAt, e.EtsyQuantity, e.EtsyProductID = StatePushed, &at, &q, d.ProductIDs[k]
				e.Recovered, e.LostSalesRestored = d.Recovered, d.LostSalesRestored[k]
				e.Error, e.ErrorCode, e.Retryable, e.FailedAt = "", "", false, nil
			}
		case events.StockEditFailed:
			for _, id := range d.CommandIDs {
				e := byID[id]
				if e == nil {
					continue
				}
				at := r.OccurredAt
				e.Attempts = max(e.Attempts, d.Attempt)
				e.Error, e.ErrorCode, e.Retryable, e.FailedAt = d.Message, d.Code, d.Retryable, &at
				if !d.Retryable {
					e.State, e.Moved = StateFailed, 0
				}
			}
		}
	}
	out := make([]Entry, 0, len(order))
	for i := len(order) - 1; i >= 0; i-- {
		out = append(out, *byID[order[i]])
	}
	return out, nil
}
