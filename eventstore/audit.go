package eventstore

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/shopledger/shopledger/events"
)

// The auditors' reads of the log: events as stored with their place in
// the seal (event_seal: a gap-free seq in commit order and a hash chain),
// the causation links between them, and what verifying the chain needs.
// Every read that names shops returns only events of those shops.

// ErrNoEvent means the event does not exist or is not in the caller's
// shops.
var ErrNoEvent = errors.New("event not found")

// LoggedEvent is one event of the log as auditors see it: the stored fact
// and its place in the sealed chain (Seq 0 and empty hashes while it is
// not sealed yet).
type LoggedEvent struct {
	Seq           int64           `json:"seq"`
	Hash          string          `json:"hash"`
	PrevHash      string          `json:"prev_hash"`
	Position      int64           `json:"position"`
	EventID       string          `json:"event_id"`
	StreamID      string          `json:"stream_id"`
	StreamVersion int64           `json:"stream_version"`
	Type          string          `json:"type"`
	SchemaVersion int             `json:"schema_version"`
	ShopID        int64           `json:"shop_id"`
	OccurredAt    time.Time       `json:"occurred_at"`
	RecordedAt    time.Time       `json:"recorded_at"`
	DedupeKey     string          `json:"dedupe_key"`
	Metadata      EventMetadata   `json:"metadata"`
	Data          json.RawMessage `json:"data"`
}

// EventMetadata is the allow-listed part of an event's metadata; anything
// else a writer put there stays in the database.
type EventMetadata struct {
	CorrelationID string `json:"correlation_id"`
	CausationID   string `json:"causation_id"`
	Source        string `json:"source"`
	Actor         string `json:"actor"`
	RequestID     string `json:"request_id"`
}

// SealedFilter selects sealed events. Shops is the caller's set and is
// always applied; the other fields narrow it.
type SealedFilter struct {
	Shops    []int64
	ShopID   int64
	Stream   string
	Type     string
	From, To time.Time // business time, To exclusive
	AfterSeq int64
	ToSeq    int64 // inclusive; zero means no bound
	Limit    int
}

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
	return scanAll(rows, scanLogged)
}

// ListSealed pages sealed events of the filter's shops by seq.
//
// The query is written for the filters given, each shape with a plan
// that suits it whatever the values (the driver prepares statements, and
// PostgreSQL may settle on a generic plan). A stream is read through its
// index; a time range from a date through the shops' business-time index,
// all of the range for every page, as the range's events lie anywhere in
// seq order; otherwise each shop's sealed events are walked in seq order
// (event_seal_shop_idx) until a page matches, and the shops' walks are
// merged. A walk reads about a page per shop whatever the shops' part of
// the log. A type is read through the type on its seal rows.
func (s *Store) ListSealed(ctx context.Context, f SealedFilter) ([]LoggedEvent, error) {
	shops := f.Shops
	if f.ShopID != 0 {
		shops = nil
		if slices.Contains(f.Shops, f.ShopID) {
			shops = []int64{f.ShopID}
		}
	}
	args := []any{shops, f.AfterSeq, f.Limit}
	var ev, seq string // conditions on the event (e) and on its seal (s)
	cond := func(to *string, c string, arg any) {
		args = append(args, arg)
		*to += fmt.Sprintf(" AND "+c, len(args))
	}
	if f.Stream != "" {
		cond(&ev, "e.stream_id = $%d", f.Stream)
	}
	typeArg := 0
	if f.Type != "" {
		cond(&ev, "e.type = $%d", f.Type)
		typeArg = len(args)
	}
	if !f.From.IsZero() {
		cond(&ev, "e.occurred_at >= $%d", f.From.UTC())
	}
	if !f.To.IsZero() {
		cond(&ev, "e.occurred_at < $%d", f.To.UTC())
	}
	if f.ToSeq != 0 {
		cond(&seq, "s.seq <= $%d", f.ToSeq)
	}
	var query string
	switch {
	case f.Stream != "":
		query = `SELECT ` + loggedColumns + `
			FROM events e JOIN event_seal s ON s.position = e.position
			WHERE e.shop_id = ANY($1) AND s.seq > $2` + ev + seq + `
			ORDER BY s.seq
			LIMIT $3`
	case !f.From.IsZero():
		// Left free, PostgreSQL walks the seal in seq order and expects
		// to meet the range early; it meets it where its events were
		// sealed, possibly at the far end. Looking the seq up per event
		// keeps the range the driving side; only the page's events are
		// read whole.
		query = `SELECT ` + loggedColumns + `
			FROM (
			    SELECT s.seq FROM events e
			    CROSS JOIN LATERAL (SELECT s.seq FROM event_seal s WHERE s.position = e.position OFFSET 0) s
			    WHERE e.shop_id = ANY($1) AND s.seq > $2` + ev + seq + `
			    ORDER BY s.seq
			    LIMIT $3
			) page
			JOIN event_seal s ON s.seq = page.seq JOIN events e ON e.position = s.position
			ORDER BY s.seq`
	case f.Type != "":
		// A type through its seal rows (event_seal_shop_type_idx); rows
		// sealed before seals carried the type (below
		// event_seal_typed_from) are walked and looked up.
		query = mergedShopWalks(`
			(SELECT s.seq FROM event_seal s
			 WHERE s.shop_id = shop.id AND s.type = $` + strconv.Itoa(typeArg) + ` AND s.seq > $2` + seq + `
			 ORDER BY s.seq
			 LIMIT $3)
			UNION ALL
			(SELECT s.seq FROM event_seal s ` + lookupEvent + `
			 WHERE s.shop_id = shop.id AND s.seq > $2 AND s.seq < (SELECT t.seq FROM event_seal_typed_from t)` + ev + seq + `
			 ORDER BY s.seq
			 LIMIT $3)`)
	default:
		// The walk looks each sealed event up in seq order. Left free,
		// PostgreSQL reads a condition it thinks selective by scanning
		// the whole log once per shop instead; OFFSET 0 keeps the lookup
		// a lookup.
		join := "JOIN events e ON e.position = s.position"
		if ev != "" {
			join = lookupEvent
		}
		query = mergedShopWalks(`
			SELECT s.seq FROM event_seal s ` + join + `
			WHERE s.shop_id = shop.id AND s.seq > $2` + ev + seq + `
			ORDER BY s.seq
			LIMIT $3`)
	}
	evs, err := s.queryLogged(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list sealed events after seq %d: %w", f.AfterSeq, err)
	}
	return evs, nil
}

