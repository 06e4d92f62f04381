package httpapi

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
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

// Chain verification reads each sealed event once per process, not once
// per request. chainVerifier walks the whole seal in seq order: for each
// row, prev_hash must be the stored hash of the row before it (empty for
// seq 1; a missing row breaks the link) and hash must equal
// sha256(prev_hash || event_canonical(seq, event)), recomputed from the
// event as the log holds it. The canonical text is the database function
// the sealer itself hashes. What it found is kept per shop, so a request
// reads its shops' counts instead of re-hashing their history; each
// request advances the walk by at most chainStep rows, and re-checks the
// caller's newest chainWindow sealed events, so that a change to recent
// events shows at once. ledger verify re-hashes everything.
type chainVerifier struct {
	// walking is held by the one request advancing the walk; others
	// answer from what is known without waiting.
	walking sync.Mutex
	mu      sync.Mutex
	// through is the last seq walked and last its stored hash.
	through int64
	last    []byte
	checked map[int64]int64 // shop → sealed events walked
	first   map[int64]int64 // shop → first seq that did not verify
	// step and window are chainStep and chainWindow (tests lower them).
	step, window int
}

const (
	chainStep   = 20_000
	chainWindow = 1_000
)

func newChainVerifier() *chainVerifier {
	return &chainVerifier{last: []byte{}, checked: map[int64]int64{}, first: map[int64]int64{}, step: chainStep, window: chainWindow}
}

// walk verifies up to step more seal rows after the last one walked.
func (v *chainVerifier) walk(ctx context.Context, db *sql.DB) error {
	if !v.walking.TryLock() {
		return nil
	}
	defer v.walking.Unlock()
	v.mu.Lock()
	through := v.through
	v.mu.Unlock()
	rows, err := db.QueryContext(ctx, `
		SELECT s.seq, coalesce(s.shop_id, 0), s.prev_hash, s.hash,
		       e.position IS NOT NULL AND s.hash = sha256(s.prev_hash || convert_to(event_canonical(s.seq, e), 'UTF8'))
		FROM event_seal s
		LEFT JOIN events e ON e.position = s.position AND e.event_id = s.event_id
		WHERE s.seq > $1
		ORDER BY s.seq
		LIMIT $2`, through, v.step)
	if err != nil {
		return fmt.Errorf("walk seal after %d: %w", through, err)
	}
	defer rows.Close()
	for rows.Next() {
		var seq, shop int64
		var prev, hash []byte
		var hashOK bool
		if err := rows.Scan(&seq, &shop, &prev, &hash, &hashOK); err != nil {
			return fmt.Errorf("walk seal after %d: %w", through, err)
		}
		v.mu.Lock()
		linkOK := seq == v.through+1 && bytes.Equal(prev, v.last)
		v.checked[shop]++
		if first, seen := v.first[shop]; !(hashOK && linkOK) && (!seen || seq < first) {
			v.first[shop] = seq
		}
		v.through, v.last = seq, hash
		v.mu.Unlock()
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("walk seal after %d: %w", through, err)
	}
	return nil
}

// ChainStatus reports the seal's head and how the caller's part of the
// chain verifies, in time bounded by chainStep and chainWindow whatever
// the length of the log.
func (s *Store) ChainStatus(ctx context.Context, shops []int64) (ChainStatus, error) {
	st := ChainStatus{CheckedAt: time.Now().UTC()}
	var head []byte
	var headTxn string
	var headPos int64
	err := s.db.QueryRowContext(ctx, `SELECT seq, hash, transaction_id::text, position FROM event_seal ORDER BY seq DESC LIMIT 1`).
		Scan(&st.SealedThrough, &head, &headTxn, &headPos)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return st, fmt.Errorf("chain status: head: %w", err)
	}
	st.HeadHash = hex.EncodeToString(head)

	// The walk gets half of the request's remaining time. Rows are kept as
	// they are checked, so a walk cut short by that still moves on, and
	// the request keeps time to answer.
	v := s.chain
	walkCtx, cancel := ctx, context.CancelFunc(func() {})
	if deadline, ok := ctx.Deadline(); ok {
		walkCtx, cancel = context.WithDeadline(ctx, time.Now().Add(time.Until(deadline)/2))
	}
	err = v.walk(walkCtx, s.db)
	cutShort := walkCtx.Err() != nil && ctx.Err() == nil
	cancel()
	if err != nil && !cutShort {
		return st, fmt.Errorf("chain status: %w", err)
	}
	v.mu.Lock()
	st.VerifiedThrough = v.through
	var first int64
	for _, shop := range shops {
		st.Checked += v.checked[shop]
		if f, ok := v.first[shop]; ok && (first == 0 || f < first) {
			first = f
		}
	}
	v.mu.Unlock()

	// The caller's newest walked events, hashed again on every request.
	var recent sql.NullInt64
	err = s.db.QueryRowContext(ctx, `
		SELECT min(w.seq) FILTER (WHERE
		        CASE WHEN w.seq = 1 THEN '\x'::bytea ELSE p.hash END IS DISTINCT FROM w.prev_hash
		     OR e.position IS NULL
		     OR w.hash IS DISTINCT FROM sha256(w.prev_hash || convert_to(event_canonical(w.seq, e), 'UTF8')))
		FROM (
		    SELECT r.* FROM unnest($1::bigint[]) AS shop(id)
		    CROSS JOIN LATERAL (
		        SELECT s.seq, s.position, s.event_id, s.prev_hash, s.hash FROM event_seal s
		        WHERE s.shop_id = shop.id AND s.seq <= $2
		        ORDER BY s.seq DESC LIMIT $3
		    ) r
		    ORDER BY r.seq DESC LIMIT $3
		) w
		LEFT JOIN event_seal p ON p.seq = w.seq - 1
		LEFT JOIN events e ON e.position = w.position AND e.event_id = w.event_id`, shops, st.VerifiedThrough, v.window).Scan(&recent)
	if err != nil {
		return st, fmt.Errorf("chain status: recent: %w", err)
	}
	if recent.Valid && (first == 0 || recent.Int64 < first) {
		first = recent.Int64
	}
	if first != 0 {
		st.FirstMismatchSeq = &first
	}
	st.Valid = first == 0

	// The sealer seals in commit order, so only events after the last
	// sealed one can be unsealed: a range of the tail index as long as the
	// seal's lag.
	if headTxn == "" {
		headTxn = "0" // nothing sealed: every event counts
	}
	err = s.db.QueryRowContext(ctx, `
		SELECT count(*) FROM events e
		WHERE e.shop_id = ANY($1) AND (e.transaction_id, e.position) > ($2::text::xid8, $3)
		  AND NOT EXISTS (SELECT 1 FROM event_seal s WHERE s.position = e.position)`, shops, headTxn, headPos).Scan(&st.Unsealed)
	if err != nil {
		return st, fmt.Errorf("chain status: unsealed: %w", err)
	}
	return st, nil
}
