package service

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/migrations"
)

// DBOption changes how OpenDB opens the database.
type DBOption func(*dbOptions)

type dbOptions struct {
	allowNonDurable bool
	adopt           bool
	migrate         bool
	service         bool
	allowPrivileged bool
	skipChecks      bool
}

// SkipChecks makes OpenDB open a second pool for a process that checked
// the same database through its first (the query service's serving pool,
// which carries a statement_timeout), or a handle for tests: no
// durability, role, schema or order check runs. Migrate still migrates.
func SkipChecks() DBOption {
	return func(o *dbOptions) { o.skipChecks = true }
}

// AdoptMovedLog makes OpenDB adopt a log restored from another cluster
// (eventstore.Adopt) after migrating; only `ledger migrate` and `ledger
// restore` pass it. Without it OpenDB refuses such a log.
func AdoptMovedLog() DBOption {
	return func(o *dbOptions) { o.adopt = true }
}

// AllowNonDurable lets OpenDB start on a database whose commits are not
// durable, with a warning; cmds pass the value of AllowNonDurableEnv.
func AllowNonDurable(allow bool) DBOption {
	return func(o *dbOptions) { o.allowNonDurable = allow }
}

// Migrate makes OpenDB apply pending migrations (and the runtime roles)
// under an advisory lock. Only operator commands (`ledger`) pass it: the
// schema belongs to the migrator, and services never change it.
func Migrate() DBOption {
	return func(o *dbOptions) { o.migrate = true }
}

// AllowPrivilegedEnv names the escape hatch that lets a service run as a
// role that could rewrite the log (development only).
const AllowPrivilegedEnv = "SHOPLEDGER_ALLOW_PRIVILEGED_DATABASE_ROLE"

// ErrPrivilegedRole means a service was pointed at a role that could
// disable the log's triggers: a superuser, a role that bypasses row
// security, or the owner of the events table (or a member of its role).
var ErrPrivilegedRole = errors.New("database role may rewrite the log")

// ErrSchemaBehind means migrations this binary knows are not applied.
var ErrSchemaBehind = errors.New("database schema is behind this binary")

// AsService makes OpenDB refuse a privileged role (ErrPrivilegedRole)
// unless allow, the value of AllowPrivilegedEnv, is set.
func AsService(allow bool) DBOption {
	return func(o *dbOptions) { o.service, o.allowPrivileged = true, allow }
}

// OpenDB connects to the database and refuses it unless its commits are
// durable (see CheckDurability). With Migrate it applies pending
// migrations; without, it refuses a schema that lacks some (ErrSchemaBehind,
// naming `ledger migrate`). With AsService it refuses a role that could
// rewrite the log. It always refuses a log it cannot order (see
// eventstore.CheckOrder), unless AdoptMovedLog adopts it first.
func OpenDB(ctx context.Context, url string, maxConns int32, logger *slog.Logger, opts ...DBOption) (*sql.DB, *pgxpool.Pool, error) {
	var o dbOptions
	for _, opt := range opts {
		opt(&o)
	}
	db, pool, err := openPool(ctx, url, maxConns)
	if err != nil {
		return nil, nil, fmt.Errorf("open database: %w", err)
	}
	fail := func(err error) (*sql.DB, *pgxpool.Pool, error) {
		db.Close()
		pool.Close()
		return nil, nil, fmt.Errorf("open database: %w", err)
	}
	if o.skipChecks {
		if o.migrate {
			if err := migrations.Up(ctx, db, logger); err != nil {
				return fail(err)
			}
		}
		return db, pool, nil
	}
	// Before migrating: a refused database is left exactly as it was.
	if err := CheckDurability(ctx, db, o.allowNonDurable, logger); err != nil {
		return fail(err)
	}
	if o.service {
		if err := checkRole(ctx, db, o.allowPrivileged, logger); err != nil {
			return fail(err)
		}
	}
	if o.migrate {
		if err := migrations.Up(ctx, db, logger); err != nil {
			return fail(err)
		}
	} else {
		pending, err := migrations.Pending(ctx, db)
		if err != nil {
			return fail(err)
		}
		if len(pending) > 0 {
			return fail(fmt.Errorf("%w: %d migrations not applied (first %d): run `ledger migrate` with the migrator's SHOPLEDGER_DATABASE_URL", ErrSchemaBehind, len(pending), pending[0]))
		}
	}
	if o.adopt {
		raised, err := eventstore.Adopt(ctx, db)
		if err != nil {
			return fail(err)
		}
		if raised > 0 && logger != nil {
			logger.Warn("adopted a log restored from another cluster: log transaction ids now run ahead of this cluster's", "shift_raised_by", raised)
		}
	}
	if err := eventstore.CheckOrder(ctx, db); err != nil {
		return fail(err)
	}
	return db, pool, nil
}

// openPool connects one pgx pool and a database/sql handle over it, so the
// store, watermill subscribers and read models share the same connections.
func openPool(ctx context.Context, url string, maxConns int32) (*sql.DB, *pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, nil, err
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, nil, err
	}
	db := stdlib.OpenDBFromPool(pool)
	// database/sql keeps only two idle connections by default, so every
	// other concurrent appender would pay for a fresh acquire. But its idle
	// connections are taken from the pgx pool and never handed back on
	// demand, so it may keep at most half of them: code that uses the pgx
	// pool directly (COPY in rebuilds) always finds the other half.
	db.SetMaxIdleConns(max(2, int(cfg.MaxConns)/2))
	db.SetConnMaxIdleTime(time.Minute)
	return db, pool, nil
}
