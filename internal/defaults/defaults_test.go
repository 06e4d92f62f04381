package defaults_test

import (
	"testing"
	"time"

	"github.com/shopledger/shopledger/internal/defaults"
)

func TestPositiveKeepsOnlyASettingAboveZero(t *testing.T) {
	for _, c := range []struct {
		in, want time.Duration
	}{
		{0, time.Minute},
		{-time.Second, time.Minute},
		{time.Nanosecond, time.Nanosecond},
		{time.Hour, time.Hour},
	} {
		got := c.in
		defaults.Positive(&got, time.Minute)
		if got != c.want {
			t.Errorf("Positive(%v, 1m) = %v, want %v", c.in, got, c.want)
		}
	}
	workers := 0
	defaults.Positive(&workers, 8)
	if workers != 8 {
		t.Errorf("Positive(0, 8) = %d, want 8", workers)
	}
}
