package etsy_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/etsy/etsysim"
)

// testStart is a fixed simulated start so timestamps are stable.
var testStart = time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)

type env struct {
	sim    *etsysim.Sim
	srv    *httptest.Server
	client *etsy.Client
	oauth  etsy.OAuthConfig
	shop   etsysim.ShopInfo
	token  etsy.Token
	ts     *etsy.RefreshingTokenSource
}

type envOptions struct {
	sim       etsysim.Options
	limiter   etsy.LimiterConfig
	client    etsy.Config
	registry  prometheus.Registerer
	noShop    bool
	tokenOpts etsy.TokenSourceOptions
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	if o.sim.Start.IsZero() {
		o.sim.Start = testStart
	}
	if o.sim.Seed == 0 {
		o.sim.Seed = 42
	}
	if o.sim.QPS == 0 {
		o.sim.QPS = 1000
	}
	if o.sim.QPD == 0 {
		o.sim.QPD = 1000000
	}
	sim, err := etsysim.New(o.sim)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(func() {
		srv.Close()
		sim.Close()
	})
	if o.limiter.QPS == 0 {
		o.limiter.QPS = 1000
	}
	if o.limiter.QPD == 0 {
		o.limiter.QPD = 1000000
	}
	lim, err := etsy.NewLimiter(o.limiter, o.registry)
	if err != nil {
		t.Fatal(err)
	}
	cfg := o.client
	cfg.BaseURL = srv.URL
	app := sim.Apps()[0]
	cfg.KeyString, cfg.SharedSecret = app.KeyString, app.SharedSecret
	cfg.Limiter = lim
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 20 * time.Millisecond
	}
	c, err := etsy.NewClient(cfg, o.registry)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{
		sim: sim, srv: srv, client: c,
		oauth: etsy.OAuthConfig{
			ClientID: app.KeyString, RedirectURL: "https://shopledger.example/oauth/callback",
			AuthURL: srv.URL + "/oauth/connect", TokenURL: srv.URL + "/v3/public/oauth/token",
			Scopes: etsysim.DefaultScopes, Now: sim.Now,
		},
	}
	if o.noShop {
		return e
	}
	if e.shop, err = sim.CreateShop(etsysim.ShopSpec{Name: "TestShop"}); err != nil {
		t.Fatal(err)
	}
	if e.token, err = sim.IssueToken(e.shop.ShopID, nil); err != nil {
		t.Fatal(err)
	}
	if o.tokenOpts.Now == nil {
		o.tokenOpts.Now = sim.Now
	}
	e.ts = etsy.NewRefreshingTokenSource(e.oauth, e.token, o.tokenOpts)
	return e
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
