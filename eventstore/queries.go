package eventstore

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/shopledger/shopledger/events"
)

// The questions other packages ask of the log, so that no code outside
// this package names the events table.

// Recorded returns, by dedupe key, the stored events that hold keys; a key
// the log does not hold is absent from the map.
func (s *Store) Recorded(ctx context.Context, keys []string) (map[string]Appended, error) {
	out, err := lookupDedupe(keys, sqlQuery(ctx, s.db))
	if err != nil {
		return nil, fmt.Errorf("recorded: %w", err)
	}
	return out, nil
}

// ReadStreamsOfType returns the events of the given types on streams, each
// stream's events in version order and the streams in name order.
func (s *Store) ReadStreamsOfType(ctx context.Context, streams []string, types ...string) ([]events.Record, error) {
	recs, err := queryRecords(ctx, s.db, `SELECT `+selectColumns+` FROM events
		WHERE stream_id = ANY($1) AND type = ANY($2)
		ORDER BY stream_id, stream_version`, streams, types)
	if err != nil {
		return nil, fmt.Errorf("read streams of type %v: %w", types, err)
	}
	return recs, nil
}

// LastOfType returns, for each of the shop's streams that holds an event
// of one of the types, the latest such event, in stream name order.
func (s *Store) LastOfType(ctx context.Context, shopID int64, types ...string) ([]events.Record, error) {
	recs, err := queryRecords(ctx, s.db, `SELECT DISTINCT ON (stream_id) `+selectColumns+` FROM events
		WHERE shop_id = $1 AND type = ANY($2)
		ORDER BY stream_id, stream_version DESC`, shopID, types)
	if err != nil {
		return nil, fmt.Errorf("last of type %v in shop %d: %w", types, shopID, err)
	}
	return recs, nil
}

// ReadTypeThrough returns the events of the given types in commit order, up
// to and including the event at through, inside q (a rebuild's
// transaction, which holds the offset through stands for).
func ReadTypeThrough(ctx context.Context, q Queryer, through Cursor, types ...string) ([]events.Record, error) {
	recs, err := queryRecords(ctx, q, `SELECT `+selectColumns+` FROM events
		WHERE type = ANY($1) AND (transaction_id, position) <= ($2::text::xid8, $3)
		ORDER BY events.transaction_id, events.position`,
		types, strconv.FormatUint(through.TransactionID, 10), through.Position)
	if err != nil {
		return nil, fmt.Errorf("read %v through %v: %w", types, through, err)
	}
	return recs, nil
}

func queryRecords(ctx context.Context, q Queryer, query string, args ...any) ([]events.Record, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return scanAll(rows, ScanRecord)
}

// scanAll reads every row of rows with scan and closes rows.
func scanAll[T any](rows *sql.Rows, scan func(row interface{ Scan(...any) error }) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// EmptyTx reports whether the log holds no event, inside tx's snapshot (a
// restore checks its target with it before loading).
func EmptyTx(ctx context.Context, tx pgx.Tx) (bool, error) {
	var some bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM events)`).Scan(&some); err != nil {
		return false, fmt.Errorf("log empty: %w", err)
	}
	return !some, nil
}

// SealedLine is one sealed event as an auditor exports it: its place in
// the seal's chain and its canonical form, which the hash covers.
type SealedLine struct {
	Seq       int64  `json:"seq"`
	Hash      string `json:"hash"`      // hex
	PrevHash  string `json:"prev_hash"` // hex
	Canonical string `json:"canonical"`
}

// EachSealed calls each for the sealed events after seq after, in seal
// order; shopID 0 means every shop. It stops at the first error each
// returns.
func (s *Store) EachSealed(ctx context.Context, after, shopID int64, each func(SealedLine) error) error {
	rows, err := s.db.QueryContext(ctx, `SELECT s.seq, encode(s.hash, 'hex'), encode(s.prev_hash, 'hex'), event_canonical(s.seq, e)
		FROM event_seal s JOIN events e ON e.position = s.position
		WHERE s.seq > $1 AND ($2 = 0 OR s.shop_id = $2)
		ORDER BY s.seq`, after, shopID)
	if err != nil {
		return fmt.Errorf("sealed after %d: %w", after, err)
	}
	defer rows.Close()
	for rows.Next() {
		var l SealedLine
		if err := rows.Scan(&l.Seq, &l.Hash, &l.PrevHash, &l.Canonical); err != nil {
			return fmt.Errorf("sealed after %d: %w", after, err)
		}
		if err := each(l); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sealed after %d: %w", after, err)
	}
	return nil
}
