package stockedits_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopledger/shopledger/domain"
	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/etsy/etsysim"
	"github.com/shopledger/shopledger/etsymap"
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/reconcile"
	"github.com/shopledger/shopledger/shops"
	"github.com/shopledger/shopledger/stockedits"
)

// env is one test's world: a database, the simulator over loopback HTTP,
// the real credential store, translator, reconciler, command service and
// pusher.
type env struct {
	t      testing.TB
	db     *pgtest.Database
	sim    *etsysim.Sim
	srv    *httptest.Server
	client *etsy.Client
	es     *eventstore.Store
	store  *shops.Store
	tr     *etsymap.Translator
	rec    *reconcile.Reconciler
	svc    *stockedits.Service
	pusher *stockedits.Pusher
	shop   etsysim.ShopInfo
}

func newEnv(t *testing.T) *env { return newEnvQPS(t, 10000, 10000000) }

// newEnvQPS is newEnv with the simulator's and the client's rate limits
// at qps and qpd.
func newEnvQPS(t testing.TB, qps, qpd int) *env {
	t.Helper()
	e := &env{t: t, db: pgtest.New(t)}
	reg := prometheus.NewRegistry()
	sim, err := etsysim.New(etsysim.Options{Seed: 5, Start: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), FreezeClock: true, QPS: qps, QPD: qpd})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	e.sim = sim
	e.srv = httptest.NewServer(sim)
	t.Cleanup(e.srv.Close)
	logger := slog.New(slog.DiscardHandler)
	limiter, err := etsy.NewLimiter(etsy.LimiterConfig{QPS: qps, QPD: qpd}, reg)
	if err != nil {
		t.Fatal(err)
	}
	e.client, err = etsy.NewClient(etsy.Config{
		BaseURL: e.srv.URL, KeyString: etsysim.DefaultKeyString, SharedSecret: etsysim.DefaultSharedSecret,
		Limiter: limiter, Logger: logger, MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
	}, reg)
	if err != nil {
		t.Fatal(err)
	}
	key, err := shops.GenerateKey("k1")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := shops.NewKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	e.es = eventstore.New(e.db.DB)
	e.store, err = shops.NewStore(shops.Config{
		DB: e.db.DB, Events: e.es, Keys: keys, Logger: logger, Now: sim.Now,
		OAuth: etsy.OAuthConfig{ClientID: etsysim.DefaultKeyString, TokenURL: e.srv.URL + "/v3/public/oauth/token", Now: sim.Now},
	}, reg)
	if err != nil {
		t.Fatal(err)
	}
	if e.tr, err = etsymap.NewTranslator(e.es, sim.Now, reg); err != nil {
		t.Fatal(err)
	}
	if e.rec, err = reconcile.New(reconcile.Config{
		DB: e.db.DB, Events: e.es, Client: e.client, Tokens: e.store, Translator: e.tr, Logger: logger, Now: sim.Now,
	}, reg); err != nil {
		t.Fatal(err)
	}
	e.svc = stockedits.NewService(e.db.DB, e.es, nil)
	if e.pusher, err = stockedits.NewPusher(stockedits.PusherConfig{
		DB: e.db.DB, Events: e.es, Etsy: e.client, Tokens: e.store, Logger: logger,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Poll: 10 * time.Millisecond, Workers: 2,
	}); err != nil {
		t.Fatal(err)
	}
	e.shop, err = sim.CreateShop(etsysim.ShopSpec{Name: "EditShop", Currency: "EUR"})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := sim.IssueToken(e.shop.ShopID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Connect(context.Background(), shops.Grant{
		Shop:  etsy.Shop{ShopID: e.shop.ShopID, UserID: e.shop.UserID, ShopName: e.shop.Name, CurrencyCode: e.shop.Currency},
		Token: tok, Scopes: shops.DefaultScopes(),
	}, events.Metadata{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	return e
}

// listing creates a listing of sized variants (S, M, L by default) at
// the simulator and imports it into the ledger by reconciliation.
func (e *env) listing(qty ...int) etsysim.ListingTruth {
	e.t.Helper()
	if len(qty) == 0 {
		qty = []int{5, 7, 9}
	}
	sizes := []string{"S", "M", "L", "XL"}
	spec := etsysim.ListingSpec{Title: "Mug", Price: 1500}
	for i, q := range qty {
		spec.Products = append(spec.Products, etsysim.ProductSpec{
			SKU: "MUG-" + sizes[i], Price: int64(1500 + 100*i), Quantity: q,
			PropertyValues: []etsysim.PropertyValueSpec{{PropertyName: "Size", Value: sizes[i]}},
		})
	}
	l, err := e.sim.CreateListing(e.shop.ShopID, spec)
	if err != nil {
		e.t.Fatal(err)
	}
	e.reconcile()
	return l
}

// wantNoDrift reconciles the shop and reports any drift it finds.
func (e *env) wantNoDrift(t *testing.T, when string) {
	t.Helper()
	if sum := e.reconcile(); sum.DriftFound != 0 {
		t.Errorf("reconciliation %s found %d drift", when, sum.DriftFound)
	}
}

func (e *env) reconcile() reconcile.Summary {
	e.t.Helper()
	sum, err := e.rec.Run(context.Background(), e.shop.ShopID, reconcile.ScopeAll)
	if err != nil {
		e.t.Fatal(err)
	}
	return sum
}

func (e *env) actor() stockedits.Actor {
	return stockedits.Actor{Name: "user:alice", Shops: []int64{e.shop.ShopID}, CanEdit: true}
}

func (e *env) submit(listingID int64, c domain.EditCommand, requestID string) stockedits.Recorded {
	e.t.Helper()
	r, err := e.svc.Submit(context.Background(), e.actor(), listingID, c, requestID)
	if err != nil {
		e.t.Fatalf("submit %+v: %v", c, err)
	}
	return r
}

// drain pushes until no listing has due commands.
func (e *env) drain() {
	e.t.Helper()
	for range 50 {
		worked, err := e.pusher.PushOnce(context.Background())
		if err != nil {
			e.t.Fatal(err)
		}
		if !worked {
			return
		}
	}
	e.t.Fatal("pushes never drained")
}

func (e *env) truth(listingID int64) etsysim.ListingTruth {
	e.t.Helper()
	l, err := e.sim.Listing(listingID)
	if err != nil {
		e.t.Fatal(err)
	}
	return l
}

func (e *env) variant(listingID int64, key string) etsysim.VariantTruth {
	e.t.Helper()
	for _, v := range e.truth(listingID).Variants {
		if v.VariantKey == key {
			return v
		}
	}
	e.t.Fatalf("no variant %s", key)
	return etsysim.VariantTruth{}
}

// stream is the listing's events.
func (e *env) stream(listingID int64) []events.Record {
	e.t.Helper()
	past, err := e.es.ReadStream(context.Background(), events.ListingStream(listingID), 0)
	if err != nil {
		e.t.Fatal(err)
	}
	return past
}

func (e *env) balance(listingID int64, key string) int64 {
	return domain.ReplayListing(listingID, e.stream(listingID)).Balance(key)
}

// count returns how many events of the listing have the type.
func (e *env) count(listingID int64, typ string) int {
	n := 0
	for _, r := range e.stream(listingID) {
		if r.Type() == typ {
			n++
		}
	}
	return n
}

func (e *env) order(listingID int64, key string, qty int) {
	e.t.Helper()
	if _, err := e.sim.CreateOrder(e.shop.ShopID, etsysim.OrderSpec{Items: []etsysim.OrderItem{{ListingID: listingID, VariantKey: key, Quantity: qty}}}); err != nil {
		e.t.Fatal(err)
	}
}
