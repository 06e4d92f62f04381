// Package projections turns the event log into the read models sellers and
// auditors query: shops, products and their variants, stock movements,
// sales and daily sales, and the seal (hash chain) over the log.
//
// Each read model lives in one file with its tables, its fold (Apply, run
// by the projector inside the consumer group's transaction, and the
// in-memory fold a rebuild uses) and its readers (methods of Reader, the
// only code that reads its tables; the query API and the CLI use them).
// Apply is a pure fold of the log: it reads no clock and no randomness,
// so rebuilding from zero gives the same rows as applying live.
package projections

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
)

// ErrNotFound means the object does not exist or is not in the caller's
// shops; callers answer both the same way (404) so tenants cannot probe.
var ErrNotFound = errors.New("not found")

// Queryer is *sql.DB, *sql.Tx or *sql.Conn.
type Queryer = eventstore.Queryer

// ReaderConfig tunes a Reader.
type ReaderConfig struct {
	// DefaultThreshold is the low-stock line where neither a variant, its
	// listing nor its shop sets one (domain.Lines.Resolve). Binaries take
	// it from SHOPLEDGER_DEFAULT_LOW_STOCK_THRESHOLD, as the alerter does,
	// so that every reader draws the line in the same place.
	DefaultThreshold int64
	// ChainStep and ChainWindow bound the seal verification a request
	// does (see ChainStatus); zero takes the defaults.
	ChainStep, ChainWindow int
}

// Reader answers the questions sellers and auditors ask of the read
// models: the readers in each read model's file. Every method takes the
// caller's shops and reads nothing outside them; an empty set sees
// nothing. The query API and the web pages read through it alike.
type Reader struct {
	db    *sql.DB
	log   *eventstore.Store
	cfg   ReaderConfig
	chain *chainVerifier
	// SQL that embeds the configured default threshold, built once.
	productSelect, variantSelect string
}

// NewReader returns a reader over db.
func NewReader(db *sql.DB, cfg ReaderConfig) *Reader {
	r := &Reader{db: db, log: eventstore.New(db), cfg: cfg, chain: newChainVerifier(cfg.ChainStep, cfg.ChainWindow)}
	r.productSelect, r.variantSelect = productSQL(cfg.DefaultThreshold)
	return r
}

// Projection is one consumer of the log with its own consumer group. The
// projector runs each Apply inside the group's transaction, in a savepoint
// per event, and records the event as applied in the same savepoint; an
// Apply error rolls the savepoint back and stops only this projection.
//
// Apply must be deterministic: everything it writes comes from the record
// and the rows it reads, never from the clock or randomness. Projections
// with side effects (alert delivery) must not be rebuilt by replaying.
type Projection interface {
	// Name is the consumer group and the name in metrics, logs and
	// /readyz. It never changes once events were applied under it.
	Name() string
	// Handles reports whether Apply wants events of this type; others are
	// acknowledged without decoding.
	Handles(eventType string) bool
	// Apply folds one event into the read model through tx.
	Apply(ctx context.Context, tx *sql.Tx, rec events.Record) error
}

// stmt is one write of a planned Apply.
type stmt struct {
	sql  string
	args []any
	// raw statements carry their values as literals in sql and are sent
	// as they are (see compactWrites).
	raw bool
}

// planner is a projection whose Apply reads what it needs and returns its
// writes instead of running them, so that the runner can send them with
// the event's checkpoint in one round trip.
type planner interface {
	plan(ctx context.Context, tx *sql.Tx, rec events.Record) ([]stmt, error)
	// forget drops cached rows when the planned writes did not happen.
	forget()
	// adopt carries cached rows over to tx: the runner calls it when the
	// previous transaction committed and nothing else was applied since.
	adopt(tx *sql.Tx)
}

// prefetcher is a planner that loads, in a few queries, the rows a whole
// batch of events will need, so that planning them does not read row by
// row. The runner calls it once per consumer transaction, with the
// batch's events the projection handles, before the first is planned.
type prefetcher interface {
	prefetch(ctx context.Context, tx *sql.Tx, recs []events.Record) error
}

