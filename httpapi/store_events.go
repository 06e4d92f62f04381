package httpapi

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// The auditor side reads the log itself (events) and the seal the
// projector keeps beside it (event_seal: a gap-free seq in commit order and
// a hash chain). Only rows of the caller's shops are ever returned.

const loggedColumns = `coalesce(s.seq, 0), coalesce(s.hash, ''::bytea), coalesce(s.prev_hash, ''::bytea),
	e.position, e.event_id, e.stream_id, e.stream_version, e.type, e.schema_version, coalesce(e.shop_id, 0),
	e.occurred_at, e.recorded_at, coalesce(e.dedupe_key, ''), e.metadata, e.data`

func scanLogged(row interface{ Scan(...any) error }) (LoggedEvent, error) {
	var ev LoggedEvent
	var hash, prev, meta, data []byte
	var id uuid.UUID
	if err := row.Scan(&ev.Seq, &hash, &prev, &ev.Position, &id, &ev.StreamID, &ev.StreamVersion, &ev.Type, &ev.SchemaVersion,
		&ev.ShopID, &ev.OccurredAt, &ev.RecordedAt, &ev.DedupeKey, &meta, &data); err != nil {
		return ev, err
	}
	ev.EventID = id.String()
	ev.Hash, ev.PrevHash = hex.EncodeToString(hash), hex.EncodeToString(prev)
	ev.OccurredAt, ev.RecordedAt = ev.OccurredAt.UTC(), ev.RecordedAt.UTC()
	// Only the allow-listed metadata keys are decoded; anything else a
	// writer put there stays in the database.
	if len(meta) > 0 {
		if err := json.Unmarshal(meta, &ev.Metadata); err != nil {
			return ev, fmt.Errorf("event %s metadata: %w", ev.EventID, err)
		}
	}
	ev.Data = json.RawMessage(data)
	return ev, nil
}

