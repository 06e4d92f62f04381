-- +goose Up
-- Evidence the webhook fetcher could not decode (a schema version newer
-- than the running binary, during a rolling deploy, say). The fetcher's
-- offset moves past such an event only in the transaction that records it
-- here, and every fetcher retries these rows when it starts, so an
-- upgraded binary follows what an older one had to leave. Operators list
-- them with SELECT * FROM ingest_parked_evidence.
CREATE TABLE ingest_parked_evidence (
    event_id         uuid        NOT NULL PRIMARY KEY,
    position         bigint      NOT NULL,
    type             text        NOT NULL,
    schema_version   int         NOT NULL,
    reason           text        NOT NULL,
    parked_at        timestamptz NOT NULL DEFAULT now(),
    attempts         int         NOT NULL DEFAULT 1,
    last_attempt_at  timestamptz NOT NULL DEFAULT now()
);

GRANT SELECT, INSERT, UPDATE, DELETE ON ingest_parked_evidence TO shopledger_app;

-- +goose Down
DROP TABLE ingest_parked_evidence;
