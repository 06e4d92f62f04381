package alerts

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shopledger/shopledger/stdwebhooks"
)

// ErrChannelExists means the shop already has that channel.
var ErrChannelExists = errors.New("alert channel already configured")

// ErrInvalidChannel means a channel's kind or target is unusable.
var ErrInvalidChannel = errors.New("invalid alert channel")

// Channels is the configuration of alert channels that live outside the
// log (alert_channels) and of each shop's webhook signing secret
// (alert_webhook_secrets). Channels named in shop.settings_changed come
// from the log and are not managed here.
type Channels struct {
	db  *sql.DB
	box SecretBox
}

// NewChannels returns the channel configuration over db.
func NewChannels(db *sql.DB) *Channels { return &Channels{db: db} }

// SecretBox encrypts webhook signing secrets at rest; *shops.Keyring (the
// OAuth tokens' keys, SHOPLEDGER_TOKEN_KEYS) is one. Seal uses the current
// key and names it; Open takes the key that sealed.
type SecretBox interface {
	Seal(plaintext, aad []byte) (keyID string, sealed []byte, err error)
	Open(keyID string, sealed, aad []byte) ([]byte, error)
}

// WithSecretBox returns the configuration storing webhook secrets sealed
// by box. Without one they are stored as they are (a development setup
// without token keys); secrets stored before a box was configured still
// read, and are sealed on their next rotation.
func (c *Channels) WithSecretBox(box SecretBox) *Channels {
	return &Channels{db: c.db, box: box}
}

// sealedPrefix marks a stored secret sealed by a SecretBox:
// "sealed:<key id>:<base64 ciphertext>". A plain secret starts with
// "whsec_", so the two never collide.
const sealedPrefix = "sealed:"

// secretAAD binds a sealed secret to its shop: copied to another shop's
// row it does not open.
func secretAAD(shopID int64) []byte {
	return fmt.Appendf(nil, "alert_webhook_secrets|%d", shopID)
}

func (c *Channels) sealSecret(shopID int64, secret string) (string, error) {
	if c.box == nil {
		return secret, nil
	}
	id, sealed, err := c.box.Seal([]byte(secret), secretAAD(shopID))
	if err != nil {
		return "", err
	}
	return sealedPrefix + id + ":" + base64.StdEncoding.EncodeToString(sealed), nil
}

// newSecret makes a new signing secret for the shop and the form it is
// stored in (sealed when the channels have a key ring).
func (c *Channels) newSecret(shopID int64) (secret, stored string, err error) {
	if secret, err = stdwebhooks.NewSecret(); err != nil {
		return "", "", err
	}
	if stored, err = c.sealSecret(shopID, secret); err != nil {
		return "", "", err
	}
	return secret, stored, nil
}

func (c *Channels) openSecret(shopID int64, stored string) (string, error) {
	rest, ok := strings.CutPrefix(stored, sealedPrefix)
	if !ok {
		return stored, nil
	}
	if c.box == nil {
		return "", errors.New("the webhook secret is encrypted but no token keys are configured")
	}
	id, enc, _ := strings.Cut(rest, ":")
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return "", fmt.Errorf("webhook secret of shop %d is not sealed text", shopID)
	}
	plain, err := c.box.Open(id, raw, secretAAD(shopID))
	if err != nil {
		return "", err
	}
	return string(plain), nil
}

// ChannelConfig is one configured channel.
type ChannelConfig struct {
	ChannelID uuid.UUID `json:"channel_id"`
	ShopID    int64     `json:"shop_id"`
	Kind      string    `json:"kind"`
	// Target is the address or URL; a Slack URL is a secret and is
	// shown masked by List.
	Target    string    `json:"target"`
	CreatedAt time.Time `json:"created_at"`
}

// ValidateChannel checks a channel's kind and target.
func ValidateChannel(kind, target string) error {
	switch kind {
	case KindEmail:
		if _, err := mail.ParseAddress(target); err != nil {
			return fmt.Errorf("email %q: %w", target, ErrInvalidChannel)
		}
	case KindWebhook, KindSlack:
		if err := checkURL(target); err != nil {
			return fmt.Errorf("%s target is not an http(s) URL: %w", kind, ErrInvalidChannel)
		}
	default:
		return fmt.Errorf("kind %q is not email, webhook or slack: %w", kind, ErrInvalidChannel)
	}
	return nil
}

// Add configures a channel for a shop's alerts from now on.
func (c *Channels) Add(ctx context.Context, shopID int64, kind, target string) (ChannelConfig, error) {
	kind, target = strings.ToLower(strings.TrimSpace(kind)), strings.TrimSpace(target)
	if shopID <= 0 {
		return ChannelConfig{}, fmt.Errorf("add alert channel: shop id %d: %w", shopID, ErrInvalidChannel)
	}
	if err := ValidateChannel(kind, target); err != nil {
		return ChannelConfig{}, fmt.Errorf("add alert channel: %w", err)
	}
	ch := ChannelConfig{ChannelID: uuid.Must(uuid.NewV7()), ShopID: shopID, Kind: kind, Target: target}
	err := c.db.QueryRowContext(ctx, `INSERT INTO alert_channels (channel_id, shop_id, kind, target) VALUES ($1, $2, $3, $4) RETURNING created_at`,
		ch.ChannelID, shopID, kind, target).Scan(&ch.CreatedAt)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return ChannelConfig{}, fmt.Errorf("add alert channel: %w", ErrChannelExists)
	}
	if err != nil {
		return ChannelConfig{}, fmt.Errorf("add alert channel: %w", err)
	}
	ch.CreatedAt = ch.CreatedAt.UTC()
	return ch, nil
}

