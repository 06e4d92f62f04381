package etsy

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"time"
)

var (
	// ErrOffsetLimit means a listing iterator reached Etsy's maximum
	// offset with listings still unread; getListingsByShop has no time
	// filter to narrow by.
	ErrOffsetLimit = errors.New("etsy: results beyond the maximum offset")
	// ErrPagingStalled means more than MaxOffset+MaxLimit receipts share
	// one created second, so narrowing by time cannot make progress.
	ErrPagingStalled = errors.New("etsy: paging cannot narrow further")
)

// AllListingsByShop iterates over all of a shop's listings in a state, 100
// per request, with inventory when withInventory. Listings seen twice
// because others were added during the walk are yielded once. After the
// last reachable page, if Etsy reports more listings than offset 12,000
// lets us read, it yields ErrOffsetLimit.
func (c *Client) AllListingsByShop(ctx context.Context, ts TokenSource, shopID int64, state string, withInventory bool) iter.Seq2[Listing, error] {
	return func(yield func(Listing, error) bool) {
		q := ListingsQuery{State: state, Limit: MaxLimit, SortOn: "created", SortOrder: "asc"}
		if withInventory {
			q.Includes = []string{IncludeInventory}
		}
		seen := make(map[int64]struct{})
		for {
			page, err := c.GetListingsByShop(ctx, ts, shopID, q)
			if err != nil {
				yield(Listing{}, fmt.Errorf("list listings of shop %d at offset %d: %w", shopID, q.Offset, err))
				return
			}
			for _, l := range page.Results {
				if _, dup := seen[l.ListingID]; dup {
					continue
				}
				seen[l.ListingID] = struct{}{}
				if !yield(l, nil) {
					return
				}
			}
			if len(page.Results) < q.Limit || q.Offset+len(page.Results) >= page.Count {
				return
			}
			if q.Offset+q.Limit > MaxOffset {
				yield(Listing{}, fmt.Errorf("list listings of shop %d: %d of %d read: %w", shopID, len(seen), page.Count, ErrOffsetLimit))
				return
			}
			q.Offset += q.Limit
		}
	}
}

// AllShopReceipts iterates over all receipts matching q, 100 per request,
// oldest first. Etsy refuses offsets beyond 12,000, so when the walk gets
// there it narrows the window instead — min_created moves up to the last
// receipt read (less a second, in case Etsy's bound is exclusive) and the
// offset starts again; receipts read twice are yielded once. q's Limit,
// Offset, SortOn and SortOrder are ignored.
//
// Like any offset paging it is only as consistent as the data: a receipt
// that stops matching q during the walk can shift a later one out of
// view, which is why pollers overlap their windows.
func (c *Client) AllShopReceipts(ctx context.Context, ts TokenSource, shopID int64, q ReceiptsQuery) iter.Seq2[Receipt, error] {
	return func(yield func(Receipt, error) bool) {
		q.Limit, q.Offset, q.SortOn, q.SortOrder = MaxLimit, 0, "created", "asc"
		seen := make(map[int64]time.Time) // receipt id → created, only at or after the window's start
		for {
			page, err := c.GetShopReceipts(ctx, ts, shopID, q)
			if err != nil {
				yield(Receipt{}, fmt.Errorf("list receipts of shop %d at offset %d: %w", shopID, q.Offset, err))
				return
			}
			var last time.Time
			for _, r := range page.Results {
				last = r.CreatedAt
				if _, dup := seen[r.ReceiptID]; dup {
					continue
				}
				seen[r.ReceiptID] = r.CreatedAt
				if !yield(r, nil) {
					return
				}
			}
			if len(page.Results) < q.Limit {
				return
			}
			if q.Offset+q.Limit <= MaxOffset {
				q.Offset += q.Limit
				continue
			}
			from := last.Add(-time.Second)
			if !from.After(q.MinCreated) {
				yield(Receipt{}, fmt.Errorf("list receipts of shop %d created from %s: %w", shopID, q.MinCreated.UTC().Format(time.RFC3339), ErrPagingStalled))
				return
			}
			q.MinCreated, q.Offset = from, 0
			for id, created := range seen {
				if created.Before(from) {
					delete(seen, id)
				}
			}
		}
	}
}
