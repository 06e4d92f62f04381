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

// Sale is an Etsy receipt: status and integer money in minor units.
type Sale struct {
	ShopID    int64 `json:"shop_id"`
	ReceiptID int64 `json:"receipt_id"`
	// Recorded is false while only status facts arrived, before the
	// receipt itself.
	Recorded      bool       `json:"recorded"`
	Status        string     `json:"status"`
	Currency      string     `json:"currency"`
	Subtotal      int64      `json:"subtotal"`
	Shipping      int64      `json:"shipping"`
	Tax           int64      `json:"tax"`
	Discount      int64      `json:"discount"`
	GrandTotal    int64      `json:"grand_total"`
	Refunded      int64      `json:"refunded"`
	RefundKeys    []string   `json:"-"`
	ItemCount     int64      `json:"item_count"`
	Units         int64      `json:"units"`
	CreatedAt     *time.Time `json:"created_at,omitempty"`
	EtsyUpdatedAt *time.Time `json:"etsy_updated_at,omitempty"`
	PaidAt        *time.Time `json:"paid_at,omitempty"`
	ShippedAt     *time.Time `json:"shipped_at,omitempty"`
	Carrier       string     `json:"carrier,omitempty"`
	TrackingCode  string     `json:"tracking_code,omitempty"`
	DeliveredAt   *time.Time `json:"delivered_at,omitempty"`
	CanceledAt    *time.Time `json:"canceled_at,omitempty"`
	CancelReason  string     `json:"cancel_reason,omitempty"`
	RefundedAt    *time.Time `json:"refunded_at,omitempty"`
	UpdatedAt     time.Time  `json:"updated_at"`

	Items []SaleItem `json:"items"`
}

// SaleItem is one line of a receipt.
type SaleItem struct {
	ShopID        int64  `json:"shop_id"`
	ReceiptID     int64  `json:"receipt_id"`
	TransactionID int64  `json:"transaction_id"`
	Line          int    `json:"line"`
	ListingID     int64  `json:"listing_id"`
	VariantKey    string `json:"variant_key"`
	SKU           string `json:"sku,omitempty"`
	Title         string `json:"title,omitempty"`
	Quantity      int64  `json:"quantity"`
	UnitPrice     int64  `json:"unit_price"`
	Currency      string `json:"currency"`
}

// DailySales sums a shop's receipts by the UTC day they were created.
type DailySales struct {
	ShopID         int64     `json:"shop_id"`
	Day            time.Time `json:"day"`
	Currency       string    `json:"currency"`
	Orders         int64     `json:"orders"`
	Units          int64     `json:"units"`
	Gross          int64     `json:"gross"`
	CanceledOrders int64     `json:"canceled_orders"`
	Refunded       int64     `json:"refunded"`
}

var salesTable = table{
	name: "sales",
	columns: []string{"shop_id", "receipt_id", "recorded", "status", "currency", "subtotal", "shipping", "tax",
		"discount", "grand_total", "refunded", "refund_keys", "item_count", "units", "created_at", "etsy_updated_at",
		"paid_at", "shipped_at", "carrier", "tracking_code", "delivered_at", "canceled_at", "cancel_reason",
		"refunded_at", "updated_at"},
	key: []string{"receipt_id"},
}

func (s *Sale) fields() []any {
	return []any{&s.ShopID, &s.ReceiptID, &s.Recorded, &s.Status, &s.Currency, &s.Subtotal, &s.Shipping, &s.Tax,
		&s.Discount, &s.GrandTotal, &s.Refunded, jsonOf(&s.RefundKeys), &s.ItemCount, &s.Units, &s.CreatedAt, &s.EtsyUpdatedAt,
		&s.PaidAt, &s.ShippedAt, &s.Carrier, &s.TrackingCode, &s.DeliveredAt, &s.CanceledAt, &s.CancelReason,
		&s.RefundedAt, &s.UpdatedAt}
}

func (s *Sale) normalise() {
	for _, p := range []**time.Time{&s.CreatedAt, &s.EtsyUpdatedAt, &s.PaidAt, &s.ShippedAt, &s.DeliveredAt, &s.CanceledAt, &s.RefundedAt} {
		*p = utcPtr(*p)
	}
	s.UpdatedAt = utc(s.UpdatedAt)
}

var saleItemsTable = table{
	name: "sale_items",
	columns: []string{"shop_id", "receipt_id", "transaction_id", "line", "listing_id", "variant_key", "sku", "title",
		"quantity", "unit_price", "currency"},
	key: []string{"receipt_id", "line"},
}

