// Command ingest receives Etsy webhooks, follows them and reconciles shops against Etsy.
package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/etsymap"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/ingest"
	"github.com/shopledger/shopledger/service"
	"github.com/shopledger/shopledger/shops"
	"github.com/shopledger/shopledger/stdwebhooks"
	"github.com/shopledger/shopledger/telemetry"
)

func main() {
	os.Exit(cliMain(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

var errUsage = errors.New("usage")

// subcommand is a one-shot command of the ingest binary; without one,
// ingest serves.
type subcommand func(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error

// subcommands is every subcommand: dispatch and help both read it.
var subcommands = service.Subcommands[subcommand]{
	"reconcile": {Usage: reconcileHelp, Run: runReconcile},
}

// cliMain runs a command line and turns its outcome into the exit status:
// 0, 1 for a failure, or 2 for a usage error, which it explains on stderr
// followed by the usage concerned.
func cliMain(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	return service.ExitStatus("ingest", run(ctx, args, getenv, stdout), errUsage, stderr, func() string { return usageOf(args) })
}

// usageOf is the usage of the subcommand args name, else ingest's.
func usageOf(args []string) string { return subcommands.UsageOf(args, usage) }

var usage = `ingest [command]

Without a command, ingest serves: Etsy's webhooks at POST /webhooks/etsy and
the shop connect flow under /connect/etsy/ on SHOPLEDGER_INGEST_ADDR
(/healthz too), /metrics and /readyz on SHOPLEDGER_INGEST_OPS_ADDR. It
follows each webhook's resource_url and reconciles connected shops on
their interval.

Commands:
  reconcile   run one reconciliation pass now and print what it found

"ingest <command> --help" shows a command's usage.

Environment (the main settings; docs/operations.md lists them all):
  SHOPLEDGER_DATABASE_URL         PostgreSQL URL (default ` + service.DefaultDatabaseURL + `)
  SHOPLEDGER_INGEST_ADDR          public listener (default 127.0.0.1:8081)
  SHOPLEDGER_INGEST_OPS_ADDR      /metrics and /readyz (default 127.0.0.1:9081; keep it private)
  SHOPLEDGER_SHUTDOWN_DRAIN       keep serving this long after SIGTERM, /healthz 503 (default 0;
                                  behind a proxy, longer than its health check interval)
  SHOPLEDGER_WEBHOOK_SECRETS      whsec_ signing secrets, current first (webhooks answer 503 without)
  SHOPLEDGER_TOKEN_KEYS           id:base64key,... encrypting shop tokens (shop connections and
                                  reconciliation are off without)
  SHOPLEDGER_ETSY_KEYSTRING, SHOPLEDGER_ETSY_SHARED_SECRET   the Etsy app's key
  SHOPLEDGER_ETSY_API_URL         default ` + etsy.DefaultBaseURL + `
  SHOPLEDGER_RECONCILE_INTERVAL   default polling interval of a shop (default 15m)
` + service.TelemetryUsage(32)

// config is everything ingest reads from SHOPLEDGER_* variables.
type config struct {
	DatabaseURL string
	Addr        string
	// OpsAddr serves /metrics and /readyz, apart from the public Addr.
	OpsAddr string
	// Drain keeps the public listener serving this long after a
	// shutdown signal, its /healthz answering 503 (see service.Listener).
	Drain      time.Duration
	LogLevel   string
	DBMaxConns int64
	// AllowNonDurableDB starts on a database whose commits are not durable.
	AllowNonDurableDB bool
	// AllowPrivilegedDB starts as a role that could rewrite the log.
	AllowPrivilegedDB bool

	// WebhookSecrets are the endpoint's whsec_ secrets, current first.
	WebhookSecrets []string
	CommitMaxBatch int64
	CommitWorkers  int64

	FetcherEnabled   bool
	EtsyAPIURL       string
	EtsyAllowedHosts []string
	EtsyAllowHTTP    bool
	EtsyKeyString    string
	EtsySharedSecret string
	EtsyQPS          int64
	EtsyQPD          int64
	FetchAttempts    int64
	FetchBackoff     time.Duration
	SettleWindow     time.Duration

	Telemetry telemetry.Config
}

func loadConfig(getenv func(string) string) (config, error) {
	env := service.NewEnv(getenv)
	c := config{
		DatabaseURL: env.String("SHOPLEDGER_DATABASE_URL", service.DefaultDatabaseURL),
		Addr:        env.String("SHOPLEDGER_INGEST_ADDR", "127.0.0.1:8081"),
		OpsAddr:     env.String("SHOPLEDGER_INGEST_OPS_ADDR", "127.0.0.1:9081"),
		Drain:       env.Duration("SHOPLEDGER_SHUTDOWN_DRAIN", 0),
		LogLevel:    env.String("SHOPLEDGER_LOG_LEVEL", "info"),
		DBMaxConns:  env.Int("SHOPLEDGER_INGEST_DB_MAX_CONNS", 20),

		AllowNonDurableDB: env.Bool(service.AllowNonDurableEnv, false),
		AllowPrivilegedDB: env.Bool(service.AllowPrivilegedEnv, false),

		Telemetry: service.TelemetryConfig(env),

		WebhookSecrets: env.List("SHOPLEDGER_WEBHOOK_SECRETS", nil),
		CommitMaxBatch: env.Int("SHOPLEDGER_WEBHOOK_MAX_BATCH", 256),
		// One: the next batch gathers while the previous one waits for
		// its COMMIT, so it holds every request that arrived meanwhile.
		// More commits in flight split the same load into smaller
		// batches, and each batch costs PostgreSQL a statement and a WAL
		// flush and ingest a round trip (docs/benchmarks.md).
		CommitWorkers: env.Int("SHOPLEDGER_WEBHOOK_COMMITTERS", 1),

		FetcherEnabled:   env.Bool("SHOPLEDGER_FETCHER_ENABLED", true),
		EtsyAPIURL:       env.String("SHOPLEDGER_ETSY_API_URL", etsy.DefaultBaseURL),
		EtsyAllowedHosts: env.List("SHOPLEDGER_ETSY_ALLOWED_HOSTS", []string{"openapi.etsy.com", "api.etsy.com"}),
		EtsyAllowHTTP:    env.Bool("SHOPLEDGER_ETSY_ALLOW_HTTP", false),
		EtsyKeyString:    env.String("SHOPLEDGER_ETSY_KEYSTRING", ""),
		EtsySharedSecret: env.String("SHOPLEDGER_ETSY_SHARED_SECRET", ""),
		EtsyQPS:          env.Int("SHOPLEDGER_ETSY_QPS", etsy.DefaultQPS),
		EtsyQPD:          env.Int("SHOPLEDGER_ETSY_QPD", etsy.DefaultQPD),
		FetchAttempts:    env.Int("SHOPLEDGER_FETCH_ATTEMPTS", 3),
		FetchBackoff:     env.Duration("SHOPLEDGER_FETCH_BACKOFF", time.Second),
		SettleWindow:     env.Duration("SHOPLEDGER_FETCH_SETTLE_WINDOW", 30*time.Minute),
	}
	for i, s := range c.WebhookSecrets {
		if _, err := stdwebhooks.ParseSecret(s); err != nil {
			// Never echo the value: it is a secret.
			env.Fail("SHOPLEDGER_WEBHOOK_SECRETS: secret %d is not a whsec_<base64> secret", i+1)
		}
	}
	if c.CommitMaxBatch < 1 || c.CommitWorkers < 1 || c.DBMaxConns < 2 {
		env.Fail("SHOPLEDGER_WEBHOOK_MAX_BATCH and SHOPLEDGER_WEBHOOK_COMMITTERS must be at least 1, SHOPLEDGER_INGEST_DB_MAX_CONNS at least 2")
	}
	if c.FetcherEnabled {
		if len(c.EtsyAllowedHosts) == 0 {
			env.Fail("SHOPLEDGER_ETSY_ALLOWED_HOSTS: at least one host is required")
		}
		if c.FetchAttempts < 1 {
			env.Fail("SHOPLEDGER_FETCH_ATTEMPTS must be at least 1")
		}
		if (c.EtsyKeyString == "") != (c.EtsySharedSecret == "") {
			env.Fail("SHOPLEDGER_ETSY_KEYSTRING and SHOPLEDGER_ETSY_SHARED_SECRET are set together or not at all")
		}
		if u, err := url.Parse(c.EtsyAPIURL); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			env.Fail("SHOPLEDGER_ETSY_API_URL: %q is not an http(s) URL", c.EtsyAPIURL)
		}
		if c.EtsyQPS < 1 || c.EtsyQPD < 1 {
			env.Fail("SHOPLEDGER_ETSY_QPS and SHOPLEDGER_ETSY_QPD must be at least 1")
		}
	}
	return c, env.Err()
}

// logValue is the configuration as it may be logged: secrets masked.
func (c config) logValue() slog.Value {
	masked := make([]string, len(c.WebhookSecrets))
	for i, s := range c.WebhookSecrets {
		masked[i] = service.Mask(s)
	}
	return slog.GroupValue(
		slog.String("database", service.RedactURL(c.DatabaseURL)),
		slog.String("addr", c.Addr),
		slog.String("ops_addr", c.OpsAddr),
		slog.Bool("allow_nondurable_database", c.AllowNonDurableDB),
		slog.Any("webhook_secrets", masked),
		slog.Int64("webhook_max_batch", c.CommitMaxBatch),
		slog.Int64("webhook_committers", c.CommitWorkers),
		slog.Bool("fetcher_enabled", c.FetcherEnabled),
		slog.String("etsy_api_url", service.RedactURL(c.EtsyAPIURL)),
		slog.Any("etsy_allowed_hosts", c.EtsyAllowedHosts),
		slog.Bool("etsy_allow_http", c.EtsyAllowHTTP),
		slog.String("etsy_keystring", service.Mask(c.EtsyKeyString)),
		slog.String("etsy_shared_secret", service.Mask(c.EtsySharedSecret)),
		slog.Int64("etsy_qps", c.EtsyQPS),
		slog.Int64("etsy_qpd", c.EtsyQPD),
		slog.Int64("fetch_attempts", c.FetchAttempts),
		slog.Duration("fetch_backoff", c.FetchBackoff),
		slog.Duration("fetch_settle_window", c.SettleWindow),
	)
}

// noShopsConnected is the TokenSources when shop connections are off
// (no SHOPLEDGER_TOKEN_KEYS or Etsy app settings): no shop has a token, so
// every webhook is stored and then recorded as fetch_failed without
// calling Etsy.
type noShopsConnected struct{}

func (noShopsConnected) ForShop(_ context.Context, shopID int64) (etsy.TokenSource, error) {
	return nil, fmt.Errorf("shop %d: no credentials store configured: %w", shopID, etsy.ErrShopNotConnected)
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	// Help is answered before any setting is read or anything opened.
	if service.AnswerHelp(args, stdout, usageOf) {
		return nil
	}
	if len(args) > 0 {
		sub, ok := subcommands[args[0]]
		if !ok {
			return fmt.Errorf("%w: unknown command %q: ingest takes its settings from SHOPLEDGER_* variables", errUsage, args[0])
		}
		return sub.Run(ctx, args[1:], getenv, stdout)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	cfg, err := loadConfig(getenv)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	tel, logger, err := service.StartTelemetry(ctx, "ingest", cfg.LogLevel, cfg.Telemetry)
	if err != nil {
		return err
	}
	defer tel.Close()
	defer tel.Recover()
	logger.Info("starting", "config", cfg.logValue())
	// Shop connections and reconciliation (shops.go).
	shopsEnv := service.NewEnv(getenv)
	shopsCfg := loadShopsConfig(shopsEnv, cfg.Addr)
	if err := shopsEnv.Err(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	setGCPercent()
	return serve(ctx, cfg, deps{Tokens: noShopsConnected{}, Shops: shopsCfg, Telemetry: tel}, stdout, logger)
}

// gcPercent is ingest's GOGC unless the environment sets one. Each webhook
// allocates a few KiB (request, evidence, its encodings) and keeps none of
// it, on a live heap of a few MiB, so at Go's default of 100 the collector
// runs every few hundred webhooks; at 400 it runs a quarter as often, for
// less CPU per webhook at the price of a heap a few tens of MiB larger.
const gcPercent = 400

func setGCPercent() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(gcPercent)
	}
}

// deps is what serve takes from outside its own configuration: the
// credentials store plugs in here.
type deps struct {
	// Tokens gives the fetcher each connected shop's token.
	Tokens ingest.TokenSources
	// Limiter is the app key's one Etsy rate limiter, when another part
	// of the process (reconciliation) already made it; nil makes one.
	Limiter *etsy.Limiter
	// Shops configures shop connections and reconciliation (shops.go).
	Shops shopsConfig
	// Telemetry reports panics in handlers and traces requests; nil for
	// neither.
	Telemetry *telemetry.Telemetry
}

// serve runs the ingest process until ctx ends.
func serve(ctx context.Context, cfg config, d deps, stdout io.Writer, logger *slog.Logger) error {
	db, pool, err := service.OpenDB(ctx, cfg.DatabaseURL, int32(cfg.DBMaxConns), logger, service.AllowNonDurable(cfg.AllowNonDurableDB), service.AsService(cfg.AllowPrivilegedDB))
	if err != nil {
		return err
	}
	defer pool.Close()
	defer db.Close()

	reg := service.NewRegistry()
	ready := service.DBReadiness(reg, db, logger)
	// The public listener serves Etsy and sellers (webhooks, the connect
	// flow) and a bare /healthz; metrics and readiness stay on the ops one.
	public := http.NewServeMux()
	public.HandleFunc("GET /healthz", service.Healthz)
	store := eventstore.New(db)

	committer, err := ingest.NewCommitter(store, ingest.CommitterConfig{
		MaxBatch: int(cfg.CommitMaxBatch), Workers: int(cfg.CommitWorkers), Logger: logger,
	}, reg)
	if err != nil {
		return err
	}
	// Closed after the HTTP server has drained: requests wait on it.
	defer committer.Close()
	var webhooks http.Handler
	if len(cfg.WebhookSecrets) == 0 {
		logger.Warn("SHOPLEDGER_WEBHOOK_SECRETS is unset: webhooks are answered 503 until it is set")
		ready.Add("webhooks", func(context.Context) error { return errors.New("SHOPLEDGER_WEBHOOK_SECRETS is unset") })
		webhooks = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			// 503, not 4xx: Etsy keeps retrying while the operator fixes it.
			http.Error(w, "webhook signing secrets are not configured", http.StatusServiceUnavailable)
		})
	} else if webhooks, err = ingest.NewWebhookHandler(committer, ingest.WebhookConfig{Secrets: cfg.WebhookSecrets, Logger: logger}, reg); err != nil {
		return err
	}

	translator, err := etsymap.NewTranslator(store, nil, reg)
	if err != nil {
		return err
	}
	bg, stopBackground := context.WithCancel(context.Background())
	var background sync.WaitGroup
	defer func() {
		stopBackground()
		background.Wait()
	}()
	// Shop connections and reconciliation (shops.go): the token store
	// becomes the fetcher's, and both draw on one limiter.
	if d.Shops.enabled() {
		logger.Info("shop connections", d.Shops.logAttrs()...)
		sw, err := wireShops(d.Shops, db, d.Limiter, translator, reg, logger)
		if err != nil {
			return err
		}
		if err := sw.mount(public); err != nil {
			return err
		}
		d.Tokens, d.Limiter = sw.store, sw.limiter
		background.Add(1)
		go func() {
			defer background.Done()
			if err := sw.schedule(bg); err != nil {
				logger.Error("reconciliation stopped", "err", err)
			}
		}()
		background.Add(1)
		go func() {
			defer background.Done()
			if err := sw.pushStockEdits(bg); err != nil {
				logger.Error("stock edit pusher stopped", "err", err)
			}
		}()
	} else {
		logger.Warn("shop connections and reconciliation are off: SHOPLEDGER_TOKEN_KEYS is unset")
	}
	if cfg.FetcherEnabled {
		if err := startFetcher(bg, cfg, db, store, translator, d, reg, logger, &background); err != nil {
			return err
		}
	} else {
		logger.Warn("fetcher disabled: webhooks are stored but not followed")
	}

	return service.ServeAll(ctx, stdout, logger,
		service.Listener{Addr: cfg.Addr, Handler: d.Telemetry.Handler(routes(webhooks, public), "ingest"), Banner: "ingest listening on", Drain: cfg.Drain},
		service.Listener{Addr: cfg.OpsAddr, Handler: service.OpsMux(reg, ready), Banner: service.OpsBanner("ingest")})
}

// startFetcher runs the fetcher's consumer group until ctx ends. Without
// an Etsy app key it still runs: no shop can be fetched then, so evidence
// is parked as fetch_failed.
func startFetcher(ctx context.Context, cfg config, db *sql.DB, store *eventstore.Store, translator *etsymap.Translator, d deps,
	reg prometheus.Registerer, logger *slog.Logger, wg *sync.WaitGroup) error {
	var api ingest.EtsyAPI
	if cfg.EtsyKeyString != "" {
		limiter := d.Limiter
		if limiter == nil {
			var err error
			// One limiter for the app key: reconciliation must share it.
			if limiter, err = shops.NewKeyLimiter(db, cfg.EtsyKeyString, int(cfg.EtsyQPS), int(cfg.EtsyQPD), reg); err != nil {
				return err
			}
		}
		client, err := etsy.NewClient(etsy.Config{
			BaseURL: cfg.EtsyAPIURL, KeyString: cfg.EtsyKeyString, SharedSecret: cfg.EtsySharedSecret,
			// Never follows redirects: a fetch goes only where the
			// allow-list says.
			HTTPClient: ingest.EtsyHTTPClient(30 * time.Second), Limiter: limiter, Logger: logger,
			// The fetcher retries whole fetches with its own backoff.
			MaxRetries: 1,
		}, reg)
		if err != nil {
			return err
		}
		api = client
	}
	fetcher, err := ingest.NewFetcher(db, store, api, d.Tokens, translator, ingest.FetcherConfig{
		Policy:      ingest.URLPolicy{Hosts: cfg.EtsyAllowedHosts, AllowHTTP: cfg.EtsyAllowHTTP},
		MaxAttempts: int(cfg.FetchAttempts), Backoff: cfg.FetchBackoff, SettleWindow: cfg.SettleWindow,
		BatchSize: 50, PollInterval: 200 * time.Millisecond, Logger: logger,
	}, reg)
	if err != nil {
		return err
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := fetcher.Run(ctx); err != nil {
			logger.Error("fetcher stopped", "err", err)
		}
	}()
	return nil
}

// routes serves the webhook endpoint and the other public routes. It never
// answers with a redirect: Etsy counts a 3xx as a failed delivery, and
// http.ServeMux would redirect unclean paths, so those get 404 instead.
func routes(webhooks http.Handler, public http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if p == ingest.WebhookPath {
			webhooks.ServeHTTP(w, r)
			return
		}
		if p == "" || p[0] != '/' || path.Clean(p) != p || strings.Contains(r.URL.RawPath, "%2") || r.Method == http.MethodConnect {
			http.NotFound(w, r)
			return
		}
		public.ServeHTTP(w, r)
	})
}
