package telemetry_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shopledger/shopledger/telemetry"
)

func TestRegister(t *testing.T) {
	newCounter := func() prometheus.Counter { return telemetry.Counter("test_total", "A counter.") }
	if err := telemetry.Register(nil, newCounter()); err != nil {
		t.Errorf("Register on a nil registry = %v, want nil", err)
	}
	reg := prometheus.NewRegistry()
	gauge := telemetry.Gauge("test_gauge", "A gauge.")
	if err := telemetry.Register(reg, newCounter(), gauge); err != nil {
		t.Fatal(err)
	}
	n, err := testutil.GatherAndCount(reg, "test_total", "test_gauge")
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("gathered %d series of test_total and test_gauge, want 2", n)
	}
	err = telemetry.Register(reg, newCounter())
	var are prometheus.AlreadyRegisteredError
	if !errors.As(err, &are) {
		t.Errorf("registering a name twice = %v, want an AlreadyRegisteredError", err)
	}
}

// The constructors carry name, help, buckets and labels into what a
// scrape shows.
func TestConstructorsShowInTheExposition(t *testing.T) {
	reg := prometheus.NewRegistry()
	runs := telemetry.CounterVec("test_runs_total", "Runs by result.", "result")
	depth := telemetry.GaugeVec("test_depth", "Depth by queue.", "queue")
	took := telemetry.HistogramVec("test_took_seconds", "Time taken by step.", []float64{0.5, 2}, "step")
	once := telemetry.Histogram("test_once_seconds", "Time taken once.", []float64{1})
	if err := telemetry.Register(reg, runs, depth, took, once); err != nil {
		t.Fatal(err)
	}
	runs.WithLabelValues("ok").Add(3)
	depth.WithLabelValues("mail").Set(2)
	took.WithLabelValues("fetch").Observe(1)
	once.Observe(0.25)
	want := `
# HELP test_depth Depth by queue.
# TYPE test_depth gauge
test_depth{queue="mail"} 2
# HELP test_once_seconds Time taken once.
# TYPE test_once_seconds histogram
test_once_seconds_bucket{le="1"} 1
test_once_seconds_bucket{le="+Inf"} 1
test_once_seconds_sum 0.25
test_once_seconds_count 1
# HELP test_runs_total Runs by result.
# TYPE test_runs_total counter
test_runs_total{result="ok"} 3
# HELP test_took_seconds Time taken by step.
# TYPE test_took_seconds histogram
test_took_seconds_bucket{step="fetch",le="0.5"} 0
test_took_seconds_bucket{step="fetch",le="2"} 1
test_took_seconds_bucket{step="fetch",le="+Inf"} 1
test_took_seconds_sum{step="fetch"} 1
test_took_seconds_count{step="fetch"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}
