-- +goose Up
-- The one source of truth. Rows are only ever inserted.
CREATE TABLE events (
    position        bigserial   NOT NULL,
    transaction_id  xid8        NOT NULL DEFAULT pg_current_xact_id(),
    event_id        uuid        NOT NULL,
    stream_id       text        NOT NULL,
    stream_version  bigint      NOT NULL CHECK (stream_version > 0),
    type            text        NOT NULL,
    schema_version  int         NOT NULL CHECK (schema_version > 0),
    data            jsonb       NOT NULL,
    metadata        jsonb       NOT NULL DEFAULT '{}',
    shop_id         bigint,
    occurred_at     timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    dedupe_key      text,
    CONSTRAINT events_pkey PRIMARY KEY (position),
    CONSTRAINT events_event_id_key UNIQUE (event_id),
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, stream_version),
    CONSTRAINT events_dedupe_key_key UNIQUE (dedupe_key)
);

-- Gap-safe tailing: consumers read in (transaction_id, position) order below
-- the oldest running transaction.
CREATE INDEX events_tail_idx ON events (transaction_id, position);
-- Tenant reads by business time. Every index here is paid by every append,
-- so auditor filters by type go through the sealed sequence instead.
CREATE INDEX events_shop_occurred_idx ON events (shop_id, occurred_at);
-- Causation lookups for auditors ("what did this event cause").
CREATE INDEX events_causation_idx ON events ((metadata->>'causation_id')) WHERE metadata ? 'causation_id';

-- +goose StatementBegin
CREATE FUNCTION events_reject_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events is append-only: % rejected', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER events_no_update_delete
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_reject_change();
CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_reject_change();

-- Offsets of watermill consumer groups reading the log (one row a group).
CREATE TABLE event_offsets (
    consumer_group                 varchar(255) NOT NULL PRIMARY KEY,
    offset_acked                   bigint,
    last_processed_transaction_id  xid8 NOT NULL
);

-- The application role needs to read and append, never to change history.
-- +goose StatementBegin
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'shopledger_app') THEN
        CREATE ROLE shopledger_app NOLOGIN;
    END IF;
END
$$;
-- +goose StatementEnd
REVOKE ALL ON events FROM shopledger_app;
GRANT SELECT, INSERT ON events TO shopledger_app;
GRANT USAGE ON SEQUENCE events_position_seq TO shopledger_app;
GRANT SELECT, INSERT, UPDATE ON event_offsets TO shopledger_app;

-- +goose Down
DROP TABLE event_offsets;
DROP TABLE events;
DROP FUNCTION events_reject_change();
