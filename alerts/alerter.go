package alerts

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopledger/shopledger/domain"
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/telemetry"
)

// AlerterName is the alerter's consumer group. It never changes once
// events were applied under it.
const AlerterName = "alerter"

// idSpace namespaces the name-based ids the alerter derives (alert and
// delivery ids), so that the same trigger always yields the same id.
var idSpace = uuid.MustParse("6f1c1b0e-6a39-4f0e-9d55-7c3e0f4a2b11")

// AlerterConfig tunes the alerter.
type AlerterConfig struct {
	// DefaultThreshold applies where no variant, listing or shop threshold
	// was set (domain.Lines.Resolve); the query API and the CLI read the
	// same setting.
	DefaultThreshold int64
	// Cooldown mutes a raise that comes less than Cooldown after the last
	// delivered raise of the same variant, measured in the events'
	// business time so that a replay decides the same. Zero pages on
	// every crossing.
	Cooldown time.Duration
	// Now stamps outbox rows with the wall-clock time they were enqueued
	// (the delivery horizon and the oldest-undelivered gauge count from
	// it). Decisions never read it. Default time.Now.
	Now func() time.Time
}

// Alerter appends alert.low_stock_raised when a variant's balance crosses
// from above its threshold to at or below it, and alert.low_stock_cleared
// when it rises above again (or the threshold moves below it, or the
// listing is deleted). It implements the projector's Projection
// (Name, Handles, Apply) and must never be rebuilt by replaying into shadow
// tables: it writes the log.
type Alerter struct {
	store   *eventstore.Store
	cfg     AlerterConfig
	logger  *slog.Logger
	raised  *prometheus.CounterVec
	cleared *prometheus.CounterVec
}

