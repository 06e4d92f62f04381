// Package telemetry reports a binary's errors and panics to Sentry and
// exports its traces over OTLP/HTTP, each only when configured.
//
// Errors reach Sentry through the logger: every record at level ERROR
// becomes an event (the code logs an internal error once, where it is
// handled), with the record's attributes as its "log" context. Panics reach it
// through Recover (the binary's run) and Handler (HTTP handlers).
//
// Traces follow a webhook across processes through the log itself:
// an event appended under a span carries the span's W3C traceparent in
// its metadata, and a consumer continues that trace when it handles the
// event (FromTraceParent). So one trace holds the webhook's HTTP request
// and its append at ingest, the fetcher's calls to Etsy and what it
// appended, and the projector applying those events.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/getsentry/sentry-go"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Config is what a binary reads from SHOPLEDGER_SENTRY_DSN,
// SHOPLEDGER_SENTRY_ENVIRONMENT, SHOPLEDGER_OTLP_ENDPOINT and
// SHOPLEDGER_TRACE_SAMPLE_RATIO. Empty DSN and endpoint turn each off.
type Config struct {
	SentryDSN   string
	Environment string
	// OTLPEndpoint is the collector's OTLP/HTTP base URL
	// (http://collector:4318); traces go to its /v1/traces unless the
	// URL names another path.
	OTLPEndpoint string
	// SampleRatio is the share of new traces recorded (0 to 1); a trace
	// begun upstream keeps its upstream decision.
	SampleRatio float64
}

// Validate checks the settings before anything starts.
func (c Config) Validate() error {
	var errs []error
	if c.SentryDSN != "" {
		if _, err := sentry.NewDsn(c.SentryDSN); err != nil {
			errs = append(errs, fmt.Errorf("sentry dsn: %w", err))
		}
	}
	if c.OTLPEndpoint != "" {
		u, err := url.Parse(c.OTLPEndpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("otlp endpoint %q is not an http(s) URL", c.OTLPEndpoint))
		}
	}
	if c.SampleRatio < 0 || c.SampleRatio > 1 {
		errs = append(errs, fmt.Errorf("trace sample ratio %v is not between 0 and 1", c.SampleRatio))
	}
	return errors.Join(errs...)
}

// Telemetry is a binary's reporting, started by Start.
type Telemetry struct {
	hub      *sentry.Hub // nil without a DSN
	provider *sdktrace.TracerProvider
	service  string
}

// Start sets up what cfg configures for the binary service of version
// and returns the logger to use from then on: logger itself, or one that
// also reports errors to Sentry. The tracer provider becomes the global
// one, which the instrumented code uses.
func Start(ctx context.Context, cfg Config, service, version string, logger *slog.Logger) (*Telemetry, *slog.Logger, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	t := &Telemetry{service: service}
	if cfg.SentryDSN != "" {
		client, err := sentry.NewClient(sentry.ClientOptions{
			Dsn:              cfg.SentryDSN,
			Release:          "shopledger@" + version,
			Environment:      cfg.Environment,
			AttachStacktrace: true,
			// Request bodies, headers and cookies are never sent: they may
			// hold tokens or buyers' data.
			SendDefaultPII: false,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("sentry: %w", err)
		}
		scope := sentry.NewScope()
		scope.SetTag("service", service)
		t.hub = sentry.NewHub(client, scope)
		logger = slog.New(&sentryHandler{next: logger.Handler(), hub: t.hub})
	}
	if cfg.OTLPEndpoint != "" {
		exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(tracesURL(cfg.OTLPEndpoint)))
		if err != nil {
			return nil, nil, fmt.Errorf("otlp exporter: %w", err)
		}
		res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
			attribute.String("service.name", "shopledger-"+service),
			attribute.String("service.version", version),
		))
		if err != nil {
			return nil, nil, fmt.Errorf("otel resource: %w", err)
		}
		t.provider = sdktrace.NewTracerProvider(
			sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(time.Second)),
			sdktrace.WithResource(res),
			sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))),
		)
		otel.SetTracerProvider(t.provider)
		otel.SetTextMapPropagator(propagation.TraceContext{})
	}
	if t.hub != nil || t.provider != nil {
		logger.Info("telemetry", "sentry", t.hub != nil, "sentry_environment", cfg.Environment,
			"otlp_endpoint", cfg.OTLPEndpoint, "trace_sample_ratio", cfg.SampleRatio)
	}
	return t, logger, nil
}

// tracesURL appends OTLP's traces path to a base URL without a path.
func tracesURL(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil || strings.Trim(u.Path, "/") != "" {
		return endpoint
	}
	u.Path = "/v1/traces"
	return u.String()
}

// Close sends what is still buffered, waiting at most 5 seconds for each
// of Sentry and the collector.
func (t *Telemetry) Close() {
	if t == nil {
		return
	}
	if t.hub != nil {
		// Flush alone may return while an event is still on its way
		// from the SDK's buffer to its transport; Close drains both.
		t.hub.Flush(5 * time.Second)
		t.hub.Client().Close()
	}
	if t.provider != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = t.provider.Shutdown(ctx)
	}
}

