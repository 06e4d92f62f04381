// Package migrations holds the database schema as embedded SQL files applied
// with goose, and the services' runtime roles. Only `ledger migrate` (and
// the other ledger commands) apply them, as the role that owns the schema,
// under an advisory lock; services check that nothing is pending and
// refuse to start otherwise.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed *.sql
var files embed.FS

//go:embed roles/runtime.sql
var runtimeRole string

// FS returns the migration files, for tools that fingerprint the schema.
func FS() fs.FS { return files }

// RuntimeRoles returns the SQL that creates the services' roles and grants
// them their privileges, which Up applies after migrating; for tools that
// fingerprint the schema.
func RuntimeRoles() string { return runtimeRole }

// Up applies every pending migration. Versions are numbered in ranges per
// area (0001 log, 01xx ingest, 02xx projections, 03xx alerts, 04xx query),
// so out-of-order application is allowed.
func Up(ctx context.Context, db *sql.DB, logger *slog.Logger) error {
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return fmt.Errorf("migrate: locker: %w", err)
	}
	opts := []goose.ProviderOption{
		goose.WithSessionLocker(locker),
		goose.WithAllowOutofOrder(true),
	}
	if logger != nil {
		opts = append(opts, goose.WithSlog(logger))
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, files, opts...)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := applyRuntimeRole(ctx, db); err != nil {
		return fmt.Errorf("migrate: runtime role: %w", err)
	}
	return nil
}

// Pending returns the versions of the migrations this binary holds that
// the database has not applied, in order.
func Pending(ctx context.Context, db *sql.DB) ([]int64, error) {
	p, err := goose.NewProvider(goose.DialectPostgres, db, files, goose.WithAllowOutofOrder(true))
	if err != nil {
		return nil, fmt.Errorf("migration status: %w", err)
	}
	statuses, err := p.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("migration status: %w", err)
	}
	var out []int64
	for _, st := range statuses {
		if st.State == goose.StatePending {
			out = append(out, st.Source.Version)
		}
	}
	return out, nil
}

// applyRuntimeRole runs roles/runtime.sql under a lock: binaries that start
// together would otherwise race on CREATE ROLE and on the same GRANT rows.
func applyRuntimeRole(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after commit this is a no-op
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7316205)`); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, runtimeRole); err != nil {
		return err
	}
	return tx.Commit()
}