// NewAlerter returns an alerter appending through store. Metrics are
// registered on reg when it is not nil.
func NewAlerter(store *eventstore.Store, cfg AlerterConfig, logger *slog.Logger, reg prometheus.Registerer) (*Alerter, error) {
	if cfg.DefaultThreshold < 0 {
		return nil, fmt.Errorf("new alerter: default threshold %d is negative", cfg.DefaultThreshold)
	}
	if cfg.Cooldown < 0 {
		return nil, fmt.Errorf("new alerter: cooldown %s is negative", cfg.Cooldown)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &Alerter{
		store:  store,
		cfg:    cfg,
		logger: logger,
		raised: telemetry.CounterVec("shopledger_alerts_raised_total",
			"Low-stock alerts raised by the alerter; muted=true were inside the cooldown and not delivered.", "muted"),
		cleared: telemetry.CounterVec("shopledger_alerts_cleared_total",
			"Low-stock alerts cleared by the alerter, by reason.", "reason"),
	}
	if err := telemetry.Register(reg, a.raised, a.cleared); err != nil {
		return nil, fmt.Errorf("new alerter: %w", err)
	}
	return a, nil
}

// Name implements the projector's Projection.
func (a *Alerter) Name() string { return AlerterName }

// Handles implements the projector's Projection.
func (a *Alerter) Handles(eventType string) bool {
	switch eventType {
	case events.TypeShopConnected, events.TypeShopSettingsChanged,
		events.TypeListingImported, events.TypeListingUpdated, events.TypeListingDeleted,
		events.TypeStockSold, events.TypeStockAdjusted, events.TypeStockThresholdSet, events.TypeStockThresholdCleared:
		return true
	}
	return false
}

// Apply folds one event into the alerter's tables through tx (the consumer
// group's transaction) and appends the alerts it decides in the same
// transaction, so that a decision and the offset commit together.
func (a *Alerter) Apply(ctx context.Context, tx *sql.Tx, rec events.Record) error {
	x := &applier{a: a, tx: tx, rec: rec}
	if err := x.apply(ctx); err != nil {
		return fmt.Errorf("alerter: apply %s %s: %w", rec.Type(), rec.ID, err)
	}
	// Counted once Apply succeeded; the projector commits or retries the
	// whole savepoint.
	a.raised.WithLabelValues("false").Add(float64(x.raised))
	a.raised.WithLabelValues("true").Add(float64(x.muted))
	for reason, n := range x.cleared {
		a.cleared.WithLabelValues(reason).Add(float64(n))
	}
	return nil
}

// Reset forgets the alerter's state and offset, so that it folds the log
// again from the start (after a changed default threshold, say). Replaying
// appends nothing that was already decided and so delivers nothing twice.
// Run it while the alerter is stopped.
func Reset(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("reset alerter: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after commit this is a no-op
	for _, q := range []string{
		`TRUNCATE alerter_shops, alerter_listings, alerter_variants`,
		`DELETE FROM event_offsets WHERE consumer_group = '` + AlerterName + `'`,
	} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("reset alerter: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("reset alerter: commit: %w", err)
	}
	return nil
}

// applier applies one record.
type applier struct {
	a   *Alerter
	tx  *sql.Tx
	rec events.Record

	raised, muted int
	cleared       map[string]int
}

func (x *applier) apply(ctx context.Context) error {
	switch p := x.rec.Data.(type) {
	case events.ShopConnected:
		_, err := x.tx.ExecContext(ctx, `INSERT INTO alerter_shops (shop_id, name) VALUES ($1, $2)
			ON CONFLICT (shop_id) DO UPDATE SET name = excluded.name`, p.ShopID, p.ShopName)
		return err
	case events.ShopSettingsChanged:
		return x.shopSettings(ctx, p)
	case events.ListingImported:
		return x.listing(ctx, p.ListingID, p.ShopID, p.Title, p.URL, p.Variants)
	case events.ListingUpdated:
		return x.listing(ctx, p.ListingID, p.ShopID, p.Title, p.URL, p.Variants)
	case events.ListingDeleted:
		shop, err := x.shopOf(ctx, p.ListingID)
		if err != nil {
			return err
		}
		if _, err := x.tx.ExecContext(ctx, `INSERT INTO alerter_listings (listing_id, shop_id, deleted) VALUES ($1, $2, true)
			ON CONFLICT (listing_id) DO UPDATE SET deleted = true`, p.ListingID, shop); err != nil {
			return err
		}
		return x.evaluate(ctx, `v.listing_id = $1`, []any{p.ListingID}, events.ClearedListingDeleted)
	case events.StockSold:
		return x.movement(ctx, p.ListingID, p.VariantKey, -p.Quantity)
	case events.StockAdjusted:
		return x.movement(ctx, p.ListingID, p.VariantKey, p.Delta)
	case events.StockThresholdSet:
		return x.threshold(ctx, p)
	case events.StockThresholdCleared:
		return x.thresholdCleared(ctx, p)
	}
	return nil
}

// shopOf returns the shop of a listing event: the envelope's, else the one
// the alerter learnt from the listing, else 0 (unknown).
func (x *applier) shopOf(ctx context.Context, listingID int64) (int64, error) {
	if x.rec.ShopID != 0 {
		return x.rec.ShopID, nil
	}
	var shop int64
	err := x.tx.QueryRowContext(ctx, `SELECT shop_id FROM alerter_listings WHERE listing_id = $1`, listingID).Scan(&shop)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return shop, err
}

func (x *applier) shopSettings(ctx context.Context, p events.ShopSettingsChanged) error {
	shop := p.ShopID
	if shop == 0 {
		shop = x.rec.ShopID
	}
	if _, err := x.tx.ExecContext(ctx, `INSERT INTO alerter_shops (shop_id) VALUES ($1) ON CONFLICT DO NOTHING`, shop); err != nil {
		return err
	}
	// A nil channel list means "unchanged": the event carries only the
	// settings that changed.
	if p.AlertChannels != nil {
		b, err := json.Marshal(p.AlertChannels)
		if err != nil {
			return err
		}
		if _, err := x.tx.ExecContext(ctx, `UPDATE alerter_shops SET channels = $2 WHERE shop_id = $1`, shop, string(b)); err != nil {
			return err
		}
	}
	if p.DefaultLowStockThreshold == nil {
		return nil
	}
	if *p.DefaultLowStockThreshold < 0 {
		x.a.logger.Warn("ignoring negative shop default threshold", "event_id", x.rec.ID, "shop_id", shop, "threshold", *p.DefaultLowStockThreshold)
		return nil
	}
	if _, err := x.tx.ExecContext(ctx, `UPDATE alerter_shops SET default_threshold = $2 WHERE shop_id = $1`, shop, *p.DefaultLowStockThreshold); err != nil {
		return err
	}
	return x.evaluate(ctx, `v.shop_id = $1`, []any{shop}, events.ClearedThresholdMoved)
}

func (x *applier) listing(ctx context.Context, listingID, shopID int64, title, url string, variants []events.Variant) error {
	if shopID == 0 {
		shopID = x.rec.ShopID
	}
	if _, err := x.tx.ExecContext(ctx, `INSERT INTO alerter_listings (listing_id, shop_id, title, url) VALUES ($1, $2, $3, $4)
		ON CONFLICT (listing_id) DO UPDATE SET shop_id = excluded.shop_id, title = excluded.title, url = excluded.url, deleted = false`,
		listingID, shopID, title, url); err != nil {
		return err
	}
	// Movements seen before the listing had no shop to go with.
	if _, err := x.tx.ExecContext(ctx, `UPDATE alerter_variants SET shop_id = $2 WHERE listing_id = $1 AND shop_id = 0`, listingID, shopID); err != nil {
		return err
	}
	for _, v := range variants {
		label := v.Properties
		if label == "" {
			label = v.SKU
		}
		if _, err := x.tx.ExecContext(ctx, `INSERT INTO alerter_variants (shop_id, listing_id, variant_key, label) VALUES ($1, $2, $3, $4)
			ON CONFLICT (listing_id, variant_key) DO UPDATE SET label = excluded.label, shop_id = excluded.shop_id`,
			shopID, listingID, v.Key, label); err != nil {
			return err
		}
	}
	return nil
}

func (x *applier) movement(ctx context.Context, listingID int64, key string, delta int64) error {
	shop, err := x.shopOf(ctx, listingID)
	if err != nil {
		return err
	}
	if _, err := x.tx.ExecContext(ctx, `INSERT INTO alerter_variants (shop_id, listing_id, variant_key, balance, tracked) VALUES ($1, $2, $3, $4, true)
		ON CONFLICT (listing_id, variant_key) DO UPDATE SET
			balance = alerter_variants.balance + excluded.balance,
			tracked = true,
			shop_id = CASE WHEN alerter_variants.shop_id = 0 THEN excluded.shop_id ELSE alerter_variants.shop_id END`,
		shop, listingID, key, delta); err != nil {
		return err
	}
	return x.evaluate(ctx, `v.listing_id = $1 AND v.variant_key = $2`, []any{listingID, key}, events.ClearedStockAbove)
}

func (x *applier) threshold(ctx context.Context, p events.StockThresholdSet) error {
	if p.Threshold < 0 {
		// A bad fact cannot be fixed by retrying it; skipping it keeps the
		// alerter going and the log says what was asked.
		x.a.logger.Warn("ignoring negative threshold", "event_id", x.rec.ID, "scope", p.Scope, "threshold", p.Threshold)
		return nil
	}
	shop := p.ShopID
	if shop == 0 {
		shop = x.rec.ShopID
	}
	switch p.Scope {
	case events.ScopeVariant:
		if _, err := x.tx.ExecContext(ctx, `INSERT INTO alerter_variants (shop_id, listing_id, variant_key, threshold) VALUES ($1, $2, $3, $4)
			ON CONFLICT (listing_id, variant_key) DO UPDATE SET threshold = excluded.threshold`,
			shop, p.ListingID, p.VariantKey, p.Threshold); err != nil {
			return err
		}
		return x.evaluate(ctx, `v.listing_id = $1 AND v.variant_key = $2`, []any{p.ListingID, p.VariantKey}, events.ClearedThresholdMoved)
	case events.ScopeListing:
		if _, err := x.tx.ExecContext(ctx, `INSERT INTO alerter_listings (listing_id, shop_id, threshold) VALUES ($1, $2, $3)
			ON CONFLICT (listing_id) DO UPDATE SET threshold = excluded.threshold`,
			p.ListingID, shop, p.Threshold); err != nil {
			return err
		}
		return x.evaluate(ctx, `v.listing_id = $1`, []any{p.ListingID}, events.ClearedThresholdMoved)
	case events.ScopeShop:
		if _, err := x.tx.ExecContext(ctx, `INSERT INTO alerter_shops (shop_id, default_threshold) VALUES ($1, $2)
			ON CONFLICT (shop_id) DO UPDATE SET default_threshold = excluded.default_threshold`,
			shop, p.Threshold); err != nil {
			return err
		}
		return x.evaluate(ctx, `v.shop_id = $1`, []any{shop}, events.ClearedThresholdMoved)
	}
	x.a.logger.Warn("ignoring threshold of unknown scope", "event_id", x.rec.ID, "scope", p.Scope)
	return nil
}

// thresholdCleared drops a line set before, so that the variants under it
// fall back to the next line up, and judges them again.
func (x *applier) thresholdCleared(ctx context.Context, p events.StockThresholdCleared) error {
	shop := p.ShopID
	if shop == 0 {
		shop = x.rec.ShopID
	}
	switch p.Scope {
	case events.ScopeVariant:
		if _, err := x.tx.ExecContext(ctx, `UPDATE alerter_variants SET threshold = NULL WHERE listing_id = $1 AND variant_key = $2`,
			p.ListingID, p.VariantKey); err != nil {
			return err
		}
		return x.evaluate(ctx, `v.listing_id = $1 AND v.variant_key = $2`, []any{p.ListingID, p.VariantKey}, events.ClearedThresholdMoved)
	case events.ScopeListing:
		if _, err := x.tx.ExecContext(ctx, `UPDATE alerter_listings SET threshold = NULL WHERE listing_id = $1`, p.ListingID); err != nil {
			return err
		}
		return x.evaluate(ctx, `v.listing_id = $1`, []any{p.ListingID}, events.ClearedThresholdMoved)
	case events.ScopeShop:
		if _, err := x.tx.ExecContext(ctx, `UPDATE alerter_shops SET default_threshold = NULL WHERE shop_id = $1`, shop); err != nil {
			return err
		}
		return x.evaluate(ctx, `v.shop_id = $1`, []any{shop}, events.ClearedThresholdMoved)
	}
	x.a.logger.Warn("ignoring cleared threshold of unknown scope", "event_id", x.rec.ID, "scope", p.Scope)
	return nil
}

// variant is one tracked variant with what deciding about it needs.
type variant struct {
	shopID, listingID        int64
	key, label               string
	balance                  int64
	own, listing, shop       *int64
	deleted                  bool
	open                     uuid.NullUUID
	lastNotified             sql.NullTime
	shopName, title, linkURL string
}

const variantQuery = `SELECT v.shop_id, v.listing_id, v.variant_key, v.label, v.balance, v.threshold, l.threshold, s.default_threshold,
	coalesce(l.deleted, false), v.open_alert_id, v.last_notified_at, coalesce(s.name, ''), coalesce(l.title, ''), coalesce(l.url, '')
FROM alerter_variants v
LEFT JOIN alerter_listings l ON l.listing_id = v.listing_id
LEFT JOIN alerter_shops s ON s.shop_id = v.shop_id
WHERE v.tracked AND `

// evaluate decides about every tracked variant matching cond: raise when
// at or below its threshold and armed, clear (with clearReason) when above
// it and raised.
func (x *applier) evaluate(ctx context.Context, cond string, args []any, clearReason string) error {
	rows, err := x.tx.QueryContext(ctx, variantQuery+cond+` ORDER BY v.listing_id, v.variant_key`, args...)
	if err != nil {
		return err
	}
	var vs []variant
	for rows.Next() {
		var v variant
		var own, listing, shop sql.NullInt64
		if err := rows.Scan(&v.shopID, &v.listingID, &v.key, &v.label, &v.balance, &own, &listing, &shop,
			&v.deleted, &v.open, &v.lastNotified, &v.shopName, &v.title, &v.linkURL); err != nil {
			rows.Close()
			return err
		}
		v.own, v.listing, v.shop = nullInt(own), nullInt(listing), nullInt(shop)
		vs = append(vs, v)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, v := range vs {
		threshold, _ := domain.Lines{Variant: v.own, Listing: v.listing, Shop: v.shop}.Resolve(x.a.cfg.DefaultThreshold)
		switch domain.LowStockCrossing(v.balance, threshold, v.open.Valid, v.deleted) {
		case domain.Raise:
			err = x.raise(ctx, v, threshold)
		case domain.ClearDeleted:
			err = x.clear(ctx, v, threshold, events.ClearedListingDeleted)
		case domain.Clear:
			err = x.clear(ctx, v, threshold, clearReason)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func nullInt(n sql.NullInt64) *int64 {
	if !n.Valid {
		return nil
	}
	return &n.Int64
}

func (x *applier) metadata() events.Metadata {
	corr := x.rec.Metadata.CorrelationID
	if corr == "" {
		corr = x.rec.ID.String()
	}
	return events.Metadata{CausationID: x.rec.ID.String(), CorrelationID: corr, Source: AlerterName}
}

// AlertStream is the stream of one alert's events.
func AlertStream(alertID uuid.UUID) string { return "alert-" + alertID.String() }

func (x *applier) raise(ctx context.Context, v variant, threshold int64) error {
	// The id comes from the triggering event and the variant, so replaying
	// that event finds the raise already stored under the same dedupe key.
	alertID := uuid.NewSHA1(idSpace, fmt.Appendf(nil, "raise|%s|%d|%s", x.rec.ID, v.listingID, v.key))
	at := x.rec.OccurredAt
	// A zero cooldown pages on every crossing, also one whose trigger is
	// older than the last page (a late fact); without the first test it
	// would be "less than 0 after" the page and muted.
	muted := x.a.cfg.Cooldown > 0 && v.lastNotified.Valid && at.Sub(v.lastNotified.Time) < x.a.cfg.Cooldown
	ev := events.New(AlertStream(alertID), v.shopID, at, events.LowStockRaised{
		AlertID: alertID.String(), ShopID: v.shopID, ListingID: v.listingID, VariantKey: v.key,
		Quantity: v.balance, Threshold: threshold, Muted: muted,
	}).WithDedupe("alert-raised:" + alertID.String()).WithMetadata(x.metadata())
	res, err := x.a.store.AppendIn(ctx, x.tx, ev.StreamID, eventstore.Any, ev)
	if err != nil {
		return err
	}
	notified := v.lastNotified
	if !muted {
		notified = sql.NullTime{Time: at, Valid: true}
	}
	if _, err := x.tx.ExecContext(ctx, `UPDATE alerter_variants SET open_alert_id = $3, last_notified_at = $4 WHERE listing_id = $1 AND variant_key = $2`,
		v.listingID, v.key, alertID, notified); err != nil {
		return err
	}
	if res.NewCount() == 0 {
		// Decided before (a replay): the outbox was filled then.
		return nil
	}
	if muted {
		x.muted++
		return nil
	}
	x.raised++
	return x.enqueue(ctx, Message{
		AlertID: alertID.String(), ShopID: v.shopID, ShopName: v.shopName,
		ListingID: v.listingID, ListingTitle: v.title, ListingURL: v.linkURL,
		VariantKey: v.key, VariantLabel: v.label,
		Quantity: v.balance, Threshold: threshold, RaisedAt: at,
	})
}

func (x *applier) clear(ctx context.Context, v variant, threshold int64, reason string) error {
	alertID := v.open.UUID
	ev := events.New(AlertStream(alertID), v.shopID, x.rec.OccurredAt, events.LowStockCleared{
		AlertID: alertID.String(), ShopID: v.shopID, ListingID: v.listingID, VariantKey: v.key,
		Quantity: v.balance, Threshold: threshold, Reason: reason,
	}).WithDedupe("alert-cleared:" + alertID.String()).WithMetadata(x.metadata())
	res, err := x.a.store.AppendIn(ctx, x.tx, ev.StreamID, eventstore.Any, ev)
	if err != nil {
		return err
	}
	if _, err := x.tx.ExecContext(ctx, `UPDATE alerter_variants SET open_alert_id = NULL WHERE listing_id = $1 AND variant_key = $2`,
		v.listingID, v.key); err != nil {
		return err
	}
	if res.NewCount() > 0 {
		if x.cleared == nil {
			x.cleared = map[string]int{}
		}
		x.cleared[reason]++
	}
	return nil
}

// channel is one place a shop's alert goes.
type channel struct {
	kind, target string
	id           uuid.NullUUID
}

// enqueue fills the outbox with one delivery per channel of the shop: the
// channels of shop.settings_changed and those configured in alert_channels.
func (x *applier) enqueue(ctx context.Context, m Message) error {
	var chans []channel
	seen := map[string]bool{}
	add := func(c channel, key string) {
		if !seen[key] {
			seen[key] = true
			chans = append(chans, c)
		}
	}
	var raw []byte
	err := x.tx.QueryRowContext(ctx, `SELECT channels FROM alerter_shops WHERE shop_id = $1`, m.ShopID).Scan(&raw)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	if len(raw) > 0 {
		var fromLog []events.AlertChannel
		if err := json.Unmarshal(raw, &fromLog); err != nil {
			return fmt.Errorf("shop %d channels: %w", m.ShopID, err)
		}
		for _, c := range fromLog {
			kind := strings.ToLower(strings.TrimSpace(c.Kind))
			if !validKind(kind) || strings.TrimSpace(c.Target) == "" {
				x.a.logger.Warn("skipping unusable alert channel", "shop_id", m.ShopID, "kind", c.Kind)
				continue
			}
			add(channel{kind: kind, target: strings.TrimSpace(c.Target)}, kind+"\x00"+strings.TrimSpace(c.Target))
		}
	}
	rows, err := x.tx.QueryContext(ctx, `SELECT channel_id, kind, target FROM alert_channels WHERE shop_id = $1 ORDER BY created_at, channel_id`, m.ShopID)
	if err != nil {
		return err
	}
	for rows.Next() {
		var id uuid.UUID
		var kind, target string
		if err := rows.Scan(&id, &kind, &target); err != nil {
			rows.Close()
			return err
		}
		c := channel{kind: kind, id: uuid.NullUUID{UUID: id, Valid: true}}
		if kind != KindSlack {
			// A Slack URL is a secret: the delivery names the channel
			// and the URL is read when sending.
			c.target = target
		}
		add(c, kind+"\x00"+target)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	msg, err := json.Marshal(m)
	if err != nil {
		return err
	}
	now := x.a.cfg.Now().UTC()
	for _, c := range chans {
		id := uuid.NewSHA1(idSpace, fmt.Appendf(nil, "delivery|%s|%s|%s|%s", m.AlertID, c.kind, c.target, c.id.UUID))
		if _, err := x.tx.ExecContext(ctx, `INSERT INTO alert_deliveries (delivery_id, alert_id, shop_id, kind, target, channel_id, message, enqueued_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING`,
			id, m.AlertID, m.ShopID, c.kind, c.target, c.id, string(msg), now); err != nil {
			return fmt.Errorf("enqueue delivery: %w", err)
		}
	}
	return nil
}

func validKind(k string) bool {
	return k == KindEmail || k == KindWebhook || k == KindSlack
}
