package eventstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shopledger/shopledger/events"
)

// Reads of the whole log for the projector's rebuild, the seal's
// verification and consumer lag. Each takes the transaction it runs in:
// the callers need several reads to see one snapshot.

// HorizonHead returns, in tx's snapshot, the last event below the
// horizon: every transaction below the snapshot's xmin has ended, so no
// event can still appear before it. ok is false for an empty log.
func HorizonHead(ctx context.Context, tx pgx.Tx) (c Cursor, ok bool, err error) {
	// ORDER BY names the table's column: the bare name would sort by the
	// selected text cast, and "999" sorts after "1000".
	var txid string
	err = tx.QueryRow(ctx, `SELECT transaction_id::text, position FROM events
		WHERE transaction_id < log_horizon()
		ORDER BY events.transaction_id DESC, events.position DESC LIMIT 1`).Scan(&txid, &c.Position)
	if errors.Is(err, pgx.ErrNoRows) {
		return Cursor{}, false, nil
	}
	if err != nil {
		return Cursor{}, false, fmt.Errorf("read horizon: %w", err)
	}
	if c.TransactionID, err = strconv.ParseUint(txid, 10, 64); err != nil {
		return Cursor{}, false, fmt.Errorf("read horizon: %w", err)
	}
	return c, true, nil
}

// LogColumns are the columns QueryThrough returns, in order, each in
// PostgreSQL's binary form: position int8, transaction_id xid8, event_id
// uuid, stream_id text, stream_version int8, type text, schema_version
// int4, data jsonb, metadata jsonb, shop_id int8 (0 when none),
// occurred_at and recorded_at timestamptz.
const LogColumns = `position, transaction_id, event_id, stream_id, stream_version, type,
	schema_version, data, metadata, coalesce(shop_id, 0), occurred_at, recorded_at`

// QueryThrough reads, in commit order, every event of types at or before
// through, with LogColumns in binary form for a caller that decodes them
// itself.
func QueryThrough(ctx context.Context, tx pgx.Tx, through Cursor, types []string) (pgx.Rows, error) {
	rows, err := tx.Query(ctx, `SELECT `+LogColumns+`
		FROM events
		WHERE (transaction_id, position) <= ($1::text::xid8, $2) AND type = ANY($3)
		ORDER BY events.transaction_id, events.position`,
		pgx.QueryResultFormats{pgx.BinaryFormatCode}, strconv.FormatUint(through.TransactionID, 10), through.Position, types)
	if err != nil {
		return nil, fmt.Errorf("read log: %w", err)
	}
	return rows, nil
}

