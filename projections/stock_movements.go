package projections

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/shopledger/shopledger/events"
)

// ReasonSale is the reason of a movement recorded by stock.sold.
const ReasonSale = "sale"

// Movement is one change of a variant's stock with the balance after it.
type Movement struct {
	ShopID     int64  `json:"shop_id"`
	ListingID  int64  `json:"listing_id"`
	VariantKey string `json:"variant_key"`
	// Seq numbers the variant's movements 1, 2, 3 … in log order.
	Seq     int64  `json:"seq"`
	Delta   int64  `json:"delta"`
	Balance int64  `json:"balance"`
	Reason  string `json:"reason"`
	// Cause is what made the movement, as recorded ("receipt:5",
	// "webhook:msg_1", "reconciliation", "actor:token:abc").
	Cause         string    `json:"cause,omitempty"`
	ReceiptID     *int64    `json:"receipt_id,omitempty"`
	TransactionID *int64    `json:"transaction_id,omitempty"`
	WebhookID     *string   `json:"webhook_id,omitempty"`
	Actor         *string   `json:"actor,omitempty"`
	EventID       uuid.UUID `json:"event_id"`
	Position      int64     `json:"position"`
	OccurredAt    time.Time `json:"occurred_at"`
	RecordedAt    time.Time `json:"recorded_at"`
}

var movementsTable = table{
	name: "stock_movements",
	columns: []string{"shop_id", "listing_id", "variant_key", "seq", "delta", "balance", "reason", "cause",
		"receipt_id", "transaction_id", "webhook_id", "actor", "event_id", "position", "occurred_at", "recorded_at"},
	key: []string{"listing_id", "variant_key", "seq"},
}

func (m *Movement) fields() []any {
	return []any{&m.ShopID, &m.ListingID, &m.VariantKey, &m.Seq, &m.Delta, &m.Balance, &m.Reason, &m.Cause,
		&m.ReceiptID, &m.TransactionID, &m.WebhookID, &m.Actor, &m.EventID, &m.Position, &m.OccurredAt, &m.RecordedAt}
}

type variantRef struct {
	listingID int64
	key       string
}

// balance is where a variant's history stands.
type balance struct {
	seq, quantity int64
}

// movementOf returns the movement an event records, without its place in
// the variant's history.
func movementOf(rec events.Record) (Movement, bool) {
	m := Movement{ShopID: rec.ShopID, EventID: rec.ID, Position: rec.Position, OccurredAt: rec.OccurredAt, RecordedAt: rec.RecordedAt}
	switch d := rec.Data.(type) {
	case events.StockSold:
		m.ListingID, m.VariantKey, m.Delta = d.ListingID, d.VariantKey, -d.Quantity
		m.Reason = ReasonSale
		m.Cause = "receipt:" + strconv.FormatInt(d.ReceiptID, 10)
		m.ReceiptID, m.TransactionID = int64Ptr(d.ReceiptID), int64Ptr(d.TransactionID)
	case events.StockAdjusted:
		m.ListingID, m.VariantKey, m.Delta = d.ListingID, d.VariantKey, d.Delta
		m.Reason, m.Cause = d.Reason, d.Cause
		kind, ref, _ := strings.Cut(d.Cause, ":")
		switch kind {
		case "webhook":
			m.WebhookID = &ref
		case "receipt":
			if id, err := strconv.ParseInt(ref, 10, 64); err == nil {
				m.ReceiptID = &id
			}
		case "actor":
			m.Actor = &ref
		}
	default:
		return Movement{}, false
	}
	if m.Actor == nil && rec.Metadata.Actor != "" {
		actor := rec.Metadata.Actor
		m.Actor = &actor
	}
	return m, true
}

// StockMovements maintains stock_movements: the history of every variant.
type StockMovements struct {
	cache txCache[variantRef, *balance]
}

// NewStockMovements returns the stock movements projection.
func NewStockMovements() *StockMovements { return &StockMovements{} }

