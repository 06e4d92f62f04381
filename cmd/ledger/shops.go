package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/reconcile"
	"github.com/shopledger/shopledger/service"
	"github.com/shopledger/shopledger/shops"
)

func init() {
	commands["shops"] = command{
		summary: "connect, list and disconnect Etsy shops; change their sync settings",
		usage:   shopsUsage,
		subs: map[string]func(context.Context, *cli, []string) error{
			"connect": shopsConnect, "list": shopsList, "disconnect": shopsDisconnect, "sync": shopsSync,
		},
	}
}

const shopsUsage = `ledger shops connect [--no-follow] [--sim-shop ID]
ledger shops list
ledger shops disconnect --shop ID [--reason text]
ledger shops sync --shop ID [--enabled=true|false] [--interval 15m]

connect prints Etsy's authorization URL. When the consent page approves at
once (the simulator's with --sim-shop, or with its default --consent auto),
it follows the redirect itself and completes; otherwise (Etsy, or the
simulator's --consent page), open the URL in a browser: ingest's callback
completes the connection (the pending authorization is kept in the database
for 10 minutes).

Environment (shared with ingest):
  SHOPLEDGER_ETSY_KEYSTRING, SHOPLEDGER_ETSY_SHARED_SECRET   the app's key
  SHOPLEDGER_TOKEN_KEYS            id:base64key,... (first encrypts)
  SHOPLEDGER_ETSY_API_URL          default ` + etsy.DefaultBaseURL + `
  SHOPLEDGER_ETSY_OAUTH_AUTHORIZE_URL  default ` + etsy.DefaultAuthURL + `
  SHOPLEDGER_ETSY_OAUTH_TOKEN_URL  default ` + etsy.DefaultTokenURL + `
  SHOPLEDGER_ETSY_REDIRECT_URL     default http://$SHOPLEDGER_INGEST_ADDR/connect/etsy/callback
` + usageEnv

// etsyConfig is the part of ingest's settings the ledger needs.
type etsyConfig struct {
	KeyString, SharedSecret        string
	APIURL, AuthorizeURL, TokenURL string
	RedirectURL                    string
	TokenKeys                      string
	// QPS and QPD are the app key's limits, shared with ingest's
	// instances through the database.
	QPS, QPD int
}

func loadEtsyConfig(getenv func(string) string, needApp bool) (etsyConfig, error) {
	env := service.NewEnv(getenv)
	addr := env.String("SHOPLEDGER_INGEST_ADDR", "127.0.0.1:8081")
	c := etsyConfig{
		KeyString:    env.String("SHOPLEDGER_ETSY_KEYSTRING", ""),
		SharedSecret: env.String("SHOPLEDGER_ETSY_SHARED_SECRET", ""),
		APIURL:       env.String("SHOPLEDGER_ETSY_API_URL", etsy.DefaultBaseURL),
		AuthorizeURL: env.String("SHOPLEDGER_ETSY_OAUTH_AUTHORIZE_URL", etsy.DefaultAuthURL),
		TokenURL:     env.String("SHOPLEDGER_ETSY_OAUTH_TOKEN_URL", etsy.DefaultTokenURL),
		RedirectURL:  env.String("SHOPLEDGER_ETSY_REDIRECT_URL", "http://"+addr+"/connect/etsy/callback"),
		TokenKeys:    env.String("SHOPLEDGER_TOKEN_KEYS", ""),
		QPS:          int(env.Int("SHOPLEDGER_ETSY_QPS", etsy.DefaultQPS)),
		QPD:          int(env.Int("SHOPLEDGER_ETSY_QPD", etsy.DefaultQPD)),
	}
	if c.QPS < 1 || c.QPD < 1 {
		env.Fail("SHOPLEDGER_ETSY_QPS and SHOPLEDGER_ETSY_QPD must be at least 1")
	}
	if needApp && (c.KeyString == "" || c.SharedSecret == "" || c.TokenKeys == "") {
		env.Fail("SHOPLEDGER_ETSY_KEYSTRING, SHOPLEDGER_ETSY_SHARED_SECRET and SHOPLEDGER_TOKEN_KEYS are required")
	}
	if err := env.Err(); err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	return c, nil
}

