package projections

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/projections/engine"
)

// Sale statuses set by status facts. sale.recorded carries Etsy's own
// status string, lower-cased.
const (
	SalePaid      = "paid"
	SaleShipped   = "shipped"
	SaleDelivered = "delivered"
	SaleCanceled  = "canceled"
	SaleRefunded  = "refunded"
	// SalePartiallyRefunded is Etsy's name for a receipt with some money
	// returned; refund facts set it whatever status came before.
	SalePartiallyRefunded = "partially refunded"
)

// statusRank orders statuses so that a receipt only ever moves forward,
// whatever order its facts arrive in. Unknown statuses rank lowest.
var statusRank = map[string]int{
	"open": 0, "payment processing": 0, "unpaid": 0,
	SalePaid:    1,
	SaleShipped: 2, "completed": 2,
	SaleDelivered:         3,
	SalePartiallyRefunded: 3,
	SaleCanceled:          4,
	SaleRefunded:          5, "fully refunded": 5,
}

// SaleStatuses returns, sorted, every status statusRank knows: the ones
// status facts set and Etsy's receipt statuses that sale.recorded carries.
func SaleStatuses() []string {
	out := make([]string, 0, len(statusRank))
	for s := range statusRank {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// saleRow is an Etsy receipt: status and integer money in minor units.
type saleRow struct {
	ShopID    int64
	ReceiptID int64
	// Recorded is false while only status facts arrived, before the
	// receipt itself.
	Recorded      bool
	Status        string
	Currency      string
	Subtotal      int64
	Shipping      int64
	Tax           int64
	Discount      int64
	GrandTotal    int64
	Refunded      int64
	RefundKeys    []string
	ItemCount     int64
	Units         int64
	CreatedAt     *time.Time
	EtsyUpdatedAt *time.Time
	PaidAt        *time.Time
	ShippedAt     *time.Time
	Carrier       string
	TrackingCode  string
	DeliveredAt   *time.Time
	CanceledAt    *time.Time
	CancelReason  string
	RefundedAt    *time.Time
	UpdatedAt     time.Time

	Items []saleItemRow
}

// saleItemRow is one line of a receipt.
type saleItemRow struct {
	ShopID        int64
	ReceiptID     int64
	TransactionID int64
	Line          int
	ListingID     int64
	VariantKey    string
	SKU           string
	Title         string
	Quantity      int64
	UnitPrice     int64
	Currency      string
}

// dailyRow sums a shop's receipts by the UTC day they were created.
type dailyRow struct {
	ShopID         int64
	Day            time.Time
	Currency       string
	Orders         int64
	Units          int64
	Gross          int64
	CanceledOrders int64
	Refunded       int64
}

var salesTable = engine.Table{
	Name: "sales",
	Columns: []string{"shop_id", "receipt_id", "recorded", "status", "currency", "subtotal", "shipping", "tax",
		"discount", "grand_total", "refunded", "refund_keys", "item_count", "units", "created_at", "etsy_updated_at",
		"paid_at", "shipped_at", "carrier", "tracking_code", "delivered_at", "canceled_at", "cancel_reason",
		"refunded_at", "updated_at"},
	Key: []string{"receipt_id"},
}

func (s *saleRow) fields() []any {
	return []any{&s.ShopID, &s.ReceiptID, &s.Recorded, &s.Status, &s.Currency, &s.Subtotal, &s.Shipping, &s.Tax,
		&s.Discount, &s.GrandTotal, &s.Refunded, jsonOf(&s.RefundKeys), &s.ItemCount, &s.Units, &s.CreatedAt, &s.EtsyUpdatedAt,
		&s.PaidAt, &s.ShippedAt, &s.Carrier, &s.TrackingCode, &s.DeliveredAt, &s.CanceledAt, &s.CancelReason,
		&s.RefundedAt, &s.UpdatedAt}
}

var saleItemsTable = engine.Table{
	Name: "sale_items",
	Columns: []string{"shop_id", "receipt_id", "transaction_id", "line", "listing_id", "variant_key", "sku", "title",
		"quantity", "unit_price", "currency"},
	Key: []string{"receipt_id", "line"},
}

func (i *saleItemRow) fields() []any {
	return []any{&i.ShopID, &i.ReceiptID, &i.TransactionID, &i.Line, &i.ListingID, &i.VariantKey, &i.SKU, &i.Title,
		&i.Quantity, &i.UnitPrice, &i.Currency}
}

var salesDailyTable = engine.Table{
	Name:    "sales_daily",
	Columns: []string{"shop_id", "day", "currency", "orders", "units", "gross", "canceled_orders", "refunded"},
	Key:     []string{"shop_id", "day", "currency"},
}

func init() { engine.RegisterTables(salesTable, saleItemsTable, salesDailyTable) }

func (d *dailyRow) fields() []any {
	return []any{&d.ShopID, &d.Day, &d.Currency, &d.Orders, &d.Units, &d.Gross, &d.CanceledOrders, &d.Refunded}
}

type dayKey struct {
	shopID   int64
	day      time.Time
	currency string
}

// contribution is what a sale adds to its day; an unrecorded sale adds
// nothing because its day and totals are not known yet.
func (s *saleRow) contribution() (dayKey, dailyRow, bool) {
	if !s.Recorded || s.CreatedAt == nil {
		return dayKey{}, dailyRow{}, false
	}
	t := s.CreatedAt.UTC()
	k := dayKey{s.ShopID, time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC), s.Currency}
	d := dailyRow{ShopID: k.shopID, Day: k.day, Currency: k.currency, Orders: 1, Units: s.Units, Gross: s.GrandTotal, Refunded: s.Refunded}
	if s.Status == SaleCanceled {
		d.CanceledOrders = 1
	}
	return k, d, true
}

// dailyDelta is the change of one day row.
type dailyDelta struct {
	key dayKey
	dailyRow
}

func (d *dailyDelta) add(o dailyRow, sign int64) {
	d.Orders += sign * o.Orders
	d.Units += sign * o.Units
	d.Gross += sign * o.Gross
	d.CanceledOrders += sign * o.CanceledOrders
	d.Refunded += sign * o.Refunded
}

// saleOf returns the receipt an event of the sales projection is about.
func saleOf(rec events.Record) (int64, bool) {
	switch d := rec.Data.(type) {
	case events.SaleRecorded:
		return d.ReceiptID, true
	case events.SalePaid:
		return d.ReceiptID, true
	case events.SaleShipped:
		return d.ReceiptID, true
	case events.SaleDelivered:
		return d.ReceiptID, true
	case events.SaleCanceled:
		return d.ReceiptID, true
	case events.SaleRefunded:
		return d.ReceiptID, true
	}
	return 0, false
}

func newSale(rec events.Record, receiptID int64) *saleRow {
	return &saleRow{ShopID: rec.ShopID, ReceiptID: receiptID, RefundKeys: []string{}, UpdatedAt: rec.OccurredAt}
}

func (s *saleRow) setStatus(status string) {
	cur, next := statusRank[s.Status], statusRank[status]
	if next > cur || (next == cur && status > s.Status) {
		s.Status = status
	}
}

func earliest(cur *time.Time, at time.Time) *time.Time {
	if cur == nil || at.Before(*cur) {
		return timePtr(at)
	}
	return cur
}

func latest(cur *time.Time, at time.Time) *time.Time {
	if cur == nil || at.After(*cur) {
		return timePtr(at)
	}
	return cur
}

// saleChange is what one fold did to a sale.
type saleChange struct {
	changed  bool
	newItems bool // the items were replaced
	daily    []dailyDelta
}

// foldSale applies rec to s. Every rule is independent of arrival order:
// a receipt description applies only when Etsy's updated time is newer,
// statuses only move forward, times keep the earliest (or latest) fact, and
// a refund counts once per refund key. Shuffled and duplicated facts of a
// receipt therefore give the same row as the facts in order.
func foldSale(s *saleRow, items *[]saleItemRow, rec events.Record) saleChange {
	at := rec.OccurredAt
	beforeKey, before, hadDay := s.contribution()
	switch d := rec.Data.(type) {
	case events.SaleRecorded:
		if s.Recorded && s.EtsyUpdatedAt != nil && !d.EtsyUpdatedAt.After(*s.EtsyUpdatedAt) {
			return saleChange{}
		}
		s.ShopID, s.Recorded = d.ShopID, true
		s.Currency = d.GrandTotal.Currency
		s.Subtotal, s.Shipping, s.Tax, s.Discount, s.GrandTotal = d.Subtotal.Amount, d.Shipping.Amount, d.Tax.Amount, d.Discount.Amount, d.GrandTotal.Amount
		s.CreatedAt, s.EtsyUpdatedAt = timePtr(d.CreatedAt.UTC()), timePtr(d.EtsyUpdatedAt.UTC())
		s.setStatus(strings.ToLower(d.Status))
		next := make([]saleItemRow, len(d.Items))
		s.ItemCount, s.Units = int64(len(d.Items)), 0
		for i, it := range d.Items {
			cur := it.UnitPrice.Currency
			if cur == "" {
				cur = s.Currency
			}
			next[i] = saleItemRow{ShopID: d.ShopID, ReceiptID: d.ReceiptID, TransactionID: it.TransactionID, Line: i + 1,
				ListingID: it.ListingID, VariantKey: it.VariantKey, SKU: it.SKU, Title: it.Title,
				Quantity: it.Quantity, UnitPrice: it.UnitPrice.Amount, Currency: cur}
			s.Units += it.Quantity
		}
		*items = next
	case events.SalePaid:
		s.setStatus(SalePaid)
		s.PaidAt = earliest(s.PaidAt, at)
	case events.SaleShipped:
		if s.ShippedAt == nil || at.After(*s.ShippedAt) ||
			(at.Equal(*s.ShippedAt) && d.Carrier+"\x00"+d.TrackingCode > s.Carrier+"\x00"+s.TrackingCode) {
			s.Carrier, s.TrackingCode = d.Carrier, d.TrackingCode
		}
		s.setStatus(SaleShipped)
		s.ShippedAt = latest(s.ShippedAt, at)
	case events.SaleDelivered:
		s.setStatus(SaleDelivered)
		s.DeliveredAt = earliest(s.DeliveredAt, at)
	case events.SaleCanceled:
		if s.CanceledAt == nil || at.Before(*s.CanceledAt) || (at.Equal(*s.CanceledAt) && d.Reason > s.CancelReason) {
			s.CancelReason = d.Reason
		}
		s.setStatus(SaleCanceled)
		s.CanceledAt = earliest(s.CanceledAt, at)
	case events.SaleRefunded:
		key := d.RefundKey
		if key == "" {
			// Without Etsy's key the fact itself is the refund.
			key = "event:" + rec.ID.String()
		}
		if slices.Contains(s.RefundKeys, key) {
			return saleChange{}
		}
		s.RefundKeys = append(s.RefundKeys, key)
		slices.Sort(s.RefundKeys)
		s.Refunded += d.Amount.Amount
		s.RefundedAt = latest(s.RefundedAt, at)
	default:
		return saleChange{}
	}
	// The refund facts decide the refund status, so a receipt reads the
	// same whether the ledger first saw it before or after Etsy refunded
	// part of it.
	if s.Recorded && s.GrandTotal > 0 && s.Refunded >= s.GrandTotal {
		s.setStatus(SaleRefunded)
	} else if s.Recorded && s.Refunded > 0 {
		s.setStatus(SalePartiallyRefunded)
	}
	if at.After(s.UpdatedAt) {
		s.UpdatedAt = at
	}
	ch := saleChange{changed: true, newItems: rec.Type() == events.TypeSaleRecorded}
	afterKey, after, hasDay := s.contribution()
	if hadDay && hasDay && beforeKey == afterKey {
		d := dailyDelta{key: afterKey}
		d.add(after, 1)
		d.add(before, -1)
		if d.dailyRow != (dailyRow{}) {
			ch.daily = append(ch.daily, d)
		}
		return ch
	}
	if hadDay {
		d := dailyDelta{key: beforeKey}
		d.add(before, -1)
		ch.daily = append(ch.daily, d)
	}
	if hasDay {
		d := dailyDelta{key: afterKey}
		d.add(after, 1)
		ch.daily = append(ch.daily, d)
	}
	return ch
}

// Sales maintains sales, sale_items and sales_daily.
type Sales struct {
	cache engine.TxCache[int64, *saleRow]
}

// NewSales returns the sales projection.
func NewSales() *Sales { return &Sales{} }

// Name implements engine.Projection.
func (*Sales) Name() string { return "sales" }

// Tables implements engine.Rebuildable.
func (*Sales) Tables() []string {
	return []string{salesTable.Name, saleItemsTable.Name, salesDailyTable.Name}
}

// Handles implements engine.Projection.
func (*Sales) Handles(typ string) bool {
	switch typ {
	case events.TypeSaleRecorded, events.TypeSalePaid, events.TypeSaleShipped, events.TypeSaleDelivered,
		events.TypeSaleCanceled, events.TypeSaleRefunded:
		return true
	}
	return false
}

const dailyUpsertSQL = `INSERT INTO sales_daily (shop_id, day, currency, orders, units, gross, canceled_orders, refunded)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (shop_id, day, currency) DO UPDATE SET
	orders = sales_daily.orders + excluded.orders,
	units = sales_daily.units + excluded.units,
	gross = sales_daily.gross + excluded.gross,
	canceled_orders = sales_daily.canceled_orders + excluded.canceled_orders,
	refunded = sales_daily.refunded + excluded.refunded`

// Apply implements engine.Projection.
func (p *Sales) Apply(ctx context.Context, tx *sql.Tx, rec events.Record) error {
	return engine.ApplyPlan(ctx, p, tx, rec)
}

// Forget implements engine.Planner.
func (p *Sales) Forget() { p.cache.Reset() }

// Adopt implements engine.Planner.
func (p *Sales) Adopt(tx *sql.Tx) { p.cache.Adopt(tx) }

// Plan implements engine.Planner.
func (p *Sales) Plan(ctx context.Context, tx *sql.Tx, rec events.Record) ([]engine.Stmt, error) {
	id, ok := saleOf(rec)
	if !ok {
		return nil, nil
	}
	s, ok := p.cache.Get(tx, id)
	if ok && s == nil {
		// Prefetched: not stored yet.
		s, ok = newSale(rec, id), true
	}
	if !ok {
		s = &saleRow{}
		err := tx.QueryRowContext(ctx, `SELECT `+salesTable.ColumnList("")+` FROM sales WHERE receipt_id = $1`, id).Scan(s.fields()...)
		if errors.Is(err, sql.ErrNoRows) {
			s, err = newSale(rec, id), nil
		}
		if err != nil {
			p.cache.Reset()
			return nil, fmt.Errorf("load sale %d: %w", id, err)
		}
	}
	var items []saleItemRow
	wasRecorded := s.Recorded
	ch := foldSale(s, &items, rec)
	if !ch.changed {
		return nil, nil
	}
	out := []engine.Stmt{salesTable.Upsert(s.fields())}
	if ch.newItems {
		if wasRecorded {
			out = append(out, engine.Stmt{SQL: `DELETE FROM sale_items WHERE receipt_id = $1`, Args: []any{id}})
		}
		if len(items) > 0 {
			out = append(out, insertItems(items)...)
		}
	}
	for _, d := range ch.daily {
		out = append(out, engine.Stmt{SQL: dailyUpsertSQL, Args: []any{d.key.shopID, d.key.day, d.key.currency,
			d.Orders, d.Units, d.Gross, d.CanceledOrders, d.Refunded}})
	}
	p.cache.Put(tx, id, s)
	return out, nil
}

// Prefetch implements engine.Prefetcher.
func (p *Sales) Prefetch(ctx context.Context, tx *sql.Tx, recs []events.Record) error {
	var ids []int64
	for _, rec := range recs {
		if id, ok := saleOf(rec); ok {
			if _, cached := p.cache.Get(tx, id); !cached {
				ids = append(ids, id)
			}
		}
	}
	if len(ids) == 0 {
		return nil
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+salesTable.ColumnList("")+` FROM sales WHERE receipt_id = ANY($1)`, ids)
	if err != nil {
		return fmt.Errorf("prefetch sales: %w", err)
	}
	defer rows.Close()
	found := map[int64]*saleRow{}
	for rows.Next() {
		s := &saleRow{}
		if err := rows.Scan(s.fields()...); err != nil {
			return fmt.Errorf("prefetch sales: %w", err)
		}
		found[s.ReceiptID] = s
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("prefetch sales: %w", err)
	}
	for _, id := range ids {
		p.cache.Put(tx, id, found[id]) // nil: no sale yet
	}
	return nil
}

// insertItems inserts a receipt's items, one statement a row (a batch's
// rows are then written together, see engine.CompactWrites).
func insertItems(items []saleItemRow) []engine.Stmt {
	out := make([]engine.Stmt, len(items))
	for i := range items {
		out[i] = saleItemsTable.Insert(items[i].fields())
	}
	return out
}

// Compact writes a batch like engine.CompactWrites, with the daily totals
// summed per shop, day and currency and written last: they are additions
// to rows nothing else in the batch reads or writes.
func (*Sales) Compact(stmts []engine.Stmt) ([]engine.Stmt, error) {
	var rest []engine.Stmt
	sums := map[string][]any{}
	var order []string
	for _, s := range stmts {
		if s.SQL != dailyUpsertSQL {
			rest = append(rest, s)
			continue
		}
		var kb strings.Builder
		for _, v := range s.Args[:3] {
			if err := engine.AppendLiteral(&kb, v); err != nil {
				return nil, err
			}
			kb.WriteByte(0)
		}
		k := kb.String()
		acc, ok := sums[k]
		if !ok {
			sums[k] = append([]any(nil), s.Args...)
			order = append(order, k)
			continue
		}
		for i := 3; i < len(acc); i++ {
			a, aok := acc[i].(int64)
			b, bok := s.Args[i].(int64)
			if !aok || !bok {
				return nil, fmt.Errorf("daily sales delta %d is %T, want int64", i, s.Args[i])
			}
			acc[i] = a + b
		}
	}
	out, err := engine.CompactWrites(rest)
	if err != nil {
		return nil, err
	}
	for _, k := range order {
		out = append(out, engine.Stmt{SQL: dailyUpsertSQL, Args: sums[k]})
	}
	return out, nil
}

type salesRebuild struct {
	sales map[int64]*saleRow
	daily map[dayKey]*dailyRow
}

// NewFold implements engine.Rebuildable.
func (*Sales) NewFold() engine.Fold {
	return &salesRebuild{sales: map[int64]*saleRow{}, daily: map[dayKey]*dailyRow{}}
}

func (r *salesRebuild) Apply(rec events.Record, _ engine.EmitFunc) error {
	id, ok := saleOf(rec)
	if !ok {
		return nil
	}
	s := r.sales[id]
	if s == nil {
		s = newSale(rec, id)
	}
	items := s.Items
	ch := foldSale(s, &items, rec)
	if !ch.changed {
		return nil
	}
	s.Items = items
	r.sales[id] = s
	for _, d := range ch.daily {
		row := r.daily[d.key]
		if row == nil {
			row = &dailyRow{ShopID: d.key.shopID, Day: d.key.day, Currency: d.key.currency}
			r.daily[d.key] = row
		}
		acc := dailyDelta{dailyRow: *row}
		acc.add(d.dailyRow, 1)
		*row = acc.dailyRow
	}
	return nil
}

func (r *salesRebuild) Finish(emit engine.EmitFunc) error {
	for _, s := range r.sales {
		if err := emit(salesTable.Name, s.fields()); err != nil {
			return err
		}
		for i := range s.Items {
			if err := emit(saleItemsTable.Name, s.Items[i].fields()); err != nil {
				return err
			}
		}
	}
	for _, d := range r.daily {
		if err := emit(salesDailyTable.Name, d.fields()); err != nil {
			return err
		}
	}
	return nil
}

// Readers.

// Sale is a receipt with integer-money totals. Buyer details stay at Etsy.
type Sale struct {
	ReceiptID   int64      `json:"receipt_id"`
	ShopID      int64      `json:"shop_id"`
	Status      string     `json:"status"`
	CreatedAt   time.Time  `json:"created_at"`
	Currency    string     `json:"currency"`
	Subtotal    int64      `json:"subtotal"`
	Shipping    int64      `json:"shipping"`
	Tax         int64      `json:"tax"`
	Discount    int64      `json:"discount"`
	GrandTotal  int64      `json:"grand_total"`
	Refunded    int64      `json:"refunded"`
	ItemCount   int64      `json:"item_count"`
	Units       int64      `json:"units"`
	PaidAt      *time.Time `json:"paid_at"`
	ShippedAt   *time.Time `json:"shipped_at"`
	Carrier     string     `json:"carrier"`
	DeliveredAt *time.Time `json:"delivered_at"`
	CanceledAt  *time.Time `json:"canceled_at"`
	RefundedAt  *time.Time `json:"refunded_at"`
}

// SaleItem is one line of a receipt.
type SaleItem struct {
	TransactionID int64        `json:"transaction_id"`
	ListingID     int64        `json:"listing_id"`
	VariantKey    string       `json:"variant_key"`
	SKU           string       `json:"sku"`
	Title         string       `json:"title"`
	Quantity      int64        `json:"quantity"`
	UnitPrice     events.Money `json:"unit_price"`
}

// SaleDetail is a sale with its items.
type SaleDetail struct {
	Sale
	Items []SaleItem `json:"items"`
}

// SaleFilter selects sales among Shops, newest first.
type SaleFilter struct {
	Shops    []int64
	ShopID   int64
	Status   string
	From, To time.Time // creation time, To exclusive
	After    *SaleCursor
	Limit    int
}

// SaleCursor is the last row of a sales page.
type SaleCursor struct {
	CreatedAt time.Time `json:"c"`
	ReceiptID int64     `json:"r"`
}

const saleColumns = `receipt_id, shop_id, status, created_at, currency, subtotal, shipping, tax, discount, grand_total, refunded,
	item_count, units, paid_at, shipped_at, carrier, delivered_at, canceled_at, refunded_at`

func scanSale(row rowScanner) (Sale, error) {
	var s Sale
	err := row.Scan(&s.ReceiptID, &s.ShopID, &s.Status, &s.CreatedAt, &s.Currency, &s.Subtotal, &s.Shipping, &s.Tax, &s.Discount,
		&s.GrandTotal, &s.Refunded, &s.ItemCount, &s.Units, &s.PaidAt, &s.ShippedAt, &s.Carrier, &s.DeliveredAt, &s.CanceledAt, &s.RefundedAt)
	s.CreatedAt = utc(s.CreatedAt)
	s.PaidAt, s.ShippedAt, s.DeliveredAt, s.CanceledAt, s.RefundedAt = utcPtr(s.PaidAt), utcPtr(s.ShippedAt), utcPtr(s.DeliveredAt), utcPtr(s.CanceledAt), utcPtr(s.RefundedAt)
	return s, err
}

// ListSales pages recorded sales newest first. Receipts known only from
// status facts (not yet recorded) have no totals and are left out.
func (r *Reader) ListSales(ctx context.Context, f SaleFilter) ([]Sale, error) {
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
	return queryAll(ctx, r.db, "list sales", scanSale, `SELECT `+saleColumns+` FROM sales WHERE `+w.sql()+`
		ORDER BY created_at DESC, receipt_id DESC LIMIT `+w.arg(f.Limit), w.args...)
}

// GetSale returns a recorded sale of shops with its items.
func (r *Reader) GetSale(ctx context.Context, shops []int64, receiptID int64) (SaleDetail, error) {
	sale, err := scanSale(r.db.QueryRowContext(ctx, `SELECT `+saleColumns+` FROM sales WHERE receipt_id = $2 AND shop_id = ANY($1) AND recorded`, shops, receiptID))
	if errors.Is(err, sql.ErrNoRows) {
		return SaleDetail{}, fmt.Errorf("get sale %d: %w", receiptID, ErrNotFound)
	}
	if err != nil {
		return SaleDetail{}, fmt.Errorf("get sale %d: %w", receiptID, err)
	}
	rows, err := r.db.QueryContext(ctx, `SELECT transaction_id, listing_id, variant_key, sku, title, quantity, unit_price, currency
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

// DailySales is one point of the daily series of a shop in one currency.
type DailySales struct {
	Day            string `json:"day"` // YYYY-MM-DD, UTC unless read in a zone (DailySalesIn)
	Currency       string `json:"currency"`
	Orders         int64  `json:"orders"`
	Units          int64  `json:"units"`
	Gross          int64  `json:"gross"`
	CanceledOrders int64  `json:"canceled_orders"`
	Refunded       int64  `json:"refunded"`
}

func scanDailySales(row rowScanner) (DailySales, error) {
	var d DailySales
	err := row.Scan(&d.Day, &d.Currency, &d.Orders, &d.Units, &d.Gross, &d.CanceledOrders, &d.Refunded)
	return d, err
}

// DailySales returns one point per day of [from, to) for each currency the
// shop sold in (its own currency when it sold nothing), zeros included, so
// a chart needs no gap filling.
func (r *Reader) DailySales(ctx context.Context, shops []int64, shopID int64, from, to time.Time) ([]DailySales, error) {
	return queryAll(ctx, r.db, fmt.Sprintf("daily sales of shop %d", shopID), scanDailySales, `
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
}

// TopProduct is a listing's sales over a period in one currency.
type TopProduct struct {
	ListingID int64        `json:"listing_id"`
	Title     string       `json:"title"`
	Units     int64        `json:"units"`
	Revenue   events.Money `json:"revenue"`
	Orders    int64        `json:"orders"`
}

func scanTopProduct(row rowScanner) (TopProduct, error) {
	var t TopProduct
	err := row.Scan(&t.ListingID, &t.Title, &t.Units, &t.Revenue.Amount, &t.Revenue.Currency, &t.Orders)
	return t, err
}

// TopProducts ranks a shop's listings by units or revenue over sales
// created in [from, to), canceled sales left out.
func (r *Reader) TopProducts(ctx context.Context, shops []int64, shopID int64, from, to time.Time, byRevenue bool, limit int) ([]TopProduct, error) {
	order := "units DESC, revenue DESC"
	if byRevenue {
		order = "revenue DESC, units DESC"
	}
	return queryAll(ctx, r.db, fmt.Sprintf("top products of shop %d", shopID), scanTopProduct, `
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
}

// DailySalesIn is DailySales with the days of loc: a sale belongs to the
// day its creation falls on in loc, and from and to name days in loc
// (their date in loc is used). UTC (or nil) reads the kept UTC series;
// another zone sums the shop's recorded sales by local day, with the same
// counts as the UTC series (orders, units, gross, canceled, refunded).
func (r *Reader) DailySalesIn(ctx context.Context, shops []int64, shopID int64, from, to time.Time, loc *time.Location) ([]DailySales, error) {
	if loc == nil || loc == time.UTC {
		return r.DailySales(ctx, shops, shopID, from, to)
	}
	day := func(t time.Time) string { return t.In(loc).Format(time.DateOnly) }
	return queryAll(ctx, r.db, fmt.Sprintf("daily sales of shop %d in %s", shopID, loc), scanDailySales, `
		WITH sd AS (
		    SELECT (created_at AT TIME ZONE $5)::date AS day, currency, count(*) AS orders, sum(units)::bigint AS units,
		           sum(grand_total)::bigint AS gross, count(*) FILTER (WHERE status = 'canceled') AS canceled_orders,
		           sum(refunded)::bigint AS refunded
		    FROM sales
		    WHERE shop_id = $2 AND shop_id = ANY($1) AND recorded
		      AND created_at >= ($3::date::timestamp AT TIME ZONE $5) AND created_at < ($4::date::timestamp AT TIME ZONE $5)
		    GROUP BY 1, 2
		), cur AS (
		    SELECT DISTINCT currency FROM sd
		    UNION
		    SELECT currency FROM shops WHERE shop_id = $2 AND shop_id = ANY($1) AND currency <> ''
		      AND NOT EXISTS (SELECT 1 FROM sd)
		), days AS (
		    SELECT d::date AS day FROM generate_series($3::date, $4::date - 1, interval '1 day') d
		)
		SELECT to_char(days.day, 'YYYY-MM-DD'), cur.currency, coalesce(sd.orders, 0), coalesce(sd.units, 0), coalesce(sd.gross, 0),
		       coalesce(sd.canceled_orders, 0), coalesce(sd.refunded, 0)
		FROM days CROSS JOIN cur
		LEFT JOIN sd ON sd.day = days.day AND sd.currency = cur.currency
		ORDER BY days.day, cur.currency`, shops, shopID, day(from), day(to), loc.String())
}
