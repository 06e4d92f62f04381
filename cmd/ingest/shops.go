package main

// Shop connections (OAuth connect flow, encrypted tokens) and polling
// reconciliation: their settings and wiring. serve builds them once; the
// store is the fetcher's TokenSources, and reconciliation draws on the
// fetcher's limiter, so every Etsy call of the process shares one budget.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopledger/shopledger/accounts"
	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/etsymap"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/ingest"
	"github.com/shopledger/shopledger/reconcile"
	"github.com/shopledger/shopledger/service"
	"github.com/shopledger/shopledger/shops"
	"github.com/shopledger/shopledger/stockedits"
)

// shopsConfig is read from SHOPLEDGER_ETSY_*, SHOPLEDGER_TOKEN_KEYS and
// SHOPLEDGER_RECONCILE_*.
type shopsConfig struct {
	KeyString    string
	SharedSecret string
	APIURL       string
	AuthorizeURL string
	TokenURL     string
	RedirectURL  string
	TokenKeys    string
	// AppURL is the app's root: the connect flow starts from its pages and
	// ends on them. SessionSecure names its session cookie as the app does.
	AppURL        string
	SessionSecure bool
	QPS           int
	QPD           int

	ReconcileEnabled     bool
	ReconcileInterval    time.Duration
	ReconcileOverlap     time.Duration
	ReconcileLookback    time.Duration
	ReconcileConcurrency int
	ReconcileTick        time.Duration
}

// enabled reports whether token keys are configured; without them ingest
// still takes webhooks but connects and polls nothing.
func (c shopsConfig) enabled() bool { return c.TokenKeys != "" }

func loadShopsConfig(env *service.Env, ingestAddr string) shopsConfig {
	c := shopsConfig{
		KeyString:    env.String("SHOPLEDGER_ETSY_KEYSTRING", ""),
		SharedSecret: env.String("SHOPLEDGER_ETSY_SHARED_SECRET", ""),
		APIURL:       env.String("SHOPLEDGER_ETSY_API_URL", etsy.DefaultBaseURL),
		AuthorizeURL: env.String("SHOPLEDGER_ETSY_OAUTH_AUTHORIZE_URL", etsy.DefaultAuthURL),
		TokenURL:     env.String("SHOPLEDGER_ETSY_OAUTH_TOKEN_URL", etsy.DefaultTokenURL),
		RedirectURL:  env.String("SHOPLEDGER_ETSY_REDIRECT_URL", "http://"+ingestAddr+"/connect/etsy/callback"),
		TokenKeys:    env.String("SHOPLEDGER_TOKEN_KEYS", ""),
		AppURL:       env.String("SHOPLEDGER_APP_URL", "http://127.0.0.1:8080"),
		QPS:          int(env.Int("SHOPLEDGER_ETSY_QPS", etsy.DefaultQPS)),
		QPD:          int(env.Int("SHOPLEDGER_ETSY_QPD", etsy.DefaultQPD)),

		ReconcileEnabled:     env.Bool("SHOPLEDGER_RECONCILE_ENABLED", true),
		ReconcileInterval:    env.Duration("SHOPLEDGER_RECONCILE_INTERVAL", 15*time.Minute),
		ReconcileOverlap:     env.Duration("SHOPLEDGER_RECONCILE_OVERLAP", reconcile.DefaultOverlap),
		ReconcileLookback:    env.Duration("SHOPLEDGER_RECONCILE_LOOKBACK", reconcile.DefaultLookback),
		ReconcileConcurrency: int(env.Int("SHOPLEDGER_RECONCILE_CONCURRENCY", 4)),
		ReconcileTick:        env.Duration("SHOPLEDGER_RECONCILE_TICK", 30*time.Second),
	}
	c.SessionSecure = env.Bool("SHOPLEDGER_SESSION_SECURE", strings.HasPrefix(c.AppURL, "https://"))
	if !c.enabled() {
		return c
	}
	if c.KeyString == "" || c.SharedSecret == "" {
		env.Fail("SHOPLEDGER_TOKEN_KEYS is set: SHOPLEDGER_ETSY_KEYSTRING and SHOPLEDGER_ETSY_SHARED_SECRET are required to connect and poll shops")
	}
	for name, v := range map[string]string{
		"SHOPLEDGER_ETSY_API_URL": c.APIURL, "SHOPLEDGER_ETSY_OAUTH_AUTHORIZE_URL": c.AuthorizeURL,
		"SHOPLEDGER_ETSY_OAUTH_TOKEN_URL": c.TokenURL, "SHOPLEDGER_ETSY_REDIRECT_URL": c.RedirectURL,
		"SHOPLEDGER_APP_URL": c.AppURL,
	} {
		if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			env.Fail("%s: %q is not an http(s) URL", name, v)
		}
	}
	if c.ReconcileInterval < time.Minute {
		env.Fail("SHOPLEDGER_RECONCILE_INTERVAL: %s is below one minute", c.ReconcileInterval)
	}
	if c.ReconcileOverlap < 10*time.Minute {
		env.Fail("SHOPLEDGER_RECONCILE_OVERLAP: %s is below ten minutes", c.ReconcileOverlap)
	}
	if c.ReconcileConcurrency < 1 {
		env.Fail("SHOPLEDGER_RECONCILE_CONCURRENCY: must be at least 1")
	}
	return c
}