// Name implements Projection.
func (*StockMovements) Name() string { return "stock_movements" }

// Tables implements Rebuildable.
func (*StockMovements) Tables() []string { return []string{movementsTable.name} }

// Handles implements Projection. stock.observed and stock.drift_detected
// inform but do not move stock: only facts with a reason do.
func (*StockMovements) Handles(typ string) bool {
	return typ == events.TypeStockSold || typ == events.TypeStockAdjusted
}

// Apply implements Projection.
func (p *StockMovements) Apply(ctx context.Context, tx *sql.Tx, rec events.Record) error {
	return applyPlan(ctx, p, tx, rec)
}

func (p *StockMovements) forget() { p.cache.reset() }

func (p *StockMovements) adopt(tx *sql.Tx) { p.cache.adopt(tx) }

func (p *StockMovements) plan(ctx context.Context, tx *sql.Tx, rec events.Record) ([]stmt, error) {
	m, ok := movementOf(rec)
	if !ok {
		return nil, nil
	}
	ref := variantRef{m.ListingID, m.VariantKey}
	b, ok := p.cache.get(tx, ref)
	if !ok {
		b = &balance{}
		err := tx.QueryRowContext(ctx, `SELECT seq, balance FROM stock_movements
			WHERE listing_id = $1 AND variant_key = $2 ORDER BY seq DESC LIMIT 1`, ref.listingID, ref.key).Scan(&b.seq, &b.quantity)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			p.cache.reset()
			return nil, fmt.Errorf("load balance of %d/%s: %w", ref.listingID, ref.key, err)
		}
	}
	next := *b
	next.seq++
	next.quantity += m.Delta
	m.Seq, m.Balance = next.seq, next.quantity
	p.cache.put(tx, ref, &next)
	return []stmt{{sql: movementsTable.insertSQL(), args: valuesOf(m.fields())}}, nil
}

