-- +goose Up
-- A projection records each applied event as a new checkpoint row instead
-- of updating one row per event: updating the same row hundreds of times in
-- one consumer transaction makes every update walk a longer chain of row
-- versions. The checkpoint is the greatest row; the runner deletes the
-- older ones once per batch.
ALTER TABLE projection_checkpoints DROP CONSTRAINT projection_checkpoints_pkey;
ALTER TABLE projection_checkpoints ADD PRIMARY KEY (projection, transaction_id, position);

-- +goose Down
DELETE FROM projection_checkpoints p WHERE (p.transaction_id, p.position) < (
    SELECT max_c.transaction_id, max_c.position FROM projection_checkpoints max_c
    WHERE max_c.projection = p.projection ORDER BY max_c.transaction_id DESC, max_c.position DESC LIMIT 1);
ALTER TABLE projection_checkpoints DROP CONSTRAINT projection_checkpoints_pkey;
ALTER TABLE projection_checkpoints ADD PRIMARY KEY (projection);
