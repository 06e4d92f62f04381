package alerts

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
	"github.com/shopledger/shopledger/eventstore"
)

// ReadModelName is the consumer group of the alerts read model.
const ReadModelName = "alerts"

// ReadModel folds alert.low_stock_raised and alert.low_stock_cleared into
// the alerts table. It implements the projector's Projection. It has no
// side effects: deliveries are the Alerter's, so rebuilding it delivers
// nothing.
type ReadModel struct{}

// NewReadModel returns the alerts read model.
func NewReadModel() *ReadModel { return &ReadModel{} }

// Name implements the projector's Projection.
func (*ReadModel) Name() string { return ReadModelName }

// Handles implements the projector's Projection.
func (*ReadModel) Handles(eventType string) bool {
	return eventType == events.TypeAlertLowStockRaised || eventType == events.TypeAlertLowStockCleared
}

// Apply implements the projector's Projection.
func (*ReadModel) Apply(ctx context.Context, tx *sql.Tx, rec events.Record) error {
	if err := applyAlert(ctx, tx, rec); err != nil {
		return fmt.Errorf("alerts read model: apply %s %s: %w", rec.Type(), rec.ID, err)
	}
	return nil
}

func applyAlert(ctx context.Context, q eventstore.Queryer, rec events.Record) error {
	switch p := rec.Data.(type) {
	case events.LowStockRaised:
		_, err := q.ExecContext(ctx, `INSERT INTO alerts (alert_id, shop_id, listing_id, variant_key, status, threshold, quantity, muted, raised_at, raised_event_id, last_position)
			VALUES ($1, $2, $3, $4, 'open', $5, $6, $7, $8, $9, $10) ON CONFLICT (alert_id) DO NOTHING`,
			p.AlertID, p.ShopID, p.ListingID, p.VariantKey, p.Threshold, p.Quantity, p.Muted, rec.OccurredAt, rec.ID, rec.Position)
		return err
	case events.LowStockCleared:
		_, err := q.ExecContext(ctx, `UPDATE alerts SET status = 'cleared', cleared_at = $2, cleared_quantity = $3, cleared_threshold = $4,
				clear_reason = $5, last_position = $6
			WHERE alert_id = $1 AND status = 'open'`,
			p.AlertID, rec.OccurredAt, p.Quantity, p.Threshold, p.Reason, rec.Position)
		return err
	}
	return nil
}