// compacter is a planner that can write a whole batch's planned
// statements as fewer statements with the same effect. The runner uses
// the compacted form when it writes a batch at once, and each event's own
// statements when it writes events one by one after a batch failed.
type compacter interface {
	compact(stmts []stmt) ([]stmt, error)
}

// applyPlan is Apply for a planner: plan, then write.
func applyPlan(ctx context.Context, p planner, tx *sql.Tx, rec events.Record) error {
	stmts, err := p.plan(ctx, tx, rec)
	if err != nil {
		return err
	}
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s.sql, s.args...); err != nil {
			p.forget()
			return fmt.Errorf("apply %s at %d: %w", rec.Type(), rec.Position, err)
		}
	}
	return nil
}

// Rebuildable is a projection whose tables can be rebuilt from the log
// into shadow tables and swapped in.
type Rebuildable interface {
	Projection
	// Tables lists the read-model tables the projection owns.
	Tables() []string
	// newRebuild returns an in-memory fold that emits rows for the shadow
	// tables. It must produce exactly the rows Apply would have written.
	newRebuild() rebuild
}

// rebuild folds the log in memory and hands rows to the shadow tables.
type rebuild interface {
	// apply folds one event; append-only rows may be emitted right away.
	apply(rec events.Record, emit emitFunc) error
	// finish emits the rows that were kept in memory.
	finish(emit emitFunc) error
}

// emitFunc hands one row to table, as pointers to its fields in the
// table's column order (a row type's fields()). The row is encoded before
// emit returns, so the caller may change it afterwards.
type emitFunc func(table string, fields []any) error

// Default projections, in the order the projector registers them.
func Default() []Projection {
	return []Projection{NewShops(), NewProducts(), NewStockMovements(), NewSales(), NewSeal()}
}

// table describes a read-model table: its name, its columns in the order
// row structs list their fields, and the key of upserts.
type table struct {
	name    string
	columns []string
	key     []string
}

func (t table) columnList(alias string) string {
	if alias == "" {
		return strings.Join(t.columns, ", ")
	}
	cols := make([]string, len(t.columns))
	for i, c := range t.columns {
		cols[i] = alias + "." + c
	}
	return strings.Join(cols, ", ")
}

// tableSQL memoises the statements built from a table's description.
var tableSQL sync.Map

func memoSQL(key string, build func() string) string {
	if s, ok := tableSQL.Load(key); ok {
		return s.(string)
	}
	s := build()
	tableSQL.Store(key, s)
	return s
}

// upsertSQL inserts one row or replaces the row with the same key.
func (t table) upsertSQL() string {
	return memoSQL("upsert "+t.name, t.buildUpsertSQL)
}

func (t table) buildUpsertSQL() string {
	ph := make([]string, len(t.columns))
	for i := range t.columns {
		ph[i] = fmt.Sprintf("$%d", i+1)
	}
	return fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s)", t.name, t.columnList(""), strings.Join(ph, ", ")) + t.conflictClause()
}

// conflictClause makes an insert of whole rows replace the row with the
// same key.
func (t table) conflictClause() string {
	return memoSQL("conflict "+t.name, func() string {
		var set []string
		keys := map[string]bool{}
		for _, k := range t.key {
			keys[k] = true
		}
		for _, c := range t.columns {
			if !keys[c] {
				set = append(set, c+" = excluded."+c)
			}
		}
		return fmt.Sprintf(" ON CONFLICT (%s) DO UPDATE SET %s", strings.Join(t.key, ", "), strings.Join(set, ", "))
	})
}

// insertSQL inserts one row.
func (t table) insertSQL() string {
	return memoSQL("insert "+t.name, t.buildInsertSQL)
}

func (t table) buildInsertSQL() string {
	ph := make([]string, len(t.columns))
	for i := range t.columns {
		ph[i] = fmt.Sprintf("$%d", i+1)
	}
	return fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s)", t.name, t.columnList(""), strings.Join(ph, ", "))
}

