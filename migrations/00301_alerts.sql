-- +goose Up
-- Low-stock alerts (package alerts).
--
-- alerter_*: the alerter consumer group's own fold of the log (balances,
-- thresholds, armed state). It reads no other read model, so alerts keep
-- flowing while projections rebuild. Times named *_at here are business
-- times (occurred_at) so that decisions such as the cooldown are
-- deterministic.
CREATE TABLE alerter_shops (
    shop_id            bigint      NOT NULL PRIMARY KEY,
    name               text        NOT NULL DEFAULT '',
    -- NULL falls back to the configured default (5 unless set).
    default_threshold  bigint,
    -- [{kind, target}] from shop.settings_changed; no secrets.
    channels           jsonb       NOT NULL DEFAULT '[]'
);

CREATE TABLE alerter_listings (
    listing_id  bigint  NOT NULL PRIMARY KEY,
    shop_id     bigint  NOT NULL,
    title       text    NOT NULL DEFAULT '',
    url         text    NOT NULL DEFAULT '',
    -- NULL falls back to the shop default.
    threshold   bigint,
    deleted     boolean NOT NULL DEFAULT false
);
CREATE INDEX alerter_listings_shop_idx ON alerter_listings (shop_id);

CREATE TABLE alerter_variants (
    shop_id           bigint      NOT NULL,
    listing_id        bigint      NOT NULL,
    variant_key       text        NOT NULL,
    -- what a seller calls the variant ("Color: Blue", else its SKU).
    label             text        NOT NULL DEFAULT '',
    balance           bigint      NOT NULL DEFAULT 0,
    -- true once a movement was seen: a variant only described by a listing
    -- has no balance yet and is never judged low.
    tracked           boolean     NOT NULL DEFAULT false,
    -- NULL falls back to the listing's threshold.
    threshold         bigint,
    -- set while an alert is open (raised and not cleared): disarmed.
    open_alert_id     uuid,
    -- business time of the last raise that was delivered (not muted).
    last_notified_at  timestamptz,
    PRIMARY KEY (listing_id, variant_key)
);
CREATE INDEX alerter_variants_shop_idx ON alerter_variants (shop_id);

-- alert_channels: channels configured outside the log (a Slack incoming
-- webhook URL is itself a secret, so it never enters an event).
CREATE TABLE alert_channels (
    channel_id  uuid        NOT NULL PRIMARY KEY,
    shop_id     bigint      NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('email', 'webhook', 'slack')),
    target      text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (shop_id, kind, target)
);

-- alert_webhook_secrets: the Standard Webhooks signing secret of each shop's
-- alert webhooks ("whsec_…"). Never logged, never in an event.
CREATE TABLE alert_webhook_secrets (
    shop_id     bigint      NOT NULL PRIMARY KEY,
    secret      text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- alert_deliveries: the outbox. The alerter inserts one row per channel in
-- the transaction that appends alert.low_stock_raised; the dispatcher
-- works it with leases, retries with backoff and records every attempt.
-- Rows are operational state: a rebuild neither creates nor repeats them.
CREATE TABLE alert_deliveries (
    delivery_id      uuid        NOT NULL PRIMARY KEY,
    alert_id         uuid        NOT NULL,
    shop_id          bigint      NOT NULL,
    kind             text        NOT NULL CHECK (kind IN ('email', 'webhook', 'slack')),
    -- address or URL; empty when the channel lives in alert_channels
    -- (channel_id), whose target is read when sending.
    target           text        NOT NULL DEFAULT '',
    channel_id       uuid,
    -- what the seller is told, as known when the alert was raised.
    message          jsonb       NOT NULL,
    status           text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         int         NOT NULL DEFAULT 0,
    enqueued_at      timestamptz NOT NULL,
    -- NULL: due now.
    next_attempt_at  timestamptz,
    lease_until      timestamptz,
    last_attempt_at  timestamptz,
    last_error       text        NOT NULL DEFAULT '',
    finished_at      timestamptz
);
CREATE UNIQUE INDEX alert_deliveries_channel_idx
    ON alert_deliveries (alert_id, kind, target, coalesce(channel_id, '00000000-0000-0000-0000-000000000000'));
CREATE INDEX alert_deliveries_due_idx ON alert_deliveries (next_attempt_at NULLS FIRST) WHERE status = 'pending';
CREATE INDEX alert_deliveries_shop_idx ON alert_deliveries (shop_id, alert_id);

CREATE TABLE alert_delivery_attempts (
    delivery_id  uuid        NOT NULL,
    attempt      int         NOT NULL,
    shop_id      bigint      NOT NULL,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz NOT NULL,
    -- empty when the attempt delivered.
    error        text        NOT NULL DEFAULT '',
    PRIMARY KEY (delivery_id, attempt)
);

-- alerts: the read model of open and past alerts, a fold of
-- alert.low_stock_raised and alert.low_stock_cleared (rebuildable).
CREATE TABLE alerts (
    alert_id          uuid        NOT NULL PRIMARY KEY,
    shop_id           bigint      NOT NULL,
    listing_id        bigint      NOT NULL,
    variant_key       text        NOT NULL,
    status            text        NOT NULL CHECK (status IN ('open', 'cleared')),
    threshold         bigint      NOT NULL,
    quantity          bigint      NOT NULL, -- when raised
    muted             boolean     NOT NULL DEFAULT false,
    raised_at         timestamptz NOT NULL,
    raised_event_id   uuid        NOT NULL,
    cleared_at        timestamptz,
    cleared_quantity  bigint,
    cleared_threshold bigint,
    clear_reason      text        NOT NULL DEFAULT '',
    last_position     bigint      NOT NULL
);
CREATE INDEX alerts_shop_idx ON alerts (shop_id, raised_at DESC, alert_id DESC);
CREATE INDEX alerts_shop_open_idx ON alerts (shop_id, listing_id, variant_key) WHERE status = 'open';

GRANT SELECT, INSERT, UPDATE, DELETE ON alerter_shops, alerter_listings, alerter_variants,
    alert_channels, alert_webhook_secrets, alert_deliveries, alert_delivery_attempts, alerts TO shopledger_app;

-- +goose Down
DROP TABLE alerts;
DROP TABLE alert_delivery_attempts;
DROP TABLE alert_deliveries;
DROP TABLE alert_webhook_secrets;
DROP TABLE alert_channels;
DROP TABLE alerter_variants;
DROP TABLE alerter_listings;
DROP TABLE alerter_shops;
