package main

import (
	"context"
	"fmt"

	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/service"
)

func init() {
	commands["migrate"] = command{summary: "apply pending database migrations and adopt a log restored from another cluster", usage: migrateUsage, run: runMigrate}
}

const migrateUsage = `ledger migrate

Applies the pending migrations to SHOPLEDGER_DATABASE_URL under an advisory
lock, so that several processes started together migrate once, re-applies
the runtime role and its grants, and adopts a log restored from another
cluster (so that its events keep their order and new ones follow them;
every other binary refuses such a log until then). Running it again changes
nothing.
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
	fmt.Fprintf(c.stdout, "migrated %s (log clock shift %d)\n", service.RedactURL(c.dbURL), shift)
	return nil
}
