// Command ledger is the operator's and auditor's tool: it migrates the
// database, connects shops, issues API tokens, sets thresholds and alert
// channels, and exports, verifies and backs up the log.
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/shopledger/shopledger/service"
	"github.com/shopledger/shopledger/telemetry"
)

func main() {
	os.Exit(cliMain(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// cliMain runs a command line and turns its outcome into the exit status:
// 0, 1 for a failure, or 2 for a usage error, which it explains on stderr
// followed by the usage of the command concerned.
func cliMain(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	return service.ExitStatus("ledger", run(ctx, args, getenv, stdout), errUsage, stderr, func() string {
		if len(args) > 0 {
			if cmd, ok := commands[args[0]]; ok {
				return cmd.usage
			}
		}
		return usage()
	})
}

var errUsage = errors.New("usage")

// command is one ledger command. Each lives in its own file and registers
// itself in commands from an init function, so that work on one command
// never touches another's file. A command either runs itself (run) or
// dispatches to its subcommands (subs); help walks both.
type command struct {
	summary string
	// usage is printed by --help and after a usage error.
	usage string
	run   func(ctx context.Context, c *cli, args []string) error
	subs  map[string]func(ctx context.Context, c *cli, args []string) error
}

// subNames lists a command's subcommands in order.
func (c command) subNames() []string {
	names := make([]string, 0, len(c.subs))
	for name := range c.subs {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
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
	db, closeDB, _, err := c.openPool(ctx, 4, opts...)
	return db, closeDB, err
}

// parseThenOpenDB parses a command's flags, then opens the database, so
// that a usage error is answered without one.
func (c *cli) parseThenOpenDB(ctx context.Context, fs *flag.FlagSet, args []string) (*sql.DB, func(), error) {
	if err := parseFlags(fs, args); err != nil {
		return nil, nil, err
	}
	return c.openDB(ctx)
}

// newFlags returns a flag set that prints nothing: its errors come back to
// the caller, and cliMain reports them on stderr with the command's usage.
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parseFlags parses a command line that takes flags only.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %s: %v", errUsage, fs.Name(), err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: %s takes no argument %q", errUsage, fs.Name(), fs.Arg(0))
	}
	return nil
}

func usage() string {
	var b strings.Builder
	b.WriteString("ledger <command> [subcommand] [flags]\n\nCommands:\n")
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(&b, "  %-18s %s\n", name, commands[name].summary)
	}
	b.WriteString("\n\"ledger <command> --help\" (or \"ledger help <command>\") shows a command's usage.\n")
	b.WriteString(usageEnv)
	return b.String()
}

const usageEnv = `
Environment:
  SHOPLEDGER_DATABASE_URL   PostgreSQL URL (default ` + service.DefaultDatabaseURL + `)
  SHOPLEDGER_LOG_LEVEL      debug, info, warn or error (default info)
  SHOPLEDGER_SENTRY_DSN     report failed commands to this Sentry DSN (default none)
  SHOPLEDGER_SENTRY_ENVIRONMENT
                            Sentry environment (default production)
  SHOPLEDGER_ALLOW_NONDURABLE_DATABASE
                            true starts on a database with fsync or
                            synchronous_commit off (development only;
                            default false: refuse)
`

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	// Help is answered before any setting is read or anything opened.
	if len(args) == 0 {
		return fmt.Errorf("%w: a command is required", errUsage)
	}
	if args[0] == "help" || service.HelpRequested(args[:1]) {
		if len(args) > 1 {
			// "ledger help tokens"
			return run(ctx, []string{args[1], "--help"}, getenv, stdout)
		}
		fmt.Fprint(stdout, usage())
		return nil
	}
	cmd, ok := commands[args[0]]
	if !ok {
		return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
	}
	if service.HelpRequested(args[1:]) || (len(args) > 1 && args[1] == "help") {
		fmt.Fprint(stdout, cmd.usage)
		return nil
	}
	var sub func(ctx context.Context, c *cli, args []string) error
	if cmd.subs != nil {
		if len(args) < 2 {
			return fmt.Errorf("%w: %s needs one of: %s", errUsage, args[0], strings.Join(cmd.subNames(), ", "))
		}
		if sub, ok = cmd.subs[args[1]]; !ok {
			return fmt.Errorf("%w: unknown %s command %q (known: %s)", errUsage, args[0], args[1], strings.Join(cmd.subNames(), ", "))
		}
	}

	env := service.NewEnv(getenv)
	dbURL := env.String("SHOPLEDGER_DATABASE_URL", service.DefaultDatabaseURL)
	allowNonDurable := env.Bool(service.AllowNonDurableEnv, false)
	logLevel := env.String("SHOPLEDGER_LOG_LEVEL", "info")
	// Commands that run unattended (the backup timer) report failures to
	// Sentry; traces have nothing to follow here.
	telCfg := telemetry.Config{
		SentryDSN:   env.String("SHOPLEDGER_SENTRY_DSN", ""),
		Environment: env.String("SHOPLEDGER_SENTRY_ENVIRONMENT", "production"),
	}
	if err := env.Err(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	tel, logger, err := service.StartTelemetry(ctx, "ledger", logLevel, telCfg)
	if err != nil {
		return err
	}
	defer tel.Close()
	defer tel.Recover()

	c := &cli{dbURL: dbURL, allowNonDurable: allowNonDurable, getenv: getenv, stdout: stdout, logger: logger}
	if sub != nil {
		err = sub(ctx, c, args[2:])
	} else {
		err = cmd.run(ctx, c, args[1:])
	}
	if err != nil && !errors.Is(err, errUsage) {
		tel.CaptureError(ctx, fmt.Errorf("ledger %s: %w", strings.Join(args[:min(len(args), 2)], " "), err))
	}
	return err
}
