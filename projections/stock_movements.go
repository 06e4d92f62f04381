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
	"github.com/shopledger/shopledger/projections/engine"
)

// ReasonSale is the reason of a movement recorded by stock.sold.
const ReasonSale = "sale"

// movementRow is one change of a variant's stock with the balance after it.
type movementRow struct {
	ShopID     int64
	ListingID  int64
	VariantKey string
	// Seq numbers the variant's movements 1, 2, 3 … in log order.
	Seq     int64
	Delta   int64
	Balance int64
	Reason  string
	// Cause is what made the movement, as recorded ("receipt:5",
	// "webhook:msg_1", "reconciliation", "actor:token:abc").
	Cause         string
	ReceiptID     *int64
	TransactionID *int64
	WebhookID     *string
	Actor         *string
	EventID       uuid.UUID
	Position      int64
	OccurredAt    time.Time
	RecordedAt    time.Time
}

var movementsTable = engine.Table{
	Name: "stock_movements",
	Columns: []string{"shop_id", "listing_id", "variant_key", "seq", "delta", "balance", "reason", "cause",
		"receipt_id", "transaction_id", "webhook_id", "actor", "event_id", "position", "occurred_at", "recorded_at"},
	Key: []string{"listing_id", "variant_key", "seq"},
}

func init() { engine.RegisterTables(movementsTable) }

func (m *movementRow) fields() []any {
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
func movementOf(rec events.Record) (movementRow, bool) {
	m := movementRow{ShopID: rec.ShopID, EventID: rec.ID, Position: rec.Position, OccurredAt: rec.OccurredAt, RecordedAt: rec.RecordedAt}
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
		return movementRow{}, false
	}
	if m.Actor == nil && rec.Metadata.Actor != "" {
		actor := rec.Metadata.Actor
		m.Actor = &actor
	}
	return m, true
}

// StockMovements maintains stock_movements: the history of every variant.
type StockMovements struct {
	cache engine.TxCache[variantRef, *balance]
}

// NewStockMovements returns the stock movements projection.
func NewStockMovements() *StockMovements { return &StockMovements{} }

// Name implements engine.Projection.
func (*StockMovements) Name() string { return "stock_movements" }

// Tables implements engine.Rebuildable.
func (*StockMovements) Tables() []string { return []string{movementsTable.Name} }

// Handles implements engine.Projection. stock.observed and stock.drift_detected
// inform but do not move stock: only facts with a reason do.
func (*StockMovements) Handles(typ string) bool {
	return typ == events.TypeStockSold || typ == events.TypeStockAdjusted
}

// Apply implements engine.Projection.
func (p *StockMovements) Apply(ctx context.Context, tx *sql.Tx, rec events.Record) error {
	return engine.ApplyPlan(ctx, p, tx, rec)
}

// Forget implements engine.Planner.
func (p *StockMovements) Forget() { p.cache.Reset() }

// Adopt implements engine.Planner.
func (p *StockMovements) Adopt(tx *sql.Tx) { p.cache.Adopt(tx) }

// Plan implements engine.Planner.
func (p *StockMovements) Plan(ctx context.Context, tx *sql.Tx, rec events.Record) ([]engine.Stmt, error) {
	m, ok := movementOf(rec)
	if !ok {
		return nil, nil
	}
	ref := variantRef{m.ListingID, m.VariantKey}
	b, ok := p.cache.Get(tx, ref)
	if !ok {
		b = &balance{}
		err := tx.QueryRowContext(ctx, `SELECT seq, balance FROM stock_movements
			WHERE listing_id = $1 AND variant_key = $2 ORDER BY seq DESC LIMIT 1`, ref.listingID, ref.key).Scan(&b.seq, &b.quantity)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			p.cache.Reset()
			return nil, fmt.Errorf("load balance of %d/%s: %w", ref.listingID, ref.key, err)
		}
	}
	next := *b
	next.seq++
	next.quantity += m.Delta
	m.Seq, m.Balance = next.seq, next.quantity
	p.cache.Put(tx, ref, &next)
	return []engine.Stmt{movementsTable.Insert(m.fields())}, nil
}

