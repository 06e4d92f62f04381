-- +goose Up
-- An Etsy app key's request budget, shared by every ingest instance that
-- calls Etsy with the key. Etsy counts per key, not per process: two
-- instances with a local limiter each would together send twice the QPS.
--
-- Per second: the key has one row per request slot (as many as its QPS).
-- A request holds a slot from the moment it is claimed until a second
-- after its answer arrived, so no one-second window at Etsy's end can see
-- more than QPS requests, whatever the network does. A claim first sets
-- busy_until a lease ahead (an instance that dies mid-request frees its
-- slot when the lease ends); the release sets it a second after the
-- answer. All times are the database's clock, one clock for every
-- instance.
--
-- Per day: requests per 5-minute bucket over a rolling 24 hours, as Etsy
-- describes its own window.
CREATE TABLE etsy_rate_keys (
    app_key text PRIMARY KEY
);

CREATE TABLE etsy_rate_slots (
    app_key    text NOT NULL REFERENCES etsy_rate_keys,
    slot       integer NOT NULL CHECK (slot > 0),
    busy_until timestamptz NOT NULL DEFAULT '-infinity',
    PRIMARY KEY (app_key, slot)
);

CREATE TABLE etsy_rate_days (
    app_key  text NOT NULL REFERENCES etsy_rate_keys,
    bucket   timestamptz NOT NULL,
    requests integer NOT NULL CHECK (requests > 0),
    PRIMARY KEY (app_key, bucket)
);

-- etsy_rate_take claims one request of the key's budget. It answers one
-- row: the slot and the lease end to release it with, or, when no slot is
-- free, how long until the first one frees (wait_ms), or, when the day is
-- spent, when its oldest bucket leaves the window (day_frees_at). Claims of
-- one key are serialised on the key's row: they are a few per second and
-- each is short.
-- +goose StatementBegin
CREATE FUNCTION etsy_rate_take(key text, qps integer, qpd integer, lease interval,
    OUT slot integer, OUT lease_until timestamptz, OUT wait_ms integer, OUT day_frees_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    t      timestamptz := clock_timestamp();
    used   bigint;
    oldest timestamptz;
BEGIN
    IF qps < 1 OR qpd < 1 THEN
        RAISE EXCEPTION 'etsy_rate_take: qps and qpd must be positive' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO etsy_rate_keys (app_key) VALUES (key) ON CONFLICT DO NOTHING;
    PERFORM 1 FROM etsy_rate_keys k WHERE k.app_key = key FOR UPDATE;
    IF NOT EXISTS (SELECT 1 FROM etsy_rate_slots s WHERE s.app_key = key AND s.slot = qps) THEN
        INSERT INTO etsy_rate_slots (app_key, slot)
        SELECT key, g FROM generate_series(1, qps) g ON CONFLICT DO NOTHING;
    END IF;

    DELETE FROM etsy_rate_days d WHERE d.app_key = key AND d.bucket < t - interval '25 hours';
    SELECT coalesce(sum(d.requests), 0), min(d.bucket) INTO used, oldest
    FROM etsy_rate_days d WHERE d.app_key = key AND d.bucket > t - interval '24 hours' - interval '5 minutes';
    IF used >= qpd THEN
        day_frees_at := oldest + interval '24 hours' + interval '5 minutes';
        RETURN;
    END IF;

    SELECT s.slot INTO slot FROM etsy_rate_slots s
    WHERE s.app_key = key AND s.slot <= qps AND s.busy_until <= t
    ORDER BY s.slot LIMIT 1;
    IF slot IS NULL THEN
        SELECT greatest(1, ceil(extract(epoch FROM min(s.busy_until) - t) * 1000))::integer INTO wait_ms
        FROM etsy_rate_slots s WHERE s.app_key = key AND s.slot <= qps;
        RETURN;
    END IF;
    lease_until := t + lease;
    UPDATE etsy_rate_slots s SET busy_until = lease_until WHERE s.app_key = key AND s.slot = etsy_rate_take.slot;
    INSERT INTO etsy_rate_days AS d (app_key, bucket, requests)
    VALUES (key, date_bin('5 minutes', t, timestamptz 'epoch'), 1)
    ON CONFLICT (app_key, bucket) DO UPDATE SET requests = d.requests + 1;
END;
$$;
-- +goose StatementEnd

-- etsy_rate_release ends a request: its slot cools down for a second. A
-- release after the lease ran out (and the slot went to another request)
-- changes nothing.
-- +goose StatementBegin
CREATE FUNCTION etsy_rate_release(key text, slot integer, lease_until timestamptz) RETURNS void
LANGUAGE sql AS $$
    UPDATE etsy_rate_slots s SET busy_until = clock_timestamp() + interval '1 second'
    WHERE s.app_key = key AND s.slot = etsy_rate_release.slot AND s.busy_until = lease_until;
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION etsy_rate_release(text, integer, timestamptz);
DROP FUNCTION etsy_rate_take(text, integer, integer, interval);
DROP TABLE etsy_rate_days;
DROP TABLE etsy_rate_slots;
DROP TABLE etsy_rate_keys;
