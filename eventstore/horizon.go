package eventstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Horizon is what holds consumers back. Consumers read only events whose
// log transaction id lies below the horizon (the oldest running
// transaction that may append to the log, see log_horizon), so an
// appending transaction left open keeps every event committed after it
// from every consumer until it ends. Transactions that do not append (an
// operator's BEGIN in psql, a migration, a rebuild) hold nothing back.
type Horizon struct {
	// Hidden is how many committed events lie at or above the horizon,
	// invisible to consumers for now.
	Hidden int64
	// OldestHidden is when the oldest of them was recorded; zero when none.
	OldestHidden time.Time
	// Holder is the oldest running appender holding a transaction id;
	// Holder.PID is 0 when there is none.
	Holder Holder
}

// Holder is a running transaction that holds the horizon where it is.
type Holder struct {
	PID         int
	Application string
	State       string
	Database    string
	Age         time.Duration
}

// hiddenCap bounds the count of hidden events: past it the number only
// says "very many", and counting further would cost a scan.
const hiddenCap = 100000

// ReadHorizon measures the horizon: hidden events and the transaction
// holding them back.
func ReadHorizon(ctx context.Context, q Queryer) (Horizon, error) {
	var h Horizon
	var oldest sql.NullTime
	err := q.QueryRowContext(ctx, `SELECT count(*), min(recorded_at) FROM (
			SELECT recorded_at FROM events WHERE transaction_id >= log_horizon() LIMIT $1) hidden`,
		hiddenCap).Scan(&h.Hidden, &oldest)
	if err != nil {
		return h, fmt.Errorf("read horizon: %w", err)
	}
	if oldest.Valid {
		h.OldestHidden = oldest.Time.UTC()
	}
	var age float64
	err = q.QueryRowContext(ctx, `SELECT pid, coalesce(application_name, ''), coalesce(state, ''), coalesce(datname, ''),
			extract(epoch FROM now() - coalesce(xact_start, now()))::float8
		FROM pg_stat_activity
		WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()
		  AND datname = current_database()
		  AND pid IN (SELECT pid FROM pg_locks WHERE granted AND locktype = 'advisory'
		              AND classid = 7316 AND objid = 206 AND objsubid = 2)
		ORDER BY age(backend_xid) DESC LIMIT 1`).Scan(&h.Holder.PID, &h.Holder.Application, &h.Holder.State, &h.Holder.Database, &age)
	if err == sql.ErrNoRows {
		return h, nil
	}
	if err != nil {
		return h, fmt.Errorf("read horizon holder: %w", err)
	}
	h.Holder.Age = time.Duration(max(age, 0) * float64(time.Second))
	return h, nil
}

// String describes the holder for operators.
func (h Holder) String() string {
	if h.PID == 0 {
		return "no transaction holds an id"
	}
	app := h.Application
	if app == "" {
		app = "(no application_name)"
	}
	return fmt.Sprintf("pid %d, application %s, database %s, %s, open %s", h.PID, app, h.Database, h.State, h.Age.Round(time.Second))
}