// RebuildReadModel refolds the alerts table from the log in one
// transaction: it holds the read model's offset row (so the live consumer
// waits), empties the table and applies every alert event up to that
// offset with the same code as Apply. Readers see the old rows until the
// commit swaps in the new ones. Deliveries are untouched.
func RebuildReadModel(ctx context.Context, db *sql.DB) (int, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("rebuild alerts: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after commit this is a no-op
	var txid string
	var pos int64
	err = tx.QueryRowContext(ctx, `SELECT last_processed_transaction_id::text, coalesce(offset_acked, 0) FROM event_offsets
		WHERE consumer_group = $1 FOR UPDATE`, ReadModelName).Scan(&txid, &pos)
	noOffset := errors.Is(err, sql.ErrNoRows)
	if err != nil && !noOffset {
		return 0, fmt.Errorf("rebuild alerts: offset: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM alerts`); err != nil {
		return 0, fmt.Errorf("rebuild alerts: %w", err)
	}
	n := 0
	if !noOffset {
		through := eventstore.Cursor{Position: pos}
		if through.TransactionID, err = strconv.ParseUint(txid, 10, 64); err != nil {
			return 0, fmt.Errorf("rebuild alerts: offset transaction %q: %w", txid, err)
		}
		recs, err := eventstore.ReadTypeThrough(ctx, tx, through, events.TypeAlertLowStockRaised, events.TypeAlertLowStockCleared)
		if err != nil {
			return 0, fmt.Errorf("rebuild alerts: read log: %w", err)
		}
		for _, r := range recs {
			if err := applyAlert(ctx, tx, r); err != nil {
				return 0, fmt.Errorf("rebuild alerts: apply %s: %w", r.ID, err)
			}
		}
		n = len(recs)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("rebuild alerts: commit: %w", err)
	}
	return n, nil
}

// Alert statuses.
const (
	StatusOpen    = "open"
	StatusCleared = "cleared"
)

// Alert is one low-stock alert with its deliveries. These are the read
// model's rows, not a wire form: the HTTP API answers with httpapi.Alert.
type Alert struct {
	AlertID         uuid.UUID
	ShopID          int64
	ListingID       int64
	VariantKey      string
	Status          string
	Threshold       int64
	Quantity        int64
	Muted           bool
	RaisedAt        time.Time
	ClearedAt       *time.Time
	ClearedQuantity *int64
	ClearReason     string
	Deliveries      []Delivery
}

// Delivery statuses.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// Delivery is one alert's delivery to one channel.
type Delivery struct {
	DeliveryID uuid.UUID
	AlertID    uuid.UUID
	ShopID     int64
	Kind       string
	// Target is the address or URL; empty for a configured Slack channel,
	// whose URL is a secret (ChannelID names it).
	Target        string
	ChannelID     *uuid.UUID
	Status        string
	Attempts      int
	EnqueuedAt    time.Time
	NextAttemptAt *time.Time
	LastAttemptAt *time.Time
	LastError     string
	FinishedAt    *time.Time
	// History lists every attempt; Get fills it, List does not.
	History []Attempt
}

// Attempt is one try of a delivery.
type Attempt struct {
	Attempt    int
	StartedAt  time.Time
	FinishedAt time.Time
	// Error is empty when the attempt delivered.
	Error string
}

// Filter narrows List.
type Filter struct {
	// ShopID keeps one shop of the caller's; 0 keeps them all.
	ShopID     int64
	Status     string // "", StatusOpen or StatusCleared
	ListingID  int64
	VariantKey string
	// From and To bound raised_at: From <= raised_at < To; zero is open.
	From, To time.Time
	// After continues a listing after the last alert of a previous page.
	After *Cursor
	// Limit defaults to 100 and is capped at 1000.
	Limit int
}

// Cursor is a place in List's order (newest raise first).
type Cursor struct {
	RaisedAt time.Time `json:"raised_at"`
	AlertID  uuid.UUID `json:"alert_id"`
}

// CursorOf returns the cursor just after a.
func CursorOf(a Alert) Cursor { return Cursor{RaisedAt: a.RaisedAt, AlertID: a.AlertID} }

const alertColumns = `alert_id, shop_id, listing_id, variant_key, status, threshold, quantity, muted, raised_at, cleared_at, cleared_quantity, clear_reason`

func scanAlert(row interface{ Scan(...any) error }) (Alert, error) {
	var a Alert
	var cleared sql.NullTime
	var clearedQty sql.NullInt64
	if err := row.Scan(&a.AlertID, &a.ShopID, &a.ListingID, &a.VariantKey, &a.Status, &a.Threshold, &a.Quantity, &a.Muted,
		&a.RaisedAt, &cleared, &clearedQty, &a.ClearReason); err != nil {
		return a, err
	}
	a.RaisedAt = a.RaisedAt.UTC()
	a.ClearedAt = timePtr(cleared)
	if clearedQty.Valid {
		a.ClearedQuantity = &clearedQty.Int64
	}
	a.Deliveries = []Delivery{}
	return a, nil
}

func timePtr(t sql.NullTime) *time.Time {
	if !t.Valid {
		return nil
	}
	u := t.Time.UTC()
	return &u
}

// List returns alerts of shopIDs, newest raise first, each with its
// deliveries (without their attempt history). An empty shopIDs sees
// nothing.
func List(ctx context.Context, q eventstore.Queryer, shopIDs []int64, f Filter) ([]Alert, error) {
	if len(shopIDs) == 0 {
		return []Alert{}, nil
	}
	var conds []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	conds = append(conds, "shop_id = ANY("+arg(shopIDs)+")")
	if f.ShopID != 0 {
		conds = append(conds, "shop_id = "+arg(f.ShopID))
	}
	switch f.Status {
	case "":
	case StatusOpen, StatusCleared:
		conds = append(conds, "status = "+arg(f.Status))
	default:
		return nil, fmt.Errorf("list alerts: status %q is not open or cleared", f.Status)
	}
	if f.ListingID != 0 {
		conds = append(conds, "listing_id = "+arg(f.ListingID))
	}
	if f.VariantKey != "" {
		conds = append(conds, "variant_key = "+arg(f.VariantKey))
	}
	if !f.From.IsZero() {
		conds = append(conds, "raised_at >= "+arg(f.From.UTC()))
	}
	if !f.To.IsZero() {
		conds = append(conds, "raised_at < "+arg(f.To.UTC()))
	}
	if f.After != nil {
		conds = append(conds, "(raised_at, alert_id) < ("+arg(f.After.RaisedAt.UTC())+", "+arg(f.After.AlertID)+")")
	}
	limit := f.Limit
	switch {
	case limit <= 0:
		limit = 100
	case limit > 1000:
		limit = 1000
	}
	rows, err := q.QueryContext(ctx, `SELECT `+alertColumns+` FROM alerts WHERE `+strings.Join(conds, " AND ")+
		` ORDER BY raised_at DESC, alert_id DESC LIMIT `+arg(limit), args...)
	if err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	out := []Alert{}
	index := map[uuid.UUID]int{}
	var ids []uuid.UUID
	for rows.Next() {
		a, err := scanAlert(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("list alerts: %w", err)
		}
		index[a.AlertID] = len(out)
		ids = append(ids, a.AlertID)
		out = append(out, a)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	if len(ids) == 0 {
		return out, nil
	}
	ds, err := deliveries(ctx, q, shopIDs, ids...)
	if err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	for _, d := range ds {
		i := index[d.AlertID]
		out[i].Deliveries = append(out[i].Deliveries, d)
	}
	return out, nil
}

// Get returns one alert of shopIDs with its deliveries and their attempt
// history, or ErrNotFound.
func Get(ctx context.Context, q eventstore.Queryer, shopIDs []int64, alertID uuid.UUID) (Alert, error) {
	if len(shopIDs) == 0 {
		return Alert{}, fmt.Errorf("get alert %s: %w", alertID, ErrNotFound)
	}
	a, err := scanAlert(q.QueryRowContext(ctx, `SELECT `+alertColumns+` FROM alerts WHERE alert_id = $1 AND shop_id = ANY($2)`, alertID, shopIDs))
	if errors.Is(err, sql.ErrNoRows) {
		return Alert{}, fmt.Errorf("get alert %s: %w", alertID, ErrNotFound)
	}
	if err != nil {
		return Alert{}, fmt.Errorf("get alert %s: %w", alertID, err)
	}
	ds, err := deliveries(ctx, q, shopIDs, alertID)
	if err != nil {
		return Alert{}, fmt.Errorf("get alert %s: %w", alertID, err)
	}
	rows, err := q.QueryContext(ctx, `SELECT t.delivery_id, t.attempt, t.started_at, t.finished_at, t.error
		FROM alert_delivery_attempts t JOIN alert_deliveries d ON d.delivery_id = t.delivery_id
		WHERE d.alert_id = $1 AND t.shop_id = ANY($2) ORDER BY t.delivery_id, t.attempt`, alertID, shopIDs)
	if err != nil {
		return Alert{}, fmt.Errorf("get alert %s: attempts: %w", alertID, err)
	}
	defer rows.Close()
	history := map[uuid.UUID][]Attempt{}
	for rows.Next() {
		var id uuid.UUID
		var at Attempt
		if err := rows.Scan(&id, &at.Attempt, &at.StartedAt, &at.FinishedAt, &at.Error); err != nil {
			return Alert{}, fmt.Errorf("get alert %s: attempts: %w", alertID, err)
		}
		at.StartedAt, at.FinishedAt = at.StartedAt.UTC(), at.FinishedAt.UTC()
		history[id] = append(history[id], at)
	}
	if err := rows.Err(); err != nil {
		return Alert{}, fmt.Errorf("get alert %s: attempts: %w", alertID, err)
	}
	for i := range ds {
		ds[i].History = history[ds[i].DeliveryID]
	}
	a.Deliveries = ds
	return a, nil
}

func deliveries(ctx context.Context, q eventstore.Queryer, shopIDs []int64, alertIDs ...uuid.UUID) ([]Delivery, error) {
	ids := make([]string, len(alertIDs))
	for i, id := range alertIDs {
		ids[i] = id.String()
	}
	rows, err := q.QueryContext(ctx, `SELECT delivery_id, alert_id, shop_id, kind, target, channel_id, status, attempts, enqueued_at,
			next_attempt_at, last_attempt_at, last_error, finished_at
		FROM alert_deliveries WHERE alert_id = ANY($1::uuid[]) AND shop_id = ANY($2)
		ORDER BY alert_id, kind, target, delivery_id`, ids, shopIDs)
	if err != nil {
		return nil, fmt.Errorf("deliveries: %w", err)
	}
	defer rows.Close()
	out := []Delivery{}
	for rows.Next() {
		var d Delivery
		var ch uuid.NullUUID
		var next, last, finished sql.NullTime
		if err := rows.Scan(&d.DeliveryID, &d.AlertID, &d.ShopID, &d.Kind, &d.Target, &ch, &d.Status, &d.Attempts, &d.EnqueuedAt,
			&next, &last, &d.LastError, &finished); err != nil {
			return nil, fmt.Errorf("deliveries: %w", err)
		}
		if ch.Valid {
			d.ChannelID = &ch.UUID
		}
		d.EnqueuedAt = d.EnqueuedAt.UTC()
		d.NextAttemptAt, d.LastAttemptAt, d.FinishedAt = timePtr(next), timePtr(last), timePtr(finished)
		out = append(out, d)
	}
	return out, rows.Err()
}
