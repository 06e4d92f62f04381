-- +goose Up
-- Read models maintained by cmd/projector (package projections). Every row is
-- derived from the event log and can be rebuilt from it, so none of these
-- tables is a source of truth. Every table carries shop_id for tenancy
-- filtering. Times named *_at are business times from the log (occurred_at),
-- never the wall clock of the projector, so a rebuild gives the same rows.
-- There are no foreign keys between read models: each one is rebuilt and
-- swapped on its own.

-- shops: connection state, settings and last reconciliation of each shop.
CREATE TABLE shops (
    shop_id                       bigint      NOT NULL PRIMARY KEY,
    user_id                       bigint      NOT NULL DEFAULT 0, -- Etsy seller (user) id
    name                          text        NOT NULL DEFAULT '',
    currency                      text        NOT NULL DEFAULT '',
    scopes                        jsonb       NOT NULL DEFAULT '[]',
    -- unknown (seen before shop.connected), connected, disconnected, reauth_required
    connection_state              text        NOT NULL DEFAULT 'unknown',
    state_reason                  text        NOT NULL DEFAULT '',
    sync_enabled                  boolean     NOT NULL DEFAULT true,
    sync_interval_seconds         bigint      NOT NULL DEFAULT 900,
    default_low_stock_threshold   bigint      NOT NULL DEFAULT 5,
    alert_channels                jsonb       NOT NULL DEFAULT '[]',
    connected_at                  timestamptz,
    disconnected_at               timestamptz,
    last_reconciliation_started_at   timestamptz,
    last_reconciliation_finished_at  timestamptz,
    last_reconciliation_watermark    timestamptz,
    last_reconciliation_scope        text        NOT NULL DEFAULT '',
    last_reconciliation_receipts     bigint      NOT NULL DEFAULT 0,
    last_reconciliation_listings     bigint      NOT NULL DEFAULT 0,
    last_reconciliation_appended     bigint      NOT NULL DEFAULT 0,
    last_reconciliation_drift        bigint      NOT NULL DEFAULT 0,
    last_reconciliation_api_calls    bigint      NOT NULL DEFAULT 0,
    last_reconciliation_duration_ms  bigint      NOT NULL DEFAULT 0,
    updated_at                    timestamptz NOT NULL,
    last_position                 bigint      NOT NULL
);
CREATE INDEX shops_user_idx ON shops (user_id, shop_id);

-- products: one row per Etsy listing.
CREATE TABLE products (
    shop_id              bigint      NOT NULL,
    listing_id           bigint      NOT NULL PRIMARY KEY,
    title                text        NOT NULL DEFAULT '',
    state                text        NOT NULL DEFAULT '',
    url                  text        NOT NULL DEFAULT '',
    price_amount         bigint      NOT NULL DEFAULT 0,
    price_currency       text        NOT NULL DEFAULT '',
    -- listing-wide low-stock line; NULL falls back to the shop default.
    low_stock_threshold  bigint,
    deleted              boolean     NOT NULL DEFAULT false,
    etsy_updated_at      timestamptz,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL,
    last_position        bigint      NOT NULL
);
CREATE INDEX products_shop_idx ON products (shop_id, listing_id);

-- product_variants: one row per purchasable variant; its identity is the
-- ledger's variant key (SKU, else listing id plus sorted property values).
CREATE TABLE product_variants (
    shop_id              bigint      NOT NULL,
    listing_id           bigint      NOT NULL,
    variant_key          text        NOT NULL,
    sku                  text        NOT NULL DEFAULT '',
    product_id           bigint      NOT NULL DEFAULT 0,
    properties           text        NOT NULL DEFAULT '',
    price_amount         bigint      NOT NULL DEFAULT 0,
    price_currency       text        NOT NULL DEFAULT '',
    enabled              boolean     NOT NULL DEFAULT true,
    -- false when the listing's latest description no longer has the variant
    -- (or it was only ever seen in a stock movement).
    active               boolean     NOT NULL DEFAULT false,
    -- the ledger's balance: the sum of the variant's movements.
    quantity             bigint      NOT NULL DEFAULT 0,
    -- variant low-stock line; NULL falls back to listing, shop, then 5.
    low_stock_threshold  bigint,
    observed_quantity    bigint,
    observed_at          timestamptz,
    drift_expected       bigint,
    drift_observed       bigint,
    drift_at             timestamptz,
    last_movement_at     timestamptz,
    updated_at           timestamptz NOT NULL,
    last_position        bigint      NOT NULL,
    PRIMARY KEY (listing_id, variant_key)
);
CREATE INDEX product_variants_shop_idx ON product_variants (shop_id, listing_id, variant_key);
CREATE INDEX product_variants_sku_idx ON product_variants (shop_id, sku) WHERE sku <> '';

