package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopledger/shopledger/telemetry"
)

type metrics struct {
	duration     *prometheus.HistogramVec
	authFailures *prometheus.CounterVec
	rateLimited  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		duration: telemetry.HistogramVec("shopledger_query_http_request_duration_seconds",
			"Time to answer a query API request, by route pattern, method and status.", []float64{.001, .0025, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5, 10}, "route", "method", "status"),
		authFailures: telemetry.CounterVec("shopledger_query_auth_failures_total",
			"Requests refused for a missing or invalid API token.", "reason"),
		rateLimited: telemetry.CounterVec("shopledger_query_rate_limited_total",
			"Requests refused with 429, by which limiter refused them.", "limiter"),
	}
	if err := telemetry.Register(reg, m.duration, m.authFailures, m.rateLimited); err != nil {
		return nil, err
	}
	return m, nil
}

// observe records every request under its route pattern (never the raw
// path, whose ids would make the label set unbounded).
func (m *metrics) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		route := "unmatched"
		if rc := chi.RouteContext(r.Context()); rc != nil {
			if p := rc.RoutePattern(); p != "" {
				route = p
			}
		}
		status := ww.Status()
		if status == 0 {
			status = http.StatusOK
		}
		m.duration.WithLabelValues(route, r.Method, strconv.Itoa(status)).Observe(time.Since(start).Seconds())
	})
}