// logValue describes the settings with secrets masked.
func (c shopsConfig) logAttrs() []any {
	return []any{
		"etsy_keystring", service.Mask(c.KeyString), "etsy_shared_secret", service.Mask(c.SharedSecret),
		"token_keys", service.Mask(c.TokenKeys), "etsy_api_url", c.APIURL, "oauth_authorize_url", c.AuthorizeURL,
		"oauth_token_url", c.TokenURL, "redirect_url", c.RedirectURL, "app_url", c.AppURL, "session_secure", c.SessionSecure,
		"etsy_qps", c.QPS, "etsy_qpd", c.QPD,
		"reconcile_enabled", c.ReconcileEnabled, "reconcile_interval", c.ReconcileInterval.String(),
		"reconcile_overlap", c.ReconcileOverlap.String(), "reconcile_lookback", c.ReconcileLookback.String(),
	}
}

// shopsWiring holds what wireShops built.
type shopsWiring struct {
	cfg        shopsConfig
	limiter    *etsy.Limiter
	store      *shops.Store
	connector  *shops.Connector
	reconciler *reconcile.Reconciler
	client     *etsy.Client
	events     *eventstore.Store
	db         *sql.DB
	logger     *slog.Logger
}

// wireShops builds the token store, the connect flow and the reconciler.
// limiter and translator are the webhook fetcher's when it has them (nil
// builds them, and the fetcher should then take the limiter from the
// result): the app key has one limiter, and both paths translate alike.
// Reconciliation gets its own client, with the client's default retries
// for 429s, over that limiter.
func wireShops(cfg shopsConfig, db *sql.DB, limiter *etsy.Limiter, translator *etsymap.Translator, reg prometheus.Registerer, logger *slog.Logger) (*shopsWiring, error) {
	keys, err := shops.ParseKeyring(cfg.TokenKeys)
	if err != nil {
		return nil, fmt.Errorf("SHOPLEDGER_TOKEN_KEYS: %w", err)
	}
	if limiter == nil {
		if limiter, err = shops.NewKeyLimiter(db, cfg.KeyString, cfg.QPS, cfg.QPD, reg); err != nil {
			return nil, err
		}
	}
	client, err := etsy.NewClient(etsy.Config{
		BaseURL: cfg.APIURL, KeyString: cfg.KeyString, SharedSecret: cfg.SharedSecret,
		HTTPClient: ingest.EtsyHTTPClient(30 * time.Second), Limiter: limiter, Logger: logger,
	}, reg)
	if err != nil {
		return nil, err
	}
	oauth := etsy.OAuthConfig{
		ClientID: cfg.KeyString, RedirectURL: cfg.RedirectURL,
		AuthURL: cfg.AuthorizeURL, TokenURL: cfg.TokenURL, Scopes: shops.DefaultScopes(),
	}
	es := eventstore.New(db)
	store, err := shops.NewStore(shops.Config{DB: db, Events: es, Keys: keys, OAuth: oauth, Logger: logger}, reg)
	if err != nil {
		return nil, err
	}
	connector, err := shops.NewConnector(shops.ConnectorConfig{Store: store, OAuth: oauth, Client: client, Logger: logger})
	if err != nil {
		return nil, err
	}
	if translator == nil {
		if translator, err = etsymap.NewTranslator(es, nil, reg); err != nil {
			return nil, err
		}
	}
	rec, err := reconcile.New(reconcile.Config{
		DB: db, Events: es, Client: client, Tokens: store, Translator: translator, Logger: logger,
		Overlap: cfg.ReconcileOverlap, Lookback: cfg.ReconcileLookback, DefaultInterval: cfg.ReconcileInterval,
	}, reg)
	if err != nil {
		return nil, err
	}
	return &shopsWiring{cfg: cfg, limiter: limiter, store: store, connector: connector, reconciler: rec,
		client: client, events: es, db: db, logger: logger}, nil
}

// mount serves the connect flow: GET /connect/etsy?intent=… (the app's
// "Connect an Etsy shop" leads there) sends the seller to Etsy; Etsy sends
// them back to the callback, whose path is the redirect URL's, and the
// flow ends on the app's page of the shop. Flows an operator starts with
// ledger shops connect complete at the same callback.
func (w *shopsWiring) mount(mux *http.ServeMux) error {
	u, err := url.Parse(w.cfg.RedirectURL)
	if err != nil {
		return fmt.Errorf("redirect url: %w", err)
	}
	path := u.Path
	if path == "" || path == "/connect/etsy" || !strings.HasPrefix(path, "/") {
		return fmt.Errorf("SHOPLEDGER_ETSY_REDIRECT_URL: path %q cannot be the callback", path)
	}
	start, callback := w.connector.AppHandlers(shops.AppConnectConfig{
		AppURL: w.cfg.AppURL, SessionCookie: accounts.SessionConfig{Secure: w.cfg.SessionSecure}.CookieName(),
	})
	mux.Handle("GET /connect/etsy", start)
	mux.Handle("GET "+path, callback)
	return nil
}

// schedule runs reconciliation until ctx ends.
func (w *shopsWiring) schedule(ctx context.Context) error {
	if !w.cfg.ReconcileEnabled {
		return nil
	}
	err := w.reconciler.RunScheduler(ctx, reconcile.ScheduleConfig{
		Shops: w.store, Interval: w.cfg.ReconcileInterval, Tick: w.cfg.ReconcileTick, Concurrency: w.cfg.ReconcileConcurrency,
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("reconciliation scheduler: %w", err)
	}
	return nil
}

// pushStockEdits runs the stock edit pusher until ctx ends: it draws on
// the same client and rate limiter as reconciliation, and a shop that
// must be connected again keeps its edits queued.
func (w *shopsWiring) pushStockEdits(ctx context.Context) error {
	p, err := stockedits.NewPusher(stockedits.PusherConfig{
		DB: w.db, Events: w.events, Etsy: w.client, Tokens: w.store, Logger: w.logger,
	})
	if err != nil {
		return err
	}
	if err := p.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("stock edit pusher: %w", err)
	}
	return nil
}
