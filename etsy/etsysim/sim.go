// Package etsysim is an in-memory Etsy: the Open API v3 endpoints shopledger
// uses, OAuth 2.0 with PKCE, per-key rate limits, and signed webhook
// delivery with fault injection. Real Etsy is not reachable from our
// machines, so tests, demos and benchmarks run against this instead.
//
// A Sim is an http.Handler serving Etsy's paths (/v3/application/…,
// /v3/public/oauth/token, /oauth/connect) next to a control API under
// /_sim/… . Its exported methods do what the control API does, for
// in-process tests. Everything random comes from one seeded source, so a
// seed and the same sequence of calls give the same shops, ids and orders.
package etsysim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Defaults, following Etsy's documentation.
const (
	DefaultKeyString       = "simkeystring00000000000"
	DefaultSharedSecret    = "simsharedsecret"
	DefaultAccessTokenTTL  = time.Hour
	DefaultRefreshTokenTTL = 90 * 24 * time.Hour
	DefaultQPS             = 10
	DefaultQPD             = 10000
	DefaultPublicURL       = "https://openapi.etsy.com"
	DefaultWebhookTimeout  = 15 * time.Second
)

var (
	// ErrNotFound means an id the simulator does not know.
	ErrNotFound = errors.New("etsysim: not found")
	// ErrInvalid means a request the simulator refuses, as Etsy would.
	ErrInvalid = errors.New("etsysim: invalid request")
	// ErrClosed means the simulator has been closed.
	ErrClosed = errors.New("etsysim: closed")
)

// App is an Etsy app registered with the simulator.
type App struct {
	KeyString     string
	SharedSecret  string
	ApplicationID int64
	// RedirectURIs must match redirect_uri exactly, as on Etsy. Empty
	// accepts any http(s) URI, which is convenient for demos.
	RedirectURIs []string
}

// Faults are fractions (0..1) of webhook messages to mistreat, each
// decided per message and endpoint with the seeded random source.
type Faults struct {
	Drop      float64       // never delivered
	Duplicate float64       // delivered again, same webhook-id, after success
	Reorder   float64       // held back until the endpoint's next message went out
	Delay     float64       // held back for a random time up to MaxDelay
	MaxDelay  time.Duration // sim time; default 30 s
}

func (f Faults) validate() error {
	for name, v := range map[string]float64{"drop": f.Drop, "duplicate": f.Duplicate, "reorder": f.Reorder, "delay": f.Delay} {
		if v < 0 || v > 1 {
			return fmt.Errorf("fault fraction %s=%v outside [0,1]: %w", name, v, ErrInvalid)
		}
	}
	if f.MaxDelay < 0 {
		return fmt.Errorf("fault max delay %v is negative: %w", f.MaxDelay, ErrInvalid)
	}
	return nil
}

