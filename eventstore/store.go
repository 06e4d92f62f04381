// Package eventstore is the only code that writes the event log. It appends
// with optimistic concurrency and fact-level idempotency, reads streams, and
// tails the log in a gap-safe order.
package eventstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/shopledger/shopledger/events"
)

var (
	// ErrConcurrency means the stream was not at the expected version.
	ErrConcurrency = errors.New("stream version conflict")
	// ErrEmptyAppend means Append was called without events.
	ErrEmptyAppend = errors.New("no events to append")
	// ErrInvalidEvent means an event cannot be stored as given.
	ErrInvalidEvent = errors.New("invalid event")
)

// ExpectedVersion is what the caller believes the stream's version is.
type ExpectedVersion int64

const (
	// Any appends whatever the stream's version.
	Any ExpectedVersion = -1
	// NoStream requires that the stream has no events yet.
	NoStream ExpectedVersion = 0
)

// Exact requires the stream to be at version v.
func Exact(v int64) ExpectedVersion { return ExpectedVersion(v) }

// Queryer is what the store needs from *sql.DB, *sql.Tx or *sql.Conn, so that
// appends can join a caller's transaction (a consumer's offset, say).
type Queryer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Store reads and appends events.
type Store struct {
	db *sql.DB
	// maxRetries bounds the retries of Update and of Any appends that lose
	// a race for the next version.
	maxRetries int
}

// New returns a store over db (open it with stdlib.OpenDBFromPool).
func New(db *sql.DB) *Store {
	return &Store{db: db, maxRetries: 10}
}

// Appended describes one event of an Append call.
type Appended struct {
	EventID       uuid.UUID
	Position      int64
	StreamVersion int64
	// Duplicate is true when the log already held the fact (same dedupe
	// key); EventID and Position then name the stored event.
	Duplicate bool
}

// Result reports what an Append stored.
type Result struct {
	Events []Appended // in the order given
	// Version is the stream's version after the append.
	Version int64
}

// NewCount returns how many events were new.
func (r Result) NewCount() int {
	n := 0
	for _, a := range r.Events {
		if !a.Duplicate {
			n++
		}
	}
	return n
}

// Append stores evs on stream. Events whose dedupe key is already in the log
// are reported as duplicates and not stored again; the rest get consecutive
// stream versions. With an expected version other than Any, a stream that
// moved on fails with ErrConcurrency.
func (s *Store) Append(ctx context.Context, stream string, expected ExpectedVersion, evs ...events.Event) (Result, error) {
	return s.AppendIn(ctx, s.db, stream, expected, evs...)
}

// AppendIn is Append inside the caller's transaction. Within a transaction a
// lost race cannot be retried here, so it surfaces as ErrConcurrency.
func (s *Store) AppendIn(ctx context.Context, q Queryer, stream string, expected ExpectedVersion, evs ...events.Event) (Result, error) {
	if len(evs) == 0 {
		return Result{}, ErrEmptyAppend
	}
	var insert func() (Result, error)
	if len(evs) == 1 {
		// The common case (one webhook, one fact) skips the batch's
		// column slices and its dedupe map.
		e := evs[0]
		if e.StreamID != "" && e.StreamID != stream {
			return Result{}, fmt.Errorf("append stream %s: event 0 belongs to stream %s: %w", stream, e.StreamID, ErrInvalidEvent)
		}
		row, err := encodeEvent(0, e)
		if err != nil {
			return Result{}, fmt.Errorf("append stream %s: %w", stream, err)
		}
		insert = func() (Result, error) { return insertOne(ctx, q, stream, &row, expected) }
	} else {
		b, err := encodeBatch(stream, evs)
		if err != nil {
			return Result{}, fmt.Errorf("append stream %s: %w", stream, err)
		}
		insert = func() (Result, error) { return b.insert(ctx, q, expected) }
	}
	_, inTx := q.(*sql.Tx)
	for attempt := 0; ; attempt++ {
		res, err := insert()
		if err == nil {
			return res, nil
		}
		retry := errors.Is(err, errLostRace) && !inTx && attempt < s.maxRetries
		if !retry {
			if errors.Is(err, errLostRace) {
				err = ErrConcurrency
			}
			return Result{}, fmt.Errorf("append stream %s: %w", stream, err)
		}
	}
}

// errLostRace is a unique violation that a fresh attempt resolves: another
// writer took the next version (Any) or stored the same dedupe key first.
var errLostRace = errors.New("lost race")

type batch struct {
	stream string
	eventColumns
}

