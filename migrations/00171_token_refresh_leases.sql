-- +goose Up
-- Who is refreshing a shop's OAuth token right now, across processes. A
-- refresh takes the lease in a transaction of its own that commits before
-- it calls Etsy, so no transaction (and no row lock) stays open across
-- that call; the lease outlives a short database outage, so nobody else
-- spends the refresh token while its holder is still storing Etsy's
-- rotated one. A crashed holder's lease simply runs out.
CREATE TABLE shop_token_refresh_leases (
    shop_id  bigint      NOT NULL PRIMARY KEY,
    owner    uuid        NOT NULL,
    until    timestamptz NOT NULL
);

GRANT SELECT, INSERT, UPDATE, DELETE ON shop_token_refresh_leases TO shopledger_app;

-- +goose Down
DROP TABLE shop_token_refresh_leases;
