package httpapi

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/shopledger/shopledger/accounts"
	"github.com/shopledger/shopledger/events"
)

// Store reads the projector's read models (shops, products,
// product_variants, stock_movements, sales, sale_items, sales_daily) for
// the seller endpoints. The projections package owns those tables and
// writes them; this file only reads, and every query is filtered by the
// caller's shop set so that no row of another tenant is ever read.
type Store struct {
	db    *sql.DB
	chain *chainVerifier
}

// NewStore returns a reader over db.
func NewStore(db *sql.DB) *Store { return &Store{db: db, chain: newChainVerifier()} }

// nullTime turns the zero time into NULL, the "no bound" of the queries.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC()
}

func utcPtr(t sql.NullTime) *time.Time {
	if !t.Valid {
		return nil
	}
	u := t.Time.UTC()
	return &u
}

func int64Ptr(n sql.NullInt64) *int64 {
	if !n.Valid {
		return nil
	}
	v := n.Int64
	return &v
}

// OrganisationShopIDs returns the shops an organisation owns (see
// accounts.OrganisationShopIDs: the one tenancy rule).
func (s *Store) OrganisationShopIDs(ctx context.Context, orgID int64) ([]int64, error) {
	return accounts.OrganisationShopIDs(ctx, s.db, orgID)
}

// Shops.

const shopColumns = `shop_id, name, currency, connection_state, state_reason, sync_enabled, sync_interval_seconds,
	default_low_stock_threshold, connected_at, disconnected_at, last_reconciliation_finished_at, last_reconciliation_drift, updated_at`

func scanShop(row interface{ Scan(...any) error }) (Shop, error) {
	var sh Shop
	var connected, disconnected, reconciled sql.NullTime
	err := row.Scan(&sh.ShopID, &sh.Name, &sh.Currency, &sh.ConnectionState, &sh.StateReason, &sh.SyncEnabled, &sh.SyncIntervalSeconds,
		&sh.DefaultLowStockThreshold, &connected, &disconnected, &reconciled, &sh.LastDriftFound, &sh.UpdatedAt)
	sh.ConnectedAt, sh.DisconnectedAt, sh.LastReconciledAt = utcPtr(connected), utcPtr(disconnected), utcPtr(reconciled)
	sh.UpdatedAt = sh.UpdatedAt.UTC()
	return sh, err
}

// ListShops returns the shops in the set.
func (s *Store) ListShops(ctx context.Context, shops []int64) ([]Shop, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+shopColumns+` FROM shops WHERE shop_id = ANY($1) ORDER BY shop_id`, shops)
	if err != nil {
		return nil, fmt.Errorf("list shops: %w", err)
	}
	defer rows.Close()
	var out []Shop
	for rows.Next() {
		sh, err := scanShop(rows)
		if err != nil {
			return nil, fmt.Errorf("list shops: %w", err)
		}
		out = append(out, sh)
	}
	return out, rows.Err()
}

// GetShop returns one shop of the set.
func (s *Store) GetShop(ctx context.Context, shops []int64, shopID int64) (Shop, error) {
	sh, err := scanShop(s.db.QueryRowContext(ctx, `SELECT `+shopColumns+` FROM shops WHERE shop_id = $2 AND shop_id = ANY($1)`, shops, shopID))
	if errors.Is(err, sql.ErrNoRows) {
		return sh, ErrNotFound
	}
	if err != nil {
		return sh, fmt.Errorf("get shop %d: %w", shopID, err)
	}
	return sh, nil
}

// Products.

// effectiveThreshold is the low-stock line in force for a variant row pv of
// product p in shop sh: variant, else listing, else shop default, else 5.
const effectiveThreshold = `coalesce(pv.low_stock_threshold, p.low_stock_threshold, sh.default_low_stock_threshold, 5)`

const productSelect = `
SELECT p.listing_id, p.shop_id, p.title, p.state, p.url, p.price_amount, p.price_currency,
       v.quantity, v.variants, v.low, p.low_stock_threshold, p.deleted, p.updated_at
FROM products p
LEFT JOIN shops sh ON sh.shop_id = p.shop_id
CROSS JOIN LATERAL (
    SELECT coalesce(sum(pv.quantity), 0)::bigint AS quantity, count(*) AS variants,
           count(*) FILTER (WHERE pv.quantity <= ` + effectiveThreshold + `) AS low
    FROM product_variants pv
    WHERE pv.listing_id = p.listing_id AND pv.active
) v`

