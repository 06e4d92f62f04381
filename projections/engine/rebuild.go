package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
)

// ShadowSuffix names the tables a rebuild fills before it swaps them in.
const ShadowSuffix = "_rebuild"

// rebuildLock keeps two rebuilds from filling the same shadow tables.
const rebuildLock = 7316201

// RebuildReport says what a rebuild did.
type RebuildReport struct {
	Projections []string
	// Events is how many events were read (only types some rebuilt
	// projection handles are read).
	Events int64
	// Rows is how many rows each table got.
	Rows map[string]int64
	// Cursor is the last event the rebuilt tables contain; the consumer
	// groups continue after it.
	Cursor   eventstore.Cursor
	Duration time.Duration
}

// RebuildOptions tunes a rebuild.
type RebuildOptions struct {
	// NoSwap leaves the filled shadow tables (<table>_rebuild) in place
	// instead of swapping them in; for comparing a rebuild with the live
	// tables.
	NoSwap bool
}

// Rebuildable is a projection whose tables can be rebuilt from the log
// into shadow tables and swapped in.
type Rebuildable interface {
	Projection
	// Tables lists the read-model tables the projection owns, each
	// registered with RegisterTables.
	Tables() []string
	// NewFold returns an in-memory fold that emits rows for the shadow
	// tables. It must produce exactly the rows Apply would have written.
	NewFold() Fold
}

// Fold folds the log in memory and hands rows to the shadow tables.
type Fold interface {
	// Apply folds one event; append-only rows may be emitted right away.
	Apply(rec events.Record, emit EmitFunc) error
	// Finish emits the rows that were kept in memory.
	Finish(emit EmitFunc) error
}

// EmitFunc hands one row to table, as pointers to its fields in the
// table's column order (a row type's fields()). The row is encoded before
// emit returns, so the caller may change it afterwards.
type EmitFunc func(table string, fields []any) error

