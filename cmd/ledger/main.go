// Command ledger is the operator's and auditor's tool: it migrates the
// database and, as later work lands, connects shops, issues API tokens and
// exports and verifies the log.
package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/shopledger/shopledger/service"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "ledger: %v\n", err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

// command is one ledger subcommand. Each lives in its own file and
// registers itself in commands from an init function, so that work on one
// command never touches another's file.
type command struct {
	summary string
	run     func(ctx context.Context, c *cli, args []string) error
}

var commands = map[string]command{}

// cli is what every command gets: settings, output and a logger.
type cli struct {
	dbURL string
	// allowNonDurable starts on a database whose commits are not durable.
	allowNonDurable bool
	getenv          func(string) string
	stdout          io.Writer
	logger          *slog.Logger
}

// openDB connects and migrates.
func (c *cli) openDB(ctx context.Context, opts ...service.DBOption) (*sql.DB, func(), error) {
	opts = append(opts, service.AllowNonDurable(c.allowNonDurable))
	db, pool, err := service.OpenDB(ctx, c.dbURL, 4, c.logger, opts...)
	if err != nil {
		return nil, nil, err
	}
	return db, func() { db.Close(); pool.Close() }, nil
}

func usage() string {
	var b strings.Builder
	b.WriteString("ledger <command> [flags]\n\nCommands:\n")
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(&b, "  %-18s %s\n", name, commands[name].summary)
	}
	b.WriteString(usageEnv)
	return b.String()
}

const usageEnv = `
Environment:
  SHOPLEDGER_DATABASE_URL   PostgreSQL URL (default ` + service.DefaultDatabaseURL + `)
  SHOPLEDGER_LOG_LEVEL      debug, info, warn or error (default info)
  SHOPLEDGER_ALLOW_NONDURABLE_DATABASE
                            true starts on a database with fsync or
                            synchronous_commit off (development only;
                            default false: refuse)
`

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage())
		if len(args) == 0 {
			return fmt.Errorf("%w: a command is required", errUsage)
		}
		return nil
	}
	env := service.NewEnv(getenv)
	dbURL := env.String("SHOPLEDGER_DATABASE_URL", service.DefaultDatabaseURL)
	allowNonDurable := env.Bool(service.AllowNonDurableEnv, false)
	logger := service.NewLogger(env.String("SHOPLEDGER_LOG_LEVEL", "info"), os.Stderr).With("service", "ledger")
	if err := env.Err(); err != nil {
		return fmt.Errorf("config: %w", err)
	}

	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprint(stdout, usage())
		return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
	}
	return cmd.run(ctx, &cli{dbURL: dbURL, allowNonDurable: allowNonDurable, getenv: getenv, stdout: stdout, logger: logger}, args[1:])
}
