package telemetry_test

import (
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

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
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(families) != 2 {
		t.Errorf("gathered %d families, want 2", len(families))
	}
	err = telemetry.Register(reg, newCounter())
	var are prometheus.AlreadyRegisteredError
	if !errors.As(err, &are) {
		t.Errorf("registering a name twice = %v, want an AlreadyRegisteredError", err)
	}
}
