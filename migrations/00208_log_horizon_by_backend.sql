-- +goose Up
-- log_horizon() told a stranger from an appender by pairing a running
-- transaction's id lock with the appender lock of the same virtual
-- transaction id. pg_locks computes that id from the backend's current
-- local transaction id as it reads each row, and a committing backend
-- clears it (with its xid, in the process array) before it releases its
-- locks, without any lock-table lock. A scan could read the id lock under
-- one virtual id and the appender lock under the other: a committing
-- appender looked like a stranger, the horizon passed it while its
-- snapshot still saw it running, and its events were skipped for good.
-- The backend's pid does not change during a transaction, and the
-- appender lock is transaction-scoped, so an id lock and an appender lock
-- held by one pid belong to one transaction.
--
-- The appender lock is also counted only in this database: transaction
-- ids are the cluster's, advisory locks are per database, and a session
-- connected to another database cannot append to this log. Counting its
-- appender lock let another database's long consumer or appender hold
-- back every consumer of this one.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION log_horizon() RETURNS xid8
LANGUAGE sql STABLE AS $$
    WITH snap AS MATERIALIZED (
        SELECT pg_current_snapshot() AS s
    ), locks AS MATERIALIZED (
        SELECT locktype, pid, transactionid
        FROM pg_locks
        WHERE granted AND (
            (locktype = 'transactionid' AND mode = 'ExclusiveLock')
            OR (locktype = 'advisory' AND classid = 7316 AND objid = 206 AND objsubid = 2
                AND database = (SELECT oid FROM pg_database WHERE datname = current_database())))
    ), strangers AS (
        SELECT t.transactionid::text::bigint AS x32
        FROM locks t
        WHERE t.locktype = 'transactionid'
          AND NOT EXISTS (SELECT 1 FROM locks a
                          WHERE a.locktype = 'advisory' AND a.pid IS NOT DISTINCT FROM t.pid)
    )
    SELECT log_shift_xid(coalesce(
        (SELECT min(x) FROM snap, pg_snapshot_xip(snap.s) AS x
         WHERE NOT EXISTS (SELECT 1 FROM strangers
                           WHERE strangers.x32 = (x::text::numeric % 4294967296)::bigint)),
        (SELECT pg_snapshot_xmax(s) FROM snap)), (SELECT shift FROM log_clock))
$$;
-- +goose StatementEnd

-- +goose Down
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