// Rebuild builds fresh copies of the projections' tables from the log
// into shadow tables, then, in one transaction, swaps them in and sets each
// projection's consumer group offset (and checkpoint) to the last event
// they contain. The log is read once in commit order below the oldest
// running transaction, in one snapshot; rows stream to the shadow tables
// through COPY while the fold runs. A live projector keeps serving and
// updating the old tables until the swap, then continues after the cursor.
// Projections with side effects are not Rebuildable, so a rebuild never
// repeats one. It holds 2 + (number of tables) connections of pool at once.
func Rebuild(ctx context.Context, pool *pgxpool.Pool, projs []Rebuildable, opts RebuildOptions, logger *slog.Logger) (RebuildReport, error) {
	start := time.Now()
	rep := RebuildReport{Rows: map[string]int64{}}
	if len(projs) == 0 {
		return rep, errors.New("rebuild: no projections")
	}
	lockConn, err := pool.Acquire(ctx)
	if err != nil {
		return rep, fmt.Errorf("rebuild: %w", err)
	}
	defer lockConn.Release()
	var locked bool
	if err := lockConn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, rebuildLock).Scan(&locked); err != nil {
		return rep, fmt.Errorf("rebuild: lock: %w", err)
	}
	if !locked {
		return rep, errors.New("rebuild: another rebuild is running")
	}
	defer lockConn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, rebuildLock) //nolint:errcheck // the session ends soon anyway

	var tables []Table
	for _, p := range projs {
		rep.Projections = append(rep.Projections, p.Name())
		for _, name := range p.Tables() {
			t, ok := registered[name]
			if !ok {
				return rep, fmt.Errorf("rebuild %s: unknown table %s", p.Name(), name)
			}
			tables = append(tables, t)
		}
	}
	if need := int32(2 + len(tables)); pool.Config().MaxConns < need {
		return rep, fmt.Errorf("rebuild: needs a pool of %d connections, has %d", need, pool.Config().MaxConns)
	}
	for _, t := range tables {
		if _, err := pool.Exec(ctx, `DROP TABLE IF EXISTS `+t.Name+ShadowSuffix+`;
			CREATE TABLE `+t.Name+ShadowSuffix+` (LIKE `+t.Name+` INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED)`); err != nil {
			return rep, fmt.Errorf("rebuild: create shadow of %s: %w", t.Name, err)
		}
	}

	// One COPY per table, fed while the fold runs.
	copyCtx, cancelCopies := context.WithCancel(ctx)
	defer cancelCopies()
	copies := map[string]*copyStream{}
	for _, t := range tables {
		cs, err := newCopyStream(ctx, pool, t)
		if err != nil {
			return rep, fmt.Errorf("rebuild: %w", err)
		}
		copies[t.Name] = cs
	}
	for _, cs := range copies {
		go cs.run(copyCtx, pool)
	}
	emit := func(tableName string, fields []any) error {
		return copies[tableName].emit(ctx, fields)
	}
	closeCopies := func() error {
		var errs []error
		for _, t := range tables {
			n, err := copies[t.Name].close(copyCtx)
			if err != nil {
				errs = append(errs, fmt.Errorf("copy into %s: %w", t.Name, err))
			}
			rep.Rows[t.Name] = n
		}
		return errors.Join(errs...)
	}

	folds := make([]Fold, len(projs))
	for i, p := range projs {
		folds[i] = p.NewFold()
	}
	cursor, n, err := foldLog(ctx, pool, projs, folds, emit)
	rep.Events, rep.Cursor = n, cursor
	if err == nil {
		// Each fold emits its kept rows into its own tables: at once.
		ferrs := make([]error, len(folds))
		var wg sync.WaitGroup
		for i, f := range folds {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if ferr := f.Finish(emit); ferr != nil {
					ferrs[i] = fmt.Errorf("finish %s: %w", projs[i].Name(), ferr)
				}
			}()
		}
		wg.Wait()
		err = errors.Join(ferrs...)
	}
	if err != nil {
		cancelCopies()
		_ = closeCopies()
		return rep, fmt.Errorf("rebuild: %w", err)
	}
	if err := closeCopies(); err != nil {
		return rep, fmt.Errorf("rebuild: %w", err)
	}
	logger.Info("rebuild folded the log", "projections", rep.Projections, "events", rep.Events, "rows", rep.Rows,
		"elapsed", time.Since(start).String())

	indexes, err := buildShadowIndexes(ctx, pool, tables, rep.Rows)
	if err != nil {
		return rep, fmt.Errorf("rebuild: %w", err)
	}
	if opts.NoSwap {
		rep.Duration = time.Since(start)
		return rep, nil
	}
	if err := swap(ctx, pool, projs, tables, indexes, cursor); err != nil {
		return rep, fmt.Errorf("rebuild: %w", err)
	}
	rep.Duration = time.Since(start)
	return rep, nil
}

// buildShadowIndexes builds the shadow tables' indexes, then their key
// constraints. Several indexes are built at once, more than there are
// cores: each CREATE INDEX sorts on one server process but also waits for
// its reads and for the fsync of the finished index, and another build
// uses the core meanwhile. The largest tables' indexes go first, so that
// the longest builds do not start last.
func buildShadowIndexes(ctx context.Context, pool *pgxpool.Pool, tables []Table, rows map[string]int64) (map[string][]indexDef, error) {
	indexes := map[string][]indexDef{}
	type build struct {
		table string
		def   indexDef
		sql   string
	}
	var builds []build
	for _, t := range tables {
		defs, stmts, err := shadowIndexes(ctx, pool, t.Name)
		if err != nil {
			return nil, err
		}
		indexes[t.Name] = defs
		for i, d := range defs {
			builds = append(builds, build{table: t.Name, def: d, sql: stmts[i]})
		}
	}
	sort.SliceStable(builds, func(i, j int) bool { return rows[builds[i].table] > rows[builds[j].table] })
	var mu sync.Mutex
	var errs []error
	next := make(chan build)
	var wg sync.WaitGroup
	workers := min(len(builds), 2*max(runtime.GOMAXPROCS(0), 1)+1, int(pool.Config().MaxConns)-1)
	for range max(workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range next {
				if _, err := pool.Exec(ctx, b.sql); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("index %s on shadow of %s: %w", b.def.name, b.table, err))
					mu.Unlock()
				}
			}
		}()
	}
	for _, b := range builds {
		next <- b
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	// Key constraints take over their built indexes: no scan, since the
	// key columns are NOT NULL already.
	for _, b := range builds {
		var kind string
		switch b.def.constraint {
		case "p":
			kind = "PRIMARY KEY"
		case "u":
			kind = "UNIQUE"
		default:
			continue
		}
		if _, err := pool.Exec(ctx, `ALTER TABLE `+b.table+ShadowSuffix+` ADD CONSTRAINT `+b.def.shadowName+` `+kind+` USING INDEX `+b.def.shadowName); err != nil {
			return nil, fmt.Errorf("constraint %s on shadow of %s: %w", b.def.name, b.table, err)
		}
	}
	return indexes, nil
}

