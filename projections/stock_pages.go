package projections

import (
	"context"
	"fmt"
	"time"
)

// Readers behind the seller's dashboard and stock pages. Each takes the
// caller's shops and reads nothing outside them, like every reader here.

// StockSummary counts what ListProducts would list without filters:
// listings that are not deleted, their active variants, the units those
// hold and how many are at or below their line.
type StockSummary struct {
	Products         int64
	Variants         int64
	Units            int64
	LowStockVariants int64
}

// StockSummary sums the products list over shops in one query: the same
// select as ListProducts, so the dashboard and GET /v1/products agree.
func (r *Reader) StockSummary(ctx context.Context, shops []int64) (StockSummary, error) {
	var s StockSummary
	err := r.db.QueryRowContext(ctx, `
		SELECT count(*), coalesce(sum(x.variants), 0)::bigint, coalesce(sum(x.quantity), 0)::bigint, coalesce(sum(x.low), 0)::bigint
		FROM (`+r.productSelect+` WHERE p.shop_id = ANY($1) AND NOT p.deleted) x`, shops).
		Scan(&s.Products, &s.Variants, &s.Units, &s.LowStockVariants)
	if err != nil {
		return s, fmt.Errorf("stock summary: %w", err)
	}
	return s, nil
}

// OpenAlertCount counts the open alerts of shops: the items GET
// /v1/alerts?status=open lists, counted without listing them.
func (r *Reader) OpenAlertCount(ctx context.Context, shops []int64) (int64, error) {
	var n int64
	if err := r.db.QueryRowContext(ctx, `SELECT count(*) FROM alerts WHERE shop_id = ANY($1) AND status = 'open'`, shops).Scan(&n); err != nil {
		return 0, fmt.Errorf("open alerts: %w", err)
	}
	return n, nil
}

// TopProductsOf ranks the listings of all shops by units sold in
// [from, to), then revenue, then listing id: the rows each shop's
// TopProducts gives (one per listing and currency), merged and cut to
// limit, in one query. It reads the range's sales first and their items
// by receipt, so the cost follows the sales of the range.
func (r *Reader) TopProductsOf(ctx context.Context, shops []int64, from, to time.Time, limit int) ([]TopProduct, error) {
	return queryAll(ctx, r.db, "top products", scanTopProduct, `
		WITH top AS (
		    SELECT si.shop_id, si.listing_id, max(si.title) AS title, sum(si.quantity)::bigint AS units,
		           sum(si.quantity * si.unit_price)::bigint AS revenue, si.currency, count(DISTINCT si.receipt_id) AS orders
		    FROM sales sa
		    -- OFFSET 0 keeps the items a lookup per sale by receipt: a
		    -- join would scan every item of the shops' history.
		    CROSS JOIN LATERAL (
		        SELECT si.* FROM sale_items si WHERE si.receipt_id = sa.receipt_id AND si.shop_id = sa.shop_id OFFSET 0
		    ) si
		    WHERE sa.shop_id = ANY($1) AND sa.recorded AND sa.canceled_at IS NULL
		      AND sa.created_at >= $2 AND sa.created_at < $3
		    GROUP BY si.shop_id, si.listing_id, si.currency
		    ORDER BY units DESC, revenue DESC, si.listing_id, si.shop_id, si.currency
		    LIMIT $4
		)
		SELECT t.listing_id, coalesce(p.title, t.title, ''), t.units, t.revenue, t.currency, t.orders
		FROM top t
		LEFT JOIN products p ON p.listing_id = t.listing_id
		ORDER BY t.units DESC, t.revenue DESC, t.listing_id, t.shop_id, t.currency`, shops, from.UTC(), to.UTC(), limit)
}

// SalesTotal is the value and count of the orders placed in one currency.
type SalesTotal struct {
	Currency string
	Amount   int64 // grand totals, minor units
	Orders   int64
}

// SalesTotals sums the recorded, not canceled sales of shops created in
// [from, to), per currency: the sales GET /v1/sales lists for that range
// whose canceled_at is null.
func (r *Reader) SalesTotals(ctx context.Context, shops []int64, from, to time.Time) ([]SalesTotal, error) {
	return queryAll(ctx, r.db, "sales totals", func(rows rowScanner) (SalesTotal, error) {
		var t SalesTotal
		err := rows.Scan(&t.Currency, &t.Amount, &t.Orders)
		return t, err
	}, `
		SELECT currency, coalesce(sum(grand_total), 0)::bigint, count(*)
		FROM sales
		WHERE shop_id = ANY($1) AND recorded AND canceled_at IS NULL AND created_at >= $2 AND created_at < $3
		GROUP BY currency
		ORDER BY currency`, shops, from.UTC(), to.UTC())
}

// LocalDaySales is one day of a series in a time zone, in one currency;
// Currency is "" on a day without sales.
type LocalDaySales struct {
	Day      string // YYYY-MM-DD in the series' zone
	Currency string
	Amount   int64
	Orders   int64
}