// lookupEvent joins a seal row (s) to its event (e) one lookup at a time.
const lookupEvent = "CROSS JOIN LATERAL (SELECT e.* FROM events e WHERE e.position = s.position OFFSET 0) e"

// mergedShopWalks pages the sealed events that walk, a subquery giving
// one shop's (shop.id) seqs in order, at most $3, finds for each of the
// shops $1: the walks merged in seq order, the page read whole.
func mergedShopWalks(walk string) string {
	return `SELECT ` + loggedColumns + `
		FROM (
		    SELECT p.seq FROM unnest($1::bigint[]) AS shop(id)
		    CROSS JOIN LATERAL (` + walk + `) p
		    ORDER BY p.seq
		    LIMIT $3
		) page
		JOIN event_seal s ON s.seq = page.seq JOIN events e ON e.position = s.position
		ORDER BY s.seq`
}

// GetLogged returns one event of shops, sealed or not yet, or ErrNoEvent.
func (s *Store) GetLogged(ctx context.Context, shops []int64, id uuid.UUID) (LoggedEvent, error) {
	evs, err := s.queryLogged(ctx, `SELECT `+loggedColumns+`
		FROM events e LEFT JOIN event_seal s ON s.position = e.position
		WHERE e.event_id = $2 AND e.shop_id = ANY($1)`, shops, id)
	if err != nil {
		return LoggedEvent{}, fmt.Errorf("get event %s: %w", id, err)
	}
	if len(evs) == 0 {
		return LoggedEvent{}, fmt.Errorf("get event %s: %w", id, ErrNoEvent)
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

// Causation follows metadata.causation_id both ways from event id: the
// events that led to it (oldest first) and the events it led to (in log
// order), both limited to shops.
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

// WebhookCause is the webhook evidence an event follows from.
type WebhookCause struct {
	// WebhookID is Etsy's id of the delivery.
	WebhookID string
	// EventID is the evidence event (etsy.webhook.received).
	EventID uuid.UUID
}

// WebhookCauses returns, for those of ids whose event's cause
// (metadata.causation_id) is a webhook's evidence, that webhook. The
// lookups are by key, one per id, so callers bound them by the size of a
// page.
func (s *Store) WebhookCauses(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]WebhookCause, error) {
	out := map[uuid.UUID]WebhookCause{}
	if len(ids) == 0 {
		return out, nil
	}
	// pgx sends [16]byte as a binary uuid; a uuid.UUID would go through
	// its driver.Valuer as text, which costs the query service more than
	// the rest of a history page's reads.
	keys := make([][16]byte, len(ids))
	for i, id := range ids {
		keys[i] = id
	}
	rows, err := s.db.QueryContext(ctx, `
		SELECT e.event_id, coalesce(ev.data->>'webhook_id', ''), ev.event_id
		FROM unnest($1::uuid[]) AS k(event_id)
		JOIN events e ON e.event_id = k.event_id
		JOIN events ev ON ev.event_id = `+fmt.Sprintf(causationUUID, "e.metadata->>'causation_id'")+`
		WHERE ev.type = $2`, keys, events.TypeWebhookReceived)
	if err != nil {
		return nil, fmt.Errorf("webhook causes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id uuid.UUID
		var c WebhookCause
		if err := rows.Scan(&id, &c.WebhookID, &c.EventID); err != nil {
			return nil, fmt.Errorf("webhook causes: %w", err)
		}
		out[id] = c
	}
	return out, rows.Err()
}

// SealHead is the last sealed event: its seq and hash, and its place in
// the log's commit order.
type SealHead struct {
	Seq           int64
	Hash          []byte
	TransactionID string // xid8 as text; "0" when nothing is sealed
	Position      int64
}

// LastSealed returns the seal's head; the zero head (TransactionID "0")
// when nothing is sealed.
func (s *Store) LastSealed(ctx context.Context) (SealHead, error) {
	h := SealHead{Hash: []byte{}}
	err := s.db.QueryRowContext(ctx, `SELECT seq, hash, transaction_id::text, position FROM event_seal ORDER BY seq DESC LIMIT 1`).
		Scan(&h.Seq, &h.Hash, &h.TransactionID, &h.Position)
	if errors.Is(err, sql.ErrNoRows) {
		return SealHead{Hash: []byte{}, TransactionID: "0"}, nil
	}
	if err != nil {
		return h, fmt.Errorf("seal head: %w", err)
	}
	return h, nil
}

// SealedLink is one seal row with the verdict on its hash: HashOK when
// its event is still in the log and hash = sha256(prev_hash ||
// event_canonical(seq, event)), the canonical text the sealer hashes.
// Whether PrevHash links to the row before is for the caller walking the
// rows in order.
type SealedLink struct {
	Seq      int64
	ShopID   int64
	PrevHash []byte
	Hash     []byte
	HashOK   bool
}

// WalkSeal returns up to limit seal rows after seq, in seq order, each
// with its hash recomputed from the event as the log holds it. fn is
// called for each row as it is read, so a walk cut short by ctx keeps
// what it checked.
func (s *Store) WalkSeal(ctx context.Context, after int64, limit int, fn func(SealedLink)) error {
	rows, err := s.db.QueryContext(ctx, `
		SELECT s.seq, coalesce(s.shop_id, 0), s.prev_hash, s.hash,
		       e.position IS NOT NULL AND s.hash = sha256(s.prev_hash || convert_to(event_canonical(s.seq, e), 'UTF8'))
		FROM event_seal s
		LEFT JOIN events e ON e.position = s.position AND e.event_id = s.event_id
		WHERE s.seq > $1
		ORDER BY s.seq
		LIMIT $2`, after, limit)
	if err != nil {
		return fmt.Errorf("walk seal after %d: %w", after, err)
	}
	defer rows.Close()
	for rows.Next() {
		var l SealedLink
		if err := rows.Scan(&l.Seq, &l.ShopID, &l.PrevHash, &l.Hash, &l.HashOK); err != nil {
			return fmt.Errorf("walk seal after %d: %w", after, err)
		}
		fn(l)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("walk seal after %d: %w", after, err)
	}
	return nil
}

// FirstRecentMismatch rechecks the newest window sealed events of shops
// at or below seq through, link and hash, and returns the lowest seq that
// does not verify (ok false when all do).
func (s *Store) FirstRecentMismatch(ctx context.Context, shops []int64, through int64, window int) (seq int64, ok bool, err error) {
	var first sql.NullInt64
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
		LEFT JOIN events e ON e.position = w.position AND e.event_id = w.event_id`, shops, through, window).Scan(&first)
	if err != nil {
		return 0, false, fmt.Errorf("recheck recent seal: %w", err)
	}
	return first.Int64, first.Valid, nil
}

// CountUnsealed counts the events of shops not sealed yet. The sealer
// seals in commit order, so only events after the head can be unsealed:
// a range of the tail index as long as the seal's lag.
func (s *Store) CountUnsealed(ctx context.Context, shops []int64, head SealHead) (int64, error) {
	txn := head.TransactionID
	if txn == "" {
		txn = "0" // nothing sealed: every event counts
	}
	var n int64
	err := s.db.QueryRowContext(ctx, `
		SELECT count(*) FROM events e
		WHERE e.shop_id = ANY($1) AND (e.transaction_id, e.position) > ($2::text::xid8, $3)
		  AND NOT EXISTS (SELECT 1 FROM event_seal s WHERE s.position = e.position)`, shops, txn, head.Position).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count unsealed: %w", err)
	}
	return n, nil
}