func (s *Store) queryLogged(ctx context.Context, query string, args ...any) ([]LoggedEvent, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []LoggedEvent
	for rows.Next() {
		ev, err := scanLogged(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
	return out, rows.Err()
}

// ListEvents pages sealed events by seq.
func (s *Store) ListEvents(ctx context.Context, f EventFilter) ([]LoggedEvent, error) {
	evs, err := s.queryLogged(ctx, `SELECT `+loggedColumns+`
		FROM event_seal s JOIN events e ON e.position = s.position
		WHERE s.shop_id = ANY($1) AND s.seq > $2
		  AND ($3::bigint = 0 OR s.shop_id = $3)
		  AND ($4::text = '' OR e.stream_id = $4)
		  AND ($5::text = '' OR e.type = $5)
		  AND ($6::timestamptz IS NULL OR e.occurred_at >= $6)
		  AND ($7::timestamptz IS NULL OR e.occurred_at < $7)
		  AND ($8::bigint = 0 OR s.seq <= $8)
		ORDER BY s.seq
		LIMIT $9`, f.Shops, f.AfterSeq, f.ShopID, f.Stream, f.Type, nullTime(f.From), nullTime(f.To), f.ToSeq, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("list events after seq %d: %w", f.AfterSeq, err)
	}
	return evs, nil
}

// GetEvent returns one event of the caller's shops, sealed or not yet.
func (s *Store) GetEvent(ctx context.Context, shops []int64, id uuid.UUID) (LoggedEvent, error) {
	evs, err := s.queryLogged(ctx, `SELECT `+loggedColumns+`
		FROM events e LEFT JOIN event_seal s ON s.position = e.position
		WHERE e.event_id = $2 AND e.shop_id = ANY($1)`, shops, id)
	if err != nil {
		return LoggedEvent{}, fmt.Errorf("get event %s: %w", id, err)
	}
	if len(evs) == 0 {
		return LoggedEvent{}, ErrNotFound
	}
	return evs[0], nil
}

// Causation bounds: a chain deeper or wider than this is cut, not failed.
const (
	maxCauseDepth  = 50
	maxEffectDepth = 20
	maxEffects     = 500
)

// causationUUID guards the cast: causation ids written by other code may
// not be event ids, and a failed cast would fail the whole query.
const causationUUID = `CASE WHEN %s ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN (%[1]s)::uuid END`

// Causation follows metadata.causation_id both ways from event id.
func (s *Store) Causation(ctx context.Context, shops []int64, id uuid.UUID) (causes, effects []LoggedEvent, err error) {
	causes, err = s.queryLogged(ctx, `
		WITH RECURSIVE up(position, cause, depth) AS (
		    SELECT e.position, e.metadata->>'causation_id', 0 FROM events e WHERE e.event_id = $2
		    UNION
		    SELECT p.position, p.metadata->>'causation_id', up.depth + 1
		    FROM up JOIN events p ON p.event_id = `+fmt.Sprintf(causationUUID, "up.cause")+`
		    WHERE up.depth < $3
		)
		SELECT `+loggedColumns+`
		FROM up JOIN events e ON e.position = up.position LEFT JOIN event_seal s ON s.position = e.position
		WHERE up.depth > 0 AND e.shop_id = ANY($1)
		ORDER BY up.depth DESC`, shops, id, maxCauseDepth)
	if err != nil {
		return nil, nil, fmt.Errorf("causes of event %s: %w", id, err)
	}
	effects, err = s.queryLogged(ctx, `
		WITH RECURSIVE down(position, event_id, depth) AS (
		    SELECT e.position, e.event_id, 1 FROM events e
		    WHERE e.metadata ? 'causation_id' AND e.metadata->>'causation_id' = $2::text
		    UNION
		    SELECT c.position, c.event_id, down.depth + 1
		    FROM down JOIN events c ON c.metadata ? 'causation_id' AND c.metadata->>'causation_id' = down.event_id::text
		    WHERE down.depth < $3
		)
		SELECT `+loggedColumns+`
		FROM (SELECT DISTINCT position FROM down) d JOIN events e ON e.position = d.position LEFT JOIN event_seal s ON s.position = e.position
		WHERE e.shop_id = ANY($1)
		ORDER BY e.position
		LIMIT $4`, shops, id.String(), maxEffectDepth, maxEffects)
	if err != nil {
		return nil, nil, fmt.Errorf("effects of event %s: %w", id, err)
	}
	return causes, effects, nil
}

// ChainStatus verifies the caller's part of the seal: for each of its
// sealed events, prev_hash must be the hash of the row before it (empty for
// seq 1; other tenants' rows are compared by hash only, never shown) and
// hash must equal sha256(prev_hash || event_canonical(seq, event)),
// recomputed from the event as the log holds it now. The canonical text is
// the database function the sealer itself hashes.
func (s *Store) ChainStatus(ctx context.Context, shops []int64) (ChainStatus, error) {
	st := ChainStatus{CheckedAt: time.Now().UTC()}
	var head []byte
	err := s.db.QueryRowContext(ctx, `SELECT seq, hash FROM event_seal ORDER BY seq DESC LIMIT 1`).Scan(&st.SealedThrough, &head)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return st, fmt.Errorf("chain status: head: %w", err)
	}
	st.HeadHash = hex.EncodeToString(head)
	var mismatch sql.NullInt64
	err = s.db.QueryRowContext(ctx, `
		SELECT count(*), min(s.seq) FILTER (WHERE
		        CASE WHEN s.seq = 1 THEN '\x'::bytea ELSE p.hash END IS DISTINCT FROM s.prev_hash
		     OR e.position IS NULL
		     OR s.hash IS DISTINCT FROM sha256(s.prev_hash || convert_to(event_canonical(s.seq, e), 'UTF8')))
		FROM event_seal s
		LEFT JOIN event_seal p ON p.seq = s.seq - 1
		LEFT JOIN events e ON e.position = s.position AND e.event_id = s.event_id
		WHERE s.shop_id = ANY($1)`, shops).Scan(&st.Checked, &mismatch)
	if err != nil {
		return st, fmt.Errorf("chain status: verify: %w", err)
	}
	st.FirstMismatchSeq = int64Ptr(mismatch)
	st.Valid = !mismatch.Valid
	err = s.db.QueryRowContext(ctx, `
		SELECT count(*) FROM events e
		WHERE e.shop_id = ANY($1) AND NOT EXISTS (SELECT 1 FROM event_seal s WHERE s.position = e.position)`, shops).Scan(&st.Unsealed)
	if err != nil {
		return st, fmt.Errorf("chain status: unsealed: %w", err)
	}
	return st, nil
}
