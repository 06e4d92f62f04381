-- +goose Up
-- The log's clock. An event's transaction_id is the id of the transaction
-- that appended it, as the cluster numbered it, plus the clock's shift.
-- Transaction ids belong to the cluster that assigned them: a log restored
-- into another cluster carries ids the new cluster has not reached yet.
-- Adopting such a log (log_adopt, run by `ledger migrate` and `ledger
-- restore`) raises the shift so that every id the new cluster hands out,
-- and the visibility horizon, lie above every restored id: restored events
-- become visible at once, in their original order, and new appends order
-- after all of them. See docs/architecture.md, "A total order that
-- survives moves".
CREATE TABLE log_clock (
    singleton     boolean     NOT NULL DEFAULT true PRIMARY KEY CHECK (singleton),
    shift         bigint      NOT NULL DEFAULT 0 CHECK (shift >= 0),
    adopted_at    timestamptz,
    adopted_below xid8
);
INSERT INTO log_clock DEFAULT VALUES;

-- +goose StatementBegin
CREATE FUNCTION log_shift_xid(x xid8, shift bigint) RETURNS xid8
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
    SELECT (x::text::numeric + shift)::text::xid8
$$;
-- +goose StatementEnd

-- The visibility horizon in log ids: every transaction whose log id lies
-- below it has ended, so no event can still appear below it.
-- +goose StatementBegin
CREATE FUNCTION log_horizon() RETURNS xid8
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT log_shift_xid(pg_snapshot_xmin(pg_current_snapshot()), (SELECT shift FROM log_clock))
$$;
-- +goose StatementEnd

-- The first log id no committed transaction of this cluster can hold.
-- +goose StatementBegin
CREATE FUNCTION log_next_xid() RETURNS xid8
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT log_shift_xid(pg_snapshot_xmax(pg_current_snapshot()), (SELECT shift FROM log_clock))
$$;
-- +goose StatementEnd

-- The highest log id stored anywhere: in the log itself, in consumer
-- offsets, in the seal and in projection checkpoints. Each is read through
-- an index or a small table. It runs with its owner's rights, so that
-- every service can check the log's order without reading those tables.
-- +goose StatementBegin
CREATE FUNCTION log_highest_xid(OUT highest xid8, OUT held_by text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    x xid8;
BEGIN
    highest := '0'::xid8;
    held_by := NULL;
    SELECT transaction_id INTO x FROM events ORDER BY transaction_id DESC LIMIT 1;
    IF x IS NOT NULL AND x > highest THEN highest := x; held_by := 'events'; END IF;
    SELECT last_processed_transaction_id INTO x FROM event_offsets ORDER BY last_processed_transaction_id DESC LIMIT 1;
    IF x IS NOT NULL AND x > highest THEN highest := x; held_by := 'event_offsets'; END IF;
    SELECT transaction_id INTO x FROM event_seal ORDER BY seq DESC LIMIT 1;
    IF x IS NOT NULL AND x > highest THEN highest := x; held_by := 'event_seal'; END IF;
    SELECT transaction_id INTO x FROM projection_checkpoints ORDER BY transaction_id DESC LIMIT 1;
    IF x IS NOT NULL AND x > highest THEN highest := x; held_by := 'projection_checkpoints'; END IF;
END;
$$;
-- +goose StatementEnd

-- Adopts a log moved here from another cluster: when some stored log id
-- is at or above log_next_xid(), the shift rises so that the oldest
-- running transaction's log id, and so every later one, lies above it.
-- Returns how much the shift rose (0 when the log was already in order).
-- The column default changes with the shift, under the table lock that
-- ALTER TABLE takes, so no append can straddle the change.
-- +goose StatementBegin
CREATE FUNCTION log_adopt() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    h     record;
    old   bigint;
    xmin  numeric;
    want  bigint;
BEGIN
    LOCK TABLE log_clock IN EXCLUSIVE MODE;
    SELECT shift INTO old FROM log_clock;
    SELECT * INTO h FROM log_highest_xid();
    IF h.highest < log_next_xid() THEN
        RETURN 0;
    END IF;
    xmin := pg_snapshot_xmin(pg_current_snapshot())::text::numeric;
    want := (h.highest::text::numeric + 1 - xmin)::bigint;
    IF want <= old THEN
        RETURN 0;
    END IF;
    UPDATE log_clock SET shift = want, adopted_at = now(), adopted_below = log_shift_xid(h.highest, 1);
    EXECUTE format('ALTER TABLE events ALTER COLUMN transaction_id SET DEFAULT log_shift_xid(pg_current_xact_id(), %s)', want);
    RETURN want - old;
END;
$$;
-- +goose StatementEnd

GRANT SELECT ON log_clock TO shopledger_app;

-- +goose Down
ALTER TABLE events ALTER COLUMN transaction_id SET DEFAULT pg_current_xact_id();
DROP FUNCTION log_adopt();
DROP FUNCTION log_highest_xid();
DROP FUNCTION log_next_xid();
DROP FUNCTION log_horizon();
DROP FUNCTION log_shift_xid(xid8, bigint);
DROP TABLE log_clock;
