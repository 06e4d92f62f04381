package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/google/uuid"

	"github.com/shopledger/shopledger/alerts"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/internal/defaults"
	"github.com/shopledger/shopledger/projections"
)

// The functions below are the /v1 handlers' own parsing, CSV and export
// code, exported so that the web pages read the same filters, page with
// the same cursors and download the same bytes. shops is the set the
// caller may see; a shop_id outside it is ErrNotFound.

func principalFor(shops []int64) Principal { return Principal{Shops: shops} }

// SaleFilterOf reads /v1/sales's shop_id, status, from, to, limit and
// cursor. The filter's Limit is the page size, not one more.
func SaleFilterOf(q url.Values, shops []int64) (projections.SaleFilter, error) {
	lq, err := listQueryOf(q, shops, saleStatuses)
	sf := projections.SaleFilter{Shops: shops, Status: lq.Status, ShopID: lq.ShopID, From: lq.From, To: lq.To, Limit: lq.Limit}
	if err != nil {
		return sf, err
	}
	sf.After, err = optCursor[projections.SaleCursor](q)
	return sf, err
}

// listQuery is what the sales and alerts lists read alike: status,
// shop_id, from, to and limit.
type listQuery struct {
	Status   string
	ShopID   int64
	From, To time.Time
	Limit    int
}

// listQueryOf reads a listQuery, with the statuses the list knows; on an
// error it holds what was read before it.
func listQueryOf(q url.Values, shops []int64, statuses []string) (listQuery, error) {
	p := principalFor(shops)
	var lq listQuery
	var err error
	if lq.Status, err = optEnum(q, "status", statuses); err != nil {
		return lq, err
	}
	if lq.ShopID, lq.From, lq.To, err = shopAndRange(q, p); err != nil {
		return lq, err
	}
	if lq.Limit, err = parseLimit(q, defaultLimit); err != nil {
		return lq, err
	}
	return lq, nil
}

// optCursor reads ?cursor= as a C; nil when there is none.
func optCursor[C any](q url.Values) (*C, error) {
	c := q.Get("cursor")
	if c == "" {
		return nil, nil
	}
	cur := new(C)
	return cur, decodeCursor(c, cur)
}

// SalePage reads one page of f (f.Limit rows) and the cursor of the next
// page ("" on the last).
func SalePage(ctx context.Context, rd SalesReader, f projections.SaleFilter) ([]projections.Sale, string, error) {
	return readPage(f.Limit, func(n int) ([]projections.Sale, error) { f.Limit = n; return rd.ListSales(ctx, f) },
		func(last projections.Sale) any {
			return projections.SaleCursor{CreatedAt: last.CreatedAt, ReceiptID: last.ReceiptID}
		})
}

// readPage reads a page of asked rows: list reads one more, which tells
// whether another page exists, and cursor names the last row kept.
func readPage[T any](asked int, list func(n int) ([]T, error), cursor func(last T) any) ([]T, string, error) {
	items, err := list(asked + 1)
	if err != nil {
		return nil, "", err
	}
	items, next := pageOf(items, asked+1, cursor)
	return items, next, nil
}

// SaleStatuses are the values the status filter accepts.
func SaleStatuses() []string { return saleStatuses }

// WriteSalesCSV answers sales as /v1/sales?format=csv writes a page: the
// same header, columns and formula defusing.
func WriteSalesCSV(w http.ResponseWriter, sales []projections.Sale) {
	writeCSV(w, "sales", salePage{Items: nonNil(sales)})
}

// AlertFilterOf reads /v1/alerts's status, shop_id, from, to, limit and
// cursor. The filter's Limit is the page size, not one more.
func AlertFilterOf(q url.Values, shops []int64) (AlertFilter, error) {
	lq, err := listQueryOf(q, shops, []string{alerts.StatusOpen, alerts.StatusCleared})
	f := AlertFilter{Shops: shops, Status: lq.Status, ShopID: lq.ShopID, From: lq.From, To: lq.To, Limit: lq.Limit}
	if err != nil {
		return f, err
	}
	f.After, err = optCursor[AlertCursor](q)
	return f, err
}

