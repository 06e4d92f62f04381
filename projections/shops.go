package projections

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/shopledger/shopledger/domain"
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/projections/engine"
)

// Connection states of a shop.
const (
	ShopUnknown        = "unknown" // seen in the log before shop.connected
	ShopConnected      = "connected"
	ShopDisconnected   = "disconnected"
	ShopReauthRequired = "reauth_required"
)

// shopRow is a connected (or once connected) Etsy shop.
type shopRow struct {
	ShopID              int64
	UserID              int64 // Etsy seller id
	Name                string
	Currency            string
	Scopes              []string
	ConnectionState     string
	StateReason         string
	SyncEnabled         bool
	SyncIntervalSeconds int64
	// DefaultLowStockThreshold is the shop's own default line, nil until
	// the seller sets one (readers then apply the configured default).
	DefaultLowStockThreshold *int64
	AlertChannels            []events.AlertChannel
	ConnectedAt              *time.Time
	DisconnectedAt           *time.Time
	LastReconciliation       lastReconciliation
	UpdatedAt                time.Time
	LastPosition             int64
}

// lastReconciliation summarises a shop's last polling pass.
type lastReconciliation struct {
	StartedAt      *time.Time
	FinishedAt     *time.Time
	Watermark      *time.Time
	Scope          string
	ReceiptsSeen   int64
	ListingsSeen   int64
	EventsAppended int64
	DriftFound     int64
	APICalls       int64
	DurationMillis int64
}

var shopsTable = engine.Table{
	Name: "shops",
	Columns: []string{"shop_id", "user_id", "name", "currency", "scopes", "connection_state", "state_reason",
		"sync_enabled", "sync_interval_seconds", "default_low_stock_threshold", "alert_channels",
		"connected_at", "disconnected_at",
		"last_reconciliation_started_at", "last_reconciliation_finished_at", "last_reconciliation_watermark",
		"last_reconciliation_scope", "last_reconciliation_receipts", "last_reconciliation_listings",
		"last_reconciliation_appended", "last_reconciliation_drift", "last_reconciliation_api_calls",
		"last_reconciliation_duration_ms", "updated_at", "last_position"},
	Key: []string{"shop_id"},
}

func init() { engine.RegisterTables(shopsTable) }

func (s *shopRow) fields() []any {
	r := &s.LastReconciliation
	return []any{&s.ShopID, &s.UserID, &s.Name, &s.Currency, jsonOf(&s.Scopes), &s.ConnectionState, &s.StateReason,
		&s.SyncEnabled, &s.SyncIntervalSeconds, &s.DefaultLowStockThreshold, jsonOf(&s.AlertChannels),
		&s.ConnectedAt, &s.DisconnectedAt,
		&r.StartedAt, &r.FinishedAt, &r.Watermark, &r.Scope, &r.ReceiptsSeen, &r.ListingsSeen,
		&r.EventsAppended, &r.DriftFound, &r.APICalls, &r.DurationMillis, &s.UpdatedAt, &s.LastPosition}
}

func newShop(id int64) *shopRow {
	return &shopRow{
		ShopID:              id,
		Scopes:              []string{},
		ConnectionState:     ShopUnknown,
		SyncEnabled:         true,
		SyncIntervalSeconds: 900,
		AlertChannels:       []events.AlertChannel{},
	}
}

// shopOf returns the shop an event of the shops projection is about.
func shopOf(rec events.Record) (int64, bool) {
	switch d := rec.Data.(type) {
	case events.ShopConnected:
		return d.ShopID, true
	case events.ShopDisconnected:
		return d.ShopID, true
	case events.ShopSettingsChanged:
		return d.ShopID, true
	case events.ShopReauthRequired:
		return d.ShopID, true
	case events.ReconciliationCompleted:
		return d.ShopID, true
	case events.StockThresholdSet:
		if d.Scope == events.ScopeShop {
			return d.ShopID, true
		}
	case events.StockThresholdCleared:
		if d.Scope == events.ScopeShop {
			return d.ShopID, true
		}
	}
	return 0, false
}