func scanProduct(row interface{ Scan(...any) error }) (Product, error) {
	var p Product
	var th sql.NullInt64
	err := row.Scan(&p.ListingID, &p.ShopID, &p.Title, &p.State, &p.URL, &p.Price.Amount, &p.Price.Currency,
		&p.Quantity, &p.VariantCount, &p.LowStockVariants, &th, &p.Deleted, &p.UpdatedAt)
	p.LowStockThreshold = int64Ptr(th)
	p.UpdatedAt = p.UpdatedAt.UTC()
	return p, err
}

// productOrder maps a sort key to its SQL expression. Keys come from an
// allow-list in the handler; nothing from the client reaches the SQL text.
var productOrder = map[string]string{
	"listing_id": "p.listing_id",
	// Byte order, so that pages come in the order a client's plain string
	// comparison expects, whatever the database's collation.
	"title":      `p.title COLLATE "C"`,
	"quantity":   "v.quantity",
	"updated_at": "p.updated_at",
}

// likePattern escapes LIKE's wildcards so a search is a plain substring.
func likePattern(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(s) + "%"
}

// ListProducts pages products by the filter's sort key, then listing id.
func (s *Store) ListProducts(ctx context.Context, f ProductFilter) ([]Product, error) {
	col, ok := productOrder[f.Sort.Key]
	if !ok {
		return nil, fmt.Errorf("list products: unknown sort %q", f.Sort.Key)
	}
	var where []string
	args := []any{f.Shops}
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	where = append(where, "p.shop_id = ANY($1)")
	if f.ShopID != 0 {
		where = append(where, "p.shop_id = "+arg(f.ShopID))
	}
	if f.State != "" {
		where = append(where, "p.state = "+arg(f.State))
	}
	if !f.IncludeDeleted {
		where = append(where, "NOT p.deleted")
	}
	if f.LowStockOnly {
		where = append(where, "v.low > 0")
	}
	if f.Search != "" {
		pat := arg(likePattern(f.Search))
		where = append(where, fmt.Sprintf(`(p.title ILIKE %[1]s OR EXISTS (
			SELECT 1 FROM product_variants sv WHERE sv.listing_id = p.listing_id AND sv.sku ILIKE %[1]s))`, pat))
	}
	dir, cmp := "ASC", ">"
	if f.Sort.Desc {
		dir, cmp = "DESC", "<"
	}
	if c := f.After; c != nil {
		var key any
		switch f.Sort.Key {
		case "title":
			key = c.Title
		case "quantity":
			key = c.Quantity
		case "updated_at":
			key = c.UpdatedAt.UTC()
		}
		if key == nil {
			where = append(where, fmt.Sprintf("p.listing_id %s %s", cmp, arg(c.ListingID)))
		} else {
			where = append(where, fmt.Sprintf("(%s, p.listing_id) %s (%s, %s)", col, cmp, arg(key), arg(c.ListingID)))
		}
	}
	order := fmt.Sprintf("%s %s, p.listing_id %s", col, dir, dir)
	if f.Sort.Key == "listing_id" {
		order = "p.listing_id " + dir
	}
	query := productSelect + " WHERE " + strings.Join(where, " AND ") + " ORDER BY " + order + " LIMIT " + arg(f.Limit)
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list products: %w", err)
	}
	defer rows.Close()
	var out []Product
	for rows.Next() {
		p, err := scanProduct(rows)
		if err != nil {
			return nil, fmt.Errorf("list products: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// GetProduct returns a listing of the set with all its variants.
func (s *Store) GetProduct(ctx context.Context, shops []int64, listingID int64) (ProductDetail, error) {
	p, err := scanProduct(s.db.QueryRowContext(ctx, productSelect+` WHERE p.listing_id = $2 AND p.shop_id = ANY($1)`, shops, listingID))
	if errors.Is(err, sql.ErrNoRows) {
		return ProductDetail{}, ErrNotFound
	}
	if err != nil {
		return ProductDetail{}, fmt.Errorf("get product %d: %w", listingID, err)
	}
	rows, err := s.db.QueryContext(ctx, `
		SELECT pv.variant_key, pv.sku, pv.properties, pv.price_amount, pv.price_currency, pv.enabled, pv.active, pv.quantity,
		       `+effectiveThreshold+`,
		       CASE WHEN pv.low_stock_threshold IS NOT NULL THEN 'variant'
		            WHEN p.low_stock_threshold IS NOT NULL THEN 'listing'
		            WHEN sh.shop_id IS NOT NULL THEN 'shop' ELSE 'default' END,
		       pv.observed_quantity, pv.observed_at, pv.last_movement_at
		FROM product_variants pv
		JOIN products p ON p.listing_id = pv.listing_id
		LEFT JOIN shops sh ON sh.shop_id = p.shop_id
		WHERE pv.listing_id = $1 AND pv.shop_id = $2
		ORDER BY pv.variant_key`, listingID, p.ShopID)
	if err != nil {
		return ProductDetail{}, fmt.Errorf("get product %d variants: %w", listingID, err)
	}
	defer rows.Close()
	d := ProductDetail{Product: p, Variants: []Variant{}}
	for rows.Next() {
		var v Variant
		var observed sql.NullInt64
		var observedAt, lastMove sql.NullTime
		if err := rows.Scan(&v.VariantKey, &v.SKU, &v.Properties, &v.Price.Amount, &v.Price.Currency, &v.Enabled, &v.Active, &v.Quantity,
			&v.LowStockThreshold, &v.ThresholdSource, &observed, &observedAt, &lastMove); err != nil {
			return ProductDetail{}, fmt.Errorf("get product %d variants: %w", listingID, err)
		}
		v.LowStock = v.Active && v.Quantity <= v.LowStockThreshold
		v.ObservedQuantity, v.ObservedAt, v.LastMovementAt = int64Ptr(observed), utcPtr(observedAt), utcPtr(lastMove)
		d.Variants = append(d.Variants, v)
	}
	return d, rows.Err()
}

// Stock.

// VariantShop returns the shop of a variant among shops, or ErrNotFound.
func (s *Store) VariantShop(ctx context.Context, shops []int64, listingID int64, variantKey string) (int64, error) {
	var shop int64
	err := s.db.QueryRowContext(ctx, `SELECT shop_id FROM product_variants WHERE listing_id = $2 AND variant_key = $3 AND shop_id = ANY($1)`,
		shops, listingID, variantKey).Scan(&shop)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("variant %d/%s: %w", listingID, variantKey, err)
	}
	return shop, nil
}

// where collects conditions and their arguments. Queries are built with
// only the conditions a request uses: a catch-all "$n IS NULL OR col > $n"
// defeats the index once PostgreSQL switches to a generic plan.
type where struct {
	conds []string
	args  []any
}

func (w *where) arg(v any) string {
	w.args = append(w.args, v)
	return fmt.Sprintf("$%d", len(w.args))
}

func (w *where) add(format string, args ...any) {
	refs := make([]any, len(args))
	for i, a := range args {
		refs[i] = w.arg(a)
	}
	w.conds = append(w.conds, fmt.Sprintf(format, refs...))
}

func (w *where) sql() string { return strings.Join(w.conds, " AND ") }

// History pages one variant's movements by seq.
func (s *Store) History(ctx context.Context, f HistoryFilter) ([]Movement, error) {
	var w where
	w.add("listing_id = %s", f.ListingID)
	w.add("variant_key = %s", f.VariantKey)
	w.add("shop_id = ANY(%s)", f.Shops)
	if !f.From.IsZero() {
		w.add("occurred_at >= %s", f.From.UTC())
	}
	if !f.To.IsZero() {
		w.add("occurred_at < %s", f.To.UTC())
	}
	dir := "ASC"
	switch {
	case f.Desc && f.AfterSeq > 0:
		w.add("seq < %s", f.AfterSeq)
	case !f.Desc && f.AfterSeq > 0:
		w.add("seq > %s", f.AfterSeq)
	}
	if f.Desc {
		dir = "DESC"
	}
	// A movement that came by webhook has the webhook's evidence as its
	// event's cause (metadata.causation_id). Sales carry a receipt as
	// their cause, so the webhook is found through that link, not the
	// movement's own cause text. The page is cut first, so the lookups
	// are bounded by the page size.
	rows, err := s.db.QueryContext(ctx, `
		SELECT page.seq, page.occurred_at, page.recorded_at, page.delta, page.balance, page.reason, page.cause,
		       page.receipt_id, page.transaction_id, coalesce(page.webhook_id, wh.webhook_id), coalesce(page.actor, ''),
		       page.event_id, wh.event_id
		FROM (
		    SELECT seq, occurred_at, recorded_at, delta, balance, reason, cause, receipt_id, transaction_id, webhook_id,
		           actor, event_id
		    FROM stock_movements
		    WHERE `+w.sql()+`
		    ORDER BY seq `+dir+`
		    LIMIT `+w.arg(f.Limit)+`
		) page
		LEFT JOIN LATERAL (
		    SELECT ev.data->>'webhook_id' AS webhook_id, ev.event_id
		    FROM events e
		    JOIN events ev ON ev.event_id = `+fmt.Sprintf(causationUUID, "e.metadata->>'causation_id'")+`
		    WHERE e.event_id = page.event_id AND ev.type = `+w.arg(events.TypeWebhookReceived)+`
		) wh ON true
		ORDER BY page.seq `+dir, w.args...)
	if err != nil {
		return nil, fmt.Errorf("stock history: %w", err)
	}
	defer rows.Close()
	var out []Movement
	for rows.Next() {
		var m Movement
		var receipt, txn sql.NullInt64
		var webhook, webhookEvent sql.NullString
		if err := rows.Scan(&m.Seq, &m.OccurredAt, &m.RecordedAt, &m.Delta, &m.Balance, &m.Reason, &m.Cause, &receipt, &txn, &webhook,
			&m.Actor, &m.EventID, &webhookEvent); err != nil {
			return nil, fmt.Errorf("stock history: %w", err)
		}
		m.OccurredAt, m.RecordedAt = m.OccurredAt.UTC(), m.RecordedAt.UTC()
		m.ReceiptID, m.TransactionID = int64Ptr(receipt), int64Ptr(txn)
		if webhook.Valid && webhook.String != "" {
			id := webhook.String
			m.WebhookID = &id
		}
		m.webhookEvent = webhookEvent.String
		out = append(out, m)
	}
	return out, rows.Err()
}

// VariantStockAt returns a variant's balance as of at: the sum of the
// movements whose business time is at or before it, which is what a
// replay of the log up to that instant gives.
func (s *Store) VariantStockAt(ctx context.Context, shops []int64, listingID int64, variantKey string, at time.Time) (VariantStock, error) {
	st := VariantStock{ListingID: listingID, VariantKey: variantKey}
	var last sql.NullTime
	err := s.db.QueryRowContext(ctx, `
		SELECT pv.sku, m.quantity, m.movements, m.last
		FROM product_variants pv
		CROSS JOIN LATERAL (
		    SELECT coalesce(sum(sm.delta), 0)::bigint AS quantity, count(*) AS movements, max(sm.occurred_at) AS last
		    FROM stock_movements sm
		    WHERE sm.listing_id = pv.listing_id AND sm.variant_key = pv.variant_key
		      AND sm.occurred_at <= $4
		) m
		WHERE pv.listing_id = $2 AND pv.variant_key = $3 AND pv.shop_id = ANY($1)`,
		shops, listingID, variantKey, at.UTC()).Scan(&st.SKU, &st.Quantity, &st.Movements, &last)
	if errors.Is(err, sql.ErrNoRows) {
		return st, ErrNotFound
	}
	if err != nil {
		return st, fmt.Errorf("stock of %d/%s: %w", listingID, variantKey, err)
	}
	st.LastMovementAt = utcPtr(last)
	return st, nil
}

// ShopStockAt returns the balances of a shop's variants as of at, paged by
// (listing_id, variant_key).
func (s *Store) ShopStockAt(ctx context.Context, shops []int64, shopID int64, at time.Time, afterListing int64, afterKey string, limit int) ([]VariantStock, error) {
	rows, err := s.db.QueryContext(ctx, `
		WITH page AS (
		    SELECT pv.listing_id, pv.variant_key, pv.sku
		    FROM product_variants pv
		    WHERE pv.shop_id = $2 AND pv.shop_id = ANY($1)
		      AND (pv.listing_id > $4 OR (pv.listing_id = $4 AND pv.variant_key COLLATE "C" > $5))
		    ORDER BY pv.listing_id, pv.variant_key COLLATE "C"
		    LIMIT $6
		)
		SELECT page.listing_id, page.variant_key, page.sku, coalesce(m.quantity, 0), coalesce(m.movements, 0), m.last
		FROM page
		LEFT JOIN (
		    SELECT sm.listing_id, sm.variant_key, sum(sm.delta)::bigint AS quantity, count(*) AS movements, max(sm.occurred_at) AS last
		    FROM stock_movements sm
		    WHERE sm.shop_id = $2 AND sm.occurred_at <= $3
		      AND (sm.listing_id, sm.variant_key) IN (SELECT listing_id, variant_key FROM page)
		    GROUP BY sm.listing_id, sm.variant_key
		) m ON m.listing_id = page.listing_id AND m.variant_key = page.variant_key
		ORDER BY page.listing_id, page.variant_key COLLATE "C"`,
		shops, shopID, at.UTC(), afterListing, afterKey, limit)
	if err != nil {
		return nil, fmt.Errorf("stock of shop %d: %w", shopID, err)
	}
	defer rows.Close()
	var out []VariantStock
	for rows.Next() {
		var v VariantStock
		var last sql.NullTime
		if err := rows.Scan(&v.ListingID, &v.VariantKey, &v.SKU, &v.Quantity, &v.Movements, &last); err != nil {
			return nil, fmt.Errorf("stock of shop %d: %w", shopID, err)
		}
		v.LastMovementAt = utcPtr(last)
		out = append(out, v)
	}
	return out, rows.Err()
}

// Sales.

const saleColumns = `receipt_id, shop_id, status, created_at, currency, subtotal, shipping, tax, discount, grand_total, refunded,
	item_count, units, paid_at, shipped_at, carrier, delivered_at, canceled_at, refunded_at`

func scanSale(row interface{ Scan(...any) error }) (Sale, error) {
	var s Sale
	var paid, shipped, delivered, canceled, refunded sql.NullTime
	err := row.Scan(&s.ReceiptID, &s.ShopID, &s.Status, &s.CreatedAt, &s.Currency, &s.Subtotal, &s.Shipping, &s.Tax, &s.Discount,
		&s.GrandTotal, &s.Refunded, &s.ItemCount, &s.Units, &paid, &shipped, &s.Carrier, &delivered, &canceled, &refunded)
	s.CreatedAt = s.CreatedAt.UTC()
	s.PaidAt, s.ShippedAt, s.DeliveredAt, s.CanceledAt, s.RefundedAt = utcPtr(paid), utcPtr(shipped), utcPtr(delivered), utcPtr(canceled), utcPtr(refunded)
	return s, err
}

// ListSales pages recorded sales newest first. Receipts known only from
// status facts (not yet recorded) have no totals and are left out.
func (s *Store) ListSales(ctx context.Context, f SaleFilter) ([]Sale, error) {
	var w where
	w.add("shop_id = ANY(%s)", f.Shops)
	w.conds = append(w.conds, "recorded")
	if f.ShopID != 0 {
		w.add("shop_id = %s", f.ShopID)
	}
	if f.Status != "" {
		w.add("status = %s", f.Status)
	}
	if !f.From.IsZero() {
		w.add("created_at >= %s", f.From.UTC())
	}
	if !f.To.IsZero() {
		w.add("created_at < %s", f.To.UTC())
	}
	if f.After != nil {
		w.add("(created_at, receipt_id) < (%s, %s)", f.After.CreatedAt.UTC(), f.After.ReceiptID)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+saleColumns+` FROM sales WHERE `+w.sql()+`
		ORDER BY created_at DESC, receipt_id DESC LIMIT `+w.arg(f.Limit), w.args...)
	if err != nil {
		return nil, fmt.Errorf("list sales: %w", err)
	}
	defer rows.Close()
	var out []Sale
	for rows.Next() {
		sale, err := scanSale(rows)
		if err != nil {
			return nil, fmt.Errorf("list sales: %w", err)
		}
		out = append(out, sale)
	}
	return out, rows.Err()
}

// GetSale returns a recorded sale of the set with its items.
func (s *Store) GetSale(ctx context.Context, shops []int64, receiptID int64) (SaleDetail, error) {
	sale, err := scanSale(s.db.QueryRowContext(ctx, `SELECT `+saleColumns+` FROM sales WHERE receipt_id = $2 AND shop_id = ANY($1) AND recorded`, shops, receiptID))
	if errors.Is(err, sql.ErrNoRows) {
		return SaleDetail{}, ErrNotFound
	}
	if err != nil {
		return SaleDetail{}, fmt.Errorf("get sale %d: %w", receiptID, err)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT transaction_id, listing_id, variant_key, sku, title, quantity, unit_price, currency
		FROM sale_items WHERE receipt_id = $1 AND shop_id = $2 ORDER BY line`, receiptID, sale.ShopID)
	if err != nil {
		return SaleDetail{}, fmt.Errorf("get sale %d items: %w", receiptID, err)
	}
	defer rows.Close()
	d := SaleDetail{Sale: sale, Items: []SaleItem{}}
	for rows.Next() {
		var it SaleItem
		if err := rows.Scan(&it.TransactionID, &it.ListingID, &it.VariantKey, &it.SKU, &it.Title, &it.Quantity, &it.UnitPrice.Amount, &it.UnitPrice.Currency); err != nil {
			return SaleDetail{}, fmt.Errorf("get sale %d items: %w", receiptID, err)
		}
		d.Items = append(d.Items, it)
	}
	return d, rows.Err()
}

// DailySales returns one point per day of [from, to) for each currency the
// shop sold in (its own currency when it sold nothing), zeros included, so
// a chart needs no gap filling.
func (s *Store) DailySales(ctx context.Context, shops []int64, shopID int64, from, to time.Time) ([]DailySales, error) {
	rows, err := s.db.QueryContext(ctx, `
		WITH cur AS (
		    SELECT DISTINCT currency FROM sales_daily
		    WHERE shop_id = $2 AND shop_id = ANY($1) AND day >= $3::date AND day < $4::date
		    UNION
		    SELECT currency FROM shops WHERE shop_id = $2 AND shop_id = ANY($1) AND currency <> ''
		      AND NOT EXISTS (SELECT 1 FROM sales_daily WHERE shop_id = $2 AND day >= $3::date AND day < $4::date)
		), days AS (
		    SELECT d::date AS day FROM generate_series($3::date, $4::date - 1, interval '1 day') d
		)
		SELECT to_char(days.day, 'YYYY-MM-DD'), cur.currency, coalesce(sd.orders, 0), coalesce(sd.units, 0), coalesce(sd.gross, 0),
		       coalesce(sd.canceled_orders, 0), coalesce(sd.refunded, 0)
		FROM days CROSS JOIN cur
		LEFT JOIN sales_daily sd ON sd.shop_id = $2 AND sd.day = days.day AND sd.currency = cur.currency
		ORDER BY days.day, cur.currency`, shops, shopID, from.UTC(), to.UTC())
	if err != nil {
		return nil, fmt.Errorf("daily sales of shop %d: %w", shopID, err)
	}
	defer rows.Close()
	var out []DailySales
	for rows.Next() {
		var d DailySales
		if err := rows.Scan(&d.Day, &d.Currency, &d.Orders, &d.Units, &d.Gross, &d.CanceledOrders, &d.Refunded); err != nil {
			return nil, fmt.Errorf("daily sales of shop %d: %w", shopID, err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// TopProducts ranks a shop's listings by units or revenue over sales
// created in [from, to), canceled sales left out.
func (s *Store) TopProducts(ctx context.Context, shops []int64, shopID int64, from, to time.Time, byRevenue bool, limit int) ([]TopProduct, error) {
	order := "units DESC, revenue DESC"
	if byRevenue {
		order = "revenue DESC, units DESC"
	}
	rows, err := s.db.QueryContext(ctx, `
		SELECT si.listing_id, coalesce(max(p.title), max(si.title), ''), sum(si.quantity)::bigint AS units,
		       sum(si.quantity * si.unit_price)::bigint AS revenue, si.currency, count(DISTINCT si.receipt_id) AS orders
		FROM sale_items si
		JOIN sales sa ON sa.receipt_id = si.receipt_id AND sa.shop_id = si.shop_id
		LEFT JOIN products p ON p.listing_id = si.listing_id
		WHERE si.shop_id = $2 AND si.shop_id = ANY($1) AND sa.recorded AND sa.canceled_at IS NULL
		  AND sa.created_at >= $3 AND sa.created_at < $4
		GROUP BY si.listing_id, si.currency
		ORDER BY `+order+`, si.listing_id
		LIMIT $5`, shops, shopID, from.UTC(), to.UTC(), limit)
	if err != nil {
		return nil, fmt.Errorf("top products of shop %d: %w", shopID, err)
	}
	defer rows.Close()
	var out []TopProduct
	for rows.Next() {
		var t TopProduct
		if err := rows.Scan(&t.ListingID, &t.Title, &t.Units, &t.Revenue.Amount, &t.Revenue.Currency, &t.Orders); err != nil {
			return nil, fmt.Errorf("top products of shop %d: %w", shopID, err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}
