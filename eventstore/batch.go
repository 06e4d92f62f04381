package eventstore

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/shopledger/shopledger/events"
)

// maxEachRounds bounds how often AppendEachIn re-tries events that lost a
// stream version race to a concurrent writer inside one transaction. Every
// round at least one of the racing writers has committed, so this is a
// bound on how many writers may race for one stream at once.
const maxEachRounds = 100

// AppendEachIn appends events that each name their own stream
// (Event.StreamID), in one statement inside the caller's transaction: the
// group commit of many small facts (one webhook's evidence per stream) that
// must become durable together. Each event goes after its stream's current
// version, as with Any.
//
// Events whose dedupe key is already stored, or that repeat the key of an
// earlier event in evs, are reported as duplicates and not stored. Apart
// from such repeats, at most one event per stream is allowed, so a lost
// version race never leaves a stream out of order.
//
// Rows that lose a race with a concurrent writer (same dedupe key or same
// stream version) are resolved without aborting the transaction, so it
// must run at READ COMMITTED (the default) for a retry to see the winner.
// q may also be the *sql.DB itself: each statement then commits on its
// own, which suits facts that need not become durable together (every
// webhook's evidence is independent) and saves the BEGIN and COMMIT round
// trips. The result is in the order of evs.
func (s *Store) AppendEachIn(ctx context.Context, q Queryer, evs []events.Event) ([]Appended, error) {
	return appendEach(evs, func(r *eachRows, pending []int) (map[uuid.UUID]Appended, error) {
		return r.insert(ctx, q, pending)
	}, func(keys []string) (map[string]Appended, error) {
		return lookupDedupe(keys, sqlQuery(ctx, q))
	})
}

// appendEach is AppendEachIn's bookkeeping (dedupe within evs, rounds
// after lost races) over whatever runs its two statements: insert stores
// the pending rows and returns those it stored by event id, lookup finds
// stored dedupe keys.
func appendEach(evs []events.Event, insert func(r *eachRows, pending []int) (map[uuid.UUID]Appended, error),
	lookup func(keys []string) (map[string]Appended, error)) ([]Appended, error) {
	if len(evs) == 0 {
		return nil, ErrEmptyAppend
	}
	out := make([]Appended, len(evs))
	// firstOf maps an event index to the earlier event with the same
	// dedupe key, whose outcome it shares.
	firstOf := map[int]int{}
	byKey := map[string]int{}
	streams := map[string]bool{}
	var todo []int
	for i, e := range evs {
		if e.StreamID == "" {
			return nil, fmt.Errorf("append each: event %d names no stream: %w", i, ErrInvalidEvent)
		}
		if e.DedupeKey != "" {
			if j, ok := byKey[e.DedupeKey]; ok {
				firstOf[i] = j
				continue
			}
			byKey[e.DedupeKey] = i
		}
		if streams[e.StreamID] {
			return nil, fmt.Errorf("append each: event %d repeats stream %s: %w", i, e.StreamID, ErrInvalidEvent)
		}
		streams[e.StreamID] = true
		todo = append(todo, i)
	}
	rows, err := encodeEach(evs, todo)
	if err != nil {
		return nil, fmt.Errorf("append each: %w", err)
	}
	pending := todo
	for round := 0; len(pending) > 0; round++ {
		if round == maxEachRounds {
			return nil, fmt.Errorf("append each: %d events still conflict after %d rounds: %w", len(pending), round, ErrConcurrency)
		}
		inserted, err := insert(rows, pending)
		if err != nil {
			return nil, fmt.Errorf("append each: %w", err)
		}
		var missing []int
		var keys []string
		for _, i := range pending {
			if a, ok := inserted[evs[i].ID]; ok {
				out[i] = a
				continue
			}
			missing = append(missing, i)
			if evs[i].DedupeKey != "" {
				keys = append(keys, evs[i].DedupeKey)
			}
		}
		stored, err := lookup(keys)
		if err != nil {
			return nil, fmt.Errorf("append each: %w", err)
		}
		pending = pending[:0:0]
		for _, i := range missing {
			if a, ok := stored[evs[i].DedupeKey]; ok && evs[i].DedupeKey != "" {
				out[i] = a
				continue
			}
			// Lost a version race to a writer that has committed by
			// now: the next round numbers after it.
			pending = append(pending, i)
		}
	}
	for i, j := range firstOf {
		out[i] = out[j]
		out[i].Duplicate = true
	}
	return out, nil
}

type eachRows struct {
	rows    []encoded
	streams []string
	index   []int // event index of each row
}

