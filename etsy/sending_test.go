package etsy_test

import (
	"testing"

	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/etsy/etsysim"
)

// WithSending's function runs once per request, before Etsy sees it.
func TestWithSendingRunsBeforeEachRequest(t *testing.T) {
	e := newEnv(t, envOptions{sim: etsysim.Options{FreezeClock: true}})
	served := func() int64 { return e.sim.Stats().Keys[etsysim.DefaultKeyString].Served }
	var calls int
	var servedAtCall []int64
	ctx := etsy.WithSending(ctxT(t), func() {
		calls++
		servedAtCall = append(servedAtCall, served())
	})
	before := served()
	if _, err := e.client.GetMe(ctx, e.ts); err != nil {
		t.Fatal(err)
	}
	if calls != 1 || servedAtCall[0] != before || served() != before+1 {
		t.Errorf("called %d times, Etsy had served %v at the calls, %d before and %d after; want one call before Etsy served it", calls, servedAtCall, before, served())
	}
}
