-- +goose Up
-- "Sync now": an owner asks, from the shop's page, for a reconciliation
-- run before the shop's interval is up. Ingest's scheduler starts a run
-- for a shop whose request is newer than its last run's start, even with
-- polling off; the run's start then answers the request.
CREATE TABLE shop_sync_requests (
    shop_id       bigint      NOT NULL PRIMARY KEY,
    requested_at  timestamptz NOT NULL
);

-- +goose Down
DROP TABLE shop_sync_requests;
