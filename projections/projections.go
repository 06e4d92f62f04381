// Package projections holds the read models sellers and auditors query:
// shops, products and their variants, stock movements, sales and daily
// sales, the seal (hash chain) over the log and its signed anchors.
//
// Each read model lives in one file with everything about it: its tables
// (engine.Table descriptions registered with the engine), its fold (Apply,
// run by the projector inside the consumer group's transaction, usually as
// a plan of writes, and the in-memory Fold a rebuild uses) and its readers
// (methods of Reader, the only code that reads its tables; the query API,
// the web pages and the CLI use them). How stock history is computed is
// stock_movements.go; how sales are, sales.go.
//
// Apply is a pure fold of the log: it reads no clock and no randomness,
// so rebuilding from zero gives the same rows as applying live. Running
// the folds (consumer groups, checkpoints, batching, rebuilds) is package
// engine's job; Default lists the read models the projector runs.
package projections

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/projections/engine"
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

// Default projections, in the order the projector registers them.
func Default() []engine.Projection {
	return []engine.Projection{NewShops(), NewProducts(), NewStockMovements(), NewSales(), NewSeal()}
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

// rowScanner is *sql.Row or *sql.Rows.
type rowScanner interface{ Scan(dest ...any) error }

// queryAll runs query on q and turns each row into a T with scan; what
// names the query in errors.
func queryAll[T any](ctx context.Context, q Queryer, what string, scan func(rowScanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