// Prefetch implements engine.Prefetcher.
func (p *StockMovements) Prefetch(ctx context.Context, tx *sql.Tx, recs []events.Record) error {
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
		if _, cached := p.cache.Get(tx, ref); !cached {
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
		p.cache.Put(tx, ref, b)
	}
	return nil
}

type movementsRebuild struct {
	balances map[variantRef]*balance
}

// NewFold implements engine.Rebuildable.
func (*StockMovements) NewFold() engine.Fold {
	return &movementsRebuild{balances: map[variantRef]*balance{}}
}

func (r *movementsRebuild) Apply(rec events.Record, emit engine.EmitFunc) error {
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
	return emit(movementsTable.Name, m.fields())
}

func (*movementsRebuild) Finish(engine.EmitFunc) error { return nil }

// Readers.

// Movement is one change of a variant's stock with what caused it.
type Movement struct {
	Seq           int64     `json:"seq"`
	OccurredAt    time.Time `json:"occurred_at"`
	RecordedAt    time.Time `json:"recorded_at"`
	Delta         int64     `json:"delta"`
	Balance       int64     `json:"balance"`
	Reason        string    `json:"reason"`
	Cause         string    `json:"cause"`
	ReceiptID     *int64    `json:"receipt_id"`
	TransactionID *int64    `json:"transaction_id"`
	WebhookID     *string   `json:"webhook_id"`
	Actor         string    `json:"actor"`
	EventID       string    `json:"event_id"`
	// WebhookEventID is the webhook evidence the movement follows from,
	// when it came by webhook. It points into the event log, so only
	// auditors are shown it.
	WebhookEventID string `json:"-"`
}

// HistoryFilter selects one variant's movements.
type HistoryFilter struct {
	Shops      []int64
	ListingID  int64
	VariantKey string
	From, To   time.Time // business time, To exclusive
	AfterSeq   int64     // with Desc, the page continues below this seq
	Desc       bool
	Limit      int
	// WebhookEvidence asks for the webhook evidence event of each
	// movement that came by webhook (Movement.WebhookEventID): a link
	// into the log, which only callers who show the log need.
	WebhookEvidence bool
}

// VariantShop returns the shop of a variant among shops, or ErrNotFound.
// It is a key lookup, cheaper than anything that sums movements.
func (r *Reader) VariantShop(ctx context.Context, shops []int64, listingID int64, variantKey string) (int64, error) {
	var shop int64
	err := r.db.QueryRowContext(ctx, `SELECT shop_id FROM product_variants WHERE listing_id = $2 AND variant_key = $3 AND shop_id = ANY($1)`,
		shops, listingID, variantKey).Scan(&shop)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("variant %d/%s: %w", listingID, variantKey, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("variant %d/%s: %w", listingID, variantKey, err)
	}
	return shop, nil
}