// CountThrough counts the events of types at or before through.
func CountThrough(ctx context.Context, tx pgx.Tx, through Cursor, types []string) (int64, error) {
	var n int64
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM events
		WHERE (transaction_id, position) <= ($1::text::xid8, $2) AND type = ANY($3)`,
		strconv.FormatUint(through.TransactionID, 10), through.Position, types).Scan(&n); err != nil {
		return 0, fmt.Errorf("count log: %w", err)
	}
	return n, nil
}

// SealedRow is one row of the seal with what the log holds at its place.
type SealedRow struct {
	Seq      int64
	Position int64
	EventID  uuid.UUID
	Hash     []byte
	PrevHash []byte
	// Present says whether the log still holds the sealed event at its
	// position with its id; Canonical is then its canonical text as
	// event_canonical computes it for Seq.
	Present   bool
	Canonical string
}

// EachSealedRow calls fn for every row of the seal in seq order until fn
// returns false.
func EachSealedRow(ctx context.Context, q Queryer, fn func(SealedRow) bool) error {
	rows, err := q.QueryContext(ctx, `SELECT s.seq, s.position, s.event_id, s.hash, s.prev_hash,
			e.position IS NOT NULL, coalesce(event_canonical(s.seq, e), '')
		FROM event_seal s LEFT JOIN events e ON e.position = s.position AND e.event_id = s.event_id
		ORDER BY s.seq`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var r SealedRow
		if err := rows.Scan(&r.Seq, &r.Position, &r.EventID, &r.Hash, &r.PrevHash, &r.Present, &r.Canonical); err != nil {
			return err
		}
		if !fn(r) {
			return nil
		}
	}
	return rows.Err()
}

// FirstUnsealedBehindHead returns the first event that precedes the seal's
// head in commit order but is not sealed: one inserted behind the
// sealer's back. ok is false when there is none.
func FirstUnsealedBehindHead(ctx context.Context, q Queryer) (position int64, id uuid.UUID, ok bool, err error) {
	err = q.QueryRowContext(ctx, `WITH head AS (
			SELECT transaction_id, position FROM event_seal ORDER BY seq DESC LIMIT 1
		)
		SELECT e.position, e.event_id FROM events e, head
		WHERE (e.transaction_id, e.position) < (head.transaction_id, head.position)
		  AND NOT EXISTS (SELECT 1 FROM event_seal s WHERE s.position = e.position)
		ORDER BY e.transaction_id, e.position LIMIT 1`).Scan(&position, &id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, uuid.Nil, false, nil
	}
	return position, id, err == nil, err
}

// CountAllUnsealed counts the events of the whole log that are not sealed.
func CountAllUnsealed(ctx context.Context, q Queryer) (int64, error) {
	var n int64
	err := q.QueryRowContext(ctx, `SELECT count(*) FROM events e
		WHERE NOT EXISTS (SELECT 1 FROM event_seal s WHERE s.position = e.position)`).Scan(&n)
	return n, err
}

// CountAll counts the events of the whole log.
func CountAll(ctx context.Context, q Queryer) (int64, error) {
	var n int64
	err := q.QueryRowContext(ctx, `SELECT count(*) FROM events`).Scan(&n)
	return n, err
}

// CountOfTypes counts the events of the whole log of the given types.
func CountOfTypes(ctx context.Context, q Queryer, types []string) (int64, error) {
	var n int64
	err := q.QueryRowContext(ctx, `SELECT count(*) FROM events WHERE type = ANY($1)`, types).Scan(&n)
	return n, err
}

// SealAllUnsealed seals every event not sealed yet, in the order the
// projector seals them (commit order, then position), in one call of
// seal_events. Recovery drills use it to leave a log whose seal is whole
// without running a projector.
func SealAllUnsealed(ctx context.Context, q Queryer) error {
	_, err := q.ExecContext(ctx, `SELECT seal_events(ARRAY(SELECT e.position FROM events e
		WHERE NOT EXISTS (SELECT 1 FROM event_seal s WHERE s.position = e.position)
		ORDER BY e.transaction_id, e.position))`)
	return err
}

// WebhookEvidence counts the stored evidence of each webhook id: a
// webhook kept once counts 1, so any count above 1 is a duplicate that
// the dedupe key should have stopped.
func WebhookEvidence(ctx context.Context, q Queryer) (map[string]int, error) {
	rows, err := q.QueryContext(ctx, `SELECT data->>'webhook_id', count(*) FROM events WHERE type = $1 GROUP BY 1`, events.TypeWebhookReceived)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			return nil, err
		}
		out[id] = n
	}
	return out, rows.Err()
}

// CountPastSeal is how many events the log holds beyond the seal's count:
// the seal's seq is gap-free, so its last one is how many it sealed.
func CountPastSeal(ctx context.Context, q Queryer) (int64, error) {
	var n int64
	err := q.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM events) - coalesce((SELECT max(seq) FROM event_seal), 0)`).Scan(&n)
	return n, err
}

// Behind is how far a consumer group is behind the log.
type Behind struct {
	Events int64
	// Oldest is the recorded time of the oldest event the group has not
	// committed, and Age how long ago that was; zero when caught up.
	Oldest time.Time
	Age    time.Duration
}

// GroupBehind measures how far group is behind, counting at most ten
// million events.
func GroupBehind(ctx context.Context, q Queryer, group string) (Behind, error) {
	var b Behind
	var oldest sql.NullTime
	var age sql.NullFloat64
	err := q.QueryRowContext(ctx, `WITH o AS (
			SELECT coalesce((SELECT last_processed_transaction_id FROM event_offsets WHERE consumer_group = $1), '0'::xid8) AS txid,
			       coalesce((SELECT offset_acked FROM event_offsets WHERE consumer_group = $1), 0) AS pos
		), behind AS (
			SELECT e.recorded_at FROM events e, o
			WHERE (e.transaction_id, e.position) > (o.txid, o.pos)
			LIMIT 10000000
		)
		SELECT count(*), min(recorded_at), extract(epoch FROM now() - min(recorded_at))::float8 FROM behind`, group).Scan(&b.Events, &oldest, &age)
	if err != nil {
		return b, err
	}
	if oldest.Valid {
		b.Oldest = oldest.Time.UTC()
		b.Age = time.Duration(max(age.Float64, 0) * float64(time.Second))
	}
	return b, nil
}