// eventColumns holds encoded events column by column: the arrays the
// insert statements unnest.
type eventColumns struct {
	ids      []string
	types    []string
	versions []int32
	data     []string
	meta     []string
	shops    []int64
	occurred []time.Time
	dedupe   []string
}

func (c *eventColumns) add(row encoded) {
	c.ids = append(c.ids, row.id.String())
	c.types = append(c.types, row.typ)
	c.versions = append(c.versions, row.version)
	c.data = append(c.data, row.data)
	c.meta = append(c.meta, row.meta)
	c.shops = append(c.shops, row.shop)
	c.occurred = append(c.occurred, row.occurred)
	c.dedupe = append(c.dedupe, row.dedupe)
}

func encodeBatch(stream string, evs []events.Event) (*batch, error) {
	b := &batch{stream: stream}
	keys := make(map[string]bool, len(evs))
	for i, e := range evs {
		if e.DedupeKey != "" {
			if keys[e.DedupeKey] {
				return nil, fmt.Errorf("event %d repeats dedupe key %q: %w", i, e.DedupeKey, ErrInvalidEvent)
			}
			keys[e.DedupeKey] = true
		}
		if e.StreamID != "" && e.StreamID != stream {
			return nil, fmt.Errorf("event %d belongs to stream %s: %w", i, e.StreamID, ErrInvalidEvent)
		}
		row, err := encodeEvent(i, e)
		if err != nil {
			return nil, err
		}
		b.add(row)
	}
	return b, nil
}

// appendSQL stores a batch in one statement: it skips inputs whose dedupe
// key is already stored, numbers the rest after the stream's current
// version, and returns one row per input (inserted or duplicate) plus the
// stream's version before the append (ord 0); inserted rows come back with
// ord -1 and are matched by event id in Go, which is cheaper than a join. With an expected version, it
// inserts nothing unless the stream is exactly there.
const appendSQL = `
WITH input AS (
    SELECT * FROM unnest($2::uuid[], $3::text[], $4::int[], $5::text[], $6::text[], $7::bigint[], $8::timestamptz[], $9::text[])
        WITH ORDINALITY AS t(event_id, type, schema_version, data, metadata, shop_id, occurred_at, dedupe_key, ord)
),
base AS (
    SELECT coalesce(max(stream_version), 0) AS v FROM events WHERE stream_id = $1
),
dups AS (
    SELECT i.ord, e.event_id, e.position, e.stream_version
    FROM input i JOIN events e ON e.dedupe_key = i.dedupe_key
    WHERE i.dedupe_key <> ''
),
fresh AS (
    SELECT i.*, row_number() OVER (ORDER BY i.ord) AS n
    FROM input i
    WHERE NOT EXISTS (SELECT 1 FROM dups d WHERE d.ord = i.ord)
),
ins AS (
    INSERT INTO events (event_id, stream_id, stream_version, type, schema_version, data, metadata, shop_id, occurred_at, dedupe_key)
    SELECT f.event_id, $1, base.v + f.n, f.type, f.schema_version, f.data::jsonb, f.metadata::jsonb,
           nullif(f.shop_id, 0), f.occurred_at, nullif(f.dedupe_key, '')
    FROM fresh f, base
    WHERE $10::bigint < 0 OR base.v = $10::bigint
    ORDER BY f.ord
    RETURNING event_id, position, stream_version
)
SELECT 0::bigint, NULL::uuid, NULL::bigint, base.v, false FROM base
UNION ALL
SELECT -1, ins.event_id, ins.position, ins.stream_version, false FROM ins
UNION ALL
SELECT d.ord, d.event_id, d.position, d.stream_version, true FROM dups d
`

// encoded is one event in the form of the log's columns.
type encoded struct {
	id                      uuid.UUID
	typ, data, meta, dedupe string
	version                 int32
	shop                    int64
	occurred                time.Time
}

// emptyMetadata is the encoding of events.Metadata{}, which most events
// carry; it spares them a reflective json.Marshal.
const emptyMetadata = "{}"

// encodeEvent checks event i and encodes its payload and metadata.
func encodeEvent(i int, e events.Event) (encoded, error) {
	if e.Data == nil {
		return encoded{}, fmt.Errorf("event %d has no data: %w", i, ErrInvalidEvent)
	}
	if e.ID == uuid.Nil {
		return encoded{}, fmt.Errorf("event %d has no id: %w", i, ErrInvalidEvent)
	}
	if e.OccurredAt.IsZero() {
		return encoded{}, fmt.Errorf("event %d has no business time: %w", i, ErrInvalidEvent)
	}
	typ, ver, data, err := events.Encode(e.Data)
	if err != nil {
		return encoded{}, err
	}
	meta := emptyMetadata
	if e.Metadata != (events.Metadata{}) {
		b, err := events.EncodeMetadata(e.Metadata)
		if err != nil {
			return encoded{}, fmt.Errorf("event %d metadata: %w", i, err)
		}
		meta = string(b)
	}
	return encoded{id: e.ID, typ: typ, version: int32(ver), data: string(data), meta: meta,
		shop: e.ShopID, occurred: e.OccurredAt.UTC(), dedupe: e.DedupeKey}, nil
}