// LocalDailySales returns, for every day of the days calendar days that
// end with the one holding to (in loc), the recorded, not canceled sales
// of shops created that day, per currency. A day without sales has one
// row with no currency, so the series has no gaps.
func (r *Reader) LocalDailySales(ctx context.Context, shops []int64, to time.Time, days int, loc *time.Location) ([]LocalDaySales, error) {
	local := to.In(loc)
	last := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, loc)
	first := last.AddDate(0, 0, -(days - 1))
	end := last.AddDate(0, 0, 1)
	return queryAll(ctx, r.db, "local daily sales", func(rows rowScanner) (LocalDaySales, error) {
		var d LocalDaySales
		err := rows.Scan(&d.Day, &d.Currency, &d.Amount, &d.Orders)
		return d, err
	}, `
		WITH days AS (
		    SELECT d::date AS day FROM generate_series($2::date, $3::date, interval '1 day') d
		), s AS (
		    SELECT (created_at AT TIME ZONE $6)::date AS day, currency, sum(grand_total)::bigint AS amount, count(*) AS orders
		    FROM sales
		    WHERE shop_id = ANY($1) AND recorded AND canceled_at IS NULL AND created_at >= $4 AND created_at < $5
		    GROUP BY 1, 2
		)
		SELECT to_char(days.day, 'YYYY-MM-DD'), coalesce(s.currency, ''), coalesce(s.amount, 0), coalesce(s.orders, 0)
		FROM days LEFT JOIN s ON s.day = days.day
		ORDER BY days.day, 2`,
		shops, first.Format(time.DateOnly), last.Format(time.DateOnly), first.UTC(), end.UTC(), loc.String())
}

// Cover is how long a variant's stock lasts at the rate it sold lately.
type Cover struct {
	ListingID  int64
	Title      string
	VariantKey string
	SKU        string
	Balance    int64
	// Sold is the units sold in the window; DaysOfCover is Balance over
	// the daily rate (Sold / window days), 0 when nothing is left.
	Sold        int64
	DaysOfCover float64
}

// RunningOut returns the active variants of shops (of one listing when
// listingID is not 0) that sold in [since, until), soonest to run out
// first at that rate. Variants that did not sell have no rate and are
// left out.
//
// The window's sale movements are read from the partial index of sales
// (stock_movements_shop_sale_time_idx, hence the reason as a literal: a prepared statement's
// generic plan can use a partial index only for a constant), and deleted
// listings are left out with one hashed list instead of a lookup per
// variant. listing_id is never null, so NOT IN means NOT EXISTS here.
func (r *Reader) RunningOut(ctx context.Context, shops []int64, listingID int64, since, until time.Time, limit int) ([]Cover, error) {
	args := []any{shops, since.UTC(), until.UTC(), limit}
	one := ""
	if listingID != 0 {
		args = append(args, listingID)
		one = "AND sm.listing_id = $5"
	}
	window := until.Sub(since).Hours() / 24
	return queryAll(ctx, r.db, "running out", func(rows rowScanner) (Cover, error) {
		var c Cover
		if err := rows.Scan(&c.ListingID, &c.Title, &c.VariantKey, &c.SKU, &c.Balance, &c.Sold); err != nil {
			return c, err
		}
		if c.Balance > 0 && window > 0 {
			c.DaysOfCover = float64(c.Balance) / (float64(c.Sold) / window)
		}
		return c, nil
	}, `
		WITH sold AS (
		    SELECT sm.listing_id, sm.variant_key, sum(-sm.delta)::bigint AS units
		    FROM stock_movements sm
		    WHERE sm.shop_id = ANY($1) AND sm.reason = '`+ReasonSale+`' AND sm.occurred_at >= $2 AND sm.occurred_at < $3 `+one+`
		    GROUP BY sm.listing_id, sm.variant_key
		    HAVING sum(-sm.delta) > 0
		), ranked AS (
		    SELECT pv.listing_id, pv.variant_key, pv.sku, pv.quantity, sold.units
		    FROM sold
		    JOIN product_variants pv ON pv.listing_id = sold.listing_id AND pv.variant_key = sold.variant_key
		    WHERE pv.shop_id = ANY($1) AND pv.active
		      AND pv.listing_id NOT IN (SELECT d.listing_id FROM products d WHERE d.deleted)
		    ORDER BY greatest(pv.quantity, 0)::numeric / sold.units, pv.listing_id, pv.variant_key COLLATE "C"
		    LIMIT $4
		)
		-- Titles for the few rows kept only.
		SELECT r.listing_id, coalesce(p.title, ''), r.variant_key, r.sku, r.quantity, r.units
		FROM ranked r
		LEFT JOIN products p ON p.listing_id = r.listing_id
		ORDER BY greatest(r.quantity, 0)::numeric / r.units, r.listing_id, r.variant_key COLLATE "C"`, args...)
}
