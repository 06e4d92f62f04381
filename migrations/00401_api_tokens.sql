-- +goose Up
-- API tokens of the query service. Only the SHA-256 of a token is stored: the
-- token itself is shown once, when it is created, and cannot be recovered.
CREATE TABLE api_tokens (
    id          uuid        NOT NULL PRIMARY KEY,
    token_hash  bytea       NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    -- The first characters of the token, so an operator can tell tokens
    -- apart in a listing without the secret part.
    prefix      text        NOT NULL,
    seller_id   bigint      NOT NULL CHECK (seller_id > 0),
    role        text        NOT NULL CHECK (role IN ('seller', 'auditor')),
    -- Empty means every shop of the seller, now and later.
    shop_ids    bigint[]    NOT NULL DEFAULT '{}',
    label       text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- NULL means the token does not expire.
    expires_at  timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX api_tokens_seller_idx ON api_tokens (seller_id, created_at);

GRANT SELECT, INSERT, UPDATE ON api_tokens TO shopledger_app;

-- +goose Down
DROP TABLE api_tokens;