// foldLog reads the log in commit order and folds every event some
// projection handles. It returns the cursor of the last event below the
// horizon, whatever its type.
func foldLog(ctx context.Context, pool *pgxpool.Pool, projs []Rebuildable, folds []Fold, emit EmitFunc) (eventstore.Cursor, int64, error) {
	var cursor eventstore.Cursor
	types := typesWhere(func(typ string) bool {
		return slices.ContainsFunc(projs, func(p Rebuildable) bool { return p.Handles(typ) })
	})
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return cursor, 0, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read-only
	// A log restored from another cluster and not adopted hides its events
	// above the horizon: a rebuild would read none of them and swap in
	// empty tables. Refuse instead.
	if err := eventstore.CheckOrderTx(ctx, tx); err != nil {
		return cursor, 0, err
	}
	head, ok, err := eventstore.HorizonHead(ctx, tx)
	if err != nil || !ok {
		return cursor, 0, err
	}
	cursor = head
	// Every column comes in its binary form, which readChunks decodes
	// itself (see eventstore.LogColumns).
	rows, err := eventstore.QueryThrough(ctx, tx, cursor, types)
	if err != nil {
		return cursor, 0, err
	}
	defer rows.Close()
	n, err := foldRows(ctx, rows, projs, folds, emit)
	if err != nil {
		return cursor, n, err
	}
	// The fold must have read every event of its types up to the cursor
	// that this snapshot holds; a result built from fewer is never swapped
	// in.
	held, err := eventstore.CountThrough(ctx, tx, cursor, types)
	if err != nil {
		return cursor, n, err
	}
	if n != held {
		return cursor, n, fmt.Errorf("read %d events but the log holds %d up to %d/%d: refusing to swap in an incomplete rebuild", n, held, cursor.TransactionID, cursor.Position)
	}
	return cursor, n, nil
}

// decodeChunk is a run of log rows decoded together.
type decodeChunk struct {
	recs  []events.Record
	types []string
	data  [][]byte
	meta  [][]byte
	err   error
	done  chan struct{}
}

const decodeChunkSize = 256

// foldRows decodes the rows on every core and folds them in log order on
// this goroutine: decoding JSON is most of a rebuild's work, folding must
// stay in order.
func foldRows(ctx context.Context, rows pgx.Rows, projs []Rebuildable, folds []Fold, emit EmitFunc) (int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	workers := max(runtime.GOMAXPROCS(0), 1)
	work := make(chan *decodeChunk, workers)
	order := make(chan *decodeChunk, 2*workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range work {
				c.decode()
				close(c.done)
			}
		}()
	}
	readErr := make(chan error, 1)
	go func() {
		defer close(order)
		defer close(work)
		readErr <- readChunks(ctx, rows, work, order)
	}()
	var n int64
	var err error
	for c := range order {
		if err != nil {
			continue // drain
		}
		select {
		case <-c.done:
		case <-ctx.Done():
			err = ctx.Err()
			continue
		}
		if c.err != nil {
			err = c.err
			cancel()
			continue
		}
		for i, rec := range c.recs {
			n++
			for j, p := range projs {
				if !p.Handles(c.types[i]) {
					continue
				}
				if ferr := folds[j].Apply(rec, emit); ferr != nil {
					err = fmt.Errorf("fold %s at %d: %w", p.Name(), rec.Position, ferr)
					cancel()
					break
				}
			}
			if err != nil {
				break
			}
		}
	}
	wg.Wait()
	if rerr := <-readErr; err == nil && rerr != nil {
		err = rerr
	}
	return n, err
}

