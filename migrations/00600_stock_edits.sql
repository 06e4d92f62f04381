-- +goose Up
-- The outbox of stock edits. A seller's command is appended to the log as
-- stock.edit_requested and, in the same transaction, queued here; the
-- pusher in ingest claims a listing (one push per listing at a time, by
-- lease), writes to Etsy and records the outcome in the log, then marks
-- the rows. The log stays the record of what happened; this table is only
-- the work queue and the state a page shows while a push is pending.
CREATE TABLE stock_edit_outbox (
    command_id      uuid        NOT NULL PRIMARY KEY,
    shop_id         bigint      NOT NULL,
    listing_id      bigint      NOT NULL,
    variant_key     text        NOT NULL,
    kind            text        NOT NULL,
    actor           text        NOT NULL,
    request_id      text        NOT NULL,
    requested_at    timestamptz NOT NULL,
    -- queued: waiting for a push; pushed: Etsy took it; failed: refused
    -- for good.
    state           text        NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'pushed', 'failed')),
    attempts        int         NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    last_error      text        NOT NULL DEFAULT '',
    finished_at     timestamptz,
    UNIQUE (shop_id, request_id)
);
CREATE INDEX stock_edit_outbox_due_idx ON stock_edit_outbox (next_attempt_at) WHERE state = 'queued';
CREATE INDEX stock_edit_outbox_variant_idx ON stock_edit_outbox (listing_id, variant_key, requested_at);

CREATE TABLE stock_edit_leases (
    listing_id  bigint      NOT NULL PRIMARY KEY,
    owner       text        NOT NULL,
    lease_until timestamptz NOT NULL
);

-- +goose Down
DROP TABLE stock_edit_leases;
DROP TABLE stock_edit_outbox;
