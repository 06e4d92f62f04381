package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/service"
)

func init() {
	commands["migrate"] = command{summary: "apply pending database migrations and adopt a log restored from another cluster", usage: migrateUsage, run: runMigrate}
}

const migrateUsage = `ledger migrate

Applies the pending migrations to SHOPLEDGER_DATABASE_URL under an advisory
lock, so that several processes started together migrate once; creates the
services' roles (shopledger_ingest, shopledger_projector, shopledger_query)
and grants them what they use; and adopts a log restored from another
cluster (so that its events keep their order and new ones follow them;
every other binary refuses such a log until then). Running it again changes
nothing. Run it as the role that owns the schema; the services connect as
their own roles.

Role passwords, for servers that ask for one (set each that is given):
  SHOPLEDGER_INGEST_DB_PASSWORD, SHOPLEDGER_PROJECTOR_DB_PASSWORD,
  SHOPLEDGER_QUERY_DB_PASSWORD
` + usageEnv

func runMigrate(ctx context.Context, c *cli, args []string) error {
	if err := parseFlags(newFlags("migrate"), args); err != nil {
		return err
	}
	// A database restored from another cluster is adopted here (see
	// eventstore.Adopt); every other binary refuses it until then.
	db, closeDB, err := c.openDB(ctx, service.AdoptMovedLog())
	if err != nil {
		return err
	}
	defer closeDB()
	shift, err := eventstore.ClockShift(ctx, db)
	if err != nil {
		return err
	}
	for _, r := range []struct{ role, env string }{
		{"shopledger_ingest", "SHOPLEDGER_INGEST_DB_PASSWORD"},
		{"shopledger_projector", "SHOPLEDGER_PROJECTOR_DB_PASSWORD"},
		{"shopledger_query", "SHOPLEDGER_QUERY_DB_PASSWORD"},
	} {
		pw := c.getenv(r.env)
		if pw == "" {
			continue
		}
		// ALTER ROLE takes no parameters: the password goes in as a
		// quoted literal, built by the server, and is never logged.
		var stmt string
		if err := db.QueryRowContext(ctx, `SELECT format('ALTER ROLE %I PASSWORD %L', $1::text, $2::text)`, r.role, pw).Scan(&stmt); err != nil {
			return fmt.Errorf("migrate: password of %s: %w", r.role, err)
		}
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("migrate: password of %s: %w", r.role, errors.New("ALTER ROLE failed"))
		}
		fmt.Fprintf(c.stdout, "set the password of %s from %s\n", r.role, r.env)
	}
	fmt.Fprintf(c.stdout, "migrated %s (log clock shift %d)\n", service.RedactURL(c.dbURL), shift)
	return nil
}
