package shops

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/internal/defaults"
	"github.com/shopledger/shopledger/telemetry"
)

var (
	// ErrNotConnected means the shop has no usable connection: never
	// connected, disconnected, or waiting for the seller to reconnect. It
	// is etsy.ErrShopNotConnected, so that the fetcher and reconciliation,
	// which know shops only as token sources, see it with errors.Is.
	ErrNotConnected = etsy.ErrShopNotConnected
	// ErrReauthRequired means Etsy refused the shop's refresh token; only
	// the seller connecting again repairs it. Errors carrying it also
	// carry ErrNotConnected.
	ErrReauthRequired = errors.New("shop must be connected again")
	// ErrUnknownShop means the ledger has never connected the shop.
	ErrUnknownShop = errors.New("unknown shop")
	// ErrGrantMismatch means Etsy's answers during a connect do not
	// belong together (token, user and shop of different people).
	ErrGrantMismatch = errors.New("etsy grant does not match the shop")
)

// Status is a shop connection's state.
type Status string

// Connection states.
const (
	StatusConnected      Status = "connected"
	StatusReauthRequired Status = "reauth_required"
	StatusDisconnected   Status = "disconnected"
)

// Refresher trades a refresh token for a new grant; etsy.OAuthConfig is
// one.
type Refresher interface {
	Refresh(ctx context.Context, refreshToken string) (etsy.Token, error)
}

// Config configures a Store.
type Config struct {
	DB     *sql.DB
	Events *eventstore.Store
	// Keys encrypt and decrypt tokens. Without them the store can still
	// list and disconnect shops; anything touching a token fails with
	// ErrKeyring.
	Keys *Keyring
	// OAuth refreshes tokens. Without it, token sources fail once the
	// stored access token expires.
	OAuth  Refresher
	Logger *slog.Logger
	// Now judges token expiry; default time.Now.
	Now func() time.Time
	// RefreshSkew refreshes this long before the access token expires,
	// so no request leaves with a token about to die. Default 5 minutes.
	RefreshSkew time.Duration
	// RefreshTimeout bounds one call to Etsy's token endpoint. Default
	// 30 s.
	RefreshTimeout time.Duration
	// RefreshStoreWindow is how long storing the tokens Etsy rotated keeps
	// retrying (with backoff) when the database fails: Etsy has spent the
	// old refresh token by then, so giving up loses the grant and the
	// shop must be connected again. Default 60 s, which outlasts a
	// failover.
	RefreshStoreWindow time.Duration
}

// Store keeps shop connections and their encrypted tokens.
type Store struct {
	db      *sql.DB
	es      *eventstore.Store
	keys    *Keyring
	oauth   Refresher
	log     *slog.Logger
	now     func() time.Time
	skew    time.Duration
	timeout time.Duration
	window  time.Duration

	mu     sync.Mutex
	tokens map[int64]*shopTokens

	refreshes *prometheus.CounterVec
}