// appendOneSQL is the single-event form of appendSQL: the common case (one
// webhook, one fact) pays for one plain INSERT instead of the batch CTE.
// It returns no row when the dedupe key is already stored or the stream is
// not at the expected version; insertOne then finds out which.
const appendOneSQL = `
INSERT INTO events (event_id, stream_id, stream_version, type, schema_version, data, metadata, shop_id, occurred_at, dedupe_key)
SELECT $2, $1, v + 1, $3, $4, $5::jsonb, $6::jsonb, nullif($7::bigint, 0), $8, nullif($9, '')
FROM (SELECT coalesce(max(stream_version), 0) AS v FROM events WHERE stream_id = $1) AS base
WHERE $10::bigint < 0 OR v = $10::bigint
ON CONFLICT (dedupe_key) DO NOTHING
RETURNING position, stream_version`

func insertOne(ctx context.Context, q Queryer, stream string, row *encoded, expected ExpectedVersion) (Result, error) {
	a := Appended{EventID: row.id}
	err := queryRow(ctx, q, appendOneSQL, []any{stream, pgtype.UUID{Bytes: row.id, Valid: true}, row.typ, row.version, row.data, row.meta, row.shop, row.occurred, row.dedupe, int64(expected)}, &a.Position, &a.StreamVersion)
	if err == nil {
		return Result{Events: []Appended{a}, Version: a.StreamVersion}, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return Result{}, classify(err)
	}
	// Nothing inserted: the fact is already stored, or the stream moved.
	if row.dedupe != "" {
		err := q.QueryRowContext(ctx, `SELECT event_id, position, stream_version FROM events WHERE dedupe_key = $1`, row.dedupe).Scan(&a.EventID, &a.Position, &a.StreamVersion)
		if err == nil {
			a.Duplicate = true
			var version int64
			if err := q.QueryRowContext(ctx, `SELECT coalesce(max(stream_version), 0) FROM events WHERE stream_id = $1`, stream).Scan(&version); err != nil {
				return Result{}, err
			}
			return Result{Events: []Appended{a}, Version: version}, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return Result{}, err
		}
	}
	return Result{}, fmt.Errorf("stream not at expected version %d: %w", expected, ErrConcurrency)
}

// queryRow runs a query for one row and scans it into dest. Through a
// *sql.DB it borrows the pgx connection underneath and queries it natively:
// that skips database/sql's conversion of every argument and result, and
// on a small machine the client's CPU is taken from the server's.
func queryRow(ctx context.Context, q Queryer, query string, args []any, dest ...any) error {
	db, ok := q.(*sql.DB)
	if !ok {
		return q.QueryRowContext(ctx, query, args...).Scan(dest...)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	native := false
	var qerr error
	rawErr := conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return nil
		}
		native = true
		qerr = c.Conn().QueryRow(ctx, query, args...).Scan(dest...)
		if qerr != nil && pgconn.SafeToRetry(qerr) {
			// Nothing reached the server: drop the connection.
			return driver.ErrBadConn
		}
		return nil
	})
	conn.Close()
	if native && rawErr == nil {
		return qerr
	}
	// Not a pgx connection, or a dead one: database/sql's own path, which
	// retries on a fresh connection.
	return db.QueryRowContext(ctx, query, args...).Scan(dest...)
}