func (i *SaleItem) fields() []any {
	return []any{&i.ShopID, &i.ReceiptID, &i.TransactionID, &i.Line, &i.ListingID, &i.VariantKey, &i.SKU, &i.Title,
		&i.Quantity, &i.UnitPrice, &i.Currency}
}

var salesDailyTable = table{
	name:    "sales_daily",
	columns: []string{"shop_id", "day", "currency", "orders", "units", "gross", "canceled_orders", "refunded"},
	key:     []string{"shop_id", "day", "currency"},
}

func (d *DailySales) fields() []any {
	return []any{&d.ShopID, &d.Day, &d.Currency, &d.Orders, &d.Units, &d.Gross, &d.CanceledOrders, &d.Refunded}
}

type dayKey struct {
	shopID   int64
	day      time.Time
	currency string
}

// contribution is what a sale adds to its day; an unrecorded sale adds
// nothing because its day and totals are not known yet.
func (s *Sale) contribution() (dayKey, DailySales, bool) {
	if !s.Recorded || s.CreatedAt == nil {
		return dayKey{}, DailySales{}, false
	}
	t := s.CreatedAt.UTC()
	k := dayKey{s.ShopID, time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC), s.Currency}
	d := DailySales{ShopID: k.shopID, Day: k.day, Currency: k.currency, Orders: 1, Units: s.Units, Gross: s.GrandTotal, Refunded: s.Refunded}
	if s.Status == SaleCanceled {
		d.CanceledOrders = 1
	}
	return k, d, true
}

// dailyDelta is the change of one day row.
type dailyDelta struct {
	key dayKey
	DailySales
}