-- stock_movements: the history, one row per movement with its running
-- balance (in the log's commit order).
CREATE TABLE stock_movements (
    shop_id         bigint      NOT NULL,
    listing_id      bigint      NOT NULL,
    variant_key     text        NOT NULL,
    seq             bigint      NOT NULL, -- 1, 2, 3 … per variant
    delta           bigint      NOT NULL,
    balance         bigint      NOT NULL,
    reason          text        NOT NULL, -- sale, restock, etsy_change, correction, …
    cause           text        NOT NULL DEFAULT '',
    receipt_id      bigint,
    transaction_id  bigint,     -- Etsy's transaction (line item) id
    webhook_id      text,
    actor           text,
    event_id        uuid        NOT NULL,
    position        bigint      NOT NULL,
    occurred_at     timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL,
    PRIMARY KEY (listing_id, variant_key, seq),
    UNIQUE (event_id)
);
-- "stock of this shop at time T" and shop-wide history by business time.
CREATE INDEX stock_movements_shop_time_idx ON stock_movements (shop_id, occurred_at) INCLUDE (listing_id, variant_key, delta);
CREATE INDEX stock_movements_shop_position_idx ON stock_movements (shop_id, position);
CREATE INDEX stock_movements_receipt_idx ON stock_movements (receipt_id) WHERE receipt_id IS NOT NULL;

-- sales: one row per Etsy receipt, integer money in minor units.
CREATE TABLE sales (
    shop_id           bigint      NOT NULL,
    receipt_id        bigint      NOT NULL PRIMARY KEY,
    -- false while only status facts arrived before the receipt itself.
    recorded          boolean     NOT NULL DEFAULT false,
    status            text        NOT NULL DEFAULT '',
    currency          text        NOT NULL DEFAULT '',
    subtotal          bigint      NOT NULL DEFAULT 0,
    shipping          bigint      NOT NULL DEFAULT 0,
    tax               bigint      NOT NULL DEFAULT 0,
    discount          bigint      NOT NULL DEFAULT 0,
    grand_total       bigint      NOT NULL DEFAULT 0,
    refunded          bigint      NOT NULL DEFAULT 0,
    refund_keys       jsonb       NOT NULL DEFAULT '[]', -- Etsy refund keys already counted
    item_count        bigint      NOT NULL DEFAULT 0,
    units             bigint      NOT NULL DEFAULT 0,
    created_at        timestamptz,          -- Etsy's creation time
    etsy_updated_at   timestamptz,
    paid_at           timestamptz,
    shipped_at        timestamptz,
    carrier           text        NOT NULL DEFAULT '',
    tracking_code     text        NOT NULL DEFAULT '',
    delivered_at      timestamptz,
    canceled_at       timestamptz,
    cancel_reason     text        NOT NULL DEFAULT '',
    refunded_at       timestamptz,
    updated_at        timestamptz NOT NULL
);
CREATE INDEX sales_shop_receipt_idx ON sales (shop_id, receipt_id);
CREATE INDEX sales_shop_created_idx ON sales (shop_id, created_at);

-- sale_items: the line items of a receipt.
CREATE TABLE sale_items (
    shop_id            bigint  NOT NULL,
    receipt_id         bigint  NOT NULL,
    transaction_id     bigint  NOT NULL,
    line               int     NOT NULL,
    listing_id         bigint  NOT NULL,
    variant_key        text    NOT NULL,
    sku                text    NOT NULL DEFAULT '',
    title              text    NOT NULL DEFAULT '',
    quantity           bigint  NOT NULL,
    unit_price         bigint  NOT NULL,
    currency           text    NOT NULL,
    PRIMARY KEY (receipt_id, line)
);
CREATE INDEX sale_items_shop_variant_idx ON sale_items (shop_id, listing_id, variant_key);

-- sales_daily: per shop, UTC day of the receipt's creation and currency.
CREATE TABLE sales_daily (
    shop_id          bigint  NOT NULL,
    day              date    NOT NULL,
    currency         text    NOT NULL,
    orders           bigint  NOT NULL DEFAULT 0,
    units            bigint  NOT NULL DEFAULT 0,
    gross            bigint  NOT NULL DEFAULT 0,
    canceled_orders  bigint  NOT NULL DEFAULT 0,
    refunded         bigint  NOT NULL DEFAULT 0,
    PRIMARY KEY (shop_id, day, currency)
);

-- event_seal: a gap-free sequence over the log in commit order and a hash
-- chain, hash = sha256(prev_hash || canonical event). Auditors page the log
-- by seq; ledger verify recomputes the chain. Rows are only ever inserted.
CREATE TABLE event_seal (
    seq             bigint  NOT NULL PRIMARY KEY CHECK (seq > 0),
    position        bigint  NOT NULL UNIQUE,
    event_id        uuid    NOT NULL UNIQUE,
    transaction_id  xid8    NOT NULL,
    shop_id         bigint,
    hash            bytea   NOT NULL,
    prev_hash       bytea   NOT NULL
);
CREATE INDEX event_seal_shop_idx ON event_seal (shop_id, seq);

-- event_canonical is the text a seal hashes for the event sealed at seq: a
-- JSON array of every stored column in a fixed order, times as epoch
-- microseconds so that the text does not depend on the session time zone.
-- The sealer and ledger verify both use it, so they cannot disagree on the
-- encoding; an auditor can recompute a hash with psql alone.
-- +goose StatementBegin
CREATE FUNCTION event_canonical(seq bigint, e events) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_array(
        seq, e.position, e.transaction_id::text, e.event_id::text, e.stream_id, e.stream_version,
        e.type, e.schema_version, e.shop_id,
        (extract(epoch FROM e.occurred_at) * 1000000)::bigint,
        (extract(epoch FROM e.recorded_at) * 1000000)::bigint,
        e.dedupe_key, e.metadata, e.data)::text
$$;
-- +goose StatementEnd

CREATE TRIGGER event_seal_no_update_delete
    BEFORE UPDATE OR DELETE ON event_seal
    FOR EACH ROW EXECUTE FUNCTION events_reject_change();
CREATE TRIGGER event_seal_no_truncate
    BEFORE TRUNCATE ON event_seal
    FOR EACH STATEMENT EXECUTE FUNCTION events_reject_change();

-- projection_checkpoints: the last event each projection applied, written in
-- the same savepoint as that event's read-model rows. A redelivered event at
-- or before it is acknowledged without being applied again, whatever the
-- consumer group's offset says: the offset and the rows cannot disagree.
CREATE TABLE projection_checkpoints (
    projection      text    NOT NULL PRIMARY KEY,
    transaction_id  xid8    NOT NULL,
    position        bigint  NOT NULL
);

GRANT SELECT, INSERT, UPDATE, DELETE ON projection_checkpoints, shops, products, product_variants, stock_movements,
    sales, sale_items, sales_daily TO shopledger_app;
GRANT SELECT, INSERT ON event_seal TO shopledger_app;

-- +goose Down
DROP TABLE projection_checkpoints;
DROP TABLE event_seal;
DROP FUNCTION event_canonical(bigint, events);
DROP TABLE sales_daily;
DROP TABLE sale_items;
DROP TABLE sales;
DROP TABLE stock_movements;
DROP TABLE product_variants;
DROP TABLE products;
DROP TABLE shops;
