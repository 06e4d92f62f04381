package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/shopledger/shopledger/service"
)

func init() {
	commands["migrate"] = command{summary: "apply pending database migrations", run: runMigrate}
}

func runMigrate(ctx context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(c.stdout)
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	_, closeDB, err := c.openDB(ctx)
	if err != nil {
		return err
	}
	defer closeDB()
	fmt.Fprintf(c.stdout, "migrated %s\n", service.RedactURL(c.dbURL))
	return nil
}
