// Package engine runs projections: it feeds the event log to each
// projection in its own consumer group and commits what the projection
// wrote together with the group's offset.
//
// The Runner applies events live: one watermill consumer group per
// projection, a savepoint per event (or per batch for a Planner, whose
// planned writes go with the checkpoint in one round trip, compacted into
// multi-row statements), and a projection that fails stops alone and
// retries the same event. Rebuild folds the log in memory into shadow
// tables fed through a binary COPY and swaps them in. GroupLag measures
// how far each consumer group is behind.
//
// The engine knows nothing of any read model: the read models (package
// projections, one file each) describe their tables with Table, plan their
// writes as Stmts and fold the log for a rebuild through Fold.
package engine

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"reflect"
	"strings"
	"sync"

	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
)

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

// Stmt is one write of a planned Apply.
type Stmt struct {
	SQL  string
	Args []any
	// Raw statements carry their values as literals in SQL and are sent
	// as they are (see CompactWrites).
	Raw bool
}

// Planner is a projection whose Apply reads what it needs and returns its
// writes instead of running them, so that the runner can send them with
// the event's checkpoint in one round trip.
type Planner interface {
	Plan(ctx context.Context, tx *sql.Tx, rec events.Record) ([]Stmt, error)
	// Forget drops cached rows when the planned writes did not happen.
	Forget()
	// Adopt carries cached rows over to tx: the runner calls it when the
	// previous transaction committed and nothing else was applied since.
	Adopt(tx *sql.Tx)
}

// Prefetcher is a Planner that loads, in a few queries, the rows a whole
// batch of events will need, so that planning them does not read row by
// row. The runner calls it once per consumer transaction, with the
// batch's events the projection handles, before the first is planned.
type Prefetcher interface {
	Prefetch(ctx context.Context, tx *sql.Tx, recs []events.Record) error
}

// Compacter is a Planner that can write a whole batch's planned
// statements as fewer statements with the same effect. The runner uses
// the compacted form when it writes a batch at once, and each event's own
// statements when it writes events one by one after a batch failed.
type Compacter interface {
	Compact(stmts []Stmt) ([]Stmt, error)
}

// Payloadless is a projection that needs only an event's place in the
// log: the runner reads every event for it without decoding payloads.
type Payloadless interface{ Payloadless() }

// LagCounter is a projection that counts the events it has not covered
// more exactly than its consumer group's offset can, such as events that
// landed behind the offset; GroupLag reports the greater of the two.
type LagCounter interface {
	Name() string
	CountLag(ctx context.Context, q eventstore.Queryer) (int64, error)
}

// ApplyPlan is Apply for a Planner: plan, then write.
func ApplyPlan(ctx context.Context, p Planner, tx *sql.Tx, rec events.Record) error {
	stmts, err := p.Plan(ctx, tx, rec)
	if err != nil {
		return err
	}
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s.SQL, s.Args...); err != nil {
			p.Forget()
			return fmt.Errorf("apply %s at %d: %w", rec.Type(), rec.Position, err)
		}
	}
	return nil
}

// Table describes a read-model table: its name, its columns in the order
// row structs list their fields, and the key of upserts.
type Table struct {
	Name    string
	Columns []string
	Key     []string
}

// registered are the read-model tables by name, for Rebuild and
// CompactWrites.
var registered = map[string]Table{}

// RegisterTables makes the tables known to Rebuild, which rebuilds a
// Rebuildable's Tables by name, and to CompactWrites, which recognises
// the one-row inserts and upserts built from them. Read models call it
// from init, before anything is applied or rebuilt.
func RegisterTables(ts ...Table) {
	for _, t := range ts {
		registered[t.Name] = t
	}
}

// ColumnList lists the columns, each prefixed with "alias." unless alias
// is empty.
func (t Table) ColumnList(alias string) string {
	if alias == "" {
		return strings.Join(t.Columns, ", ")
	}
	cols := make([]string, len(t.Columns))
	for i, c := range t.Columns {
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

// UpsertSQL inserts one row or replaces the row with the same key.
func (t Table) UpsertSQL() string {
	return memoSQL("upsert "+t.Name, func() string { return t.InsertSQL() + t.ConflictClause() })
}

// ConflictClause makes an insert of whole rows replace the row with the
// same key.
func (t Table) ConflictClause() string {
	return memoSQL("conflict "+t.Name, func() string {
		var set []string
		keys := map[string]bool{}
		for _, k := range t.Key {
			keys[k] = true
		}
		for _, c := range t.Columns {
			if !keys[c] {
				set = append(set, c+" = excluded."+c)
			}
		}
		return fmt.Sprintf(" ON CONFLICT (%s) DO UPDATE SET %s", strings.Join(t.Key, ", "), strings.Join(set, ", "))
	})
}

// InsertSQL inserts one row.
func (t Table) InsertSQL() string {
	return memoSQL("insert "+t.Name, t.buildInsertSQL)
}

func (t Table) buildInsertSQL() string {
	ph := make([]string, len(t.Columns))
	for i := range t.Columns {
		ph[i] = fmt.Sprintf("$%d", i+1)
	}
	return fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s)", t.Name, t.ColumnList(""), strings.Join(ph, ", "))
}

// Upsert is the one-row upsert into t of the row whose field pointers,
// in column order, are fields (a row type's fields()).
func (t Table) Upsert(fields []any) Stmt { return Stmt{SQL: t.UpsertSQL(), Args: valuesOf(fields)} }

// Insert is the one-row insert into t of the row whose field pointers are
// fields.
func (t Table) Insert(fields []any) Stmt { return Stmt{SQL: t.InsertSQL(), Args: valuesOf(fields)} }

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

// TxCache keeps rows a projection loaded or wrote inside one subscriber
// transaction. Inside it the consumer group's offset row is locked, so no
// other writer touches the projection's rows and the cache stays true until
// the transaction ends. The runner carries the cache over to the next
// transaction (Planner.Adopt) only when the projection's checkpoint shows
// that nothing else was applied in between and the last transaction
// committed. Holding the *sql.Tx keeps a new transaction from reusing its
// address while the cache is alive.
type TxCache[K comparable, V any] struct {
	mu sync.Mutex
	tx *sql.Tx
	m  map[K]V
}

// maxCached bounds a cache; beyond it the cache starts again.
const maxCached = 200000

// Get returns the row cached for k in tx.
func (c *TxCache[K, V]) Get(tx *sql.Tx, k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tx != tx {
		var zero V
		return zero, false
	}
	v, ok := c.m[k]
	return v, ok
}

// Put caches v for k in tx, forgetting rows of any other transaction.
func (c *TxCache[K, V]) Put(tx *sql.Tx, k K, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tx != tx {
		c.tx = tx
		c.m = map[K]V{}
	}
	c.m[k] = v
}

// Adopt declares the cached rows still true in tx. A cache that outgrew
// maxCached starts again instead; it is never cut short inside a
// transaction, because it holds rows whose writes wait for the end of the
// batch.
func (c *TxCache[K, V]) Adopt(tx *sql.Tx) {
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

// Reset forgets everything; Apply calls it when it fails, because its
// savepoint is rolled back and the cached rows may no longer be stored.
func (c *TxCache[K, V]) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tx = nil
	c.m = nil
}