// Options configure a Sim. Zero values take the defaults.
type Options struct {
	// Seed makes ids, demo data, tokens and fault decisions repeatable.
	Seed uint64
	// Start is the simulated clock's start; default the real time now.
	Start time.Time
	// FreezeClock stops the simulated clock; only Advance moves it.
	FreezeClock bool
	// TimeScale is simulated seconds per real second; default 1. It
	// speeds up token expiry, webhook retries and the scenario engine.
	TimeScale float64
	// Apps are the registered apps; default one app with
	// DefaultKeyString and DefaultSharedSecret.
	Apps []App
	// AccessTokenTTL and RefreshTokenTTL are in simulated time; defaults
	// one hour and 90 days, as on Etsy.
	AccessTokenTTL  time.Duration
	RefreshTokenTTL time.Duration
	// QPS and QPD are per app key; defaults 10 and 10,000. QPS counts
	// real seconds, QPD a rolling simulated day.
	QPS int
	QPD int
	// PublicURL is the host put in webhook resource_url values; default
	// https://openapi.etsy.com. Point it at the simulator's own address
	// so receivers can follow the links.
	PublicURL string
	// WebhookRetryScale multiplies Etsy's retry delays (5 s, 5 min, 30
	// min, 2 h, 5 h, 10 h, 10 h); default 1. Delays run on the simulated
	// clock, so TimeScale shortens them too.
	WebhookRetryScale float64
	// WebhookTimeout bounds one delivery attempt (real time); default
	// 15 s, Svix's limit.
	WebhookTimeout time.Duration
	// Faults mistreat webhook deliveries.
	Faults Faults
	// HTTPClient delivers webhooks; default a plain client. Redirects
	// are never followed: a redirect is a failed attempt, as in Svix.
	HTTPClient *http.Client
	// Logger gets the simulator's logs; default discards.
	Logger *slog.Logger
	// OrderIDOffset moves receipt, transaction and shipment ids up. A
	// simulator restarted with the same seed rebuilds the same catalogue;
	// an offset keeps its new orders from reusing ids that a ledger kept
	// from the previous run (make run does this).
	OrderIDOffset int64
	// WebhookIDNonce is the start of every webhook id this simulator
	// sends (at most 16 of Etsy's id characters, A–Z, a–z, 0–9); the
	// rest comes from the seeded source. Default: random per New, so a
	// simulator restarted with the same seed, which rebuilds the same
	// data and so raises the same events, never sends a webhook id a
	// receiver already holds (it would be taken for a retry and dropped).
	WebhookIDNonce string
	// ConsentPage makes GET /oauth/connect answer a consent page listing
	// the simulator's sellers, as Etsy asks the person in the browser,
	// when the request names neither user_id nor shop_id. Default: the
	// owner of the first shop approves at once.
	ConsentPage bool
	// WebhooksAuthorisedOnly sends webhooks only for the shops whose
	// owner holds a grant the simulator has not revoked, as Etsy tells an
	// app only of the shops that authorised it. Default: every shop's.
	WebhooksAuthorisedOnly bool
}

// Sim is an in-memory Etsy. Create it with New and Close it when done.
type Sim struct {
	opts  Options
	log   *slog.Logger
	clock *clock
	mux   *http.ServeMux

	mu      sync.Mutex
	rng     *rand.Rand
	ids     idGen
	apps    map[string]*App // by keystring
	users   map[int64]*user
	shops   map[int64]*shop
	shopIDs []int64
	listing map[int64]*listing
	receipt map[int64]*receipt
	values  map[valueKey]int64 // (property id, value text) → value id
	oauth   oauthState
	limits  map[string]*keyLimits // by keystring
	stats   counters
	hooks   webhookState
	// apiFaults slow down or refuse resource fetches (apifaults.go).
	apiFaults APIFaults
	demoSeq   int
	closed    bool

	stop   context.CancelFunc
	ctx    context.Context
	wg     sync.WaitGroup
	wakeCh chan struct{} // pokes the delivery loop when work or time changed
}

