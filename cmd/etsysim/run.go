package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shopledger/shopledger/etsy/etsysim"
	"github.com/shopledger/shopledger/stdwebhooks"
)

// envPrefix names the environment variable behind each flag:
// --order-rate is SHOPLEDGER_ETSYSIM_ORDER_RATE. A flag on the command
// line wins over the variable.
const envPrefix = "SHOPLEDGER_ETSYSIM_"

type config struct {
	addr            string
	opsAddr         string
	port            int
	publicURL       string
	seed            uint64
	orderIDOffset   int64
	start           string
	timeScale       float64
	shops           int
	listings        int
	currency        string
	orderRate       float64
	restockRate     float64
	editRate        float64
	cancelRate      float64
	shipRate        float64
	deliverRate     float64
	drop            float64
	duplicate       float64
	reorder         float64
	delay           float64
	maxDelay        time.Duration
	webhookURL      string
	webhookSecret   string
	webhookEvents   string
	retryScale      float64
	webhookTimeout  time.Duration
	tokenTTL        time.Duration
	refreshTokenTTL time.Duration
	qps             int
	qpd             int
	keyString       string
	sharedSecret    string
	redirectURIs    string
	consent         string
	webhookShops    string
	logLevel        string
}

func flags(c *config) *flag.FlagSet {
	fs := flag.NewFlagSet("etsysim", flag.ContinueOnError)
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8090", "listen address host:port (also from SHOPLEDGER_HTTP_ADDR)")
	fs.StringVar(&c.opsAddr, "ops-addr", "127.0.0.1:0", "listen address of /readyz and /metrics, apart from the simulated Etsy (0: any free port)")
	fs.IntVar(&c.port, "port", 0, "listen port, overriding the port of --addr when given (0: any free port)")
	fs.StringVar(&c.publicURL, "public-url", "", "base URL put in webhook resource_url values (default http://<listen address>)")
	fs.Uint64Var(&c.seed, "seed", 1, "random seed: the same seed gives the same shops, ids, orders and faults")
	fs.Int64Var(&c.orderIDOffset, "order-id-offset", 0, "added to receipt, transaction and shipment ids, so a restarted simulator never reuses an order id a ledger already holds")
	fs.StringVar(&c.start, "start", "", "simulated start time, RFC 3339 (default now)")
	fs.Float64Var(&c.timeScale, "time-scale", 1, "simulated seconds per real second; speeds up token expiry, webhook retries and the scenario")
	fs.IntVar(&c.shops, "shops", 1, "number of demo shops to create at start")
	fs.IntVar(&c.listings, "demo-listings", 40, "demo catalogue size: listings per shop (some with variations, some low on stock)")
	fs.StringVar(&c.currency, "currency", "USD", "currency of the demo shops")
	fs.Float64Var(&c.orderRate, "order-rate", 2, "buyer orders per simulated minute (0: none)")
	fs.Float64Var(&c.restockRate, "restock-rate", 0.3, "seller restocks of low listings per simulated minute")
	fs.Float64Var(&c.editRate, "edit-rate", 0.2, "seller edits (title or price) per simulated minute")
	fs.Float64Var(&c.cancelRate, "cancel-rate", 0.1, "order cancellations per simulated minute")
	fs.Float64Var(&c.shipRate, "ship-rate", 1, "order shipments per simulated minute")
	fs.Float64Var(&c.deliverRate, "deliver-rate", 0.5, "order deliveries per simulated minute")
	fs.Float64Var(&c.drop, "drop", 0, "fraction of webhook messages never delivered (0..1)")
	fs.Float64Var(&c.duplicate, "duplicate", 0, "fraction of webhook messages delivered twice with the same webhook-id (0..1)")
	fs.Float64Var(&c.reorder, "reorder", 0, "fraction of webhook messages held back until the next one was sent (0..1)")
	fs.Float64Var(&c.delay, "delay", 0, "fraction of webhook messages delayed by up to --max-delay (0..1)")
	fs.DurationVar(&c.maxDelay, "max-delay", 30*time.Second, "longest fault delay, simulated time")
	fs.StringVar(&c.webhookURL, "webhook-url", "", "webhook target URL to register at start (none if empty)")
	fs.StringVar(&c.webhookSecret, "webhook-secret", "", "signing secret whsec_… for --webhook-url (default generated and printed)")
	fs.StringVar(&c.webhookEvents, "webhook-events", "", "comma-separated event types for --webhook-url (default all)")
	fs.Float64Var(&c.retryScale, "webhook-retry-scale", 1, "factor on Etsy's retry delays (5s, 5m, 30m, 2h, 5h, 10h, 10h)")
	fs.DurationVar(&c.webhookTimeout, "webhook-timeout", 15*time.Second, "timeout of one delivery attempt, real time")
	fs.DurationVar(&c.tokenTTL, "token-ttl", time.Hour, "access token lifetime, simulated time")
	fs.DurationVar(&c.refreshTokenTTL, "refresh-token-ttl", 90*24*time.Hour, "refresh token lifetime, simulated time")
	fs.IntVar(&c.qps, "qps", etsysim.DefaultQPS, "requests per second allowed per app key")
	fs.IntVar(&c.qpd, "qpd", etsysim.DefaultQPD, "requests per rolling simulated day allowed per app key")
	fs.StringVar(&c.keyString, "key-string", etsysim.DefaultKeyString, "the app's API keystring (x-api-key is keystring:shared-secret)")
	fs.StringVar(&c.sharedSecret, "shared-secret", etsysim.DefaultSharedSecret, "the app's shared secret")
	fs.StringVar(&c.redirectURIs, "redirect-uris", "", "comma-separated OAuth redirect URIs to require (default any http(s) URI)")
	fs.StringVar(&c.webhookShops, "webhook-shops", "all", "which shops' events --webhook-url hears of: all, or authorised (only shops whose owner granted an app access, as on Etsy)")
	fs.StringVar(&c.consent, "consent", "auto", "what /oauth/connect does when the request names no seller (user_id or shop_id): auto approves as the first shop's owner, page shows a consent page listing the sellers to sign in as")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprint(out, `etsysim runs a local Etsy for tests and demos.

It serves Etsy's Open API v3 paths (/v3/application/...), OAuth
(/oauth/connect approves at once, or with --consent page asks in the browser
which seller signs in; /v3/public/oauth/token checks PKCE and rotates
refresh tokens), per-key rate limits, signed webhooks, and a control
API under /_sim/ (see etsy/etsysim/README.md), and /healthz. It prints
"etsysim listening on http://ADDR", then one JSON line with the credentials
and demo shops, then "etsysim ops endpoints on http://ADDR": /readyz and
/metrics, on a listener of their own (--ops-addr).

Every flag can also be set through SHOPLEDGER_ETSYSIM_<FLAG>, for example
SHOPLEDGER_ETSYSIM_ORDER_RATE=5; the command line wins.

Flags:
`)
		fs.PrintDefaults()
	}
	return fs
}