// logColumns is how many columns foldLog's query selects, in this order:
// position int8, transaction_id xid8, event_id uuid, stream_id text,
// stream_version int8, type text, schema_version int4, data jsonb,
// metadata jsonb, shop_id int8, occurred_at and recorded_at timestamptz.
const logColumns = 12

// readChunks decodes the rows' binary columns into chunks, hands each to
// a decoder and queues it, in order, for the fold. Decoding the raw values
// here instead of through Scan saves the driver's per-value scan plans and
// a heap object per row; payload bytes are copied into one buffer a chunk.
func readChunks(ctx context.Context, rows pgx.Rows, work, order chan<- *decodeChunk) error {
	typeNames := map[string]string{}
	for _, t := range events.Types() {
		typeNames[t] = t
	}
	next := func() *decodeChunk {
		return &decodeChunk{
			recs:  make([]events.Record, 0, decodeChunkSize),
			types: make([]string, 0, decodeChunkSize),
			data:  make([][]byte, 0, decodeChunkSize),
			meta:  make([][]byte, 0, decodeChunkSize),
			done:  make(chan struct{}),
		}
	}
	send := func(c *decodeChunk) error {
		select {
		case order <- c:
		case <-ctx.Done():
			return ctx.Err()
		}
		select {
		case work <- c:
		case <-ctx.Done():
			return ctx.Err()
		}
		return nil
	}
	c := next()
	var arena []byte
	for rows.Next() {
		raw := rows.RawValues()
		if len(raw) != logColumns {
			return fmt.Errorf("read log: %d columns, want %d", len(raw), logColumns)
		}
		c.recs = append(c.recs, events.Record{})
		rec := &c.recs[len(c.recs)-1]
		typ, ok := typeNames[string(raw[5])]
		if !ok {
			// Only handled types are selected, and those are registered.
			return fmt.Errorf("read log: unknown event type %q", raw[5])
		}
		if err := decodeLogRow(rec, raw); err != nil {
			return fmt.Errorf("read log: %w", err)
		}
		data, meta := jsonbText(raw[7]), jsonbText(raw[8])
		if data == nil || meta == nil {
			return fmt.Errorf("read log at %d: jsonb in an unknown binary format", rec.Position)
		}
		if cap(arena)-len(arena) < len(data)+len(meta) {
			arena = make([]byte, 0, max(64<<10, len(data)+len(meta)))
		}
		start := len(arena)
		arena = append(arena, data...)
		arena = append(arena, meta...)
		c.types = append(c.types, typ)
		c.data = append(c.data, arena[start:start+len(data):start+len(data)])
		c.meta = append(c.meta, arena[start+len(data):len(arena):len(arena)])
		if len(c.recs) == decodeChunkSize {
			if err := send(c); err != nil {
				return err
			}
			c = next()
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read log: %w", err)
	}
	if len(c.recs) > 0 {
		return send(c)
	}
	return nil
}

// decodeLogRow fills rec from the binary columns of one log row, all but
// the payload and metadata.
func decodeLogRow(rec *events.Record, raw [][]byte) error {
	ints := [...]struct {
		col  int
		name string
	}{{0, "position"}, {1, "transaction_id"}, {4, "stream_version"}, {9, "shop_id"}, {10, "occurred_at"}, {11, "recorded_at"}}
	var v [len(ints)]int64
	for i, c := range ints {
		if len(raw[c.col]) != 8 {
			return fmt.Errorf("after %d: %s has %d bytes, want 8", rec.Position, c.name, len(raw[c.col]))
		}
		v[i] = int64(binary.BigEndian.Uint64(raw[c.col]))
	}
	if len(raw[2]) != 16 {
		return fmt.Errorf("event_id: %d bytes, want 16", len(raw[2]))
	}
	if len(raw[6]) != 4 {
		return fmt.Errorf("schema_version: %d bytes, want 4", len(raw[6]))
	}
	rec.Position, rec.TransactionID, rec.StreamVersion, rec.ShopID = v[0], uint64(v[1]), v[2], v[3]
	rec.ID = uuid.UUID(raw[2])
	rec.StreamID = string(raw[3])
	rec.SchemaVersion = int(int32(binary.BigEndian.Uint32(raw[6])))
	var err error
	if rec.OccurredAt, err = postgresTime(v[4]); err != nil {
		return fmt.Errorf("event %d occurred_at: %w", rec.Position, err)
	}
	if rec.RecordedAt, err = postgresTime(v[5]); err != nil {
		return fmt.Errorf("event %d recorded_at: %w", rec.Position, err)
	}
	return nil
}

// jsonbText returns the text of a binary jsonb value, or nil when its
// format version is not the one PostgreSQL has always sent.
func jsonbText(b []byte) []byte {
	if len(b) < 1 || b[0] != 1 {
		return nil
	}
	return b[1:]
}

// postgresTime is a binary timestamptz, microseconds since 2000-01-01 UTC;
// the log has no infinite times.
func postgresTime(us int64) (time.Time, error) {
	if us == math.MaxInt64 || us == math.MinInt64 {
		return time.Time{}, errors.New("infinite timestamp")
	}
	return time.UnixMicro(us + postgresEpoch.UnixMicro()).UTC(), nil
}

// decode fills in the chunk's payloads and metadata.
func (c *decodeChunk) decode() {
	for i := range c.recs {
		rec := &c.recs[i]
		var err error
		if rec.Metadata, err = events.DecodeMetadata(c.meta[i]); err != nil {
			c.err = fmt.Errorf("read log at %d: %w", rec.Position, err)
			return
		}
		if rec.Data, err = events.Decode(c.types[i], rec.SchemaVersion, c.data[i]); err != nil {
			c.err = fmt.Errorf("read log at %d: %w", rec.Position, err)
			return
		}
	}
	c.data, c.meta = nil, nil
}

// indexDef is an index of a live table recreated on its shadow under a
// temporary name, renamed to the live name at the swap.
type indexDef struct {
	name       string // the live index's name
	shadowName string
	constraint string // p or u when the index backs a constraint
}

var indexDefRE = regexp.MustCompile(`^(CREATE (?:UNIQUE )?INDEX )(\S+)( ON (?:ONLY )?)(\S+)( .*)$`)

// shadowIndexes returns the indexes and key constraints of the live
// table, renamed for its shadow, with the statement that builds each on the
// shadow after the rows are in: one sort per index instead of one insert
// per row.
func shadowIndexes(ctx context.Context, pool *pgxpool.Pool, tableName string) ([]indexDef, []string, error) {
	rows, err := pool.Query(ctx, `SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid), coalesce(c.contype::text, '')
		FROM pg_index i LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid
		WHERE i.indrelid = $1::regclass ORDER BY 1`, tableName)
	if err != nil {
		return nil, nil, fmt.Errorf("indexes of %s: %w", tableName, err)
	}
	type live struct{ name, def, contype string }
	var lives []live
	for rows.Next() {
		var l live
		if err := rows.Scan(&l.name, &l.def, &l.contype); err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("indexes of %s: %w", tableName, err)
		}
		lives = append(lives, l)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("indexes of %s: %w", tableName, err)
	}
	var out []indexDef
	var stmts []string
	for _, l := range lives {
		m := indexDefRE.FindStringSubmatch(l.def)
		if m == nil {
			return nil, nil, fmt.Errorf("index %s of %s: cannot read %q", l.name, tableName, l.def)
		}
		d := indexDef{name: l.name, shadowName: shadowIndexName(l.name), constraint: l.contype}
		shadowTable := strings.TrimSuffix(m[4], tableName) + tableName + ShadowSuffix
		out = append(out, d)
		stmts = append(stmts, m[1]+d.shadowName+m[3]+shadowTable+m[5])
	}
	return out, stmts, nil
}

