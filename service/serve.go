package service

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewRegistry returns a registry with the Go and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// checkRole refuses a role that could disable the log's triggers.
func checkRole(ctx context.Context, db *sql.DB, allow bool, logger *slog.Logger) error {
	var role string
	var super, bypass, owner bool
	err := db.QueryRowContext(ctx, `SELECT current_user, r.rolsuper, r.rolbypassrls,
			coalesce(pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = to_regclass('events')), 'MEMBER'), false)
		FROM pg_roles r WHERE r.rolname = current_user`).Scan(&role, &super, &bypass, &owner)
	if err != nil {
		return fmt.Errorf("check database role: %w", err)
	}
	var why []string
	if super {
		why = append(why, "a superuser")
	}
	if bypass {
		why = append(why, "bypasses row security")
	}
	if owner {
		why = append(why, "owns the events table")
	}
	if len(why) == 0 {
		return nil
	}
	if allow {
		if logger != nil {
			logger.Warn("running as a role that could rewrite the log; starting anyway because "+AllowPrivilegedEnv+" is set (development only)", "role", role, "why", strings.Join(why, ", "))
		}
		return nil
	}
	return fmt.Errorf("%w: role %s is %s; point SHOPLEDGER_DATABASE_URL at the service's own role (shopledger_ingest, shopledger_projector or shopledger_query, created by `ledger migrate`), or set %s=true for development only",
		ErrPrivilegedRole, role, strings.Join(why, " and "), AllowPrivilegedEnv)
}

// Readiness collects named checks for /readyz. A check returning an error
// makes the process not ready.
type Readiness struct {
	// Logger receives the failing checks' errors, which /readyz never
	// shows: they can carry database errors and addresses.
	Logger *slog.Logger

	mu     sync.Mutex
	checks map[string]func(context.Context) error
}

// Add registers a check.
func (r *Readiness) Add(name string, check func(context.Context) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.checks == nil {
		r.checks = map[string]func(context.Context) error{}
	}
	r.checks[name] = check
}

// ServeHTTP answers 200 "ready" or 503 naming each failing check ("database:
// not ready"); the errors themselves go to the log.
func (r *Readiness) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	ctx, cancel := context.WithTimeout(req.Context(), 2*time.Second)
	defer cancel()
	r.mu.Lock()
	checks := make(map[string]func(context.Context) error, len(r.checks))
	for k, v := range r.checks {
		checks[k] = v
	}
	r.mu.Unlock()
	var failed []string
	details := map[string]string{}
	for name, check := range checks {
		if err := check(ctx); err != nil {
			failed = append(failed, name)
			var d ReadyDetail
			if errors.As(err, &d) {
				details[name] = d.Detail
			}
			if r.Logger != nil {
				r.Logger.Warn("not ready", "check", name, "err", err)
			}
		}
	}
	sort.Strings(failed)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if len(failed) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		for _, f := range failed {
			if d := details[f]; d != "" {
				fmt.Fprintf(w, "%s: not ready: %s\n", f, d)
				continue
			}
			fmt.Fprintf(w, "%s: not ready\n", f)
		}
		return
	}
	fmt.Fprintln(w, "ready")
}

// ReadyDetail is a readiness failure whose text was written for operators
// (no raw database error in it), so /readyz shows it.
type ReadyDetail struct{ Detail string }

func (d ReadyDetail) Error() string { return d.Detail }

// Healthz answers "ok" while the process serves. It says nothing else, so
// it can stay on a public listener.
func Healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintln(w, "ok")
}

// OpsMux returns the ops listener's mux: /healthz, /readyz and /metrics.
// It belongs on an address only operators and their scrapers reach.
func OpsMux(reg *prometheus.Registry, ready *Readiness) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", Healthz)
	mux.Handle("GET /readyz", ready)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return mux
}

// Listener is one HTTP listener of a binary.
type Listener struct {
	Addr    string
	Handler http.Handler
	// Banner starts the line printed to stdout once the listener is
	// bound, followed by its URL: tests and scripts start binaries on
	// port 0 and read it.
	Banner string
	// Drain is how long the listener keeps serving once shutdown is
	// asked, before it stops accepting: /healthz answers 503 meanwhile
	// and every answer closes its connection, so that a proxy's health
	// checks take the instance out of rotation while it still answers
	// what reaches it (SHOPLEDGER_SHUTDOWN_DRAIN). Zero stops at once.
	Drain time.Duration
}

// draining wraps a public handler for its drain: /healthz says so, and
// no connection is kept alive for another request.
func draining(h http.Handler, on *atomic.Bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !on.Load() {
			h.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Connection", "close")
		if r.URL.Path == "/healthz" {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "draining")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// Serve listens on addr, prints "<name> listening on http://ADDR", and
// serves until ctx ends, then drains for up to 10 seconds.
func Serve(ctx context.Context, addr string, h http.Handler, name string, stdout io.Writer, logger *slog.Logger) error {
	return ServeAll(ctx, stdout, logger, Listener{Addr: addr, Handler: h, Banner: name + " listening on"})
}

// OpsBanner is the line an ops listener announces itself with.
func OpsBanner(name string) string { return name + " ops endpoints on" }

// ServeAll binds every listener (all or none), prints each banner with
// its bound address, and serves until ctx ends or one of them fails; then
// it drains all of them for up to 10 seconds.
func ServeAll(ctx context.Context, stdout io.Writer, logger *slog.Logger, ls ...Listener) error {
	lns := make([]net.Listener, 0, len(ls))
	for _, l := range ls {
		ln, err := net.Listen("tcp", l.Addr)
		if err != nil {
			for _, o := range lns {
				o.Close()
			}
			return fmt.Errorf("listen %s: %w", l.Addr, err)
		}
		lns = append(lns, ln)
	}
	srvs := make([]*http.Server, len(ls))
	errc := make(chan error, len(ls))
	var drainOn atomic.Bool
	var drain time.Duration
	for i, l := range ls {
		h := l.Handler
		if l.Drain > 0 {
			h = draining(h, &drainOn)
			drain = max(drain, l.Drain)
		}
		srvs[i] = &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      60 * time.Second,
			IdleTimeout:       120 * time.Second,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		}
		fmt.Fprintf(stdout, "%s http://%s\n", l.Banner, lns[i].Addr())
		logger.Info("listening", "addr", lns[i].Addr().String(), "listener", l.Banner)
	}
	for i := range srvs {
		go func() { errc <- srvs[i].Serve(lns[i]) }()
	}
	var first error
	select {
	case err := <-errc:
		first = fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
		if drain > 0 {
			logger.Info("draining before shutdown", "for", drain.String())
			drainOn.Store(true)
			select {
			case err := <-errc:
				first = fmt.Errorf("serve: %w", err)
			case <-time.After(drain):
			}
		}
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	if first != nil {
		errs = append(errs, first)
	}
	for _, srv := range srvs {
		if err := srv.Shutdown(shutdownCtx); err != nil {
			errs = append(errs, fmt.Errorf("shutdown: %w", err))
		}
	}
	remaining := len(srvs)
	if first != nil {
		remaining--
	}
	for range remaining {
		if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