// NewStore checks cfg and registers the store's metrics on reg (nil: not
// registered): shopledger_token_refreshes_total{result} and
// shopledger_shops{status}, the latter read from the database at scrape
// time so that every process reports the same numbers.
func NewStore(cfg Config, reg prometheus.Registerer) (*Store, error) {
	if cfg.DB == nil || cfg.Events == nil {
		return nil, errors.New("new shop store: database and event store are required")
	}
	s := &Store{
		db: cfg.DB, es: cfg.Events, keys: cfg.Keys, oauth: cfg.OAuth, log: cfg.Logger,
		now: cfg.Now, skew: cfg.RefreshSkew, timeout: cfg.RefreshTimeout, window: cfg.RefreshStoreWindow,
		tokens: make(map[int64]*shopTokens),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	defaults.Positive(&s.skew, 5*time.Minute)
	defaults.Positive(&s.timeout, 30*time.Second)
	defaults.Positive(&s.window, 60*time.Second)
	s.refreshes = telemetry.CounterVec("shopledger_token_refreshes_total",
		"Calls to Etsy's token endpoint to refresh a shop's token, by result (ok, invalid_grant, error, lost).", "result")
	for _, r := range []string{"ok", "invalid_grant", "error", "lost"} {
		s.refreshes.WithLabelValues(r) // so alerts see 0, not nothing
	}
	if err := telemetry.Register(reg, s.refreshes, &statusCollector{s: s}); err != nil {
		return nil, fmt.Errorf("new shop store: %w", err)
	}
	return s, nil
}

// Shop is one shop's connection as ingest knows it.
type Shop struct {
	ShopID          int64
	UserID          int64
	Name            string
	Currency        string
	Scopes          []string
	Status          Status
	StatusReason    string
	ConnectedAt     time.Time
	StatusChangedAt time.Time
	// TokenExpiresAt is the stored access token's expiry; zero when the
	// shop holds no credentials.
	TokenExpiresAt time.Time
	// KeyIDs are the keys the stored tokens are sealed with.
	KeyIDs []string
}

// Grant is what a completed authorization yields: the shop, and a token of
// its owner.
type Grant struct {
	Shop   etsy.Shop
	Token  etsy.Token
	Scopes []string
}

// Connect stores a shop's tokens and marks it connected, and appends
// shop.connected, all in one transaction. Connecting again (after
// reauth_required or a disconnect) replaces the tokens.
func (s *Store) Connect(ctx context.Context, g Grant, meta events.Metadata) (Shop, error) {
	if g.Shop.ShopID <= 0 || g.Token.UserID <= 0 || g.Shop.UserID != g.Token.UserID {
		return Shop{}, fmt.Errorf("connect shop %d: shop owner %d, token user %d: %w", g.Shop.ShopID, g.Shop.UserID, g.Token.UserID, ErrGrantMismatch)
	}
	now := s.now().UTC()
	shopID, userID := g.Shop.ShopID, g.Token.UserID
	acc, err := s.seal(colAccess, userID, shopID, g.Token.AccessToken)
	if err != nil {
		return Shop{}, fmt.Errorf("connect shop %d: %w", shopID, err)
	}
	ref, err := s.seal(colRefresh, userID, shopID, g.Token.RefreshToken)
	if err != nil {
		return Shop{}, fmt.Errorf("connect shop %d: %w", shopID, err)
	}
	st := s.state(shopID)
	if err := st.lock(ctx); err != nil {
		return Shop{}, fmt.Errorf("connect shop %d: %w", shopID, err)
	}
	defer st.unlock()

	tx, err := eventstore.BeginAppend(ctx, s.db)
	if err != nil {
		return Shop{}, fmt.Errorf("connect shop %d: begin: %w", shopID, err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	_, err = tx.ExecContext(ctx, `
INSERT INTO shop_connections (shop_id, user_id, shop_name, currency, scopes, status, status_reason, connected_at, status_changed_at)
VALUES ($1, $2, $3, $4, $5, 'connected', '', $6, $6)
ON CONFLICT (shop_id) DO UPDATE SET
    user_id = EXCLUDED.user_id, shop_name = EXCLUDED.shop_name, currency = EXCLUDED.currency,
    scopes = EXCLUDED.scopes, status = 'connected', status_reason = '',
    connected_at = EXCLUDED.connected_at, status_changed_at = EXCLUDED.status_changed_at`,
		shopID, userID, g.Shop.ShopName, g.Shop.CurrencyCode, strings.Join(g.Scopes, " "), now)
	if err != nil {
		return Shop{}, fmt.Errorf("connect shop %d: store connection: %w", shopID, err)
	}
	_, err = tx.ExecContext(ctx, `
INSERT INTO shop_credentials (shop_id, user_id, access_token_key, access_token, refresh_token_key, refresh_token, expires_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (shop_id) DO UPDATE SET
    user_id = EXCLUDED.user_id,
    access_token_key = EXCLUDED.access_token_key, access_token = EXCLUDED.access_token,
    refresh_token_key = EXCLUDED.refresh_token_key, refresh_token = EXCLUDED.refresh_token,
    expires_at = EXCLUDED.expires_at, generation = shop_credentials.generation + 1,
    updated_at = EXCLUDED.updated_at`,
		shopID, userID, acc.keyID, acc.sealed, ref.keyID, ref.sealed, g.Token.ExpiresAt.UTC(), now)
	if err != nil {
		return Shop{}, fmt.Errorf("connect shop %d: store credentials: %w", shopID, err)
	}
	ev := events.New(events.ShopStream(shopID), shopID, now, events.ShopConnected{
		ShopID: shopID, ShopName: g.Shop.ShopName, UserID: userID,
		Currency: g.Shop.CurrencyCode, Scopes: g.Scopes,
	}).WithMetadata(withSource(meta))
	if _, err := s.es.AppendIn(ctx, tx, events.ShopStream(shopID), eventstore.Any, ev); err != nil {
		return Shop{}, fmt.Errorf("connect shop %d: %w", shopID, err)
	}
	if err := tx.Commit(); err != nil {
		return Shop{}, fmt.Errorf("connect shop %d: commit: %w", shopID, err)
	}
	st.access, st.expires = g.Token.AccessToken, g.Token.ExpiresAt
	s.log.InfoContext(ctx, "shop connected", "shop_id", shopID, "user_id", userID, "shop_name", g.Shop.ShopName)
	return s.Get(ctx, shopID)
}

// Disconnect deletes a shop's credentials, marks it disconnected and
// appends shop.disconnected. Disconnecting a disconnected shop does
// nothing.
func (s *Store) Disconnect(ctx context.Context, shopID int64, reason string, meta events.Metadata) error {
	st := s.state(shopID)
	if err := st.lock(ctx); err != nil {
		return fmt.Errorf("disconnect shop %d: %w", shopID, err)
	}
	defer st.unlock()
	tx, err := eventstore.BeginAppend(ctx, s.db)
	if err != nil {
		return fmt.Errorf("disconnect shop %d: begin: %w", shopID, err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	var status Status
	err = tx.QueryRowContext(ctx, `SELECT status FROM shop_connections WHERE shop_id = $1 FOR UPDATE`, shopID).Scan(&status)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("disconnect shop %d: %w", shopID, ErrUnknownShop)
	}
	if err != nil {
		return fmt.Errorf("disconnect shop %d: %w", shopID, err)
	}
	if status == StatusDisconnected {
		return nil
	}
	now := s.now().UTC()
	if _, err := tx.ExecContext(ctx, `DELETE FROM shop_credentials WHERE shop_id = $1`, shopID); err != nil {
		return fmt.Errorf("disconnect shop %d: delete credentials: %w", shopID, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE shop_connections SET status = 'disconnected', status_reason = $2, status_changed_at = $3 WHERE shop_id = $1`, shopID, reason, now); err != nil {
		return fmt.Errorf("disconnect shop %d: %w", shopID, err)
	}
	ev := events.New(events.ShopStream(shopID), shopID, now, events.ShopDisconnected{ShopID: shopID, Reason: reason}).
		WithMetadata(withSource(meta))
	if _, err := s.es.AppendIn(ctx, tx, events.ShopStream(shopID), eventstore.Any, ev); err != nil {
		return fmt.Errorf("disconnect shop %d: %w", shopID, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("disconnect shop %d: commit: %w", shopID, err)
	}
	st.access, st.expires = "", time.Time{}
	s.log.InfoContext(ctx, "shop disconnected", "shop_id", shopID, "reason", reason)
	return nil
}

const shopColumns = `c.shop_id, c.user_id, c.shop_name, c.currency, c.scopes, c.status, c.status_reason,
    c.connected_at, c.status_changed_at, cr.expires_at, coalesce(cr.access_token_key, ''), coalesce(cr.refresh_token_key, '')`

const shopFrom = ` FROM shop_connections c LEFT JOIN shop_credentials cr ON cr.shop_id = c.shop_id`

func scanShop(row interface{ Scan(...any) error }) (Shop, error) {
	var sh Shop
	var scopes string
	var expires sql.NullTime
	var accKey, refKey string
	if err := row.Scan(&sh.ShopID, &sh.UserID, &sh.Name, &sh.Currency, &scopes, &sh.Status, &sh.StatusReason,
		&sh.ConnectedAt, &sh.StatusChangedAt, &expires, &accKey, &refKey); err != nil {
		return Shop{}, err
	}
	sh.Scopes = strings.Fields(scopes)
	sh.ConnectedAt = sh.ConnectedAt.UTC()
	sh.StatusChangedAt = sh.StatusChangedAt.UTC()
	if expires.Valid {
		sh.TokenExpiresAt = expires.Time.UTC()
	}
	for _, k := range []string{accKey, refKey} {
		if k != "" && (len(sh.KeyIDs) == 0 || sh.KeyIDs[len(sh.KeyIDs)-1] != k) {
			sh.KeyIDs = append(sh.KeyIDs, k)
		}
	}
	return sh, nil
}

// Get returns one shop's connection.
func (s *Store) Get(ctx context.Context, shopID int64) (Shop, error) {
	sh, err := scanShop(s.db.QueryRowContext(ctx, `SELECT `+shopColumns+shopFrom+` WHERE c.shop_id = $1`, shopID))
	if errors.Is(err, sql.ErrNoRows) {
		return Shop{}, fmt.Errorf("get shop %d: %w", shopID, ErrUnknownShop)
	}
	if err != nil {
		return Shop{}, fmt.Errorf("get shop %d: %w", shopID, err)
	}
	return sh, nil
}

// List returns every shop ever connected, by shop id.
func (s *Store) List(ctx context.Context) ([]Shop, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+shopColumns+shopFrom+` ORDER BY c.shop_id`)
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
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list shops: %w", err)
	}
	return out, nil
}

// Connected returns the ids of the shops whose connection is usable.
func (s *Store) Connected(ctx context.Context) ([]int64, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT shop_id FROM shop_connections WHERE status = 'connected' ORDER BY shop_id`)
	if err != nil {
		return nil, fmt.Errorf("list connected shops: %w", err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("list connected shops: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

func withSource(m events.Metadata) events.Metadata {
	if m.Source == "" {
		m.Source = "shops"
	}
	return m
}

// Column names bound into each ciphertext's additional data.
const (
	colAccess   = "access_token"
	colRefresh  = "refresh_token"
	colVerifier = "oauth_pending.verifier"
)

type sealedValue struct {
	keyID  string
	sealed []byte
}

// tokenAAD binds a token ciphertext to its seller, shop and column: a
// ciphertext copied into another shop's row, another seller's grant or the
// other token column fails to open.
func tokenAAD(column string, userID, shopID int64) []byte {
	return fmt.Appendf(nil, "shopledger/shop_credentials/v1/%s/seller=%d/shop=%d", column, userID, shopID)
}

func (s *Store) seal(column string, userID, shopID int64, plaintext string) (sealedValue, error) {
	if s.keys == nil {
		return sealedValue{}, fmt.Errorf("encrypt %s: no token keys configured: %w", column, ErrKeyring)
	}
	id, b, err := s.keys.Seal([]byte(plaintext), tokenAAD(column, userID, shopID))
	if err != nil {
		return sealedValue{}, fmt.Errorf("encrypt %s: %w", column, err)
	}
	return sealedValue{keyID: id, sealed: b}, nil
}

func (s *Store) open(column string, userID, shopID int64, keyID string, sealed []byte) (string, error) {
	if s.keys == nil {
		return "", fmt.Errorf("decrypt %s: no token keys configured: %w", column, ErrKeyring)
	}
	b, err := s.keys.Open(keyID, sealed, tokenAAD(column, userID, shopID))
	if err != nil {
		return "", fmt.Errorf("decrypt %s: %w", column, err)
	}
	return string(b), nil
}

// statusCollector reports how many shops are in each connection state,
// read from the database at scrape time.
type statusCollector struct{ s *Store }

var shopsDesc = prometheus.NewDesc("shopledger_shops", "Shops by connection status (connected, reauth_required, disconnected).", []string{"status"}, nil)

func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) { ch <- shopsDesc }

func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	counts := map[Status]int{StatusConnected: 0, StatusReauthRequired: 0, StatusDisconnected: 0}
	rows, err := c.s.db.QueryContext(ctx, `SELECT status, count(*) FROM shop_connections GROUP BY status`)
	if err != nil {
		c.s.log.Warn("shops metric: query failed", "err", err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var st Status
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			c.s.log.Warn("shops metric: scan failed", "err", err)
			return
		}
		counts[st] = n
	}
	for st, n := range counts {
		ch <- prometheus.MustNewConstMetric(shopsDesc, prometheus.GaugeValue, float64(n), string(st))
	}
}