func (d *dailyDelta) add(o DailySales, sign int64) {
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

func newSale(rec events.Record, receiptID int64) *Sale {
	return &Sale{ShopID: rec.ShopID, ReceiptID: receiptID, RefundKeys: []string{}, UpdatedAt: rec.OccurredAt}
}

func (s *Sale) setStatus(status string) {
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
func foldSale(s *Sale, items *[]SaleItem, rec events.Record) saleChange {
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
		next := make([]SaleItem, len(d.Items))
		s.ItemCount, s.Units = int64(len(d.Items)), 0
		for i, it := range d.Items {
			cur := it.UnitPrice.Currency
			if cur == "" {
				cur = s.Currency
			}
			next[i] = SaleItem{ShopID: d.ShopID, ReceiptID: d.ReceiptID, TransactionID: it.TransactionID, Line: i + 1,
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
		if d.DailySales != (DailySales{}) {
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
	cache txCache[int64, *Sale]
}

// NewSales returns the sales projection.
func NewSales() *Sales { return &Sales{} }

// Name implements Projection.
func (*Sales) Name() string { return "sales" }

// Tables implements Rebuildable.
func (*Sales) Tables() []string {
	return []string{salesTable.name, saleItemsTable.name, salesDailyTable.name}
}

// Handles implements Projection.
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

// Apply implements Projection.
func (p *Sales) Apply(ctx context.Context, tx *sql.Tx, rec events.Record) error {
	return applyPlan(ctx, p, tx, rec)
}

func (p *Sales) forget() { p.cache.reset() }

func (p *Sales) adopt(tx *sql.Tx) { p.cache.adopt(tx) }

func (p *Sales) plan(ctx context.Context, tx *sql.Tx, rec events.Record) ([]stmt, error) {
	id, ok := saleOf(rec)
	if !ok {
		return nil, nil
	}
	s, ok := p.cache.get(tx, id)
	if ok && s == nil {
		// Prefetched: not stored yet.
		s, ok = newSale(rec, id), true
	}
	if !ok {
		s = &Sale{}
		err := tx.QueryRowContext(ctx, `SELECT `+salesTable.columnList("")+` FROM sales WHERE receipt_id = $1`, id).Scan(s.fields()...)
		if errors.Is(err, sql.ErrNoRows) {
			s, err = newSale(rec, id), nil
		}
		if err != nil {
			p.cache.reset()
			return nil, fmt.Errorf("load sale %d: %w", id, err)
		}
	}
	var items []SaleItem
	wasRecorded := s.Recorded
	ch := foldSale(s, &items, rec)
	if !ch.changed {
		return nil, nil
	}
	out := []stmt{{sql: salesTable.upsertSQL(), args: valuesOf(s.fields())}}
	if ch.newItems {
		if wasRecorded {
			out = append(out, stmt{sql: `DELETE FROM sale_items WHERE receipt_id = $1`, args: []any{id}})
		}
		if len(items) > 0 {
			out = append(out, insertItems(items)...)
		}
	}
	for _, d := range ch.daily {
		out = append(out, stmt{sql: dailyUpsertSQL, args: []any{d.key.shopID, d.key.day, d.key.currency,
			d.Orders, d.Units, d.Gross, d.CanceledOrders, d.Refunded}})
	}
	p.cache.put(tx, id, s)
	return out, nil
}

func (p *Sales) prefetch(ctx context.Context, tx *sql.Tx, recs []events.Record) error {
	var ids []int64
	for _, rec := range recs {
		if id, ok := saleOf(rec); ok {
			if _, cached := p.cache.get(tx, id); !cached {
				ids = append(ids, id)
			}
		}
	}
	if len(ids) == 0 {
		return nil
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+salesTable.columnList("")+` FROM sales WHERE receipt_id = ANY($1)`, ids)
	if err != nil {
		return fmt.Errorf("prefetch sales: %w", err)
	}
	defer rows.Close()
	found := map[int64]*Sale{}
	for rows.Next() {
		s := &Sale{}
		if err := rows.Scan(s.fields()...); err != nil {
			return fmt.Errorf("prefetch sales: %w", err)
		}
		found[s.ReceiptID] = s
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("prefetch sales: %w", err)
	}
	for _, id := range ids {
		p.cache.put(tx, id, found[id]) // nil: no sale yet
	}
	return nil
}

// insertItems inserts a receipt's items, one statement a row (a batch's
// rows are then written together, see compactWrites).
func insertItems(items []SaleItem) []stmt {
	out := make([]stmt, len(items))
	for i := range items {
		out[i] = stmt{sql: saleItemsTable.insertSQL(), args: valuesOf(items[i].fields())}
	}
	return out
}

// compact writes a batch like compactWrites, with the daily totals summed
// per shop, day and currency and written last: they are additions to
// rows nothing else in the batch reads or writes.
func (*Sales) compact(stmts []stmt) ([]stmt, error) {
	var rest []stmt
	sums := map[string][]any{}
	var order []string
	for _, s := range stmts {
		if s.sql != dailyUpsertSQL {
			rest = append(rest, s)
			continue
		}
		var kb strings.Builder
		for _, v := range s.args[:3] {
			if err := appendLiteral(&kb, v); err != nil {
				return nil, err
			}
			kb.WriteByte(0)
		}
		k := kb.String()
		acc, ok := sums[k]
		if !ok {
			sums[k] = append([]any(nil), s.args...)
			order = append(order, k)
			continue
		}
		for i := 3; i < len(acc); i++ {
			a, aok := acc[i].(int64)
			b, bok := s.args[i].(int64)
			if !aok || !bok {
				return nil, fmt.Errorf("daily sales delta %d is %T, want int64", i, s.args[i])
			}
			acc[i] = a + b
		}
	}
	out, err := compactWrites(rest)
	if err != nil {
		return nil, err
	}
	for _, k := range order {
		out = append(out, stmt{sql: dailyUpsertSQL, args: sums[k]})
	}
	return out, nil
}

type salesRebuild struct {
	sales map[int64]*Sale
	daily map[dayKey]*DailySales
}

func (*Sales) newRebuild() rebuild {
	return &salesRebuild{sales: map[int64]*Sale{}, daily: map[dayKey]*DailySales{}}
}

func (r *salesRebuild) apply(rec events.Record, _ emitFunc) error {
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
			row = &DailySales{ShopID: d.key.shopID, Day: d.key.day, Currency: d.key.currency}
			r.daily[d.key] = row
		}
		acc := dailyDelta{DailySales: *row}
		acc.add(d.DailySales, 1)
		*row = acc.DailySales
	}
	return nil
}

func (r *salesRebuild) finish(emit emitFunc) error {
	for _, s := range r.sales {
		if err := emit(salesTable.name, s.fields()); err != nil {
			return err
		}
		for i := range s.Items {
			if err := emit(saleItemsTable.name, s.Items[i].fields()); err != nil {
				return err
			}
		}
	}
	for _, d := range r.daily {
		if err := emit(salesDailyTable.name, d.fields()); err != nil {
			return err
		}
	}
	return nil
}

// SaleFilter narrows ListSales.
type SaleFilter struct {
	Scope Scope
	// ReceiptIDs keeps only these receipts.
	ReceiptIDs []int64
	Status     string
	// From and To bound Etsy's creation time, [From, To).
	From, To time.Time
	// Before is the last receipt id of the previous page: pages run from
	// the newest receipt down.
	Before int64
	Limit  int
	// IncludeUnrecorded also returns receipts known only from status facts.
	IncludeUnrecorded bool
}

// GetSale returns one receipt in scope with its items.
func (r *Reader) GetSale(ctx context.Context, scope Scope, receiptID int64) (Sale, error) {
	ss, err := r.ListSales(ctx, SaleFilter{Scope: scope, ReceiptIDs: []int64{receiptID}, Limit: 1, IncludeUnrecorded: true})
	if err != nil {
		return Sale{}, fmt.Errorf("get sale %d: %w", receiptID, err)
	}
	if len(ss) == 0 {
		return Sale{}, fmt.Errorf("get sale %d: %w", receiptID, ErrNotFound)
	}
	return ss[0], nil
}

// ListSales returns receipts in scope, newest receipt id first, with items.
func (r *Reader) ListSales(ctx context.Context, f SaleFilter) ([]Sale, error) {
	if f.Scope.empty() {
		return nil, nil
	}
	var b query
	f.Scope.where(&b, "shop_id")
	if len(f.ReceiptIDs) > 0 {
		b.cond("receipt_id = ANY($?)", f.ReceiptIDs)
	}
	if f.Status != "" {
		b.cond("status = $?", f.Status)
	}
	if !f.From.IsZero() {
		b.cond("created_at >= $?", f.From)
	}
	if !f.To.IsZero() {
		b.cond("created_at < $?", f.To)
	}
	if f.Before > 0 {
		b.cond("receipt_id < $?", f.Before)
	}
	if !f.IncludeUnrecorded {
		b.cond("recorded")
	}
	rows, err := r.q.QueryContext(ctx, `SELECT `+salesTable.columnList("")+` FROM sales`+b.whereSQL()+
		` ORDER BY receipt_id DESC LIMIT `+b.arg(clampLimit(f.Limit)), b.args...)
	if err != nil {
		return nil, fmt.Errorf("list sales: %w", err)
	}
	var out []Sale
	index := map[int64]int{}
	var ids []int64
	for rows.Next() {
		var s Sale
		if err := rows.Scan(s.fields()...); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list sales: %w", err)
		}
		s.normalise()
		s.Items = []SaleItem{}
		index[s.ReceiptID] = len(out)
		ids = append(ids, s.ReceiptID)
		out = append(out, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list sales: %w", err)
	}
	if len(ids) == 0 {
		return out, nil
	}
	irows, err := r.q.QueryContext(ctx, `SELECT `+saleItemsTable.columnList("")+` FROM sale_items
		WHERE receipt_id = ANY($1) ORDER BY receipt_id, line`, ids)
	if err != nil {
		return nil, fmt.Errorf("list sales: items: %w", err)
	}
	defer irows.Close()
	for irows.Next() {
		var it SaleItem
		if err := irows.Scan(it.fields()...); err != nil {
			return nil, fmt.Errorf("list sales: items: %w", err)
		}
		s := &out[index[it.ReceiptID]]
		s.Items = append(s.Items, it)
	}
	return out, irows.Err()
}

// DailyFilter narrows ListSalesDaily.
type DailyFilter struct {
	Scope Scope
	// From and To are UTC days, both included; zero means open.
	From, To time.Time
	Currency string
}

// ListSalesDaily returns day rows in scope ordered by shop, day and
// currency.
func (r *Reader) ListSalesDaily(ctx context.Context, f DailyFilter) ([]DailySales, error) {
	if f.Scope.empty() {
		return nil, nil
	}
	var b query
	f.Scope.where(&b, "shop_id")
	if !f.From.IsZero() {
		b.cond("day >= $?::date", f.From.UTC().Format(time.DateOnly))
	}
	if !f.To.IsZero() {
		b.cond("day <= $?::date", f.To.UTC().Format(time.DateOnly))
	}
	if f.Currency != "" {
		b.cond("currency = $?", f.Currency)
	}
	rows, err := r.q.QueryContext(ctx, `SELECT `+salesDailyTable.columnList("")+` FROM sales_daily`+b.whereSQL()+
		` ORDER BY shop_id, day, currency LIMIT 10000`, b.args...)
	if err != nil {
		return nil, fmt.Errorf("list daily sales: %w", err)
	}
	defer rows.Close()
	var out []DailySales
	for rows.Next() {
		var d DailySales
		if err := rows.Scan(d.fields()...); err != nil {
			return nil, fmt.Errorf("list daily sales: %w", err)
		}
		d.Day = time.Date(d.Day.Year(), d.Day.Month(), d.Day.Day(), 0, 0, 0, 0, time.UTC)
		out = append(out, d)
	}
	return out, rows.Err()
}
