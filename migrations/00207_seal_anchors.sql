-- +goose Up
-- Signed seal heads. The seal's hash chain proves the log unchanged only
-- to someone who cannot recompute it: whoever can disable the triggers can
-- rewrite an event and re-seal everything after it. Each anchor is the
-- seal's head at some seq with an HMAC under a key the database never
-- holds (SHOPLEDGER_SEAL_KEYS, given to the projector and to `ledger
-- verify`), so a rewritten and re-sealed log no longer matches its
-- anchors, and new anchors cannot be forged.
CREATE TABLE seal_anchors (
    seq          bigint      NOT NULL PRIMARY KEY CHECK (seq > 0),
    hash         bytea       NOT NULL,
    key_id       text        NOT NULL,
    mac          bytea       NOT NULL,
    anchored_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER seal_anchors_no_update_delete
    BEFORE UPDATE OR DELETE ON seal_anchors
    FOR EACH ROW EXECUTE FUNCTION events_reject_change();
CREATE TRIGGER seal_anchors_no_truncate
    BEFORE TRUNCATE ON seal_anchors
    FOR EACH STATEMENT EXECUTE FUNCTION events_reject_change();
GRANT SELECT, INSERT ON seal_anchors TO shopledger_app;

-- +goose Down
DROP TABLE seal_anchors;