// New returns a running simulator: its webhook delivery loop starts now.
func New(opts Options) (*Sim, error) {
	if opts.TimeScale < 0 || opts.WebhookRetryScale < 0 {
		return nil, fmt.Errorf("new sim: negative time scale: %w", ErrInvalid)
	}
	if opts.QPS < 0 || opts.QPD < 0 {
		return nil, fmt.Errorf("new sim: negative rate limit: %w", ErrInvalid)
	}
	if err := opts.Faults.validate(); err != nil {
		return nil, fmt.Errorf("new sim: %w", err)
	}
	if opts.TimeScale == 0 {
		opts.TimeScale = 1
	}
	if opts.WebhookRetryScale == 0 {
		opts.WebhookRetryScale = 1
	}
	if opts.Start.IsZero() {
		opts.Start = time.Now()
	}
	if len(opts.Apps) == 0 {
		opts.Apps = []App{{KeyString: DefaultKeyString, SharedSecret: DefaultSharedSecret}}
	}
	if opts.AccessTokenTTL == 0 {
		opts.AccessTokenTTL = DefaultAccessTokenTTL
	}
	if opts.RefreshTokenTTL == 0 {
		opts.RefreshTokenTTL = DefaultRefreshTokenTTL
	}
	if opts.QPS == 0 {
		opts.QPS = DefaultQPS
	}
	if opts.QPD == 0 {
		opts.QPD = DefaultQPD
	}
	if opts.PublicURL == "" {
		opts.PublicURL = DefaultPublicURL
	}
	opts.PublicURL = strings.TrimSuffix(opts.PublicURL, "/")
	if opts.WebhookTimeout == 0 {
		opts.WebhookTimeout = DefaultWebhookTimeout
	}
	if opts.Faults.MaxDelay == 0 {
		opts.Faults.MaxDelay = 30 * time.Second
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{}
	}
	// Copy the client so that refusing redirects does not change the
	// caller's.
	hc := *opts.HTTPClient
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	opts.HTTPClient = &hc
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.WebhookIDNonce == "" {
		opts.WebhookIDNonce = randomNonce()
	}
	if len(opts.WebhookIDNonce) > maxNonce || strings.Trim(opts.WebhookIDNonce, opaqueAlphabet) != "" {
		return nil, fmt.Errorf("new sim: webhook id nonce %q: at most %d of A-Z, a-z, 0-9: %w", opts.WebhookIDNonce, maxNonce, ErrInvalid)
	}
	s := &Sim{
		opts:    opts,
		log:     opts.Logger,
		clock:   newClock(opts.Start, opts.TimeScale, opts.FreezeClock),
		rng:     rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15)),
		apps:    make(map[string]*App),
		users:   make(map[int64]*user),
		shops:   make(map[int64]*shop),
		listing: make(map[int64]*listing),
		receipt: make(map[int64]*receipt),
		values:  make(map[valueKey]int64),
		limits:  make(map[string]*keyLimits),
		wakeCh:  make(chan struct{}, 1),
	}
	s.ids = newIDGen(s.rng)
	s.ids.offset = opts.OrderIDOffset
	s.oauth.init()
	s.hooks.init()
	s.hooks.faults = opts.Faults
	for i := range opts.Apps {
		a := opts.Apps[i]
		if a.KeyString == "" || a.SharedSecret == "" {
			return nil, fmt.Errorf("new sim: app %d needs a key string and a shared secret: %w", i, ErrInvalid)
		}
		if a.ApplicationID == 0 {
			a.ApplicationID = int64(100000 + i)
		}
		s.apps[a.KeyString] = &a
	}
	s.mux = http.NewServeMux()
	s.routeAPI()
	s.routeOAuth()
	s.routeControl()
	s.ctx, s.stop = context.WithCancel(context.Background())
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.deliveryLoop(s.ctx)
	}()
	return s, nil
}

// Close stops webhook delivery and any running scenario and waits for them.
func (s *Sim) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.stop()
	s.wg.Wait()
	return nil
}

// ServeHTTP serves Etsy's API, OAuth and the control API.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// Now is the simulated time.
func (s *Sim) Now() time.Time { return s.clock.now() }

// Advance moves the simulated clock forward by d: tokens expire, the daily
// rate window slides, due webhook retries go out.
func (s *Sim) Advance(d time.Duration) {
	if d <= 0 {
		return
	}
	s.clock.advance(d)
	s.wake()
}

func (s *Sim) wake() {
	select {
	case s.wakeCh <- struct{}{}:
	default:
	}
}

// clock is the simulated time: a start, plus scaled real time elapsed
// (unless frozen), plus manual advances.
type clock struct {
	mu     sync.Mutex
	start  time.Time
	real0  time.Time
	scale  float64
	frozen bool
	offset time.Duration
}

func newClock(start time.Time, scale float64, frozen bool) *clock {
	return &clock{start: start.Round(0), real0: time.Now(), scale: scale, frozen: frozen}
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.start.Add(c.offset)
	if !c.frozen {
		t = t.Add(time.Duration(float64(time.Since(c.real0)) * c.scale))
	}
	return t.UTC()
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// realDuration converts a span of simulated time into real time to sleep.
// A frozen clock never reaches anything by waiting, so it reports -1.
func (c *clock) realDuration(sim time.Duration) time.Duration {
	if c.frozen {
		return -1
	}
	return time.Duration(float64(sim) / c.scale)
}
