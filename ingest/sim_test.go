package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/etsy/etsysim"
	"github.com/shopledger/shopledger/etsymap"
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/ingest"
)

// etsyRig is the simulator over real HTTP with a client and the tokens of
// the shops connected through its OAuth flow.
type etsyRig struct {
	sim    *etsysim.Sim
	srv    *httptest.Server
	client *etsy.Client
	oauth  etsy.OAuthConfig
	tokens *memTokens
	policy ingest.URLPolicy
}

func newEtsyRig(t *testing.T, opts etsysim.Options) *etsyRig {
	t.Helper()
	var sim *etsysim.Sim
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { sim.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	if opts.Seed == 0 {
		opts.Seed = 42
	}
	if opts.QPS == 0 {
		opts.QPS = 100000
	}
	if opts.QPD == 0 {
		opts.QPD = 10000000
	}
	opts.PublicURL = srv.URL
	var err error
	if sim, err = etsysim.New(opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	limiter, err := etsy.NewLimiter(etsy.LimiterConfig{QPS: opts.QPS, QPD: opts.QPD}, nil)
	if err != nil {
		t.Fatal(err)
	}
	client, err := etsy.NewClient(etsy.Config{
		BaseURL: srv.URL, KeyString: etsysim.DefaultKeyString, SharedSecret: etsysim.DefaultSharedSecret,
		HTTPClient: ingest.EtsyHTTPClient(10 * time.Second), Limiter: limiter,
		MaxRetries: -1, // the fetcher's own retries are under test
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(srv.URL)
	return &etsyRig{
		sim: sim, srv: srv, client: client,
		oauth: etsy.OAuthConfig{
			ClientID: etsysim.DefaultKeyString, RedirectURL: "https://shopledger.test/oauth/callback",
			AuthURL: srv.URL + "/oauth/connect", TokenURL: srv.URL + "/v3/public/oauth/token",
			Scopes: etsysim.DefaultScopes,
		},
		tokens: &memTokens{m: map[int64]etsy.TokenSource{}},
		policy: ingest.URLPolicy{Hosts: []string{u.Host}, AllowHTTP: true},
	}
}

// connect runs the simulator's OAuth flow (authorization code with PKCE)
// for the owner of shopID and keeps the grant as the shop's token source.
func (e *etsyRig) connect(t *testing.T, shopID int64) {
	t.Helper()
	verifier, challenge, err := etsy.NewPKCE()
	if err != nil {
		t.Fatal(err)
	}
	state, err := etsy.NewState()
	if err != nil {
		t.Fatal(err)
	}
	authURL := e.oauth.AuthCodeURL(state, challenge) + "&shop_id=" + fmt.Sprint(shopID)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" || loc.Query().Get("state") != state {
		t.Fatalf("authorize: status %d, location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	tok, err := e.oauth.Exchange(context.Background(), loc.Query().Get("code"), verifier)
	if err != nil {
		t.Fatalf("exchange code: %v", err)
	}
	e.tokens.set(shopID, etsy.NewRefreshingTokenSource(e.oauth, tok, etsy.TokenSourceOptions{}))
}

// memTokens is an in-memory ingest.TokenSources.
type memTokens struct {
	mu sync.Mutex
	m  map[int64]etsy.TokenSource
}

func (m *memTokens) set(shopID int64, ts etsy.TokenSource) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.m[shopID] = ts
}

func (m *memTokens) ForShop(_ context.Context, shopID int64) (etsy.TokenSource, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ts, ok := m.m[shopID]
	if !ok {
		return nil, fmt.Errorf("shop %d: %w", shopID, etsy.ErrShopNotConnected)
	}
	return ts, nil
}

// pipeline is the webhook endpoint plus a fetcher over one database.
type pipeline struct {
	*rig
	etsy       *etsyRig
	translator *etsymap.Translator
	fetcher    *ingest.Fetcher
}

func newPipeline(t *testing.T, e *etsyRig, cfg ingest.FetcherConfig) *pipeline {
	t.Helper()
	return newFetcherOn(t, newRig(t, rigOptions{realClock: true}), e, cfg)
}

// newPipelineOn is another fetcher over p's database, with metrics of its
// own, as a restarted or upgraded process runs it.
func newPipelineOn(t *testing.T, p *pipeline, e *etsyRig, cfg ingest.FetcherConfig) *pipeline {
	t.Helper()
	return newFetcherOn(t, &rig{db: p.db, store: p.store, reg: prometheus.NewRegistry(), srv: p.srv}, e, cfg)
}

func newFetcherOn(t *testing.T, r *rig, e *etsyRig, cfg ingest.FetcherConfig) *pipeline {
	t.Helper()
	tr, err := etsymap.NewTranslator(r.store, nil, r.reg)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Policy.Hosts == nil {
		cfg.Policy = e.policy
	}
	if cfg.Backoff == 0 {
		cfg.Backoff = 5 * time.Millisecond
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 20 * time.Millisecond
	}
	f, err := ingest.NewFetcher(r.db.DB, r.store, e.client, e.tokens, tr, cfg, r.reg)
	if err != nil {
		t.Fatal(err)
	}
	return &pipeline{rig: r, etsy: e, translator: tr, fetcher: f}
}

// deliver sends an Etsy-shaped webhook to the endpoint and returns its
// stored evidence.
func (p *pipeline) deliver(t *testing.T, id, eventType, resourceURL string, shopID int64) events.Record {
	t.Helper()
	body := fmt.Sprintf(`{"event_type":%q,"resource_url":%q,"shop_id":%d}`, eventType, resourceURL, shopID)
	if code := p.send(t, signed(t, secretA, id, time.Now(), body)); code != http.StatusOK {
		t.Fatalf("deliver %s: %d", id, code)
	}
	rec, _ := evidence(t, p.store, id)
	return rec
}

// run consumes the log with the fetcher until stop is called.
func (p *pipeline) run(t *testing.T) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.fetcher.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("fetcher run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// streamOf returns the payloads of a stream.
func streamOf(t *testing.T, s *eventstore.Store, stream string) []events.Record {
	t.Helper()
	recs, err := s.ReadStream(context.Background(), stream, 0)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func typesOf(recs []events.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Type())
	}
	return out
}