func shadowIndexName(name string) string {
	const maxIdent = 63
	s := name + ShadowSuffix
	if len(s) > maxIdent {
		s = s[len(s)-maxIdent:]
	}
	return s
}

// swap puts the shadow tables in place of the live ones and moves the
// consumer groups to the cursor, all in one transaction. Taking the groups'
// offset rows first waits for live projector batches to commit and keeps
// new ones out until the swap is done.
func swap(ctx context.Context, pool *pgxpool.Pool, projs []Rebuildable, tables []Table, indexes map[string][]indexDef, cursor eventstore.Cursor) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("swap: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after commit this is a no-op
	txid := strconv.FormatUint(cursor.TransactionID, 10)
	for _, p := range projs {
		if _, err := tx.Exec(ctx, `INSERT INTO event_offsets (consumer_group, offset_acked, last_processed_transaction_id)
			VALUES ($1, 0, '0') ON CONFLICT DO NOTHING`, p.Name()); err != nil {
			return fmt.Errorf("swap: offsets of %s: %w", p.Name(), err)
		}
		if _, err := tx.Exec(ctx, `SELECT 1 FROM event_offsets WHERE consumer_group = $1 FOR UPDATE`, p.Name()); err != nil {
			return fmt.Errorf("swap: lock offsets of %s: %w", p.Name(), err)
		}
	}
	for _, t := range tables {
		grants, err := tableGrants(ctx, tx, t.Name)
		if err != nil {
			return fmt.Errorf("swap: %w", err)
		}
		stmts := []string{
			`DROP TABLE ` + t.Name,
			`ALTER TABLE ` + t.Name + ShadowSuffix + ` RENAME TO ` + t.Name,
		}
		for _, d := range indexes[t.Name] {
			stmts = append(stmts, `ALTER INDEX `+d.shadowName+` RENAME TO `+d.name)
		}
		stmts = append(stmts, grants...)
		for _, s := range stmts {
			if _, err := tx.Exec(ctx, s); err != nil {
				return fmt.Errorf("swap %s: %s: %w", t.Name, s, err)
			}
		}
	}
	for _, p := range projs {
		if _, err := tx.Exec(ctx, `UPDATE event_offsets SET offset_acked = $2, last_processed_transaction_id = $3::text::xid8
			WHERE consumer_group = $1`, p.Name(), cursor.Position, txid); err != nil {
			return fmt.Errorf("swap: offset of %s: %w", p.Name(), err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM projection_checkpoints WHERE projection = $1`, p.Name()); err != nil {
			return fmt.Errorf("swap: checkpoint of %s: %w", p.Name(), err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO projection_checkpoints (projection, transaction_id, position)
			VALUES ($1, $2::text::xid8, $3)`, p.Name(), txid, cursor.Position); err != nil {
			return fmt.Errorf("swap: checkpoint of %s: %w", p.Name(), err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("swap: commit: %w", err)
	}
	return nil
}

// tableGrants returns the GRANT statements that give the shadow table the
// privileges the live table has.
func tableGrants(ctx context.Context, tx pgx.Tx, tableName string) ([]string, error) {
	rows, err := tx.Query(ctx, `SELECT grantee, string_agg(privilege_type, ', ' ORDER BY privilege_type)
		FROM information_schema.role_table_grants
		WHERE table_schema = current_schema() AND table_name = $1 AND grantee <> current_user AND grantee <> 'PUBLIC'
		GROUP BY grantee ORDER BY grantee`, tableName)
	if err != nil {
		return nil, fmt.Errorf("grants of %s: %w", tableName, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var grantee, privs string
		if err := rows.Scan(&grantee, &privs); err != nil {
			return nil, fmt.Errorf("grants of %s: %w", tableName, err)
		}
		out = append(out, `GRANT `+privs+` ON `+tableName+` TO `+pgx.Identifier{grantee}.Sanitize())
	}
	return out, rows.Err()
}
