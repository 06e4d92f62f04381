-- +goose Up
-- The event's type on its seal row, for the auditor's log filtered by
-- type (eventstore ListSealed): without it, a type the shops have few
-- events of is found by reading every one of their sealed events.
--
-- Seal rows are never updated, so rows sealed before this migration keep
-- a NULL type; event_seal_typed_from records the first seq sealed with
-- its type, and the log reads the rows below it the old way. The lock
-- keeps a sealer of the old function from adding untyped rows above it.
LOCK TABLE event_seal IN SHARE ROW EXCLUSIVE MODE;
ALTER TABLE event_seal ADD COLUMN type text;
CREATE INDEX event_seal_shop_type_idx ON event_seal (shop_id, type, seq) WHERE type IS NOT NULL;

CREATE TABLE event_seal_typed_from (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    seq      bigint  NOT NULL
);
INSERT INTO event_seal_typed_from (seq) SELECT coalesce(max(seq), 0) + 1 FROM event_seal;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION seal_events(positions bigint[]) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    last_seq  bigint;
    last_hash bytea;
    n         int := 0;
    e         events;
    hashes    bytea[];
    prevs     bytea[];
BEGIN
    SELECT seq, hash INTO last_seq, last_hash FROM event_seal ORDER BY seq DESC LIMIT 1;
    last_seq := coalesce(last_seq, 0);
    last_hash := coalesce(last_hash, '\x'::bytea);
    FOR e IN SELECT ev.* FROM unnest(positions) WITH ORDINALITY AS u(p, o)
             JOIN events ev ON ev.position = u.p ORDER BY u.o LOOP
        n := n + 1;
        IF e.position <> positions[n] THEN
            RAISE EXCEPTION 'seal: no event at position %', positions[n] USING ERRCODE = 'not_null_violation';
        END IF;
        prevs[n] := last_hash;
        last_hash := sha256(last_hash || convert_to(event_canonical(last_seq + n, e), 'UTF8'));
        hashes[n] := last_hash;
    END LOOP;
    IF n < coalesce(array_length(positions, 1), 0) THEN
        RAISE EXCEPTION 'seal: no event at position %', positions[n + 1] USING ERRCODE = 'not_null_violation';
    END IF;
    INSERT INTO event_seal (seq, position, event_id, transaction_id, shop_id, type, prev_hash, hash)
    SELECT last_seq + u.o, ev.position, ev.event_id, ev.transaction_id, ev.shop_id, ev.type, prevs[u.o], hashes[u.o]
    FROM unnest(positions) WITH ORDINALITY AS u(p, o)
    JOIN events ev ON ev.position = u.p
    ORDER BY u.o;
    RETURN last_seq + n;
END;
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION seal_events(positions bigint[]) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    last_seq  bigint;
    last_hash bytea;
    n         int := 0;
    e         events;
    hashes    bytea[];
    prevs     bytea[];
BEGIN
    SELECT seq, hash INTO last_seq, last_hash FROM event_seal ORDER BY seq DESC LIMIT 1;
    last_seq := coalesce(last_seq, 0);
    last_hash := coalesce(last_hash, '\x'::bytea);
    FOR e IN SELECT ev.* FROM unnest(positions) WITH ORDINALITY AS u(p, o)
             JOIN events ev ON ev.position = u.p ORDER BY u.o LOOP
        n := n + 1;
        IF e.position <> positions[n] THEN
            RAISE EXCEPTION 'seal: no event at position %', positions[n] USING ERRCODE = 'not_null_violation';
        END IF;
        prevs[n] := last_hash;
        last_hash := sha256(last_hash || convert_to(event_canonical(last_seq + n, e), 'UTF8'));
        hashes[n] := last_hash;
    END LOOP;
    IF n < coalesce(array_length(positions, 1), 0) THEN
        RAISE EXCEPTION 'seal: no event at position %', positions[n + 1] USING ERRCODE = 'not_null_violation';
    END IF;
    INSERT INTO event_seal (seq, position, event_id, transaction_id, shop_id, prev_hash, hash)
    SELECT last_seq + u.o, ev.position, ev.event_id, ev.transaction_id, ev.shop_id, prevs[u.o], hashes[u.o]
    FROM unnest(positions) WITH ORDINALITY AS u(p, o)
    JOIN events ev ON ev.position = u.p
    ORDER BY u.o;
    RETURN last_seq + n;
END;
$$;
-- +goose StatementEnd
DROP TABLE event_seal_typed_from;
DROP INDEX event_seal_shop_type_idx;
ALTER TABLE event_seal DROP COLUMN type;
