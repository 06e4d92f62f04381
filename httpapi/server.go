package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopledger/shopledger/internal/defaults"
)

// Config is what the API needs. Every reader is a small interface declared
// next to the handlers that use it; cmd/query passes one
// *projections.Reader for the read models and the log.
type Config struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer

	Tokens Authenticator
	Data   Readers

	// QueryTimeout bounds every request's database work (exports bound
	// each batch instead). The database's statement_timeout is the second
	// line of defence.
	QueryTimeout time.Duration

	// ExportBatch is how many events one export query reads (default
	// 1000).
	ExportBatch int

	// TokenRate and TokenBurst limit requests per API token; AddressRate
	// and AddressBurst authenticated requests per client address;
	// AuthFailureRate and AuthFailureBurst failed authentications per
	// client address, in a bucket of their own. Zero rate means unlimited.
	TokenRate        float64
	TokenBurst       int
	AddressRate      float64
	AddressBurst     int
	AuthFailureRate  float64
	AuthFailureBurst int

	// TrustedProxies are the proxies whose ProxyHeader names the client
	// (see clientAddr); empty trusts none, and RemoteAddr is the client.
	TrustedProxies []netip.Prefix
	ProxyHeader    ProxyHeader

	// Now is the clock of rate limits and token expiry (tests fix it).
	Now func() time.Time
}

// Readers groups the read and write sides the handlers use.
type Readers struct {
	Shops      ShopReader
	Products   ProductReader
	Stock      StockReader
	Sales      SalesReader
	Alerts     AlertReader
	Thresholds ThresholdSetter
	Events     EventLog
	// StockEdits records stock commands; nil answers them 500.
	StockEdits StockEditor
}

type server struct {
	router        *chi.Mux
	cfg           Config
	errs          errorWriter
	metrics       *metrics
	byToken       *limiters
	byAddress     *limiters
	byAuthFailure *limiters
}

// New returns the API handler: /openapi.json and everything under /v1.
func New(cfg Config) (http.Handler, error) {
	if cfg.Tokens == nil {
		return nil, errors.New("httpapi: Tokens is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	defaults.Positive(&cfg.QueryTimeout, 5*time.Second)
	defaults.Positive(&cfg.ExportBatch, 1000)
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s := &server{
		cfg:           cfg,
		errs:          errorWriter{logger: cfg.Logger},
		metrics:       m,
		byToken:       newLimiters(cfg.TokenRate, cfg.TokenBurst),
		byAddress:     newLimiters(cfg.AddressRate, cfg.AddressBurst),
		byAuthFailure: newLimiters(cfg.AuthFailureRate, cfg.AuthFailureBurst),
	}
	return s.routes(), nil
}

func (s *server) routes() chi.Router {
	r := chi.NewRouter()
	s.router = r
	// GetHead sends HEAD through the GET routes (net/http drops the body).
	r.Use(requestID, securityHeaders, s.metrics.observe, CloseUnreadBodies, CanonicalPaths, middleware.GetHead)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) { s.errs.write(w, r, ErrNotFound) })
	r.MethodNotAllowed(s.methodNotAllowed)
	r.Get("/openapi.json", serveOpenAPI)

	r.Route("/v1", func(r chi.Router) {
		r.Use(noStore, s.limitAddress, s.authenticate)
		r.NotFound(func(w http.ResponseWriter, r *http.Request) { s.errs.write(w, r, ErrNotFound) })

		r.Group(func(r chi.Router) {
			r.Use(checkInput, s.timeout)
			s.sellerRoutes(r)
			s.alertRoutes(r)
		})
		r.Group(func(r chi.Router) {
			r.Use(s.requireRole(RoleAuditor), checkInput)
			s.auditorRoutes(r)
		})
	})
	return r
}

// timeout bounds a request's work. pgx cancels a running query when its
// context ends, so a slow query stops on the server too.
func (s *server) timeout(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.QueryTimeout)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// Routes lists the API's routes as "METHOD /pattern", for the OpenAPI test
// and the docs.
func Routes(h http.Handler) ([]string, error) {
	r, ok := h.(chi.Routes)
	if !ok {
		return nil, errors.New("httpapi: not a router built by New")
	}
	var out []string
	err := chi.Walk(r, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		out = append(out, method+" "+route)
		return nil
	})
	return out, err
}

type requestIDKey struct{}

// requestID gives every request an id, answered in X-Request-Id and
// recorded in the metadata of events the request appends. Ids sent by
// clients are not trusted into the log.
func requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := uuid.NewString()
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id)))
	})
}

func requestIDOf(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}