// AlertPage reads one page of f and the next page's cursor.
func AlertPage(ctx context.Context, rd AlertReader, f AlertFilter) ([]Alert, string, error) {
	return readPage(f.Limit, func(n int) ([]Alert, error) { f.Limit = n; return rd.ListAlerts(ctx, f) },
		func(last Alert) any {
			id, _ := uuid.Parse(last.AlertID)
			return AlertCursor{RaisedAt: last.RaisedAt, AlertID: id}
		})
}

// EventFilterOf reads /v1/events's shop_id, stream, type, from, to, limit
// and cursor.
func EventFilterOf(q url.Values, shops []int64) (projections.EventFilter, error) {
	f, err := eventFilterOf(q, principalFor(shops))
	if err == nil {
		f.Limit, err = parseLimit(q, defaultLimit)
	}
	if c := q.Get("cursor"); err == nil && c != "" {
		var cur seqCursor
		err = decodeCursor(c, &cur)
		f.AfterSeq = cur.Seq
	}
	return f, err
}

// EventPage reads one page of f and the next page's cursor.
func EventPage(ctx context.Context, rd EventLog, f projections.EventFilter) ([]eventstore.LoggedEvent, string, error) {
	return readPage(f.Limit, func(n int) ([]eventstore.LoggedEvent, error) { f.Limit = n; return rd.ListEvents(ctx, f) },
		func(last eventstore.LoggedEvent) any { return seqCursor{Seq: last.Seq} })
}

// ExportFilterOf reads /v1/events/export's filters: those of /v1/events
// and after_seq, to_seq.
func ExportFilterOf(q url.Values, shops []int64) (projections.EventFilter, error) {
	f, err := eventFilterOf(q, principalFor(shops))
	if err == nil {
		f.AfterSeq, err = optInt(q, "after_seq")
	}
	if err == nil {
		f.ToSeq, err = optInt(q, "to_seq")
	}
	return f, err
}

// ExportOptions bound an export: events per query and each query's time.
type ExportOptions struct {
	Batch   int
	Timeout time.Duration
	Logger  *slog.Logger
}

// ExportEvents writes f as /v1/events/export does: NDJSON events in seq
// order, then the trailer. An error is returned only before anything was
// written.
func ExportEvents(w http.ResponseWriter, r *http.Request, rd EventLog, f projections.EventFilter, o ExportOptions) error {
	defaults.Positive(&o.Batch, 1000)
	defaults.Positive(&o.Timeout, 5*time.Second)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return exportEvents(w, r, rd, f, o)
}

// ProductQuery reads the query parameters of GET /v1/products (q, state,
// shop_id, low_stock, include_deleted, sort, limit, cursor) into a filter
// over shops. A parameter that is wrong is an *InputError; a shop_id
// outside shops is ErrNotFound.
func ProductQuery(q url.Values, shops []int64) (projections.ProductFilter, error) {
	return productQuery(q, Principal{Shops: shops})
}

// ProductPage reads one page of products as GET /v1/products does: the
// items and the cursor of the next page ("" on the last).
func ProductPage(ctx context.Context, r ProductReader, f projections.ProductFilter) ([]projections.Product, string, error) {
	return readPage(f.Limit, func(n int) ([]projections.Product, error) { f.Limit = n; return r.ListProducts(ctx, f) },
		func(last projections.Product) any {
			return projections.ProductCursor{ListingID: last.ListingID, Title: last.Title, Quantity: last.Quantity, UpdatedAt: last.UpdatedAt, Sort: sortParam(f.Sort)}
		})
}

// WriteProductsCSV writes products as GET /v1/products?format=csv does,
// under the file name name.csv.
func WriteProductsCSV(w http.ResponseWriter, name string, items []projections.Product) {
	writeCSV(w, name, productPage{Items: nonNil(items)})
}
