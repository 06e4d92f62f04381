package alerts

import (
	"context"
	"database/sql"
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
	db *sql.DB
}

// NewChannels returns the channel configuration over db.
func NewChannels(db *sql.DB) *Channels { return &Channels{db: db} }

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
	fresh, err := stdwebhooks.NewSecret()
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
			SELECT secret FROM ins UNION ALL SELECT secret FROM alert_webhook_secrets WHERE shop_id = $1 LIMIT 1`, shopID, fresh).Scan(&secret)
		if errors.Is(err, sql.ErrNoRows) && try == 0 {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("webhook secret of shop %d: %w", shopID, err)
		}
		return secret, nil
	}
}

// RotateWebhookSecret replaces the shop's signing secret and returns the
// new one. Deliveries signed from now on use it.
func (c *Channels) RotateWebhookSecret(ctx context.Context, shopID int64) (string, error) {
	fresh, err := stdwebhooks.NewSecret()
	if err != nil {
		return "", fmt.Errorf("rotate webhook secret of shop %d: %w", shopID, err)
	}
	if _, err := c.db.ExecContext(ctx, `INSERT INTO alert_webhook_secrets (shop_id, secret) VALUES ($1, $2)
		ON CONFLICT (shop_id) DO UPDATE SET secret = excluded.secret, created_at = now()`, shopID, fresh); err != nil {
		return "", fmt.Errorf("rotate webhook secret of shop %d: %w", shopID, err)
	}
	return fresh, nil
}