// History pages one variant's movements by seq. A movement that came by
// webhook names the webhook: its own cause says so, or (for sales, whose
// cause is the receipt) its event's cause in the log is the webhook's
// evidence, which the event store looks up for the page's events only.
// Movements that name their own origin otherwise (reconciliation, a
// seller's edit or adjustment) never follow from a webhook, so they take
// no lookup; nor do webhook movements unless f.WebhookEvidence asks.
func (r *Reader) History(ctx context.Context, f HistoryFilter) ([]Movement, error) {
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
	rows, err := r.db.QueryContext(ctx, `
		SELECT seq, occurred_at, recorded_at, delta, balance, reason, cause, receipt_id, transaction_id, webhook_id,
		       coalesce(actor, ''), event_id
		FROM stock_movements
		WHERE `+w.sql()+`
		ORDER BY seq `+dir+`
		LIMIT `+w.arg(f.Limit), w.args...)
	if err != nil {
		return nil, fmt.Errorf("stock history: %w", err)
	}
	defer rows.Close()
	var out []Movement
	var ids, ask []uuid.UUID
	for rows.Next() {
		var m Movement
		var id uuid.UUID
		if err := rows.Scan(&m.Seq, &m.OccurredAt, &m.RecordedAt, &m.Delta, &m.Balance, &m.Reason, &m.Cause,
			&m.ReceiptID, &m.TransactionID, &m.WebhookID, &m.Actor, &id); err != nil {
			return nil, fmt.Errorf("stock history: %w", err)
		}
		m.OccurredAt, m.RecordedAt = utc(m.OccurredAt), utc(m.RecordedAt)
		m.EventID = id.String()
		ids = append(ids, id)
		if mayFollowWebhook(m.Cause, f.WebhookEvidence) {
			ask = append(ask, id)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("stock history: %w", err)
	}
	causes, err := r.log.WebhookCauses(ctx, ask)
	if err != nil {
		return nil, fmt.Errorf("stock history: %w", err)
	}
	for i := range out {
		m := &out[i]
		c, ok := causes[ids[i]]
		if ok {
			m.WebhookEventID = c.EventID.String()
			if m.WebhookID == nil {
				m.WebhookID = &c.WebhookID
			}
		}
		if m.WebhookID != nil && *m.WebhookID == "" {
			m.WebhookID = nil
		}
	}
	return out, nil
}

// mayFollowWebhook tells whether a movement with this cause can have a
// webhook's evidence as its cause in the log and the caller needs it
// looked up: a sale or a cancellation ("receipt:<id>") may have come by
// webhook or by reconciliation, and only the log knows which; a
// "webhook:<id>" movement names its webhook already, so its evidence
// event is looked up only when wanted.
func mayFollowWebhook(cause string, wantEvidence bool) bool {
	kind, _, _ := strings.Cut(cause, ":")
	switch kind {
	case "receipt":
		return true
	case "webhook":
		return wantEvidence
	}
	return false
}

// VariantStock is a variant's balance as of an instant.
type VariantStock struct {
	ListingID  int64  `json:"listing_id"`
	VariantKey string `json:"variant_key"`
	SKU        string `json:"sku"`
	Quantity   int64  `json:"quantity"`
	// Movements counts the movements at or before the instant.
	Movements      int64      `json:"movements"`
	LastMovementAt *time.Time `json:"last_movement_at"`
}

// VariantStockAt returns a variant's balance as of at: the sum of the
// movements whose business time is at or before it, which is what a
// replay of the log up to that instant gives.
func (r *Reader) VariantStockAt(ctx context.Context, shops []int64, listingID int64, variantKey string, at time.Time) (VariantStock, error) {
	st := VariantStock{ListingID: listingID, VariantKey: variantKey}
	err := r.db.QueryRowContext(ctx, `
		SELECT pv.sku, m.quantity, m.movements, m.last
		FROM product_variants pv
		CROSS JOIN LATERAL (
		    SELECT coalesce(sum(sm.delta), 0)::bigint AS quantity, count(*) AS movements, max(sm.occurred_at) AS last
		    FROM stock_movements sm
		    WHERE sm.listing_id = pv.listing_id AND sm.variant_key = pv.variant_key
		      AND sm.occurred_at <= $4
		) m
		WHERE pv.listing_id = $2 AND pv.variant_key = $3 AND pv.shop_id = ANY($1)`,
		shops, listingID, variantKey, at.UTC()).Scan(&st.SKU, &st.Quantity, &st.Movements, &st.LastMovementAt)
	if errors.Is(err, sql.ErrNoRows) {
		return st, fmt.Errorf("stock of %d/%s: %w", listingID, variantKey, ErrNotFound)
	}
	if err != nil {
		return st, fmt.Errorf("stock of %d/%s: %w", listingID, variantKey, err)
	}
	st.LastMovementAt = utcPtr(st.LastMovementAt)
	return st, nil
}

// ShopStockAt returns the balances of a shop's variants as of at, paged by
// (listing_id, variant_key) after the given key.
func (r *Reader) ShopStockAt(ctx context.Context, shops []int64, shopID int64, at time.Time, afterListing int64, afterKey string, limit int) ([]VariantStock, error) {
	return queryAll(ctx, r.db, fmt.Sprintf("stock of shop %d", shopID), func(rows rowScanner) (VariantStock, error) {
		var v VariantStock
		if err := rows.Scan(&v.ListingID, &v.VariantKey, &v.SKU, &v.Quantity, &v.Movements, &v.LastMovementAt); err != nil {
			return v, err
		}
		v.LastMovementAt = utcPtr(v.LastMovementAt)
		return v, nil
	}, `
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
}
