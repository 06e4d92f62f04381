// Command query serves sellers and auditors over HTTP: the JSON API under
// /v1 (see docs/api.md), /openapi.json, and the ops endpoints.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"

	"github.com/shopledger/shopledger/domain"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/httpapi"
	"github.com/shopledger/shopledger/projections"
	"github.com/shopledger/shopledger/service"
	"github.com/shopledger/shopledger/stockedits"
	"github.com/shopledger/shopledger/telemetry"
	"github.com/shopledger/shopledger/tokens"
)

func main() {
	// The service keeps little live heap (a few MB), so Go's default
	// (collect when the heap doubles) collects every few MB of
	// responses, and each collection holds a core while requests wait;
	// on a small host that is the slowest percent of answers. Unless the
	// operator set GOGC, collect when the heap has grown fourfold.
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(400)
	}
	os.Exit(cliMain(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

var errUsage = errors.New("usage")

// cliMain runs a command line and turns its outcome into the exit status:
// 0, 1 for a failure, or 2 for a usage error, which it explains on stderr
// followed by the usage.
func cliMain(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	return service.ExitStatus("query", run(ctx, args, getenv, stdout), errUsage, stderr, func() string { return usage })
}

var usage = `query

Serves sellers and auditors: the JSON API under /v1 (docs/api.md),
/openapi.json, the pages at / (docs/accounts.md) and /healthz on
SHOPLEDGER_QUERY_ADDR; /metrics and /readyz on
SHOPLEDGER_QUERY_OPS_ADDR. It takes no arguments: every setting comes from
the environment.

Environment (docs/operations.md lists them all):
  SHOPLEDGER_DATABASE_URL          PostgreSQL URL (default ` + service.DefaultDatabaseURL + `)
  SHOPLEDGER_QUERY_ADDR            public listener (default 127.0.0.1:8080)
  SHOPLEDGER_QUERY_OPS_ADDR        /metrics and /readyz (default 127.0.0.1:9080; keep it private)
  SHOPLEDGER_SHUTDOWN_DRAIN        keep serving this long after SIGTERM, /healthz 503 (default 0;
                                   behind a proxy, longer than its health check interval)
  SHOPLEDGER_QUERY_TIMEOUT         per-request database time (default 5s)
  SHOPLEDGER_QUERY_TOKEN_RATE, SHOPLEDGER_QUERY_TOKEN_BURST       requests a second per token (20, 40)
  SHOPLEDGER_QUERY_ADDRESS_RATE, SHOPLEDGER_QUERY_ADDRESS_BURST   requests a second per client (100, 200)
  SHOPLEDGER_QUERY_AUTH_FAILURE_RATE, SHOPLEDGER_QUERY_AUTH_FAILURE_BURST
                                   failed authentications a second per client (1, 10)
  SHOPLEDGER_QUERY_TRUSTED_PROXIES comma-separated proxy addresses or CIDRs whose
                                   SHOPLEDGER_QUERY_PROXY_HEADER names the client (default none)
  SHOPLEDGER_QUERY_PROXY_HEADER    X-Forwarded-For (default) or Forwarded: the one the proxies set
  SHOPLEDGER_DEFAULT_LOW_STOCK_THRESHOLD
                                   the low-stock line where no variant, listing or shop sets
                                   one (default 5); give the projector the same value
  SHOPLEDGER_APP_URL               the pages' public URL, start of e-mailed links (default http://<addr>)
  SHOPLEDGER_SESSION_SECURE        session cookie only over HTTPS, __Host- prefixed (default: on for an https APP_URL)
  SHOPLEDGER_SESSION_IDLE, SHOPLEDGER_SESSION_MAX_AGE
                                   session ends unused, and at the latest (12h, 168h)
  SHOPLEDGER_SMTP_ADDR, _FROM, _USERNAME, _PASSWORD, _STARTTLS
                                   mail server for verification, reset and invitation e-mails
                                   (unset: they stay pending, listed in account_mail)
  SHOPLEDGER_TOKEN_KEYS            id:base64key,... as ingest has them: seal the alert webhook
                                   signing secrets the channels page makes (unset: stored plain)
` + service.TelemetryUsage(33)

// config is everything query reads from SHOPLEDGER_* variables.
type config struct {
	DatabaseURL string
	Addr        string
	// OpsAddr serves /metrics and /readyz, apart from the public Addr.
	OpsAddr string
	// Drain keeps the public listener serving this long after a
	// shutdown signal, its /healthz answering 503 (see service.Listener).
	Drain        time.Duration
	LogLevel     string
	DBConns      int64
	QueryTimeout time.Duration
	TokenRate    float64
	TokenBurst   int64
	AddressRate  float64
	AddressBurst int64
	// AuthFailureRate and AuthFailureBurst limit failed authentications
	// per client, in a bucket of their own.
	AuthFailureRate  float64
	AuthFailureBurst int64
	// TrustedProxies may name the client in ProxyHeader.
	TrustedProxies []netip.Prefix
	ProxyHeader    httpapi.ProxyHeader
	// DefaultThreshold is the low-stock line where no variant, listing or
	// shop sets one; the projector's alerter reads the same variable.
	DefaultThreshold int64
	// AllowNonDurableDB starts on a database whose commits are not durable.
	AllowNonDurableDB bool
	// AllowPrivilegedDB starts as a role that could rewrite the log.
	AllowPrivilegedDB bool

	Telemetry telemetry.Config
	// App configures the seller's pages (app.go).
	App appConfig
}

func loadConfig(getenv func(string) string) (config, error) {
	env := service.NewEnv(getenv)
	c := config{
		DatabaseURL:  env.String("SHOPLEDGER_DATABASE_URL", service.DefaultDatabaseURL),
		Addr:         env.String("SHOPLEDGER_QUERY_ADDR", "127.0.0.1:8080"),
		OpsAddr:      env.String("SHOPLEDGER_QUERY_OPS_ADDR", "127.0.0.1:9080"),
		Drain:        env.Duration("SHOPLEDGER_SHUTDOWN_DRAIN", 0),
		LogLevel:     env.String("SHOPLEDGER_LOG_LEVEL", "info"),
		DBConns:      env.Int("SHOPLEDGER_QUERY_DB_CONNS", 20),
		QueryTimeout: env.Duration("SHOPLEDGER_QUERY_TIMEOUT", 5*time.Second),
		TokenRate:    env.Float("SHOPLEDGER_QUERY_TOKEN_RATE", 20),
		TokenBurst:   env.Int("SHOPLEDGER_QUERY_TOKEN_BURST", 40),
		AddressRate:  env.Float("SHOPLEDGER_QUERY_ADDRESS_RATE", 100),
		AddressBurst: env.Int("SHOPLEDGER_QUERY_ADDRESS_BURST", 200),

		AuthFailureRate:  env.Float("SHOPLEDGER_QUERY_AUTH_FAILURE_RATE", 1),
		AuthFailureBurst: env.Int("SHOPLEDGER_QUERY_AUTH_FAILURE_BURST", 10),

		DefaultThreshold: env.Int("SHOPLEDGER_DEFAULT_LOW_STOCK_THRESHOLD", domain.DefaultLowStockThreshold),

		AllowNonDurableDB: env.Bool(service.AllowNonDurableEnv, false),
		AllowPrivilegedDB: env.Bool(service.AllowPrivilegedEnv, false),
		Telemetry:         service.TelemetryConfig(env),
	}
	if c.DefaultThreshold < 0 {
		env.Fail("SHOPLEDGER_DEFAULT_LOW_STOCK_THRESHOLD: %d is negative", c.DefaultThreshold)
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
	if c.AuthFailureRate < 0 || c.AuthFailureBurst < 1 {
		env.Fail("SHOPLEDGER_QUERY_AUTH_FAILURE_RATE must not be negative and SHOPLEDGER_QUERY_AUTH_FAILURE_BURST must be at least 1")
	}
	proxies, err := httpapi.ParseTrustedProxies(env.List("SHOPLEDGER_QUERY_TRUSTED_PROXIES", nil))
	if err != nil {
		env.Fail("SHOPLEDGER_QUERY_TRUSTED_PROXIES: %v", err)
	}
	c.TrustedProxies = proxies
	c.App = loadAppConfig(env, c.Addr)
	c.App.QueryTimeout = c.QueryTimeout
	if c.ProxyHeader, err = httpapi.ParseProxyHeader(env.String("SHOPLEDGER_QUERY_PROXY_HEADER", "X-Forwarded-For")); err != nil {
		env.Fail("SHOPLEDGER_QUERY_PROXY_HEADER: %v", err)
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
	// Help is answered before any setting is read or anything opened.
	if service.AnswerHelp(args, stdout, func([]string) string { return usage }) {
		return nil
	}
	if len(args) > 0 {
		return fmt.Errorf("%w: unexpected argument %q: query takes its settings from SHOPLEDGER_* variables", errUsage, args[0])
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	cfg, err := loadConfig(getenv)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	tel, logger, err := service.StartTelemetry(ctx, "query", cfg.LogLevel, cfg.Telemetry)
	if err != nil {
		return err
	}
	defer tel.Close()
	defer tel.Recover()
	logger.Info("starting", "database", service.RedactURL(cfg.DatabaseURL), "addr", cfg.Addr, "ops_addr", cfg.OpsAddr,
		"query_timeout", cfg.QueryTimeout, "db_conns", cfg.DBConns, "allow_nondurable_database", cfg.AllowNonDurableDB,
		"token_rate", cfg.TokenRate, "token_burst", cfg.TokenBurst, "address_rate", cfg.AddressRate, "address_burst", cfg.AddressBurst,
		"auth_failure_rate", cfg.AuthFailureRate, "auth_failure_burst", cfg.AuthFailureBurst,
		"trusted_proxies", fmt.Sprint(cfg.TrustedProxies), "proxy_header", cfg.ProxyHeader, "default_threshold", cfg.DefaultThreshold)

	// The checks (durability, the role, the schema, the log's order) run
	// on their own short-lived pool, without the serving pool's
	// statement_timeout; both come from the same URL, which differs only
	// in statement_timeout.
	mdb, mpool, err := service.OpenDB(ctx, cfg.DatabaseURL, 2, logger, service.AllowNonDurable(cfg.AllowNonDurableDB), service.AsService(cfg.AllowPrivilegedDB))
	if err != nil {
		return err
	}
	mdb.Close()
	mpool.Close()

	servingURL, err := withStatementTimeout(cfg.DatabaseURL, cfg.QueryTimeout)
	if err != nil {
		return err
	}
	db, pool, err := service.OpenDB(ctx, servingURL, int32(cfg.DBConns), logger, service.SkipChecks())
	if err != nil {
		return err
	}
	defer pool.Close()
	defer db.Close()

	reg := service.NewRegistry()
	ready := service.DBReadiness(reg, db, logger)

	read := projections.NewReader(db, projections.ReaderConfig{DefaultThreshold: cfg.DefaultThreshold})
	// One stock edit service for the API's adjustments and the pages'
	// forms.
	edits := stockedits.NewService(db, eventstore.New(db), nil)
	data := httpapi.Readers{
		Shops:      read,
		Products:   read,
		Stock:      read,
		Sales:      read,
		Alerts:     httpapi.NewAlertStore(db),
		Thresholds: eventstore.New(db),
		Events:     read,
		StockEdits: edits,
	}
	api, err := httpapi.New(httpapi.Config{
		Logger:       logger,
		Registerer:   reg,
		Tokens:       tokens.NewStore(db),
		Data:         data,
		QueryTimeout: cfg.QueryTimeout,
		TokenRate:    cfg.TokenRate,
		TokenBurst:   int(cfg.TokenBurst),
		AddressRate:  cfg.AddressRate,
		AddressBurst: int(cfg.AddressBurst),

		AuthFailureRate:  cfg.AuthFailureRate,
		AuthFailureBurst: int(cfg.AuthFailureBurst),
		TrustedProxies:   cfg.TrustedProxies,
		ProxyHeader:      cfg.ProxyHeader,
	})
	if err != nil {
		return err
	}
	// The seller's pages (app.go) serve everything the API does not.
	logger.Info("app", cfg.App.logAttrs()...)
	pages, err := newApp(cfg.App, db, read, data, edits, func(r *http.Request) string {
		return httpapi.ClientAddress(r, cfg.TrustedProxies, cfg.ProxyHeader)
	}, logger)
	if err != nil {
		return err
	}

	// The public listener serves the API, the pages and a bare /healthz;
	// metrics and readiness stay on the ops one. In front of its mux:
	// http.ServeMux answers a path with // or .. segments with a redirect
	// and an HTML body before the API sees it, and its own answers leave
	// bodies unread.
	public := http.NewServeMux()
	public.HandleFunc("GET /healthz", service.Healthz)
	public.Handle("/v1", api)
	public.Handle("/v1/", api)
	public.Handle("/openapi.json", api)
	public.Handle("/", pages)
	return service.ServeAll(ctx, stdout, logger,
		service.Listener{Addr: cfg.Addr, Handler: tel.Handler(httpapi.CanonicalPaths(httpapi.CloseUnreadBodies(public)), "query"), Banner: "query listening on", Drain: cfg.Drain},
		service.Listener{Addr: cfg.OpsAddr, Handler: service.OpsMux(reg, ready), Banner: service.OpsBanner("query")})
}
