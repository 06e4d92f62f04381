package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/service"
)

func init() {
	commands["migrate"] = command{summary: "apply pending database migrations and adopt a log restored from another cluster", run: runMigrate}
}

func runMigrate(ctx context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(c.stdout)
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
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