// Remove deletes a shop's channel; pending deliveries to it then fail.
func (c *Channels) Remove(ctx context.Context, shopID int64, channelID uuid.UUID) error {
	res, err := c.db.ExecContext(ctx, `DELETE FROM alert_channels WHERE channel_id = $1 AND shop_id = $2`, channelID, shopID)
	if err != nil {
		return fmt.Errorf("remove alert channel %s: %w", channelID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("remove alert channel %s: %w", channelID, ErrNotFound)
	}
	return nil
}

// List returns the configured channels of a shop (all shops when shopID
// is 0), Slack URLs masked.
func (c *Channels) List(ctx context.Context, shopID int64) ([]ChannelConfig, error) {
	rows, err := c.db.QueryContext(ctx, `SELECT channel_id, shop_id, kind, target, created_at FROM alert_channels
		WHERE $1 = 0 OR shop_id = $1 ORDER BY shop_id, created_at, channel_id`, shopID)
	if err != nil {
		return nil, fmt.Errorf("list alert channels: %w", err)
	}
	defer rows.Close()
	out := []ChannelConfig{}
	for rows.Next() {
		var ch ChannelConfig
		if err := rows.Scan(&ch.ChannelID, &ch.ShopID, &ch.Kind, &ch.Target, &ch.CreatedAt); err != nil {
			return nil, fmt.Errorf("list alert channels: %w", err)
		}
		ch.CreatedAt = ch.CreatedAt.UTC()
		if ch.Kind == KindSlack {
			ch.Target = maskURL(ch.Target)
		}
		out = append(out, ch)
	}
	return out, rows.Err()
}

// maskURL keeps scheme and host of a secret URL.
func maskURL(raw string) string {
	i := strings.Index(raw, "://")
	if i < 0 {
		return "…"
	}
	rest := raw[i+3:]
	if j := strings.IndexByte(rest, '/'); j >= 0 {
		rest = rest[:j]
	}
	return raw[:i+3] + rest + "/…"
}

// WebhookSecret returns the shop's signing secret, creating one the first
// time it is asked for. It implements SecretSource.
func (c *Channels) WebhookSecret(ctx context.Context, shopID int64) (string, error) {
	_, stored, err := c.newSecret(shopID)
	if err != nil {
		return "", fmt.Errorf("webhook secret of shop %d: %w", shopID, err)
	}
	// Insert-or-read in one statement, so two workers asking at once agree
	// on one secret. When the other's insert commits while this statement
	// runs, its snapshot sees neither row: the second try does.
	var secret string
	for try := 0; ; try++ {
		err = c.db.QueryRowContext(ctx, `WITH ins AS (
				INSERT INTO alert_webhook_secrets (shop_id, secret) VALUES ($1, $2) ON CONFLICT (shop_id) DO NOTHING RETURNING secret
			)
			SELECT secret FROM ins UNION ALL SELECT secret FROM alert_webhook_secrets WHERE shop_id = $1 LIMIT 1`, shopID, stored).Scan(&secret)
		if errors.Is(err, sql.ErrNoRows) && try == 0 {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("webhook secret of shop %d: %w", shopID, err)
		}
		if secret, err = c.openSecret(shopID, secret); err != nil {
			return "", fmt.Errorf("webhook secret of shop %d: %w", shopID, err)
		}
		return secret, nil
	}
}

// RotateWebhookSecret replaces the shop's signing secret and returns the
// new one. Deliveries signed from now on use it.
func (c *Channels) RotateWebhookSecret(ctx context.Context, shopID int64) (string, error) {
	fresh, stored, err := c.newSecret(shopID)
	if err != nil {
		return "", fmt.Errorf("rotate webhook secret of shop %d: %w", shopID, err)
	}
	if _, err := c.db.ExecContext(ctx, `INSERT INTO alert_webhook_secrets (shop_id, secret) VALUES ($1, $2)
		ON CONFLICT (shop_id) DO UPDATE SET secret = excluded.secret, created_at = now()`, shopID, stored); err != nil {
		return "", fmt.Errorf("rotate webhook secret of shop %d: %w", shopID, err)
	}
	return fresh, nil
}

// HasWebhookSecret reports whether the shop has a signing secret yet.
func (c *Channels) HasWebhookSecret(ctx context.Context, shopID int64) (bool, error) {
	var ok bool
	if err := c.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM alert_webhook_secrets WHERE shop_id = $1)`, shopID).Scan(&ok); err != nil {
		return false, fmt.Errorf("webhook secret of shop %d: %w", shopID, err)
	}
	return ok, nil
}

// SendTest queues a test alert for one of the shop's channels through the
// outbox, so that the dispatcher delivers it like any alert (signed, with
// retries, every attempt recorded). The message says it is a test. It
// returns the test's delivery id.
func (c *Channels) SendTest(ctx context.Context, shopID int64, channelID uuid.UUID, shopName string, now time.Time) (uuid.UUID, error) {
	var kind string
	err := c.db.QueryRowContext(ctx, `SELECT kind FROM alert_channels WHERE channel_id = $1 AND shop_id = $2`, channelID, shopID).Scan(&kind)
	if errors.Is(err, sql.ErrNoRows) {
		return uuid.Nil, fmt.Errorf("test alert channel %s: %w", channelID, ErrNotFound)
	}
	if err != nil {
		return uuid.Nil, fmt.Errorf("test alert channel %s: %w", channelID, err)
	}
	alertID := uuid.Must(uuid.NewV7())
	m := Message{AlertID: alertID.String(), ShopID: shopID, ShopName: shopName, ListingTitle: "Test alert from shopledger: nothing is low on stock",
		VariantKey: "test", VariantLabel: "test", RaisedAt: now.UTC(), Test: true}
	msg, err := json.Marshal(m)
	if err != nil {
		return uuid.Nil, err
	}
	id := uuid.Must(uuid.NewV7())
	if _, err := c.db.ExecContext(ctx, `INSERT INTO alert_deliveries (delivery_id, alert_id, shop_id, kind, target, channel_id, message, enqueued_at)
		VALUES ($1, $2, $3, $4, '', $5, $6, $7)`, id, alertID, shopID, kind, channelID, string(msg), now.UTC()); err != nil {
		return uuid.Nil, fmt.Errorf("test alert channel %s: %w", channelID, err)
	}
	return id, nil
}

// TestResult is the state of a channel's latest test alert.
type TestResult struct {
	Status     string
	Attempts   int
	EnqueuedAt time.Time
	FinishedAt *time.Time
}

// LastTests returns the latest test alert of each channel of the shops.
func (c *Channels) LastTests(ctx context.Context, shopIDs []int64) (map[uuid.UUID]TestResult, error) {
	rows, err := c.db.QueryContext(ctx, `SELECT DISTINCT ON (channel_id) channel_id, status, attempts, enqueued_at, finished_at
		FROM alert_deliveries WHERE shop_id = ANY($1) AND channel_id IS NOT NULL AND (message->>'test')::boolean
		ORDER BY channel_id, enqueued_at DESC`, shopIDs)
	if err != nil {
		return nil, fmt.Errorf("test alerts: %w", err)
	}
	defer rows.Close()
	out := map[uuid.UUID]TestResult{}
	for rows.Next() {
		var id uuid.UUID
		var r TestResult
		if err := rows.Scan(&id, &r.Status, &r.Attempts, &r.EnqueuedAt, &r.FinishedAt); err != nil {
			return nil, fmt.Errorf("test alerts: %w", err)
		}
		out[id] = r
	}
	return out, rows.Err()
}

// ResealSecrets seals every shop's webhook secret under the box's current
// key (and seals plain ones), so that an old key can be retired. It
// returns how many it rewrote.
func (c *Channels) ResealSecrets(ctx context.Context) (int, error) {
	if c.box == nil {
		return 0, errors.New("reseal webhook secrets: no token keys configured")
	}
	rows, err := c.db.QueryContext(ctx, `SELECT shop_id, secret FROM alert_webhook_secrets ORDER BY shop_id`)
	if err != nil {
		return 0, fmt.Errorf("reseal webhook secrets: %w", err)
	}
	type row struct {
		shop   int64
		stored string
	}
	all, err := scanAll(rows, func(r *row) error { return rows.Scan(&r.shop, &r.stored) })
	if err != nil {
		return 0, fmt.Errorf("reseal webhook secrets: %w", err)
	}
	n := 0
	for _, r := range all {
		plain, err := c.openSecret(r.shop, r.stored)
		if err != nil {
			return n, fmt.Errorf("reseal webhook secret of shop %d: %w", r.shop, err)
		}
		sealed, err := c.sealSecret(r.shop, plain)
		if err != nil {
			return n, fmt.Errorf("reseal webhook secret of shop %d: %w", r.shop, err)
		}
		// Only if unchanged meanwhile: a rotation in between wins.
		res, err := c.db.ExecContext(ctx, `UPDATE alert_webhook_secrets SET secret = $3 WHERE shop_id = $1 AND secret = $2`, r.shop, r.stored, sealed)
		if err != nil {
			return n, fmt.Errorf("reseal webhook secret of shop %d: %w", r.shop, err)
		}
		if k, _ := res.RowsAffected(); k > 0 {
			n++
		}
	}
	return n, nil
}

// scanAll reads every row with scan and closes rows, so that the caller
// may use the connection again while it works through them.
func scanAll[T any](rows *sql.Rows, scan func(*T) error) ([]T, error) {
	defer rows.Close()
	var all []T
	for rows.Next() {
		var v T
		if err := scan(&v); err != nil {
			return nil, err
		}
		all = append(all, v)
	}
	return all, rows.Err()
}
