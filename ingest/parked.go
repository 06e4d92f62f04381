package ingest

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
)

// park records evidence the fetcher cannot decode, in the transaction
// that moves the group's offset past it. Parking the same event again
// (a later start that still cannot decode it) counts an attempt.
func (f *Fetcher) park(ctx context.Context, tx *sql.Tx, m eventstore.GroupMessage, cause error) error {
	_, err := tx.ExecContext(ctx, `
INSERT INTO ingest_parked_evidence (event_id, position, type, schema_version, reason)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (event_id) DO UPDATE SET
    attempts = ingest_parked_evidence.attempts + 1, last_attempt_at = now(), reason = excluded.reason`,
		m.Msg.UUID, m.Cursor.Position, m.Type, m.SchemaVersion, cause.Error())
	if err != nil {
		return fmt.Errorf("park evidence %s: %w", m.Msg.UUID, err)
	}
	return nil
}

// retryParked handles the parked evidence this binary can decode now (it
// was upgraded since), oldest first, and leaves the rest parked with one
// more attempt counted. Each event leaves the table in the transaction
// that stores its etsy.fetch_failed, if it failed. It returns an error
// only when the parked rows could not be listed.
func (f *Fetcher) retryParked(ctx context.Context) error {
	rows, err := f.db.QueryContext(ctx, `SELECT event_id FROM ingest_parked_evidence ORDER BY position`)
	if err != nil {
		f.log.Warn("fetcher: cannot list parked evidence, will try again", "err", err)
		return fmt.Errorf("list parked evidence: %w", err)
	}
	var ids []uuid.UUID
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return fmt.Errorf("list parked evidence: %w", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list parked evidence: %w", err)
	}
	defer f.countParked(ctx)
	for _, id := range ids {
		if ctx.Err() != nil {
			return nil
		}
		rec, err := f.store.Get(ctx, id)
		if err != nil {
			f.log.Warn("fetcher: parked evidence still cannot be decoded", "event_id", id, "err", err)
			if _, uerr := f.db.ExecContext(ctx, `UPDATE ingest_parked_evidence
				SET attempts = attempts + 1, last_attempt_at = now(), reason = $2 WHERE event_id = $1`, id, err.Error()); uerr != nil {
				f.log.Warn("fetcher: cannot count an attempt on parked evidence", "event_id", id, "err", uerr)
			}
			continue
		}
		failed, err := f.handle(ctx, rec)
		if err != nil {
			f.log.Warn("fetcher: parked evidence stays parked until the next start", "event_id", id, "err", err)
			continue
		}
		if err := f.unpark(ctx, id, failed); err != nil {
			f.log.Warn("fetcher: parked evidence stays parked until the next start", "event_id", id, "err", err)
			continue
		}
		f.outcomes.WithLabelValues(OutcomeUnparked).Inc()
		f.log.Info("fetcher: parked evidence handled", "event_id", id)
	}
	return nil
}

// unpark removes a handled event from the parked table, storing its
// etsy.fetch_failed (if any) in the same transaction.
func (f *Fetcher) unpark(ctx context.Context, id uuid.UUID, failed *events.Event) error {
	tx, err := eventstore.BeginAppend(ctx, f.db)
	if err != nil {
		return fmt.Errorf("unpark evidence %s: begin: %w", id, err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	if failed != nil {
		if err := f.appendFailure(ctx, tx, *failed); err != nil {
			return fmt.Errorf("unpark evidence %s: %w", id, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM ingest_parked_evidence WHERE event_id = $1`, id); err != nil {
		return fmt.Errorf("unpark evidence %s: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("unpark evidence %s: commit: %w", id, err)
	}
	return nil
}

// countParked refreshes ingest_fetcher_parked_evidence.
func (f *Fetcher) countParked(ctx context.Context) {
	var n int64
	if err := f.db.QueryRowContext(ctx, `SELECT count(*) FROM ingest_parked_evidence`).Scan(&n); err != nil {
		f.log.Warn("fetcher: cannot count parked evidence", "err", err)
		return
	}
	f.parked.Set(float64(n))
}

// groupLease lets one fetcher of a group work at a time, across
// processes: a session advisory lock on a connection of its own. It holds
// no transaction id, and PostgreSQL drops it with the session, so a
// fetcher that died or lost its connection frees it at once.
type groupLease struct {
	db   *sql.DB
	key  string
	conn *sql.Conn
}

// hold reports whether this process holds the lease, taking it if free.
// A connection that no longer answers is dropped (and its lock with it)
// before the lease is taken again.
func (l *groupLease) hold(ctx context.Context) bool {
	if l.conn != nil {
		if err := l.conn.PingContext(ctx); err == nil {
			return true
		}
		l.discard()
	}
	conn, err := l.db.Conn(ctx)
	if err != nil {
		return false
	}
	l.conn = conn
	var ok bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock(hashtextextended($1, 7316))`, l.key).Scan(&ok); err != nil {
		// The lock may have been taken before the error: never pool it.
		l.discard()
		return false
	}
	if !ok {
		conn.Close()
		l.conn = nil
	}
	return ok
}

// discard ends the lease's session instead of pooling its connection:
// the database/sql handle is opened over a pgx pool, which would keep the
// session, and the lock with it, for whoever borrows it next.
func (l *groupLease) discard() {
	if l.conn == nil {
		return
	}
	_ = l.conn.Raw(func(dc any) error {
		if sc, ok := dc.(*stdlib.Conn); ok {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = sc.Conn().Close(ctx)
		}
		return driver.ErrBadConn
	})
	l.conn.Close()
	l.conn = nil
}

func (l *groupLease) release() { l.discard() }