// foldShop applies rec to s and reports whether the row changed.
func foldShop(s *shopRow, rec events.Record) bool {
	at := rec.OccurredAt
	switch d := rec.Data.(type) {
	case events.ShopConnected:
		s.UserID, s.Name = d.UserID, d.ShopName
		if d.Currency != "" {
			s.Currency = d.Currency
		}
		s.Scopes = append([]string{}, d.Scopes...)
		s.ConnectionState, s.StateReason = ShopConnected, ""
		s.ConnectedAt, s.DisconnectedAt = timePtr(at), nil
	case events.ShopDisconnected:
		s.ConnectionState, s.StateReason = ShopDisconnected, d.Reason
		s.DisconnectedAt = timePtr(at)
	case events.ShopReauthRequired:
		s.ConnectionState, s.StateReason = ShopReauthRequired, d.Reason
	case events.ShopSettingsChanged:
		if d.SyncEnabled != nil {
			s.SyncEnabled = *d.SyncEnabled
		}
		if d.SyncIntervalSeconds != nil {
			s.SyncIntervalSeconds = *d.SyncIntervalSeconds
		}
		if d.DefaultLowStockThreshold != nil {
			s.DefaultLowStockThreshold = int64Ptr(*d.DefaultLowStockThreshold)
		}
		if d.AlertChannels != nil {
			s.AlertChannels = append([]events.AlertChannel{}, d.AlertChannels...)
		}
	case events.ReconciliationCompleted:
		// The interval the scheduler polls the shop at: the shop's own
		// setting or, without one, the scheduler's default, which only
		// ingest knows.
		if d.IntervalSeconds > 0 {
			s.SyncIntervalSeconds = d.IntervalSeconds
		}
		s.LastReconciliation = lastReconciliation{
			StartedAt:      timePtr(d.StartedAt.UTC()),
			FinishedAt:     timePtr(d.FinishedAt.UTC()),
			Watermark:      timePtr(d.Watermark.UTC()),
			Scope:          d.Scope,
			ReceiptsSeen:   int64(d.ReceiptsSeen),
			ListingsSeen:   int64(d.ListingsSeen),
			EventsAppended: int64(d.EventsAppended),
			DriftFound:     int64(d.DriftFound),
			APICalls:       int64(d.APICalls),
			DurationMillis: d.DurationMillis,
		}
	case events.StockThresholdSet:
		s.DefaultLowStockThreshold = int64Ptr(d.Threshold)
	case events.StockThresholdCleared:
		s.DefaultLowStockThreshold = nil
	default:
		return false
	}
	s.UpdatedAt = at
	s.LastPosition = rec.Position
	return true
}

// Shops maintains the shops read model.
type Shops struct {
	cache engine.TxCache[int64, *shopRow]
}

// NewShops returns the shops projection.
func NewShops() *Shops { return &Shops{} }

// Name implements engine.Projection.
func (*Shops) Name() string { return "shops" }

// Tables implements engine.Rebuildable.
func (*Shops) Tables() []string { return []string{shopsTable.Name} }

// Handles implements engine.Projection.
func (*Shops) Handles(typ string) bool {
	switch typ {
	case events.TypeShopConnected, events.TypeShopDisconnected, events.TypeShopReauthRequired,
		events.TypeShopSettingsChanged, events.TypeReconciliationDone, events.TypeStockThresholdSet,
		events.TypeStockThresholdCleared:
		return true
	}
	return false
}

// Apply implements engine.Projection.
func (p *Shops) Apply(ctx context.Context, tx *sql.Tx, rec events.Record) error {
	return engine.ApplyPlan(ctx, p, tx, rec)
}

// Forget implements engine.Planner.
func (p *Shops) Forget() { p.cache.Reset() }

// Adopt implements engine.Planner.
func (p *Shops) Adopt(tx *sql.Tx) { p.cache.Adopt(tx) }

// Plan implements engine.Planner.
func (p *Shops) Plan(ctx context.Context, tx *sql.Tx, rec events.Record) ([]engine.Stmt, error) {
	id, ok := shopOf(rec)
	if !ok {
		return nil, nil
	}
	s, ok := p.cache.Get(tx, id)
	if !ok {
		var err error
		s, err = loadShop(ctx, tx, id)
		if errors.Is(err, ErrNotFound) {
			s, err = newShop(id), nil
		}
		if err != nil {
			p.cache.Reset()
			return nil, err
		}
	}
	if !foldShop(s, rec) {
		return nil, nil
	}
	p.cache.Put(tx, id, s)
	return []engine.Stmt{shopsTable.Upsert(s.fields())}, nil
}

func loadShop(ctx context.Context, q Queryer, id int64) (*shopRow, error) {
	s := &shopRow{}
	err := q.QueryRowContext(ctx, `SELECT `+shopsTable.ColumnList("")+` FROM shops WHERE shop_id = $1`, id).Scan(s.fields()...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load shop %d: %w", id, err)
	}
	return s, nil
}

