package shops_test

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/etsy/etsysim"
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/service/servicetest"
	"github.com/shopledger/shopledger/shops"
)

var simStart = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// env is one test's world: a database, a simulated Etsy over loopback
// HTTP, and a shop store whose logs are checked for secrets at the end.
type env struct {
	t      *testing.T
	db     *pgtest.Database
	sim    *etsysim.Sim
	srv    *httptest.Server
	oauth  etsy.OAuthConfig
	client *etsy.Client
	key    shops.Key
	keys   *shops.Keyring
	logs   *servicetest.Output
	reg    *prometheus.Registry
	store  *shops.Store

	mu      sync.Mutex
	secrets []string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, db: pgtest.New(t), logs: &servicetest.Output{}}
	sim, err := etsysim.New(etsysim.Options{Seed: 7, Start: simStart, FreezeClock: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	e.sim = sim
	e.srv = httptest.NewServer(sim)
	t.Cleanup(e.srv.Close)
	e.oauth = etsy.OAuthConfig{
		ClientID:    etsysim.DefaultKeyString,
		RedirectURL: "http://127.0.0.1:1/connect/etsy/callback",
		AuthURL:     e.srv.URL + "/oauth/connect",
		TokenURL:    e.srv.URL + "/v3/public/oauth/token",
		Scopes:      shops.DefaultScopes(),
		Now:         sim.Now,
	}
	e.client, err = etsy.NewClient(etsy.Config{
		BaseURL: e.srv.URL, KeyString: etsysim.DefaultKeyString, SharedSecret: etsysim.DefaultSharedSecret,
		Logger: e.logger(),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.key = mustKey(t, "k1")
	e.keys = mustKeyring(t, e.key)
	e.reg = prometheus.NewRegistry()
	e.store = e.newStore(e.db.DB, e.keys, e.oauth, e.reg)
	t.Cleanup(e.checkLogs)
	return e
}

func (e *env) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newStore builds another store, as another process would.
func (e *env) newStore(db *sql.DB, keys *shops.Keyring, r shops.Refresher, reg prometheus.Registerer) *shops.Store {
	e.t.Helper()
	s, err := shops.NewStore(shops.Config{
		DB: db, Events: eventstore.New(db), Keys: keys, OAuth: r, Logger: e.logger(), Now: e.sim.Now,
	}, reg)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// secret remembers a value that must never reach a log or the database in
// plain text.
func (e *env) secret(vs ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, v := range vs {
		if v != "" {
			e.secrets = append(e.secrets, v)
		}
	}
}

func (e *env) knownSecrets() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := append([]string(nil), e.secrets...)
	out = append(out, base64.StdEncoding.EncodeToString(e.key.Secret), hex.EncodeToString(e.key.Secret))
	return out
}

// checkLogs fails the test if a token or key reached a log.
func (e *env) checkLogs() {
	logs := e.logs.String()
	for _, s := range e.knownSecrets() {
		if strings.Contains(logs, secretPart(s)) {
			e.t.Errorf("a secret value appears in the logs")
		}
	}
	if strings.Contains(logs, "whsec_") {
		e.t.Errorf("a webhook secret appears in the logs")
	}
}

// secretPart is the part of an Etsy token after the user id, which alone
// is not secret.
func secretPart(token string) string {
	if _, after, ok := strings.Cut(token, "."); ok && after != "" {
		return after
	}
	return token
}

// connectShop creates a shop at the simulator and connects it with a
// token issued directly.
func (e *env) connectShop(name string) (etsysim.ShopInfo, etsy.Token) {
	e.t.Helper()
	info, err := e.sim.CreateShop(etsysim.ShopSpec{Name: name, Currency: "EUR"})
	if err != nil {
		e.t.Fatal(err)
	}
	tok, err := e.sim.IssueToken(info.ShopID, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	e.secret(tok.AccessToken, tok.RefreshToken)
	_, err = e.store.Connect(context.Background(), shops.Grant{
		Shop:   etsy.Shop{ShopID: info.ShopID, UserID: info.UserID, ShopName: info.Name, CurrencyCode: info.Currency},
		Token:  tok,
		Scopes: shops.DefaultScopes(),
	}, events.Metadata{Actor: "test"})
	if err != nil {
		e.t.Fatal(err)
	}
	return info, tok
}

func (e *env) events(stream string) []events.Record {
	e.t.Helper()
	recs, err := eventstore.New(e.db.DB).ReadStream(context.Background(), stream, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	return recs
}

func (e *env) refreshCalls() int64 { return e.sim.Stats().RefreshCalls }

// openSecondPool opens the test database again, as a second process would.
func openSecondPool(t *testing.T, e *env) *sql.DB {
	t.Helper()
	return pgtest.Open(t, e.db.URL, 10)
}
