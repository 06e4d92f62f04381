-- +goose Up
-- Statistics on the causation id, for an event's page (eventstore
-- Causation). events_causation_idx is partial, and PostgreSQL keeps no
-- statistics on a partial index's expression: without these it guesses
-- that one causation id names 0.5 % of the log, plans each step of the
-- recursive walk to its effects as a sort and merge of every event that
-- has a cause, and a page that reads a handful of rows through the index
-- reads the whole log each step. With them it knows a cause has few
-- effects and walks the index.
CREATE STATISTICS events_causation_stats ON ((metadata->>'causation_id')) FROM events;

-- A log that holds events is analyzed now rather than at the next
-- autovacuum; that blocks no append. An empty log is left to autovacuum:
-- statistics taken of an empty table make the planner cost appends'
-- lookups as if the table stayed empty until autovacuum analyzes it again,
-- and on a fresh install the first webhooks would pay for it.
-- +goose StatementBegin
DO $$
BEGIN
	IF EXISTS (SELECT 1 FROM events) THEN
		ANALYZE events;
	END IF;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP STATISTICS events_causation_stats;
