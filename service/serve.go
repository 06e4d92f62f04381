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
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/migrations"
)

// NewRegistry returns a registry with the Go and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// DBOption changes how OpenDB opens the database.
type DBOption func(*dbOptions)

type dbOptions struct {
	allowNonDurable bool
	adopt           bool
}

// AdoptMovedLog makes OpenDB adopt a log restored from another cluster
// (eventstore.Adopt) after migrating; only `ledger migrate` and `ledger
// restore` pass it. Without it OpenDB refuses such a log.
func AdoptMovedLog() DBOption {
	return func(o *dbOptions) { o.adopt = true }
}

// AllowNonDurable lets OpenDB start on a database whose commits are not
// durable, with a warning; cmds pass the value of AllowNonDurableEnv.
func AllowNonDurable(allow bool) DBOption {
	return func(o *dbOptions) { o.allowNonDurable = allow }
}

// OpenDB connects to the database, refuses it unless its commits are
// durable (see CheckDurability), and applies pending migrations under an
// advisory lock, so binaries started together migrate once.
func OpenDB(ctx context.Context, url string, maxConns int32, logger *slog.Logger, opts ...DBOption) (*sql.DB, *pgxpool.Pool, error) {
	var o dbOptions
	for _, opt := range opts {
		opt(&o)
	}
	db, pool, err := eventstore.Open(ctx, url, maxConns)
	if err != nil {
		return nil, nil, err
	}
	// Before migrating: a refused database is left exactly as it was.
	if err := CheckDurability(ctx, db, o.allowNonDurable, logger); err != nil {
		db.Close()
		pool.Close()
		return nil, nil, fmt.Errorf("open database: %w", err)
	}
	if err := migrations.Up(ctx, db, logger); err != nil {
		db.Close()
		pool.Close()
		return nil, nil, err
	}
	if o.adopt {
		raised, err := eventstore.Adopt(ctx, db)
		if err != nil {
			db.Close()
			pool.Close()
			return nil, nil, fmt.Errorf("open database: %w", err)
		}
		if raised > 0 && logger != nil {
			logger.Warn("adopted a log restored from another cluster: log transaction ids now run ahead of this cluster's", "shift_raised_by", raised)
		}
	}
	if err := eventstore.CheckOrder(ctx, db); err != nil {
		db.Close()
		pool.Close()
		return nil, nil, fmt.Errorf("open database: %w", err)
	}
	return db, pool, nil
}

// Readiness collects named checks for /readyz. A check returning an error
// makes the process not ready and says why.
type Readiness struct {
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

// ServeHTTP answers 200 "ready" or 503 with each failing check.
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
	for name, check := range checks {
		if err := check(ctx); err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", name, err))
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if len(failed) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		for _, f := range failed {
			fmt.Fprintln(w, f)
		}
		return
	}
	fmt.Fprintln(w, "ready")
}

// OpsMux returns a mux serving /healthz, /readyz and /metrics; callers mount
// their own routes beside them.
func OpsMux(reg *prometheus.Registry, ready *Readiness) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("GET /readyz", ready)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return mux
}

// Serve listens on addr, prints the bound address to stdout (tests start
// binaries on port 0 and read it), and serves until ctx ends, then drains
// for up to 10 seconds.
func Serve(ctx context.Context, addr string, h http.Handler, name string, stdout io.Writer, logger *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	fmt.Fprintf(stdout, "%s listening on http://%s\n", name, ln.Addr())
	logger.Info("listening", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
