package eventstore

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/shopledger/shopledger/events"
)

// AppendEachCommitted is AppendEachIn for group commit: the events, each on
// its own stream, are inserted by one statement in a transaction of their
// own, and it returns once that transaction committed (with
// synchronous_commit on, durably) or failed. Outcomes, duplicates and the
// rounds after a lost version race are those of AppendEachIn.
//
// It speaks pgx on one of the pool's connections instead of database/sql,
// to send BEGIN, the INSERT and COMMIT in one round trip, and to run the
// INSERT with its generic plan (SET LOCAL plan_cache_mode): PostgreSQL
// plans a prepared statement afresh on each execution while it judges the
// generic plan dearer, which for a statement over unnest(array
// parameters) it always does (it assumes 100 rows), and planning this
// INSERT costs the server more than inserting a dozen events. The plan is
// the same either way.
func (s *Store) AppendEachCommitted(ctx context.Context, evs []events.Event) ([]Appended, error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("append each committed: %w", err)
	}
	defer conn.Close()
	var out []Appended
	err = conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("append each committed: driver connection is %T, not pgx", dc)
		}
		c := sc.Conn()
		var err error
		out, err = appendEach(evs, func(r *eachRows, pending []int) (map[uuid.UUID]Appended, error) {
			return insertCommitted(ctx, c, r.args(pending), len(pending))
		}, func(keys []string) (map[string]Appended, error) {
			return lookupDedupe(keys, func(query string, args ...any) (dedupeRows, func(), error) {
				rows, err := c.Query(ctx, query, args...)
				if err != nil {
					return nil, nil, err
				}
				return rows, rows.Close, nil
			})
		})
		if err != nil && (c.IsClosed() || c.PgConn().TxStatus() != 'I') {
			// A connection left inside the failed transaction, or
			// broken, must not go back to the pool.
			_ = c.Close(context.Background())
			return errors.Join(err, driver.ErrBadConn)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("append each committed: %w", err)
	}
	return out, nil
}

// insertCommitted runs appendEachSQL in a transaction of its own, sent
// with its BEGIN and COMMIT in one pipeline. An error before COMMIT
// leaves the server inside the failed transaction (it skips the rest of
// the pipeline), so the caller must discard or roll back the connection.
func insertCommitted(ctx context.Context, c *pgx.Conn, args []any, n int) (map[uuid.UUID]Appended, error) {
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue("SET LOCAL plan_cache_mode = force_generic_plan")
	ins := b.Queue(appendEachSQL, args...)
	b.Queue("COMMIT")
	out := make(map[uuid.UUID]Appended, n)
	ins.Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var a Appended
			var id [16]byte
			if err := rows.Scan(&id, &a.Position, &a.StreamVersion); err != nil {
				return err
			}
			a.EventID = uuid.UUID(id)
			out[a.EventID] = a
		}
		return rows.Err()
	})
	if err := c.SendBatch(ctx, b).Close(); err != nil {
		return nil, classify(err)
	}
	return out, nil
}
