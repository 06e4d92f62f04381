// Command query serves sellers and auditors over HTTP: the JSON API under
// /v1 (see docs/api.md), /openapi.json, and the ops endpoints.
package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/httpapi"
	"github.com/shopledger/shopledger/service"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "query: %v\n", err)
		os.Exit(1)
	}
}

// config is everything query reads from SHOPLEDGER_* variables.
type config struct {
	DatabaseURL  string
	Addr         string
	LogLevel     string
	DBConns      int64
	QueryTimeout time.Duration
	TokenRate    float64
	TokenBurst   int64
	AddressRate  float64
	AddressBurst int64
	// AllowNonDurableDB starts on a database whose commits are not durable.
	AllowNonDurableDB bool
}

func loadConfig(getenv func(string) string) (config, error) {
	env := service.NewEnv(getenv)
	c := config{
		DatabaseURL:  env.String("SHOPLEDGER_DATABASE_URL", service.DefaultDatabaseURL),
		Addr:         env.String("SHOPLEDGER_QUERY_ADDR", "127.0.0.1:8080"),
		LogLevel:     env.String("SHOPLEDGER_LOG_LEVEL", "info"),
		DBConns:      env.Int("SHOPLEDGER_QUERY_DB_CONNS", 20),
		QueryTimeout: env.Duration("SHOPLEDGER_QUERY_TIMEOUT", 5*time.Second),
		TokenRate:    env.Float("SHOPLEDGER_QUERY_TOKEN_RATE", 20),
		TokenBurst:   env.Int("SHOPLEDGER_QUERY_TOKEN_BURST", 40),
		AddressRate:  env.Float("SHOPLEDGER_QUERY_ADDRESS_RATE", 100),
		AddressBurst: env.Int("SHOPLEDGER_QUERY_ADDRESS_BURST", 200),

		AllowNonDurableDB: env.Bool(service.AllowNonDurableEnv, false),
	}
	if c.DBConns < 1 || c.DBConns > 1000 {
		env.Fail("SHOPLEDGER_QUERY_DB_CONNS: %d is not between 1 and 1000", c.DBConns)
	}
	if c.QueryTimeout < 10*time.Millisecond {
		env.Fail("SHOPLEDGER_QUERY_TIMEOUT: %s is below 10ms", c.QueryTimeout)
	}
	if c.TokenRate < 0 || c.AddressRate < 0 {
		env.Fail("SHOPLEDGER_QUERY_TOKEN_RATE and SHOPLEDGER_QUERY_ADDRESS_RATE must not be negative (0 turns a limit off)")
	}
	if c.TokenBurst < 1 || c.AddressBurst < 1 {
		env.Fail("SHOPLEDGER_QUERY_TOKEN_BURST and SHOPLEDGER_QUERY_ADDRESS_BURST must be at least 1")
	}
	return c, env.Err()
}

// withStatementTimeout sets the server-side statement_timeout on every
// connection of the serving pool, so a query the request context failed to
// stop is still cut off by PostgreSQL. A little slack over the request
// timeout lets the context cancel first and answer cleanly.
func withStatementTimeout(dbURL string, d time.Duration) (string, error) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return "", fmt.Errorf("database url: %w", err)
	}
	q := u.Query()
	q.Set("statement_timeout", strconv.FormatInt((d+d/5).Milliseconds(), 10))
	u.RawQuery = q.Encode()
	return u.String(), nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	cfg, err := loadConfig(getenv)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	logger := service.NewLogger(cfg.LogLevel, os.Stderr).With("service", "query")
	logger.Info("starting", "database", service.RedactURL(cfg.DatabaseURL), "addr", cfg.Addr,
		"query_timeout", cfg.QueryTimeout, "db_conns", cfg.DBConns, "allow_nondurable_database", cfg.AllowNonDurableDB,
		"token_rate", cfg.TokenRate, "token_burst", cfg.TokenBurst, "address_rate", cfg.AddressRate, "address_burst", cfg.AddressBurst)

	// Migrations run on their own short-lived pool: the serving pool's
	// statement_timeout would cut a long migration short. OpenDB also
	// checks durability there, for the serving pool too: both come from
	// the same URL, which differs only in statement_timeout.
	mdb, mpool, err := service.OpenDB(ctx, cfg.DatabaseURL, 2, logger, service.AllowNonDurable(cfg.AllowNonDurableDB))
	if err != nil {
		return err
	}
	mdb.Close()
	mpool.Close()

	servingURL, err := withStatementTimeout(cfg.DatabaseURL, cfg.QueryTimeout)
	if err != nil {
		return err
	}
	db, pool, err := eventstore.Open(ctx, servingURL, int32(cfg.DBConns))
	if err != nil {
		return err
	}
	defer pool.Close()
	defer db.Close()

	reg := service.NewRegistry()
	ready := &service.Readiness{}
	ready.Add("database", db.PingContext)

	store := httpapi.NewStore(db)
	api, err := httpapi.New(httpapi.Config{
		Logger:     logger,
		Registerer: reg,
		Tokens:     httpapi.NewTokenStore(db),
		Shops:      store,
		Data: httpapi.Readers{
			Shops:      store,
			Products:   store,
			Stock:      store,
			Sales:      store,
			Alerts:     httpapi.NewAlertStore(db),
			Thresholds: eventstore.New(db),
			Events:     store,
		},
		QueryTimeout: cfg.QueryTimeout,
		TokenRate:    cfg.TokenRate,
		TokenBurst:   int(cfg.TokenBurst),
		AddressRate:  cfg.AddressRate,
		AddressBurst: int(cfg.AddressBurst),
	})
	if err != nil {
		return err
	}
	mux := service.OpsMux(reg, ready)
	mux.Handle("/", api)
	// In front of the mux: http.ServeMux answers a path with // or ..
	// segments with a redirect and an HTML body before the API sees it,
	// and its own answers (a 405 on an ops path) leave bodies unread.
	return service.Serve(ctx, cfg.Addr, httpapi.CanonicalPaths(httpapi.CloseUnreadBodies(mux)), "query", stdout, logger)
}
