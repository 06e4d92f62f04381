-- +goose Up
-- Ingest's own record of each shop's Etsy connection: mutable operational
-- state that the scheduler and the token source act on. The facts
-- (shop.connected, shop.disconnected, shop.reauth_required) go to the log;
-- the projector's shops table is the seller-facing view of them.
CREATE TABLE shop_connections (
    shop_id            bigint      NOT NULL PRIMARY KEY,
    user_id            bigint      NOT NULL,
    shop_name          text        NOT NULL DEFAULT '',
    currency           text        NOT NULL DEFAULT '',
    scopes             text        NOT NULL DEFAULT '', -- space-separated, as in OAuth
    status             text        NOT NULL CHECK (status IN ('connected', 'reauth_required', 'disconnected')),
    status_reason      text        NOT NULL DEFAULT '',
    connected_at       timestamptz NOT NULL,
    status_changed_at  timestamptz NOT NULL
);

-- OAuth tokens. Never in the log. Each token is AES-256-GCM ciphertext
-- (12-byte nonce || ciphertext || tag) next to the id of the key that
-- sealed it; the key itself lives only in SHOPLEDGER_TOKEN_KEYS. The
-- additional data binds each ciphertext to its seller, shop and column.
-- generation counts writes so a conditional update can tell whether
-- another process refreshed first.
CREATE TABLE shop_credentials (
    shop_id            bigint      NOT NULL PRIMARY KEY REFERENCES shop_connections (shop_id) ON DELETE CASCADE,
    user_id            bigint      NOT NULL,
    access_token_key   text        NOT NULL,
    access_token       bytea       NOT NULL,
    refresh_token_key  text        NOT NULL,
    refresh_token      bytea       NOT NULL,
    expires_at         timestamptz NOT NULL,
    generation         bigint      NOT NULL DEFAULT 1,
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- Pending OAuth authorizations. The state is stored only as a SHA-256 hash
-- (a database reader cannot complete someone's flow) and the PKCE verifier
-- encrypted like a token. Taking a row deletes it: single use.
CREATE TABLE oauth_pending (
    state_hash    bytea       NOT NULL PRIMARY KEY,
    verifier_key  text        NOT NULL,
    verifier      bytea       NOT NULL,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL
);
CREATE INDEX oauth_pending_expires_idx ON oauth_pending (expires_at);

GRANT SELECT, INSERT, UPDATE, DELETE ON shop_connections, shop_credentials, oauth_pending TO shopledger_app;

-- +goose Down
DROP TABLE oauth_pending;
DROP TABLE shop_credentials;
DROP TABLE shop_connections;