type shopsRebuild struct {
	shops map[int64]*shopRow
}

// NewFold implements engine.Rebuildable.
func (*Shops) NewFold() engine.Fold { return &shopsRebuild{shops: map[int64]*shopRow{}} }

func (r *shopsRebuild) Apply(rec events.Record, _ engine.EmitFunc) error {
	id, ok := shopOf(rec)
	if !ok {
		return nil
	}
	s := r.shops[id]
	if s == nil {
		s = newShop(id)
	}
	if foldShop(s, rec) {
		r.shops[id] = s
	}
	return nil
}

func (r *shopsRebuild) Finish(emit engine.EmitFunc) error {
	for _, s := range r.shops {
		if err := emit(shopsTable.Name, s.fields()); err != nil {
			return err
		}
	}
	return nil
}

// Readers.

// Shop is one of a seller's shops.
type Shop struct {
	ShopID              int64  `json:"shop_id"`
	Name                string `json:"name"`
	Currency            string `json:"currency"`
	ConnectionState     string `json:"connection_state"`
	StateReason         string `json:"state_reason"`
	SyncEnabled         bool   `json:"sync_enabled"`
	SyncIntervalSeconds int64  `json:"sync_interval_seconds"`
	// DefaultLowStockThreshold is the line of the shop's variants that
	// set none and whose listing sets none: the shop's own, else the
	// configured default.
	DefaultLowStockThreshold int64      `json:"default_low_stock_threshold"`
	ConnectedAt              *time.Time `json:"connected_at"`
	DisconnectedAt           *time.Time `json:"disconnected_at"`
	LastReconciledAt         *time.Time `json:"last_reconciled_at"`
	LastDriftFound           int64      `json:"last_drift_found"`
	UpdatedAt                time.Time  `json:"updated_at"`
}

const shopColumns = `shop_id, name, currency, connection_state, state_reason, sync_enabled, sync_interval_seconds,
	default_low_stock_threshold, connected_at, disconnected_at, last_reconciliation_finished_at, last_reconciliation_drift, updated_at`

func (r *Reader) scanShop(row rowScanner) (Shop, error) {
	var sh Shop
	var own *int64
	err := row.Scan(&sh.ShopID, &sh.Name, &sh.Currency, &sh.ConnectionState, &sh.StateReason, &sh.SyncEnabled, &sh.SyncIntervalSeconds,
		&own, &sh.ConnectedAt, &sh.DisconnectedAt, &sh.LastReconciledAt, &sh.LastDriftFound, &sh.UpdatedAt)
	sh.DefaultLowStockThreshold, _ = domain.Lines{Shop: own}.Resolve(r.cfg.DefaultThreshold)
	sh.ConnectedAt, sh.DisconnectedAt, sh.LastReconciledAt = utcPtr(sh.ConnectedAt), utcPtr(sh.DisconnectedAt), utcPtr(sh.LastReconciledAt)
	sh.UpdatedAt = utc(sh.UpdatedAt)
	return sh, err
}

// SellerShopIDs returns the shops of an Etsy seller (user id) that the
// shops read model knows.
func (r *Reader) SellerShopIDs(ctx context.Context, sellerID int64) ([]int64, error) {
	return queryAll(ctx, r.db, "shops of seller", func(rows rowScanner) (int64, error) {
		var id int64
		err := rows.Scan(&id)
		return id, err
	}, `SELECT shop_id FROM shops WHERE user_id = $1 ORDER BY shop_id`, sellerID)
}

// ListShops returns the shops in the set.
func (r *Reader) ListShops(ctx context.Context, shops []int64) ([]Shop, error) {
	return queryAll(ctx, r.db, "list shops", r.scanShop, `SELECT `+shopColumns+` FROM shops WHERE shop_id = ANY($1) ORDER BY shop_id`, shops)
}

// GetShop returns one shop of the set.
func (r *Reader) GetShop(ctx context.Context, shops []int64, shopID int64) (Shop, error) {
	sh, err := r.scanShop(r.db.QueryRowContext(ctx, `SELECT `+shopColumns+` FROM shops WHERE shop_id = $2 AND shop_id = ANY($1)`, shops, shopID))
	if errors.Is(err, sql.ErrNoRows) {
		return sh, fmt.Errorf("get shop %d: %w", shopID, ErrNotFound)
	}
	if err != nil {
		return sh, fmt.Errorf("get shop %d: %w", shopID, err)
	}
	return sh, nil
}