func (e etsyConfig) oauth() etsy.OAuthConfig {
	return etsy.OAuthConfig{
		ClientID: e.KeyString, RedirectURL: e.RedirectURL, AuthURL: e.AuthorizeURL, TokenURL: e.TokenURL,
		Scopes: shops.DefaultScopes(),
	}
}

// shopsCommand is what a shops command works with: the Etsy settings and
// the shop store over an open database, which close closes.
type shopsCommand struct {
	cfg   etsyConfig
	store *shops.Store
	db    *sql.DB
	close func()
}

// openShops loads the Etsy settings (the app's key and token keys
// required if needApp) and opens the shop store.
func (c *cli) openShops(ctx context.Context, needApp bool) (*shopsCommand, error) {
	cfg, err := loadEtsyConfig(c.getenv, needApp)
	if err != nil {
		return nil, err
	}
	store, db, closeDB, err := c.shopStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &shopsCommand{cfg: cfg, store: store, db: db, close: closeDB}, nil
}

// shopStore opens the database and the store over it; keys are optional
// for commands that touch no token.
func (c *cli) shopStore(ctx context.Context, cfg etsyConfig) (*shops.Store, *sql.DB, func(), error) {
	var keys *shops.Keyring
	if cfg.TokenKeys != "" {
		var err error
		if keys, err = shops.ParseKeyring(cfg.TokenKeys); err != nil {
			return nil, nil, nil, fmt.Errorf("SHOPLEDGER_TOKEN_KEYS: %w", err)
		}
	}
	db, closeDB, err := c.openDB(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	var refresher shops.Refresher
	if cfg.KeyString != "" {
		refresher = cfg.oauth()
	}
	s, err := shops.NewStore(shops.Config{DB: db, Events: eventstore.New(db), Keys: keys, OAuth: refresher, Logger: c.logger}, nil)
	if err != nil {
		closeDB()
		return nil, nil, nil, err
	}
	return s, db, closeDB, nil
}

func shopsConnect(ctx context.Context, c *cli, args []string) error {
	fs := newFlags("shops connect")
	noFollow := fs.Bool("no-follow", false, "only print the authorization URL")
	simShop := fs.Int64("sim-shop", 0, "simulator only: the shop whose owner consents (default the simulator's first shop)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	sc, err := c.openShops(ctx, true)
	if err != nil {
		return err
	}
	defer sc.close()
	limiter, err := shops.NewKeyLimiter(sc.db, sc.cfg.KeyString, sc.cfg.QPS, sc.cfg.QPD, nil)
	if err != nil {
		return err
	}
	client, err := etsy.NewClient(etsy.Config{BaseURL: sc.cfg.APIURL, KeyString: sc.cfg.KeyString, SharedSecret: sc.cfg.SharedSecret, Limiter: limiter, Logger: c.logger}, nil)
	if err != nil {
		return err
	}
	conn, err := shops.NewConnector(shops.ConnectorConfig{Store: sc.store, OAuth: sc.cfg.oauth(), Client: client, Logger: c.logger})
	if err != nil {
		return err
	}
	authURL, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	if *simShop != 0 {
		authURL += fmt.Sprintf("&shop_id=%d", *simShop)
	}
	fmt.Fprintf(c.stdout, "Authorize the ledger at Etsy:\n  %s\n", authURL)
	if *noFollow {
		return nil
	}
	callback, err := followConsent(ctx, authURL, sc.cfg.RedirectURL)
	if err != nil {
		return err
	}
	if callback == nil {
		fmt.Fprintf(c.stdout, "Open it in a browser; %s completes the connection. `ledger shops list` shows the result.\n", sc.cfg.RedirectURL)
		return nil
	}
	sh, err := conn.Callback(ctx, callback.Query())
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "connected shop %d (%s) of Etsy user %d\n", sh.ShopID, sh.Name, sh.UserID)
	return nil
}

// followConsent asks the consent page once without following redirects.
// A consent page that approves at once (the simulator's) answers with a
// redirect to our callback, which is returned; a real consent page
// answers with a page for a person, and the result is nil.
func followConsent(ctx context.Context, authURL, redirectURL string) (*url.URL, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, authURL, nil)
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("open consent page: %w", err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode < 300 || resp.StatusCode > 399 || !strings.HasPrefix(loc, redirectURL) {
		return nil, nil
	}
	u, err := url.Parse(loc)
	if err != nil {
		return nil, fmt.Errorf("consent redirect: %w", err)
	}
	return u, nil
}

func shopsList(ctx context.Context, c *cli, args []string) error {
	fs := newFlags("shops list")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	sc, err := c.openShops(ctx, false)
	if err != nil {
		return err
	}
	defer sc.close()
	list, err := sc.store.List(ctx)
	if err != nil {
		return err
	}
	runs, err := reconcile.LastRuns(ctx, sc.db)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SHOP\tNAME\tSELLER\tSTATUS\tTOKEN EXPIRES\tKEY\tLAST RECONCILED\tRESULT\tWATERMARK\tREASON")
	for _, s := range list {
		r := runs[s.ShopID]
		result := r.LastResult
		if result != "" && result != "ok" && r.Failures > 0 {
			result = fmt.Sprintf("%s (%d in a row)", result, r.Failures)
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ShopID, s.Name, s.UserID, s.Status,
			stamp(s.TokenExpiresAt), strings.Join(s.KeyIDs, ","), stamp(r.LastSuccess), dash(result), stamp(r.Watermark), dash(s.StatusReason))
	}
	return tw.Flush()
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func shopsDisconnect(ctx context.Context, c *cli, args []string) error {
	fs := newFlags("shops disconnect")
	shopID := fs.Int64("shop", 0, "the shop to disconnect")
	reason := fs.String("reason", "disconnected by an operator", "why, recorded in shop.disconnected")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *shopID <= 0 {
		return fmt.Errorf("%w: --shop is required", errUsage)
	}
	sc, err := c.openShops(ctx, false)
	if err != nil {
		return err
	}
	defer sc.close()
	if err := sc.store.Disconnect(ctx, *shopID, *reason, events.Metadata{Source: "ledger", Actor: "operator"}); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "disconnected shop %d; its tokens are deleted\n", *shopID)
	return nil
}

func shopsSync(ctx context.Context, c *cli, args []string) error {
	fs := newFlags("shops sync")
	shopID := fs.Int64("shop", 0, "the shop")
	enabled := fs.String("enabled", "", "true or false: poll the shop or not")
	interval := fs.Duration("interval", 0, "polling interval, at least 1m")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	ch := events.ShopSettingsChanged{ShopID: *shopID}
	switch *enabled {
	case "":
	case "true", "false":
		v := *enabled == "true"
		ch.SyncEnabled = &v
	default:
		return fmt.Errorf("%w: --enabled must be true or false", errUsage)
	}
	if *interval != 0 {
		if *interval < time.Minute {
			return fmt.Errorf("%w: --interval must be at least 1m", errUsage)
		}
		secs := int64(interval.Seconds())
		ch.SyncIntervalSeconds = &secs
	}
	if *shopID <= 0 || (ch.SyncEnabled == nil && ch.SyncIntervalSeconds == nil) {
		return fmt.Errorf("%w: --shop and at least one of --enabled, --interval are required", errUsage)
	}
	sc, err := c.openShops(ctx, false)
	if err != nil {
		return err
	}
	defer sc.close()
	if _, err := sc.store.Get(ctx, *shopID); err != nil {
		if errors.Is(err, shops.ErrUnknownShop) {
			return fmt.Errorf("shop %d was never connected", *shopID)
		}
		return err
	}
	ev := events.New(events.ShopStream(*shopID), *shopID, time.Now(), ch).WithMetadata(events.Metadata{Source: "ledger", Actor: "operator"})
	if _, err := eventstore.New(sc.db).Append(ctx, events.ShopStream(*shopID), eventstore.Any, ev); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "shop %d: sync settings changed\n", *shopID)
	return nil
}