func (p *StockMovements) prefetch(ctx context.Context, tx *sql.Tx, recs []events.Record) error {
	var listings []int64
	var keys []string
	seen := map[variantRef]bool{}
	for _, rec := range recs {
		m, ok := movementOf(rec)
		if !ok {
			continue
		}
		ref := variantRef{m.ListingID, m.VariantKey}
		if seen[ref] {
			continue
		}
		seen[ref] = true
		if _, cached := p.cache.get(tx, ref); !cached {
			listings, keys = append(listings, ref.listingID), append(keys, ref.key)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	rows, err := tx.QueryContext(ctx, `SELECT k.listing_id, k.variant_key, m.seq, m.balance
		FROM unnest($1::bigint[], $2::text[]) AS k(listing_id, variant_key)
		CROSS JOIN LATERAL (
			SELECT seq, balance FROM stock_movements
			WHERE listing_id = k.listing_id AND variant_key = k.variant_key ORDER BY seq DESC LIMIT 1
		) m`, listings, keys)
	if err != nil {
		return fmt.Errorf("prefetch balances: %w", err)
	}
	defer rows.Close()
	found := map[variantRef]*balance{}
	for rows.Next() {
		var ref variantRef
		b := &balance{}
		if err := rows.Scan(&ref.listingID, &ref.key, &b.seq, &b.quantity); err != nil {
			return fmt.Errorf("prefetch balances: %w", err)
		}
		found[ref] = b
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("prefetch balances: %w", err)
	}
	for i := range keys {
		ref := variantRef{listings[i], keys[i]}
		b := found[ref]
		if b == nil {
			b = &balance{} // no movement yet
		}
		p.cache.put(tx, ref, b)
	}
	return nil
}

type movementsRebuild struct {
	balances map[variantRef]*balance
}

func (*StockMovements) newRebuild() rebuild {
	return &movementsRebuild{balances: map[variantRef]*balance{}}
}

func (r *movementsRebuild) apply(rec events.Record, emit emitFunc) error {
	m, ok := movementOf(rec)
	if !ok {
		return nil
	}
	ref := variantRef{m.ListingID, m.VariantKey}
	b := r.balances[ref]
	if b == nil {
		b = &balance{}
		r.balances[ref] = b
	}
	b.seq++
	b.quantity += m.Delta
	m.Seq, m.Balance = b.seq, b.quantity
	return emit(movementsTable.name, m.fields())
}

func (*movementsRebuild) finish(emitFunc) error { return nil }

// MovementFilter narrows ListMovements.
type MovementFilter struct {
	Scope      Scope
	ListingID  int64
	VariantKey string // with ListingID: one variant's history
	ReceiptID  int64
	// From and To bound the business time, [From, To).
	From, To time.Time
	// After is the last position of the previous page.
	After int64
	Limit int
}

// ListMovements returns movements in scope in log order.
func (r *Reader) ListMovements(ctx context.Context, f MovementFilter) ([]Movement, error) {
	if f.Scope.empty() {
		return nil, nil
	}
	var b query
	f.Scope.where(&b, "shop_id")
	if f.ListingID != 0 {
		b.cond("listing_id = $?", f.ListingID)
		if f.VariantKey != "" {
			b.cond("variant_key = $?", f.VariantKey)
		}
	}
	if f.ReceiptID != 0 {
		b.cond("receipt_id = $?", f.ReceiptID)
	}
	if !f.From.IsZero() {
		b.cond("occurred_at >= $?", f.From)
	}
	if !f.To.IsZero() {
		b.cond("occurred_at < $?", f.To)
	}
	b.cond("position > $?", f.After)
	rows, err := r.q.QueryContext(ctx, `SELECT `+movementsTable.columnList("")+` FROM stock_movements`+b.whereSQL()+
		` ORDER BY position LIMIT `+b.arg(clampLimit(f.Limit)), b.args...)
	if err != nil {
		return nil, fmt.Errorf("list movements: %w", err)
	}
	defer rows.Close()
	var out []Movement
	for rows.Next() {
		var m Movement
		if err := rows.Scan(m.fields()...); err != nil {
			return nil, fmt.Errorf("list movements: %w", err)
		}
		m.OccurredAt, m.RecordedAt = utc(m.OccurredAt), utc(m.RecordedAt)
		out = append(out, m)
	}
	return out, rows.Err()
}

// StockLevel is a variant's balance at a point in business time.
type StockLevel struct {
	ShopID     int64  `json:"shop_id"`
	ListingID  int64  `json:"listing_id"`
	VariantKey string `json:"variant_key"`
	Quantity   int64  `json:"quantity"`
}

// StockAtFilter asks for balances at a time.
type StockAtFilter struct {
	Scope Scope
	// At is the business time; movements that occurred at or before it
	// count.
	At        time.Time
	ListingID int64
}

// StockAt returns each variant's balance at f.At, summing the movements
// that occurred by then, ordered by listing and key.
func (r *Reader) StockAt(ctx context.Context, f StockAtFilter) ([]StockLevel, error) {
	if f.Scope.empty() {
		return nil, nil
	}
	var b query
	f.Scope.where(&b, "shop_id")
	b.cond("occurred_at <= $?", f.At)
	if f.ListingID != 0 {
		b.cond("listing_id = $?", f.ListingID)
	}
	rows, err := r.q.QueryContext(ctx, `SELECT shop_id, listing_id, variant_key, sum(delta)::bigint FROM stock_movements`+
		b.whereSQL()+` GROUP BY shop_id, listing_id, variant_key ORDER BY listing_id, variant_key`, b.args...)
	if err != nil {
		return nil, fmt.Errorf("stock at %s: %w", f.At.Format(time.RFC3339), err)
	}
	defer rows.Close()
	var out []StockLevel
	for rows.Next() {
		var s StockLevel
		if err := rows.Scan(&s.ShopID, &s.ListingID, &s.VariantKey, &s.Quantity); err != nil {
			return nil, fmt.Errorf("stock at: %w", err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