// Recover, deferred in the binary's run, reports a panic to Sentry, waits for it to be sent
// and panics again with the same value: the process still dies the way
// it would have.
func (t *Telemetry) Recover() {
	if v := recover(); v != nil {
		t.reportPanic(context.Background(), v)
		panic(v)
	}
}

func (t *Telemetry) reportPanic(ctx context.Context, v any) {
	if t == nil || t.hub == nil {
		return
	}
	hub := t.hub.Clone()
	hub.ConfigureScope(func(s *sentry.Scope) { tagTrace(ctx, s) })
	hub.RecoverWithContext(ctx, v)
	hub.Flush(5 * time.Second)
}

// CaptureError reports err to Sentry, for a failure that is returned
// rather than logged (a command's outcome).
func (t *Telemetry) CaptureError(ctx context.Context, err error) {
	if t == nil || t.hub == nil || err == nil {
		return
	}
	hub := t.hub.Clone()
	hub.ConfigureScope(func(s *sentry.Scope) { tagTrace(ctx, s) })
	hub.CaptureException(err)
}

// Handler wraps a listener's handler: a server span per request (a
// traceparent header from the caller is continued), and a panic in a
// handler reported to Sentry before net/http handles it as usual.
func (t *Telemetry) Handler(h http.Handler, operation string) http.Handler {
	if t == nil || (t.hub == nil && t.provider == nil) {
		return h // nothing to report: no cost on the request path
	}
	var inner http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v != http.ErrAbortHandler {
					t.reportPanic(r.Context(), v)
				}
				panic(v)
			}
		}()
		h.ServeHTTP(w, r)
	})
	if t.provider == nil {
		return inner
	}
	return otelhttp.NewHandler(inner, operation, otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
		return r.Method + " " + r.URL.Path
	}))
}

// ClientTransport wraps the transport of a client of a third party
// (Etsy) with client spans. It sends no traceparent header: our trace ids
// are none of the other side's business.
func ClientTransport(rt http.RoundTripper) http.RoundTripper {
	if rt == nil {
		rt = http.DefaultTransport
	}
	return otelhttp.NewTransport(rt, otelhttp.WithPropagators(propagation.NewCompositeTextMapPropagator()))
}

// Tracer is the tracer of shopledger's own spans.
func Tracer() trace.Tracer { return otel.Tracer("github.com/shopledger/shopledger") }

// TraceParent is the W3C traceparent of the span in ctx, or "" when there
// is none (tracing is off, or the trace is not sampled).
func TraceParent(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() || !sc.IsSampled() {
		return ""
	}
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	return carrier.Get("traceparent")
}

// FromTraceParent returns ctx continuing the trace a traceparent names
// (one stored in an event's metadata); without one ctx is returned as it
// is.
func FromTraceParent(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": traceparent})
}

// sentryHandler passes every record on and reports those at ERROR and
// above to Sentry.
type sentryHandler struct {
	next   slog.Handler
	hub    *sentry.Hub
	attrs  []slog.Attr
	prefix string // the groups opened so far, dotted
}

func (h *sentryHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelError || h.next.Enabled(ctx, l)
}

func (h *sentryHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		h.report(ctx, r)
	}
	if !h.next.Enabled(ctx, r.Level) {
		return nil
	}
	return h.next.Handle(ctx, r)
}

func (h *sentryHandler) report(ctx context.Context, r slog.Record) {
	extras := map[string]any{}
	var errs []error
	add := func(prefix string, a slog.Attr) {
		v := a.Value.Resolve()
		if err, ok := v.Any().(error); ok {
			errs = append(errs, err)
		}
		extras[prefix+a.Key] = v.String()
	}
	for _, a := range h.attrs {
		add("", a)
	}
	r.Attrs(func(a slog.Attr) bool {
		add(h.prefix, a)
		return true
	})
	hub := h.hub.Clone()
	hub.ConfigureScope(func(s *sentry.Scope) {
		s.SetLevel(sentry.LevelError)
		s.SetContext("log", sentry.Context(extras))
		tagTrace(ctx, s)
	})
	if len(errs) == 0 {
		hub.CaptureMessage(r.Message)
		return
	}
	// The message says what failed; the error why. Sentry groups by both.
	err := errs[0]
	if len(errs) > 1 {
		err = errors.Join(errs...)
	}
	hub.CaptureException(fmt.Errorf("%s: %w", r.Message, err))
}

func (h *sentryHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(as)
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), prefixed(h.prefix, as)...)
	return &c
}

func (h *sentryHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	c.prefix = h.prefix + name + "."
	return &c
}

func prefixed(prefix string, as []slog.Attr) []slog.Attr {
	if prefix == "" {
		return as
	}
	out := make([]slog.Attr, len(as))
	for i, a := range as {
		out[i] = slog.Attr{Key: prefix + a.Key, Value: a.Value}
	}
	return out
}

// tagTrace ties a Sentry event to the trace it happened in.
func tagTrace(ctx context.Context, s *sentry.Scope) {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		s.SetTag("trace_id", sc.TraceID().String())
	}
}
