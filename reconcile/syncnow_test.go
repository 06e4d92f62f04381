package reconcile_test

import (
	"context"
	"testing"
	"time"

	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/reconcile"
)

// "Sync now" makes a shop due at once, even with polling off, until a run
// starts after the request.
func TestSyncRequestMakesTheShopDue(t *testing.T) {
	e := newEnv(t, envOptions{})
	recent := e.shop("Recent", 1)
	off := e.shop("Off", 1)
	e.run(recent.ShopID, reconcile.ScopeAll)
	e.run(off.ShopID, reconcile.ScopeAll)
	no := false
	ch := events.ShopSettingsChanged{ShopID: off.ShopID, SyncEnabled: &no}
	if _, err := e.es.Append(context.Background(), events.ShopStream(off.ShopID), eventstore.Any, events.New(events.ShopStream(off.ShopID), off.ShopID, e.sim.Now(), ch)); err != nil {
		t.Fatal(err)
	}
	e.sim.Advance(time.Minute)
	due := func() map[int64]bool {
		t.Helper()
		sched, err := e.rec.Schedule(context.Background(), e.store, 15*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		out := map[int64]bool{}
		now := e.sim.Now()
		for _, s := range sched {
			out[s.ShopID] = (s.SyncEnabled || s.SyncRequested) && !now.Before(s.Due)
		}
		return out
	}
	if got := due(); got[recent.ShopID] || got[off.ShopID] {
		t.Fatalf("due before any request: %v", got)
	}
	q := reconcile.SyncRequests{DB: e.db.DB}
	for _, id := range []int64{recent.ShopID, off.ShopID} {
		if err := q.RequestSync(context.Background(), id, e.sim.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if got := due(); !got[recent.ShopID] || !got[off.ShopID] {
		t.Fatalf("requested shops not due: %v", got)
	}
	if at, err := q.SyncRequested(context.Background(), off.ShopID); err != nil || !at.Equal(e.sim.Now().UTC().Truncate(time.Microsecond)) {
		t.Fatalf("recorded request %v (%v)", at, err)
	}
	e.sim.Advance(time.Second)
	e.run(recent.ShopID, reconcile.ScopeAll)
	if got := due(); got[recent.ShopID] || !got[off.ShopID] {
		t.Fatalf("after the run: %v, want only the unanswered request due", got)
	}
}