// valuesOf turns the field pointers a row lists for scanning into the
// values written, so each row type names its columns once.
func valuesOf(ptrs []any) []any {
	out := make([]any, len(ptrs))
	for i, p := range ptrs {
		if v, ok := p.(driver.Valuer); ok {
			out[i] = v
			continue
		}
		out[i] = reflect.ValueOf(p).Elem().Interface()
	}
	return out
}

// jsonField stores the list at P in a jsonb column and scans it back; a nil
// list is stored as [] so live and rebuilt rows agree.
type jsonField[T any] struct{ P *T }

func jsonOf[T any](p *T) jsonField[T] { return jsonField[T]{P: p} }

// Value implements driver.Valuer.
func (j jsonField[T]) Value() (driver.Value, error) {
	b, err := json.Marshal(*j.P)
	if err != nil {
		return nil, err
	}
	if string(b) == "null" {
		return "[]", nil
	}
	return string(b), nil
}

// Scan implements sql.Scanner.
func (j jsonField[T]) Scan(src any) error {
	var b []byte
	switch v := src.(type) {
	case nil:
		var zero T
		*j.P = zero
		return nil
	case []byte:
		b = v
	case string:
		b = []byte(v)
	default:
		return fmt.Errorf("scan json: unsupported %T", src)
	}
	return json.Unmarshal(b, j.P)
}

// utc normalises a time read from the database.
func utc(t time.Time) time.Time { return t.UTC() }

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func timePtr(t time.Time) *time.Time { return &t }

func int64Ptr(n int64) *int64 { return &n }

// txCache keeps rows a projection loaded or wrote inside one subscriber
// transaction. Inside it the consumer group's offset row is locked, so no
// other writer touches the projection's rows and the cache stays true until
// the transaction ends. The runner carries the cache over to the next
// transaction (adopt) only when the projection's checkpoint shows that
// nothing else was applied in between and the last transaction committed.
// Holding the *sql.Tx keeps a new transaction from reusing its address
// while the cache is alive.
type txCache[K comparable, V any] struct {
	mu sync.Mutex
	tx *sql.Tx
	m  map[K]V
}

// maxCached bounds a cache; beyond it the cache starts again.
const maxCached = 200000

func (c *txCache[K, V]) get(tx *sql.Tx, k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tx != tx {
		var zero V
		return zero, false
	}
	v, ok := c.m[k]
	return v, ok
}

func (c *txCache[K, V]) put(tx *sql.Tx, k K, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tx != tx {
		c.tx = tx
		c.m = map[K]V{}
	}
	c.m[k] = v
}

// adopt declares the cached rows still true in tx. A cache that outgrew
// maxCached starts again instead; it is never cut short inside a
// transaction, because it holds rows whose writes wait for the end of the
// batch.
func (c *txCache[K, V]) adopt(tx *sql.Tx) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxCached {
		c.tx, c.m = nil, nil
		return
	}
	if c.m != nil {
		c.tx = tx
	}
}

// reset forgets everything; Apply calls it when it fails, because its
// savepoint is rolled back and the cached rows may no longer be stored.
func (c *txCache[K, V]) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tx = nil
	c.m = nil
}

// where collects conditions and their arguments. Queries are built with
// only the conditions a request uses: a catch-all "$n IS NULL OR col > $n"
// defeats the index once PostgreSQL switches to a generic plan.
type where struct {
	conds []string
	args  []any
}

func (w *where) arg(v any) string {
	w.args = append(w.args, v)
	return fmt.Sprintf("$%d", len(w.args))
}

// add appends a condition whose %s verbs each take the next argument.
func (w *where) add(format string, args ...any) {
	refs := make([]any, len(args))
	for i, a := range args {
		refs[i] = w.arg(a)
	}
	w.conds = append(w.conds, fmt.Sprintf(format, refs...))
}

func (w *where) sql() string { return strings.Join(w.conds, " AND ") }
