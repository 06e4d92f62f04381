-- +goose Up
-- Reconciliation's bookkeeping per shop: where the receipts walk may start
-- next time, when the shop was last looked at, and a lease so that only
-- one ingest process reconciles a shop at a time. The watermark moves only
-- in the transaction that appends reconciliation.completed, so a run that
-- dies midway leaves it where it was.
CREATE TABLE reconcile_state (
    shop_id               bigint      NOT NULL PRIMARY KEY,
    first_seen_at         timestamptz NOT NULL,
    -- receipts modified at or after watermark - overlap are fetched next;
    -- NULL means never: the lookback applies.
    receipts_watermark    timestamptz,
    catalogue_synced_at   timestamptz,
    last_started_at       timestamptz,
    last_finished_at      timestamptz,
    last_success_at       timestamptz,
    last_result           text        NOT NULL DEFAULT '',
    last_error            text        NOT NULL DEFAULT '',
    consecutive_failures  int         NOT NULL DEFAULT 0,
    -- A run holds the shop until lease_until (database time); a crashed
    -- process's lease simply runs out.
    lease_owner           uuid,
    lease_until           timestamptz
);

GRANT SELECT, INSERT, UPDATE, DELETE ON reconcile_state TO shopledger_app;

-- +goose Down
DROP TABLE reconcile_state;
