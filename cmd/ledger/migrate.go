package main

import (
	"context"
	"fmt"

	"github.com/shopledger/shopledger/service"
)

func init() {
	commands["migrate"] = command{summary: "apply pending database migrations", usage: migrateUsage, run: runMigrate}
}

const migrateUsage = `ledger migrate

Applies the pending migrations to SHOPLEDGER_DATABASE_URL under an advisory
lock, so that several processes started together migrate once. Applying
them again changes nothing.
` + usageEnv

func runMigrate(ctx context.Context, c *cli, args []string) error {
	if err := parseFlags(newFlags("migrate"), args); err != nil {
		return err
	}
	_, closeDB, err := c.openDB(ctx)
	if err != nil {
		return err
	}
	defer closeDB()
	fmt.Fprintf(c.stdout, "migrated %s\n", service.RedactURL(c.dbURL))
	return nil
}