func (b *batch) insert(ctx context.Context, q Queryer, expected ExpectedVersion) (Result, error) {
	rows, err := q.QueryContext(ctx, appendSQL, b.stream, b.ids, b.types, b.versions, b.data, b.meta, b.shops, b.occurred, b.dedupe, int64(expected))
	if err != nil {
		return Result{}, classify(err)
	}
	defer rows.Close()
	res := Result{Events: make([]Appended, len(b.ids))}
	index := make(map[uuid.UUID]int, len(b.ids))
	for i, id := range b.ids {
		index[uuid.MustParse(id)] = i
	}
	var base int64
	seen := 0
	for rows.Next() {
		var ord int64
		var id uuid.NullUUID
		var pos sql.NullInt64
		var ver int64
		var dup bool
		if err := rows.Scan(&ord, &id, &pos, &ver, &dup); err != nil {
			return Result{}, err
		}
		if ord == 0 {
			base = ver
			continue
		}
		if ord < 0 {
			i, ok := index[id.UUID]
			if !ok {
				return Result{}, fmt.Errorf("insert returned unknown event %s", id.UUID)
			}
			ord = int64(i) + 1
		}
		res.Events[ord-1] = Appended{EventID: id.UUID, Position: pos.Int64, StreamVersion: ver, Duplicate: dup}
		seen++
		if !dup && ver > res.Version {
			res.Version = ver
		}
	}
	if err := rows.Err(); err != nil {
		return Result{}, classify(err)
	}
	if seen < len(b.ids) {
		// Fresh events were held back: the stream is not where the caller
		// expected it.
		return Result{}, fmt.Errorf("stream at version %d, expected %d: %w", base, expected, ErrConcurrency)
	}
	if res.Version == 0 {
		res.Version = base
	}
	return res, nil
}

// classify turns unique violations into the errors callers branch on.
func classify(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		switch pgErr.ConstraintName {
		case "events_stream_version_key", "events_dedupe_key_key":
			return fmt.Errorf("%s: %w", pgErr.ConstraintName, errLostRace)
		case "events_event_id_key":
			return fmt.Errorf("event id already stored: %w", ErrInvalidEvent)
		}
	}
	return err
}

// Decide looks at a stream's past and returns the events to append.
type Decide func(past []events.Record) ([]events.Event, error)

// Update loads stream, decides and appends at the loaded version in one
// transaction, retrying a bounded number of times when another writer got
// there first.
func (s *Store) Update(ctx context.Context, stream string, decide Decide) (Result, error) {
	var lastErr error
	for attempt := 0; attempt <= s.maxRetries; attempt++ {
		res, err := s.updateOnce(ctx, stream, decide)
		if err == nil || !errors.Is(err, ErrConcurrency) {
			return res, err
		}
		lastErr = err
		// Jittered pause so that retries of colliding writers spread out.
		select {
		case <-ctx.Done():
			return Result{}, ctx.Err()
		case <-time.After(time.Duration(rand.Int64N(int64(5*time.Millisecond) << min(attempt, 4)))):
		}
	}
	return Result{}, fmt.Errorf("update stream %s: gave up after %d attempts: %w", stream, s.maxRetries+1, lastErr)
}

// BeginAppend begins a transaction that may append to the log after
// writing elsewhere: it announces itself as an appender before anything
// gives it a transaction id (see log_announce). A transaction whose first
// write is the append needs none of this; AppendIn announces it.
func BeginAppend(ctx context.Context, db *sql.DB) (*sql.Tx, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, `SELECT log_announce()`); err != nil {
		tx.Rollback() //nolint:errcheck // the error above is the one to report
		return nil, err
	}
	return tx, nil
}

