-- +goose Up
-- Connecting a shop from the app. The app (query) records an intent: which
-- organisation and user asked, from which browser session (the SHA-256 of
-- its id), and hands the browser a single-use token for ingest's
-- /connect/etsy. Ingest takes the intent (deleting it), checks that the
-- browser presents the same session, and binds the OAuth state to that
-- organisation and session; the callback refuses a state presented by any
-- other session. Flows started by an operator (ledger shops connect) carry
-- no binding.
CREATE TABLE connect_intents (
    intent_hash   bytea       NOT NULL PRIMARY KEY CHECK (length(intent_hash) = 32),
    org_id        bigint      NOT NULL REFERENCES organisations (id),
    user_id       uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_hash  bytea       NOT NULL CHECK (length(session_hash) = 32),
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL
);
CREATE INDEX connect_intents_expires_idx ON connect_intents (expires_at);

ALTER TABLE oauth_pending ADD COLUMN org_id bigint;
ALTER TABLE oauth_pending ADD COLUMN user_id uuid;
ALTER TABLE oauth_pending ADD COLUMN session_hash bytea;

-- +goose Down
ALTER TABLE oauth_pending DROP COLUMN session_hash;
ALTER TABLE oauth_pending DROP COLUMN user_id;
ALTER TABLE oauth_pending DROP COLUMN org_id;
DROP TABLE connect_intents;
