package telemetry_test

import (
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shopledger/shopledger/telemetry"
)

func TestRegister(t *testing.T) {
	newCounter := func() prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "test_total", Help: "A counter."})
	}
	if err := telemetry.Register(nil, newCounter()); err != nil {
		t.Errorf("Register on a nil registry = %v, want nil", err)
	}
	reg := prometheus.NewRegistry()
	gauge := prometheus.NewGauge(prometheus.GaugeOpts{Name: "test_gauge", Help: "A gauge."})
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