func (s *Store) updateOnce(ctx context.Context, stream string, decide Decide) (Result, error) {
	tx, err := BeginAppend(ctx, s.db)
	if err != nil {
		return Result{}, fmt.Errorf("update stream %s: begin: %w", stream, err)
	}
	defer tx.Rollback() //nolint:errcheck // after commit this is a no-op
	// Writers of one stream queue here instead of thrashing on conflicts;
	// the unique constraint still guards writers that skip Update.
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 7316))`, stream); err != nil {
		return Result{}, fmt.Errorf("update stream %s: lock: %w", stream, err)
	}
	past, err := readStream(ctx, tx, stream, 0)
	if err != nil {
		return Result{}, fmt.Errorf("update stream %s: %w", stream, err)
	}
	version := int64(0)
	if n := len(past); n > 0 {
		version = past[n-1].StreamVersion
	}
	evs, err := decide(past)
	if err != nil {
		return Result{}, err
	}
	if len(evs) == 0 {
		return Result{Version: version}, tx.Commit()
	}
	res, err := s.AppendIn(ctx, tx, stream, Exact(version), evs...)
	if err != nil {
		return Result{}, err
	}
	if err := tx.Commit(); err != nil {
		return Result{}, fmt.Errorf("update stream %s: commit: %w", stream, classify(err))
	}
	return res, nil
}

// selectColumns names the text cast of transaction_id "transaction_id",
// so a query that also sorts by it must qualify the column
// (events.transaction_id): the bare name would sort the text, and "999"
// sorts after "1000".
const selectColumns = `position, transaction_id::text, event_id, stream_id, stream_version, type, schema_version, data, metadata, coalesce(shop_id, 0), occurred_at, recorded_at, coalesce(dedupe_key, '')`

// RecordColumns is the column list ScanRecord expects, for readers that
// select events with their own filters (auditor pages, exports).
const RecordColumns = selectColumns

func finishRecord(r events.Record, txid string, data, meta []byte) (events.Record, error) {
	var err error
	if r.TransactionID, err = strconv.ParseUint(txid, 10, 64); err != nil {
		return r, fmt.Errorf("event %d: transaction id %q: %w", r.Position, txid, err)
	}
	r.OccurredAt = r.OccurredAt.UTC()
	r.RecordedAt = r.RecordedAt.UTC()
	r.RawData = append(json.RawMessage(nil), data...)
	if r.Metadata, err = events.DecodeMetadata(meta); err != nil {
		return r, fmt.Errorf("event %d: %w", r.Position, err)
	}
	return r, nil
}

// ScanRecord scans a row selected with RecordColumns and decodes its
// payload, upcasting old schema versions.
func ScanRecord(row interface{ Scan(...any) error }) (events.Record, error) {
	var r events.Record
	var txid, typ string
	var data, meta []byte
	if err := row.Scan(&r.Position, &txid, &r.ID, &r.StreamID, &r.StreamVersion, &typ, &r.SchemaVersion, &data, &meta, &r.ShopID, &r.OccurredAt, &r.RecordedAt, &r.DedupeKey); err != nil {
		return r, err
	}
	r, err := finishRecord(r, txid, data, meta)
	if err != nil {
		return r, err
	}
	if r.Data, err = events.Decode(typ, r.SchemaVersion, data); err != nil {
		return r, fmt.Errorf("event %d: %w", r.Position, err)
	}
	return r, nil
}

// ReadStream returns the stream's events from version from (inclusive).
func (s *Store) ReadStream(ctx context.Context, stream string, from int64) ([]events.Record, error) {
	recs, err := readStream(ctx, s.db, stream, from)
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", stream, err)
	}
	return recs, nil
}

// ReadStreamIn is ReadStream inside the caller's transaction.
func (s *Store) ReadStreamIn(ctx context.Context, q Queryer, stream string, from int64) ([]events.Record, error) {
	recs, err := readStream(ctx, q, stream, from)
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", stream, err)
	}
	return recs, nil
}

func readStream(ctx context.Context, q Queryer, stream string, from int64) ([]events.Record, error) {
	return queryRecords(ctx, q, `SELECT `+selectColumns+` FROM events WHERE stream_id = $1 AND stream_version >= $2 ORDER BY stream_version`, stream, from)
}

// Cursor is a place in the log's commit order.
type Cursor struct {
	TransactionID uint64
	Position      int64
}

// After reports whether c comes after o.
func (c Cursor) After(o Cursor) bool {
	if c.TransactionID != o.TransactionID {
		return c.TransactionID > o.TransactionID
	}
	return c.Position > o.Position
}

// CursorOf returns the cursor just at r.
func CursorOf(r events.Record) Cursor {
	return Cursor{TransactionID: r.TransactionID, Position: r.Position}
}

// ReadAll returns up to limit events after cursor in commit order. It never
// returns an event while an older transaction that might still insert one
// before it is running, so a reader that follows the returned cursors never
// skips an event.
func (s *Store) ReadAll(ctx context.Context, after Cursor, limit int) ([]events.Record, error) {
	recs, err := queryRecords(ctx, s.db, `SELECT `+selectColumns+` FROM events
		WHERE (transaction_id, position) > ($1::text::xid8, $2)
		  AND transaction_id < log_horizon()
		ORDER BY events.transaction_id, events.position
		LIMIT $3`, strconv.FormatUint(after.TransactionID, 10), after.Position, limit)
	if err != nil {
		return nil, fmt.Errorf("read all after %v: %w", after, err)
	}
	return recs, nil
}

// Get returns one event by id.
func (s *Store) Get(ctx context.Context, id uuid.UUID) (events.Record, error) {
	r, err := ScanRecord(s.db.QueryRowContext(ctx, `SELECT `+selectColumns+` FROM events WHERE event_id = $1`, id))
	if err != nil {
		return r, fmt.Errorf("get event %s: %w", id, err)
	}
	return r, nil
}

func parseUUID(s string) (uuid.UUID, error) {
	id, err := uuid.Parse(s)
	if err != nil {
		return id, fmt.Errorf("event id %q: %w", s, err)
	}
	return id, nil
}
