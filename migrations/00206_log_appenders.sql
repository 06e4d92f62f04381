-- +goose Up
-- Appenders announce themselves. Consumers read only below the horizon,
-- and the horizon used to be the oldest running transaction of the whole
-- cluster: an operator's forgotten BEGIN, a long migration or a rebuild's
-- COPY stalled every consumer. Now only transactions that append to the
-- log hold it back. Each announces itself, by a shared advisory lock held
-- to its end, before it gets a transaction id; log_horizon() then passes
-- over every running transaction that holds an id without that lock.
-- docs/architecture.md, "Only appenders hold the log back", argues why no
-- committed event can fall below a horizon already passed.

-- Announces the calling transaction as an appender. Idempotent. Refuses a
-- transaction that already holds an id: a consumer may already have
-- judged it a stranger and passed it.
-- +goose StatementBegin
CREATE FUNCTION log_announce() RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF current_setting('shopledger.log_appender', true) = 'on' THEN
        RETURN true;
    END IF;
    IF pg_current_xact_id_if_assigned() IS NOT NULL THEN
        RAISE EXCEPTION 'a transaction that appends to events must announce itself before its first write'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'call SELECT log_announce() first in the transaction (eventstore.BeginAppend does), or append in a transaction of its own';
    END IF;
    PERFORM pg_advisory_xact_lock_shared(7316, 206);
    PERFORM set_config('shopledger.log_appender', 'on', true);
    RETURN true;
END;
$$;
-- +goose StatementEnd

-- Every statement that inserts into events announces first: a statement
-- trigger fires before any row (and any column default, which may assign
-- the transaction id) is computed.
-- +goose StatementBegin
CREATE FUNCTION events_announce_appender() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM log_announce();
    RETURN NULL;
END;
$$;
-- +goose StatementEnd
CREATE TRIGGER events_announce_appender
    BEFORE INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_announce_appender();

-- The horizon in log ids: the oldest transaction of this snapshot that
-- still runs and may append (it holds the appender lock, or it cannot be
-- told apart: it ended since the snapshot, or its lock is not in place
-- yet), else the snapshot's xmax. The lock table is read once, after the
-- snapshot was taken.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION log_horizon() RETURNS xid8
LANGUAGE sql STABLE AS $$
    WITH snap AS MATERIALIZED (
        SELECT pg_current_snapshot() AS s
    ), locks AS MATERIALIZED (
        SELECT locktype, virtualtransaction, transactionid
        FROM pg_locks
        WHERE granted AND (
            (locktype = 'transactionid' AND mode = 'ExclusiveLock')
            OR (locktype = 'advisory' AND classid = 7316 AND objid = 206 AND objsubid = 2))
    ), strangers AS (
        SELECT t.transactionid::text::bigint AS x32
        FROM locks t
        WHERE t.locktype = 'transactionid'
          AND NOT EXISTS (SELECT 1 FROM locks a
                          WHERE a.locktype = 'advisory' AND a.virtualtransaction = t.virtualtransaction)
    )
    SELECT log_shift_xid(coalesce(
        (SELECT min(x) FROM snap, pg_snapshot_xip(snap.s) AS x
         WHERE NOT EXISTS (SELECT 1 FROM strangers
                           WHERE strangers.x32 = (x::text::numeric % 4294967296)::bigint)),
        (SELECT pg_snapshot_xmax(s) FROM snap)), (SELECT shift FROM log_clock))
$$;
-- +goose StatementEnd

-- +goose Down
CREATE OR REPLACE FUNCTION log_horizon() RETURNS xid8
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT log_shift_xid(pg_snapshot_xmin(pg_current_snapshot()), (SELECT shift FROM log_clock))
$$;
DROP TRIGGER events_announce_appender ON events;
DROP FUNCTION events_announce_appender();
DROP FUNCTION log_announce();
