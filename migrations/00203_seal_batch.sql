-- +goose Up
-- seal_events seals the events at the given positions, in that order, after
-- the last sealed one: the same rows, one by one, that the per-event seal
-- statement writes, so the projector can seal a whole batch in one
-- statement. An event that is not in the log stops it with an error.
-- +goose StatementBegin
CREATE FUNCTION seal_events(positions bigint[]) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    last_seq  bigint;
    last_hash bytea;
    next_hash bytea;
    e         events;
    p         bigint;
BEGIN
    SELECT seq, hash INTO last_seq, last_hash FROM event_seal ORDER BY seq DESC LIMIT 1;
    last_seq := coalesce(last_seq, 0);
    last_hash := coalesce(last_hash, '\x'::bytea);
    FOREACH p IN ARRAY positions LOOP
        SELECT * INTO e FROM events WHERE position = p;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'seal: no event at position %', p USING ERRCODE = 'not_null_violation';
        END IF;
        last_seq := last_seq + 1;
        next_hash := sha256(last_hash || convert_to(event_canonical(last_seq, e), 'UTF8'));
        INSERT INTO event_seal (seq, position, event_id, transaction_id, shop_id, prev_hash, hash)
        VALUES (last_seq, e.position, e.event_id, e.transaction_id, e.shop_id, last_hash, next_hash);
        last_hash := next_hash;
    END LOOP;
    RETURN last_seq;
END;
$$;
-- +goose StatementEnd

-- An event has one position, and positions are sealed once: the unique
-- event_id index repeated what the position constraint already ensures, at
-- the cost of one more index write per sealed event.
ALTER TABLE event_seal DROP CONSTRAINT event_seal_event_id_key;

-- +goose Down
ALTER TABLE event_seal ADD CONSTRAINT event_seal_event_id_key UNIQUE (event_id);
DROP FUNCTION seal_events(bigint[]);