func encodeEach(evs []events.Event, todo []int) (*eachRows, error) {
	r := &eachRows{}
	for _, i := range todo {
		e := evs[i]
		row, err := encodeEvent(i, e)
		if err != nil {
			return nil, err
		}
		r.rows = append(r.rows, row)
		r.streams = append(r.streams, e.StreamID)
		r.index = append(r.index, i)
	}
	return r, nil
}

// appendEachSQL inserts one event per stream after each stream's current
// version. ON CONFLICT DO NOTHING (no target: any unique constraint) turns
// both a stored dedupe key and a lost version race into a skipped row
// instead of an error that would abort the caller's transaction; the caller
// tells the two apart afterwards. Rows go in stream order so that two
// batches holding the same streams wait for each other in one direction
// and never deadlock. The statement is kept plain (no CTE, no
// anti-join) because it runs once per group commit and its planning time
// counts.
const appendEachSQL = `
INSERT INTO events (event_id, stream_id, stream_version, type, schema_version, data, metadata, shop_id, occurred_at, dedupe_key)
SELECT i.event_id, i.stream_id,
       coalesce((SELECT max(e.stream_version) FROM events e WHERE e.stream_id = i.stream_id), 0) + 1,
       i.type, i.schema_version, i.data::jsonb, i.metadata::jsonb, nullif(i.shop_id, 0), i.occurred_at, nullif(i.dedupe_key, '')
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::text[], $6::text[], $7::bigint[], $8::timestamptz[], $9::text[])
     AS i(event_id, stream_id, type, schema_version, data, metadata, shop_id, occurred_at, dedupe_key)
ORDER BY i.stream_id
ON CONFLICT DO NOTHING
RETURNING event_id, position, stream_version
`

func (r *eachRows) insert(ctx context.Context, q Queryer, pending []int) (map[uuid.UUID]Appended, error) {
	args := r.args(pending)
	rows, err := q.QueryContext(ctx, appendEachSQL, args...)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	out := make(map[uuid.UUID]Appended, len(pending))
	for rows.Next() {
		var a Appended
		if err := rows.Scan(&a.EventID, &a.Position, &a.StreamVersion); err != nil {
			return nil, err
		}
		out[a.EventID] = a
	}
	if err := rows.Err(); err != nil {
		return nil, classify(err)
	}
	return out, nil
}

// args are appendEachSQL's parameters for the pending events' rows.
func (r *eachRows) args(pending []int) []any {
	all := len(pending) == len(r.index)
	want := make(map[int]bool, len(pending))
	if !all {
		for _, i := range pending {
			want[i] = true
		}
	}
	var c eventColumns
	var streams []string
	for k, i := range r.index {
		if !all && !want[i] {
			continue
		}
		c.add(r.rows[k])
		streams = append(streams, r.streams[k])
	}
	return []any{c.ids, streams, c.types, c.versions, c.data, c.meta, c.shops, c.occurred, c.dedupe}
}

// dedupeSQL finds stored events by dedupe key.
const dedupeSQL = `SELECT dedupe_key, event_id, position, stream_version FROM events WHERE dedupe_key = ANY($1::text[])`

// dedupeRows is what lookupDedupe reads of *sql.Rows or pgx.Rows.
type dedupeRows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// lookupDedupe runs dedupeSQL through query, which returns the rows and
// how to close them: database/sql for AppendEachIn, pgx for
// AppendEachCommitted.
func lookupDedupe(keys []string, query func(sql string, args ...any) (dedupeRows, func(), error)) (map[string]Appended, error) {
	out := map[string]Appended{}
	if len(keys) == 0 {
		return out, nil
	}
	rows, closeRows, err := query(dedupeSQL, keys)
	if err != nil {
		return nil, fmt.Errorf("look up dedupe keys: %w", err)
	}
	defer closeRows()
	for rows.Next() {
		var key string
		var a Appended
		if err := rows.Scan(&key, &a.EventID, &a.Position, &a.StreamVersion); err != nil {
			return nil, fmt.Errorf("look up dedupe keys: %w", err)
		}
		a.Duplicate = true
		out[key] = a
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("look up dedupe keys: %w", err)
	}
	return out, nil
}

// sqlQuery is lookupDedupe's query through database/sql.
func sqlQuery(ctx context.Context, q Queryer) func(string, ...any) (dedupeRows, func(), error) {
	return func(query string, args ...any) (dedupeRows, func(), error) {
		rows, err := q.QueryContext(ctx, query, args...)
		if err != nil {
			return nil, nil, err
		}
		return rows, func() { rows.Close() }, nil
	}
}
