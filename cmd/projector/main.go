// Command projector builds the read models from the event log, seals the
// log, and rebuilds read models on demand.
//
//	projector                                   consume the log and serve ops endpoints
//	projector rebuild [--projection NAME]...    rebuild read models from the log and exit
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
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/projections"
	"github.com/shopledger/shopledger/projections/engine"
	"github.com/shopledger/shopledger/service"
	"github.com/shopledger/shopledger/telemetry"
)

func main() {
	os.Exit(cliMain(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

var errUsage = errors.New("usage")

// subcommand is a one-shot command of the projector binary; without one,
// the projector consumes the log.
type subcommand func(ctx context.Context, cfg config, args []string, stdout io.Writer, logger *slog.Logger) error

// subcommands is every subcommand: dispatch and help both read it.
var subcommands = service.Subcommands[subcommand]{
	"rebuild": {Usage: rebuildHelp, Run: runRebuild},
}

// cliMain runs a command line and turns its outcome into the exit status:
// 0, 1 for a failure, or 2 for a usage error, which it explains on stderr
// followed by the usage concerned.
func cliMain(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	return service.ExitStatus("projector", run(ctx, args, getenv, stdout), errUsage, stderr, func() string { return usageOf(args) })
}

// usageOf is the usage of the subcommand args name, else projector's.
func usageOf(args []string) string { return subcommands.UsageOf(args, usage) }

// config is everything projector reads from SHOPLEDGER_* variables.
type config struct {
	DatabaseURL string
	// Addr is the projector's only listener: its ops endpoints.
	Addr          string
	LogLevel      string
	DBConns       int64
	BatchSize     int64
	PollInterval  time.Duration
	AckDeadline   time.Duration
	RetryInterval time.Duration
	LagInterval   time.Duration
	// RebuildMemoryMiB is the memory budget of a rebuild: the fold keeps
	// mutable rows (listings, receipts) in memory, and the garbage
	// collector runs only when the heap nears this soft limit.
	RebuildMemoryMiB int64
	// Projections names the built-in projections to run; empty runs all.
	Projections []string
	// AllowNonDurableDB starts on a database whose commits are not durable.
	AllowNonDurableDB bool
	// AllowPrivilegedDB starts as a role that could rewrite the log.
	AllowPrivilegedDB bool

	Telemetry telemetry.Config
}

func loadConfig(env *service.Env) config {
	c := config{
		DatabaseURL:   env.String("SHOPLEDGER_DATABASE_URL", service.DefaultDatabaseURL),
		Addr:          env.String("SHOPLEDGER_PROJECTOR_OPS_ADDR", env.String("SHOPLEDGER_PROJECTOR_ADDR", "127.0.0.1:8082")),
		LogLevel:      env.String("SHOPLEDGER_LOG_LEVEL", "info"),
		DBConns:       env.Int("SHOPLEDGER_PROJECTOR_DB_CONNS", 20),
		BatchSize:     env.Int("SHOPLEDGER_PROJECTOR_BATCH_SIZE", 2000),
		PollInterval:  env.Duration("SHOPLEDGER_PROJECTOR_POLL_INTERVAL", 100*time.Millisecond),
		AckDeadline:   env.Duration("SHOPLEDGER_PROJECTOR_ACK_DEADLINE", time.Minute),
		RetryInterval: env.Duration("SHOPLEDGER_PROJECTOR_RETRY_INTERVAL", 30*time.Second),
		LagInterval:   env.Duration("SHOPLEDGER_PROJECTOR_LAG_INTERVAL", 5*time.Second),
		Projections:   env.List("SHOPLEDGER_PROJECTOR_PROJECTIONS", nil),

		RebuildMemoryMiB: env.Int("SHOPLEDGER_PROJECTOR_REBUILD_MEMORY_MIB", 192),

		AllowNonDurableDB: env.Bool(service.AllowNonDurableEnv, false),
		AllowPrivilegedDB: env.Bool(service.AllowPrivilegedEnv, false),
		Telemetry:         service.TelemetryConfig(env),
	}
	if c.RebuildMemoryMiB < 32 {
		env.Fail("SHOPLEDGER_PROJECTOR_REBUILD_MEMORY_MIB: %d is below 32", c.RebuildMemoryMiB)
	}
	if c.DBConns < 4 {
		env.Fail("SHOPLEDGER_PROJECTOR_DB_CONNS: %d is below 4", c.DBConns)
	}
	if c.BatchSize < 1 || c.BatchSize > 100000 {
		env.Fail("SHOPLEDGER_PROJECTOR_BATCH_SIZE: %d is not between 1 and 100000", c.BatchSize)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"SHOPLEDGER_PROJECTOR_POLL_INTERVAL", c.PollInterval}, {"SHOPLEDGER_PROJECTOR_ACK_DEADLINE", c.AckDeadline}, {"SHOPLEDGER_PROJECTOR_RETRY_INTERVAL", c.RetryInterval}} {
		if d.v <= 0 {
			env.Fail("%s: must be positive", d.name)
		}
	}
	known := builtinNames()
	for _, p := range c.Projections {
		if !slices.Contains(known, p) {
			env.Fail("SHOPLEDGER_PROJECTOR_PROJECTIONS: unknown projection %q (known: %s)", p, strings.Join(known, ", "))
		}
	}
	return c
}

func builtinNames() []string {
	var names []string
	for _, p := range projections.Default() {
		names = append(names, p.Name())
	}
	return names
}

// deps is what a consumer plugin gets to build its projections.
type deps struct {
	db     *sql.DB
	store  *eventstore.Store
	env    *service.Env
	logger *slog.Logger
	reg    prometheus.Registerer
}

// plugin adds consumer groups (and the background work that goes with
// them, such as alert delivery) to the projector. Each plugin lives in its
// own file of this package and appends itself to plugins from init, so
// adding one never edits this file. Its settings come from env
// (SHOPLEDGER_*); env errors are reported together at start.
type plugin struct {
	name  string
	setup func(d deps) (projs []engine.Projection, workers []func(context.Context) error, err error)
}

var plugins []plugin

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	// Help is answered before any setting is read or anything opened.
	if service.AnswerHelp(args, stdout, usageOf) {
		return nil
	}
	var sub *service.Subcommand[subcommand]
	if len(args) > 0 {
		s, ok := subcommands[args[0]]
		if !ok {
			return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
		}
		sub = &s
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	env := service.NewEnv(getenv)
	cfg := loadConfig(env)
	if err := env.Err(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	tel, logger, err := service.StartTelemetry(ctx, "projector", cfg.LogLevel, cfg.Telemetry)
	if err != nil {
		return err
	}
	defer tel.Close()
	defer tel.Recover()
	if sub != nil {
		return sub.Run(ctx, cfg, args[1:], stdout, logger)
	}

	logger.Info("starting", "database", service.RedactURL(cfg.DatabaseURL), "addr", cfg.Addr,
		"batch_size", cfg.BatchSize, "poll_interval", cfg.PollInterval.String(), "ack_deadline", cfg.AckDeadline.String(),
		"retry_interval", cfg.RetryInterval.String(), "projections", cfg.Projections)
	db, pool, err := service.OpenDB(ctx, cfg.DatabaseURL, int32(cfg.DBConns), logger, service.AllowNonDurable(cfg.AllowNonDurableDB), service.AsService(cfg.AllowPrivilegedDB))
	if err != nil {
		return err
	}
	defer pool.Close()
	defer db.Close()

	reg := service.NewRegistry()
	projs := selected(cfg.Projections)
	var workers []func(context.Context) error
	d := deps{db: db, store: eventstore.New(db), env: env, logger: logger, reg: reg}
	for _, p := range plugins {
		ps, ws, err := p.setup(d)
		if err != nil {
			return fmt.Errorf("set up %s: %w", p.name, err)
		}
		projs = append(projs, ps...)
		workers = append(workers, ws...)
	}
	if err := env.Err(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	runner, err := engine.NewRunner(db, projs, engine.RunnerConfig{
		BatchSize:     int(cfg.BatchSize),
		PollInterval:  cfg.PollInterval,
		AckDeadline:   cfg.AckDeadline,
		RetryInterval: cfg.RetryInterval,
		LagInterval:   cfg.LagInterval,
	}, logger, reg)
	if err != nil {
		return err
	}

	ready := service.DBReadiness(reg, db, logger)
	ready.Add("projections", runner.Ready)
	mux := service.OpsMux(reg, ready)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1+len(workers))
	// A consumer or worker that gives up takes the process down, so that
	// a supervisor restarts it instead of it serving ops endpoints only.
	start := func(f func(context.Context) error) {
		go func() {
			err := f(ctx)
			if err != nil {
				cancel()
			}
			errc <- err
		}()
	}
	start(runner.Run)
	for _, w := range workers {
		start(w)
	}
	serveErr := service.Serve(ctx, cfg.Addr, mux, "projector", stdout, logger)
	cancel()
	var errs []error
	if serveErr != nil {
		errs = append(errs, serveErr)
	}
	for range 1 + len(workers) {
		if err := <-errc; err != nil && !errors.Is(err, context.Canceled) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func selected(names []string) []engine.Projection {
	all := projections.Default()
	if len(names) == 0 {
		return all
	}
	var out []engine.Projection
	for _, p := range all {
		if slices.Contains(names, p.Name()) {
			out = append(out, p)
		}
	}
	return out
}

var usage = `projector [command]

Commands:
  (none)                                  consume the log, maintain read models, seal the log,
                                          deliver alerts; /healthz, /readyz and /metrics on
                                          SHOPLEDGER_PROJECTOR_OPS_ADDR
  rebuild [--projection NAME]... [--no-swap]
                                          rebuild read models from the log into shadow tables,
                                          swap them in and move their consumer groups; default
                                          every rebuildable projection (shops, products,
                                          stock_movements, sales). The seal is never rebuilt.

"projector <command> --help" shows a command's usage.

Environment (the main settings; docs/operations.md lists them all):
  SHOPLEDGER_DATABASE_URL         PostgreSQL URL (default ` + service.DefaultDatabaseURL + `)
  SHOPLEDGER_PROJECTOR_OPS_ADDR   its only listener: /healthz, /readyz and /metrics
                                  (default 127.0.0.1:8082; keep it private; SHOPLEDGER_PROJECTOR_ADDR
                                  is read when it is unset)
  SHOPLEDGER_PROJECTOR_PROJECTIONS  comma-separated projections to run (default all)
  SHOPLEDGER_SMTP_ADDR            mail server for e-mail alerts (unset: they wait, pending)
` + service.TelemetryUsage(32)

const rebuildUsage = `projector rebuild [--projection NAME]... [--no-swap]

Rebuilds read models from the log into shadow tables, swaps them in and
moves their consumer groups on, then exits. The seal is never rebuilt and
no alert is sent again.

Flags:
`

type rebuildOptions struct {
	names  multiFlag
	noSwap bool
}

func rebuildFlags() (*flag.FlagSet, *rebuildOptions) {
	var o rebuildOptions
	fs := flag.NewFlagSet("rebuild", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Var(&o.names, "projection", "projection to rebuild (repeatable); default all")
	fs.BoolVar(&o.noSwap, "no-swap", false, "leave the filled <table>_rebuild tables in place instead of swapping them in")
	return fs, &o
}

// rebuildHelp is the usage text with each flag described.
func rebuildHelp() string {
	fs, _ := rebuildFlags()
	return service.FlagUsage(rebuildUsage, fs)
}

// rebuildConns is the pool a rebuild of targets needs: engine.Rebuild
// holds, all at once, its lock's connection, the snapshot that reads the
// log, and one COPY per shadow table. A smaller pool hangs: the read (or a
// COPY it feeds) waits for a connection held by a COPY that waits for it.
func rebuildConns(targets []engine.Rebuildable) int32 {
	n := 2
	for _, t := range targets {
		n += len(t.Tables())
	}
	return int32(n)
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func runRebuild(ctx context.Context, cfg config, args []string, stdout io.Writer, logger *slog.Logger) error {
	fs, o := rebuildFlags()
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: rebuild: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: rebuild takes no argument %q", errUsage, fs.Arg(0))
	}
	names, noSwap := o.names, &o.noSwap
	var targets []engine.Rebuildable
	var known []string
	for _, p := range projections.Default() {
		rb, ok := p.(engine.Rebuildable)
		if !ok {
			continue
		}
		known = append(known, p.Name())
		if len(names) == 0 || slices.Contains(names, p.Name()) {
			targets = append(targets, rb)
		}
	}
	for _, n := range names {
		if !slices.Contains(known, n) {
			return fmt.Errorf("%w: %q cannot be rebuilt (rebuildable: %s)", errUsage, n, strings.Join(known, ", "))
		}
	}
	// A rebuild is a batch job with a memory budget: collecting only near
	// the budget, not whenever the heap doubles, saves the many early
	// collections while the kept rows are still few.
	debug.SetMemoryLimit(cfg.RebuildMemoryMiB << 20)
	debug.SetGCPercent(-1)
	db, pool, err := service.OpenDB(ctx, cfg.DatabaseURL, rebuildConns(targets), logger, service.AllowNonDurable(cfg.AllowNonDurableDB))
	if err != nil {
		return err
	}
	defer pool.Close()
	// The rebuild works on the pool alone. database/sql keeps the
	// connections the migrations used as idle ones, acquired from the
	// pool (service.OpenDB lets it keep half); closing it gives them back.
	db.Close()
	rep, err := engine.Rebuild(ctx, pool, targets, engine.RebuildOptions{NoSwap: *noSwap}, logger)
	if err != nil {
		return err
	}
	verb := "rebuilt and swapped in"
	if *noSwap {
		verb = "rebuilt into shadow tables (not swapped)"
	}
	fmt.Fprintf(stdout, "%s %s from %d events in %s (%.0f events/s); consumer groups continue after position %d\n",
		verb, strings.Join(rep.Projections, ", "), rep.Events, rep.Duration.Round(time.Millisecond),
		float64(rep.Events)/max(rep.Duration.Seconds(), 1e-9), rep.Cursor.Position)
	tables := make([]string, 0, len(rep.Rows))
	for t := range rep.Rows {
		tables = append(tables, t)
	}
	slices.Sort(tables)
	for _, t := range tables {
		fmt.Fprintf(stdout, "  %-18s %d rows\n", t, rep.Rows[t])
	}
	return nil
}
