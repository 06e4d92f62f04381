package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopledger/shopledger/backup"
	"github.com/shopledger/shopledger/projections"
	"github.com/shopledger/shopledger/projections/engine"
	"github.com/shopledger/shopledger/service"
)

func init() {
	commands["backup"] = command{summary: "write a portable backup of the log and everything it cannot rebuild", usage: backupUsage, run: runBackup}
	commands["restore"] = command{summary: "restore a backup into an empty database on any cluster, verify it and rebuild the read models", usage: restoreUsage, run: runRestore}
}

const backupUsage = `ledger backup --out FILE

Writes one snapshot of every table (the log and its seal, shop connections
and their encrypted credentials, settings, API tokens, alert channels and
their secrets, the alert outbox, consumer offsets) to FILE as a gzip stream
ending in a trailer (row counts, the seal's head). The file is written
under a temporary name and renamed when complete. Tokens in it stay
encrypted: keep SHOPLEDGER_TOKEN_KEYS and SHOPLEDGER_SEAL_KEYS elsewhere.
` + usageEnv

const restoreUsage = `ledger restore --in FILE [--no-rebuild]

Restores a backup written by ledger backup into the empty database at
SHOPLEDGER_DATABASE_URL, on any cluster: migrates it, loads every table in
one transaction (checking the trailer's row counts), adopts the log so that
its events keep their order and new ones follow them, verifies the seal
(and its signed heads with SHOPLEDGER_SEAL_KEYS) against the trailer's
head, and rebuilds the read models from the log (--no-rebuild keeps the
backup's). Refuses a database that holds events or shops, and a file cut
short.
` + usageEnv

func runBackup(ctx context.Context, c *cli, args []string) error {
	fs := newFlags("backup")
	out := fs.String("out", "", "file to write (required; written to a temporary name and renamed when complete)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("%w: backup: --out is required", errUsage)
	}
	_, closeDB, pool, err := c.openPool(ctx, 2)
	if err != nil {
		return err
	}
	defer closeDB()
	// A reader of the file never sees a partial backup under its name.
	tmp, err := os.CreateTemp(filepath.Dir(*out), "."+filepath.Base(*out)+".*")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer os.Remove(tmp.Name()) //nolint:errcheck // gone after the rename
	start := time.Now()
	m, err := backup.Write(ctx, pool, tmp)
	if err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("backup: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := os.Rename(tmp.Name(), *out); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	fmt.Fprintf(c.stdout, "backed up %d events (sealed up to seq %d, head %s) and %d tables to %s in %s\n",
		m.Rows["events"], m.SealSeq, shortHash(m.SealHead), len(m.Rows), *out, time.Since(start).Round(time.Millisecond))
	return nil
}

func runRestore(ctx context.Context, c *cli, args []string) error {
	fs := newFlags("restore")
	in := fs.String("in", "", "backup file to restore (required)")
	noRebuild := fs.Bool("no-rebuild", false, "keep the read models as the backup holds them instead of rebuilding them from the log")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *in == "" {
		return fmt.Errorf("%w: restore: --in is required", errUsage)
	}
	f, err := os.Open(*in)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer f.Close()

	var targets []engine.Rebuildable
	conns := int32(4)
	for _, p := range projections.Default() {
		if rb, ok := p.(engine.Rebuildable); ok {
			targets = append(targets, rb)
			conns += int32(len(rb.Tables()))
		}
	}
	db, closeDB, pool, err := c.openPool(ctx, conns, service.AdoptMovedLog())
	if err != nil {
		return err
	}
	defer closeDB()
	rep, err := backup.Restore(ctx, pool, f)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "restored %d events and %d tables from %s (taken %s); log clock raised by %d\n",
		rep.Manifest.Rows["events"], len(rep.Manifest.Rows), *in, rep.Manifest.CreatedAt.Format(time.RFC3339), rep.ShiftRaisedBy)

	keys, err := c.sealKeys()
	if err != nil {
		return err
	}
	seal, err := projections.VerifySealWith(ctx, db, keys)
	if err != nil {
		return err
	}
	if !seal.OK() {
		return fmt.Errorf("restore: %w: %s", errMismatch, seal.First)
	}
	if seal.Head != rep.Manifest.SealHead && rep.Manifest.SealHead != "" {
		return fmt.Errorf("restore: %w: restored chain head %s, the backup's trailer says %s", errMismatch, seal.Head, rep.Manifest.SealHead)
	}
	fmt.Fprintf(c.stdout, "verified: %d events sealed, chain head %s, %d not sealed yet\n", seal.Sealed, shortHash(seal.Head), seal.Pending)
	fmt.Fprintln(c.stdout, anchorLine(seal, keys != nil))

	if *noRebuild {
		return nil
	}
	rb, err := engine.Rebuild(ctx, pool, targets, engine.RebuildOptions{}, c.logger)
	if err != nil {
		return err
	}
	names := make([]string, len(rb.Projections))
	copy(names, rb.Projections)
	fmt.Fprintf(c.stdout, "rebuilt %s from %d events in %s\n", strings.Join(names, ", "), rb.Events, rb.Duration.Round(time.Millisecond))
	return nil
}

func shortHash(h string) string {
	if len(h) > 16 {
		return h[:16] + "…"
	}
	if h == "" {
		return "(none)"
	}
	return h
}

// openPool opens the database like openDB, keeping the pgx pool that
// backups and rebuilds work on, with at least conns connections.
func (c *cli) openPool(ctx context.Context, conns int32, opts ...service.DBOption) (*sql.DB, func(), *pgxpool.Pool, error) {
	opts = append(opts, service.AllowNonDurable(c.allowNonDurable), service.Migrate())
	db, pool, err := service.OpenDB(ctx, c.dbURL, conns, c.logger, opts...)
	if err != nil {
		return nil, nil, nil, err
	}
	return db, func() { db.Close(); pool.Close() }, pool, nil
}