// parse reads flags, taking unset ones from the environment.
func parse(args []string, getenv func(string) string) (config, error) {
	var c config
	fs := flags(&c)
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		return c, fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		name := envPrefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		v := strings.TrimSpace(getenv(name))
		if v == "" && f.Name == "addr" {
			v = strings.TrimSpace(getenv("SHOPLEDGER_HTTP_ADDR"))
		}
		if v == "" {
			return
		}
		if err := f.Value.Set(v); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", name, v, err))
		}
	})
	if set["port"] || strings.TrimSpace(getenv(envPrefix+"PORT")) != "" {
		host, _, err := net.SplitHostPort(c.addr)
		if err != nil {
			errs = append(errs, fmt.Errorf("addr %q: %w", c.addr, err))
		}
		c.addr = net.JoinHostPort(host, strconv.Itoa(c.port))
	}
	if c.shops < 0 || c.listings < 0 {
		errs = append(errs, errors.New("shops and demo-listings must not be negative"))
	}
	if c.consent != "auto" && c.consent != "page" {
		errs = append(errs, fmt.Errorf("consent %q: want auto or page", c.consent))
	}
	if c.webhookShops != "all" && c.webhookShops != "authorised" {
		errs = append(errs, fmt.Errorf("webhook-shops %q: want all or authorised", c.webhookShops))
	}
	if c.webhookSecret != "" {
		if _, err := stdwebhooks.ParseSecret(c.webhookSecret); err != nil {
			errs = append(errs, fmt.Errorf("webhook-secret: %w", err))
		}
	}
	return c, errors.Join(errs...)
}

