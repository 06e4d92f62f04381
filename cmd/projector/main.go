// Command projector builds the read models from the event log.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/shopledger/shopledger/service"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "projector: %v\n", err)
		os.Exit(1)
	}
}

// config is everything projector reads from SHOPLEDGER_* variables.
type config struct {
	DatabaseURL string
	Addr        string
	LogLevel    string
}

func loadConfig(getenv func(string) string) (config, error) {
	env := service.NewEnv(getenv)
	c := config{
		DatabaseURL: env.String("SHOPLEDGER_DATABASE_URL", service.DefaultDatabaseURL),
		Addr:        env.String("SHOPLEDGER_PROJECTOR_ADDR", "127.0.0.1:8082"),
		LogLevel:    env.String("SHOPLEDGER_LOG_LEVEL", "info"),
	}
	return c, env.Err()
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	cfg, err := loadConfig(getenv)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	logger := service.NewLogger(cfg.LogLevel, os.Stderr).With("service", "projector")
	logger.Info("starting", "database", service.RedactURL(cfg.DatabaseURL), "addr", cfg.Addr)

	db, pool, err := service.OpenDB(ctx, cfg.DatabaseURL, 20, logger)
	if err != nil {
		return err
	}
	defer pool.Close()
	defer db.Close()

	reg := service.NewRegistry()
	ready := &service.Readiness{}
	ready.Add("database", db.PingContext)
	mux := service.OpsMux(reg, ready)
	return service.Serve(ctx, cfg.Addr, mux, "projector", stdout, logger)
}