func newLogger(level string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// summary is the JSON line printed after start, for scripts and
// whole-system tests.
type summary struct {
	URL           string             `json:"url"`
	KeyString     string             `json:"key_string"`
	SharedSecret  string             `json:"shared_secret"`
	WebhookID     string             `json:"webhook_id,omitempty"`
	WebhookSecret string             `json:"webhook_secret,omitempty"`
	Shops         []etsysim.ShopInfo `json:"shops"`
	Faults        etsysim.Faults     `json:"faults"`
	Scenario      etsysim.Scenario   `json:"scenario"`
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := parse(args, getenv)
	if errors.Is(err, flag.ErrHelp) || (len(args) > 0 && args[0] == "help") {
		fs := flags(&config{})
		fs.SetOutput(stdout)
		fs.Usage()
		return nil
	}
	if errors.Is(err, errUsage) {
		return err
	}
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger, err := newLogger(cfg.logLevel, os.Stderr)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	logger = logger.With("service", "etsysim")

	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.addr, err)
	}
	defer ln.Close()
	opsLn, err := net.Listen("tcp", cfg.opsAddr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.opsAddr, err)
	}
	defer opsLn.Close()
	base := "http://" + ln.Addr().String()
	if cfg.publicURL == "" {
		cfg.publicURL = base
	}
	var startAt time.Time
	if cfg.start != "" {
		if startAt, err = time.Parse(time.RFC3339, cfg.start); err != nil {
			return fmt.Errorf("config: start: %w", err)
		}
	}
	var redirects []string
	if cfg.redirectURIs != "" {
		redirects = strings.Split(cfg.redirectURIs, ",")
	}
	sim, err := etsysim.New(etsysim.Options{
		Seed: cfg.seed, Start: startAt, TimeScale: cfg.timeScale,
		Apps:           []etsysim.App{{KeyString: cfg.keyString, SharedSecret: cfg.sharedSecret, RedirectURIs: redirects}},
		AccessTokenTTL: cfg.tokenTTL, RefreshTokenTTL: cfg.refreshTokenTTL, QPS: cfg.qps, QPD: cfg.qpd,
		PublicURL: cfg.publicURL, WebhookRetryScale: cfg.retryScale, WebhookTimeout: cfg.webhookTimeout,
		Faults: etsysim.Faults{Drop: cfg.drop, Duplicate: cfg.duplicate, Reorder: cfg.reorder, Delay: cfg.delay, MaxDelay: cfg.maxDelay},
		Logger: logger, OrderIDOffset: cfg.orderIDOffset, ConsentPage: cfg.consent == "page",
		WebhooksAuthorisedOnly: cfg.webhookShops == "authorised",
	})
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer sim.Close()

	sum := summary{URL: base, KeyString: cfg.keyString, SharedSecret: cfg.sharedSecret, Shops: []etsysim.ShopInfo{}, Faults: sim.Faults()}
	for range cfg.shops {
		shop, err := sim.CreateShop(etsysim.ShopSpec{Currency: cfg.currency})
		if err != nil {
			return fmt.Errorf("demo shop: %w", err)
		}
		if _, err := sim.GenerateCatalogue(shop.ShopID, cfg.listings); err != nil {
			return fmt.Errorf("demo catalogue: %w", err)
		}
		shop.ListingCount = cfg.listings
		sum.Shops = append(sum.Shops, shop)
	}
	if cfg.webhookURL != "" {
		var events []string
		if cfg.webhookEvents != "" {
			events = strings.Split(cfg.webhookEvents, ",")
		}
		ep, err := sim.AddWebhook(etsysim.WebhookSpec{URL: cfg.webhookURL, Secret: cfg.webhookSecret, EventTypes: events})
		if err != nil {
			return fmt.Errorf("webhook: %w", err)
		}
		sum.WebhookID, sum.WebhookSecret = ep.ID, ep.Secret
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.Handle("/", sim)
	opsMux := http.NewServeMux()
	opsMux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	opsMux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ready") })
	opsMux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	opsSrv := &http.Server{
		Handler:           opsMux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		// Long enough for /_sim/deliveries/wait.
		WriteTimeout: 90 * time.Second,
		IdleTimeout:  120 * time.Second,
		ErrorLog:     slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}

	sc := etsysim.Scenario{
		OrdersPerMinute: cfg.orderRate, RestocksPerMinute: cfg.restockRate, EditsPerMinute: cfg.editRate,
		CancelsPerMinute: cfg.cancelRate, ShipmentsPerMinute: cfg.shipRate, DeliveriesPerMinute: cfg.deliverRate,
	}
	sum.Scenario = sc
	scenarioDone := make(chan error, 1)
	go func() { scenarioDone <- sim.RunScenario(ctx, sc) }()

	fmt.Fprintf(stdout, "etsysim listening on %s\n", base)
	line, _ := json.Marshal(sum)
	fmt.Fprintf(stdout, "%s\n", line)
	fmt.Fprintf(stdout, "etsysim ops endpoints on http://%s\n", opsLn.Addr())
	logger.Info("listening", "addr", ln.Addr().String(), "shops", len(sum.Shops), "listings_per_shop", cfg.listings,
		"order_rate", cfg.orderRate, "time_scale", cfg.timeScale, "webhook_url", cfg.webhookURL)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	opsErrc := make(chan error, 1)
	go func() { opsErrc <- opsSrv.Serve(opsLn) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case err := <-opsErrc:
		return fmt.Errorf("serve ops: %w", err)
	case err := <-scenarioDone:
		if err != nil {
			return fmt.Errorf("scenario: %w", err)
		}
		<-ctx.Done()
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := opsSrv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown ops: %w", err)
	}
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}
