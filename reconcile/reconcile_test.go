package reconcile_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/etsy/etsysim"
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/reconcile"
	"github.com/shopledger/shopledger/service/servicetest"
	"github.com/shopledger/shopledger/shops"
)

var activity = []string{
	etsysim.StepOrder, etsysim.StepOrder, etsysim.StepRestock, etsysim.StepOrder, etsysim.StepEdit,
	etsysim.StepShip, etsysim.StepOrder, etsysim.StepCancel, etsysim.StepDeliver, etsysim.StepOrder,
}

// webhookSink counts webhooks that reach the ledger's endpoint.
func webhookSink(t *testing.T, status int) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// The first test: the simulator drops every webhook, and one
// reconciliation makes the ledger equal the simulator's truth; running it
// again appends nothing.
func TestOneRunRepairsEveryDroppedWebhook(t *testing.T) {
	e := newEnv(t, envOptions{sim: etsysim.Options{Faults: etsysim.Faults{Drop: 1}}})
	sink, received := webhookSink(t, http.StatusNoContent)
	if _, err := e.sim.AddWebhook(etsysim.WebhookSpec{URL: sink.URL}); err != nil {
		t.Fatal(err)
	}
	shop := e.shop("Dropped", 12)
	e.steps(40, 7*time.Minute, activity...)

	first := e.run(shop.ShopID, reconcile.ScopeAll)
	e.assertLedgerEqualsTruth(shop.ShopID)
	if first.DriftFound != 0 {
		t.Errorf("first run found %d drift; a first import is not drift", first.DriftFound)
	}
	if !first.ReceiptsFrom.Equal(first.StartedAt.Add(-reconcile.DefaultLookback)) {
		t.Errorf("first run read receipts from %s, want the 90-day lookback from %s", first.ReceiptsFrom, first.StartedAt)
	}

	// More happens at Etsy, none of it announced.
	e.steps(60, 5*time.Minute, activity...)
	refunded := false
	for _, r := range e.sim.Receipts(shop.ShopID) {
		if !r.IsCanceled && r.GrandTotal > 500 {
			if _, err := e.sim.RefundOrder(r.ReceiptID, 500, "damaged"); err != nil {
				t.Fatal(err)
			}
			refunded = true
			break
		}
	}
	if !refunded {
		t.Fatal("no receipt to refund")
	}
	gone := e.sim.Listings(shop.ShopID)[1].ListingID
	if err := e.sim.DeleteListing(gone); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sim.CreateListing(shop.ShopID, etsysim.ListingSpec{Title: "New mug", Quantity: 6, SKU: "MUG-NEW", Price: 2400}); err != nil {
		t.Fatal(err)
	}
	e.sim.Advance(time.Minute)
	if err := e.sim.WaitDeliveries(context.Background()); err != nil {
		t.Fatal(err)
	}

	second := e.run(shop.ShopID, reconcile.ScopeAll)
	e.assertLedgerEqualsTruth(shop.ShopID)
	if second.Appended == 0 || second.DriftFound == 0 || second.ListingsDeleted != 1 {
		t.Errorf("second run: %+v; want appended events, drift from the unannounced restocks and one deleted listing", second)
	}
	if !second.ReceiptsFrom.Equal(first.StartedAt.Add(-reconcile.DefaultOverlap)) {
		t.Errorf("second run read receipts from %s, want the watermark %s less 30 minutes", second.ReceiptsFrom, first.StartedAt)
	}
	if st := e.sim.Stats(); st.WebhookDropped == 0 || received.Load() != 0 {
		t.Fatalf("webhooks: %d dropped, %d received; the test needs every one dropped", st.WebhookDropped, received.Load())
	}

	// Running again appends nothing but its own completion.
	before := e.eventCount()
	third := e.run(shop.ShopID, reconcile.ScopeAll)
	if third.Appended != 0 || third.DriftFound != 0 {
		t.Errorf("third run appended %d events and found %d drift, want none", third.Appended, third.DriftFound)
	}
	if got := e.eventCount() - before; got != 1 {
		t.Errorf("third run added %d events to the log, want 1 (reconciliation.completed)", got)
	}

	// Each run is closed by reconciliation.completed, whose id every
	// event of the run names as its cause.
	recs, err := e.es.ReadStream(context.Background(), reconcile.Stream(shop.ShopID), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 {
		t.Fatalf("%d reconciliation.completed events, want 3", len(recs))
	}
	got := recs[1].Data.(events.ReconciliationCompleted)
	want := events.ReconciliationCompleted{
		ShopID: shop.ShopID, StartedAt: second.StartedAt, FinishedAt: second.FinishedAt, Watermark: second.StartedAt,
		ReceiptsSeen: second.ReceiptsSeen, ListingsSeen: second.ListingsSeen, EventsAppended: second.Appended,
		DriftFound: second.DriftFound, APICalls: second.APICalls, DurationMillis: second.FinishedAt.Sub(second.StartedAt).Milliseconds(),
		Scope: "all",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("second reconciliation.completed (-want +got):\n%s", diff)
	}
	if recs[1].ID != second.RunID {
		t.Errorf("completed event id %s, want the run id %s", recs[1].ID, second.RunID)
	}
	var caused int
	if err := e.db.DB.QueryRow(`SELECT count(*) FROM events WHERE metadata->>'causation_id' = $1`, second.RunID.String()).Scan(&caused); err != nil {
		t.Fatal(err)
	}
	if caused != second.Appended {
		t.Errorf("%d events name the second run as cause, want %d", caused, second.Appended)
	}
	if second.APICalls < 7 {
		t.Errorf("second run counted %d API calls; it needs at least 2 receipt and 5 listing pages", second.APICalls)
	}
	if got := servicetest.Metric(t, e.reg, "shopledger_reconcile_runs_total", map[string]string{"result": "ok"}); got != 3 {
		t.Errorf("runs{ok} = %v, want 3", got)
	}
	if got := servicetest.Metric(t, e.reg, "shopledger_reconcile_drift_total", nil); got != float64(second.DriftFound) {
		t.Errorf("drift metric = %v, want %d", got, second.DriftFound)
	}
}

func TestRunThatDiesMidwayLeavesTheWatermark(t *testing.T) {
	e := newEnv(t, envOptions{})
	shop := e.shop("Fragile", 6)
	e.steps(20, 5*time.Minute, activity...)
	first := e.run(shop.ShopID, reconcile.ScopeAll)
	e.steps(20, 5*time.Minute, activity...)

	// Etsy's listings endpoint fails after the receipts were read.
	e.front.mu.Lock()
	e.front.fault = func(_ int, r *http.Request) (int, http.Header, string, bool) {
		return http.StatusInternalServerError, nil, `{"error":"Server Error"}`, r.URL.Path == "/v3/application/shops/"+itoa(shop.ShopID)+"/listings"
	}
	e.front.mu.Unlock()
	e.sim.Advance(time.Hour)
	_, err := e.rec.Run(context.Background(), shop.ShopID, reconcile.ScopeAll)
	if err == nil {
		t.Fatal("run succeeded through a failing listings endpoint")
	}
	var wm time.Time
	var result string
	if err := e.db.DB.QueryRow(`SELECT receipts_watermark, last_result FROM reconcile_state WHERE shop_id = $1`, shop.ShopID).Scan(&wm, &result); err != nil {
		t.Fatal(err)
	}
	if !wm.Equal(first.StartedAt) || result != "failed" {
		t.Errorf("after the failed run: watermark %s result %q, want %s and failed", wm.UTC(), result, first.StartedAt)
	}
	recs, _ := e.es.ReadStream(context.Background(), reconcile.Stream(shop.ShopID), 0)
	if len(recs) != 1 {
		t.Errorf("%d reconciliation.completed events, want 1", len(recs))
	}
	if got := servicetest.Metric(t, e.reg, "shopledger_reconcile_runs_total", map[string]string{"result": "failed"}); got != 1 {
		t.Errorf("runs{failed} = %v, want 1", got)
	}

	e.front.mu.Lock()
	e.front.fault = nil
	e.front.mu.Unlock()
	third := e.run(shop.ShopID, reconcile.ScopeAll)
	if !third.ReceiptsFrom.Equal(first.StartedAt.Add(-reconcile.DefaultOverlap)) {
		t.Errorf("the next run read receipts from %s, want the old watermark less the overlap", third.ReceiptsFrom)
	}
	e.assertLedgerEqualsTruth(shop.ShopID)
}

// After 30 hours of downtime, past Etsy's ~27.6-hour retry
// horizon, the sender has given up and reconciliation recovers everything.
func TestThirtyHourOutageIsRecovered(t *testing.T) {
	e := newEnv(t, envOptions{})
	down, received := webhookSink(t, http.StatusServiceUnavailable)
	if _, err := e.sim.AddWebhook(etsysim.WebhookSpec{URL: down.URL}); err != nil {
		t.Fatal(err)
	}
	shop := e.shop("Outage", 8)
	first := e.run(shop.ShopID, reconcile.ScopeAll)

	// Orders, restocks, cancellations in the first hour, then Etsy
	// retrying into a dead endpoint for thirty hours until it gives up
	// (its last attempt comes about 27.6 hours after the first).
	e.steps(30, 2*time.Minute, activity...)
	for range 60 {
		e.sim.Advance(30 * time.Minute)
		if err := e.sim.WaitDeliveries(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	st := e.sim.Stats()
	if st.WebhookMessages == 0 || st.WebhookFailed != st.WebhookMessages || st.WebhookPending != 0 || received.Load() == 0 {
		t.Fatalf("webhooks: %d messages, %d failed for good, %d pending, %d attempts received; want all given up after retries",
			st.WebhookMessages, st.WebhookFailed, st.WebhookPending, received.Load())
	}
	second := e.run(shop.ShopID, reconcile.ScopeAll)
	if got := second.StartedAt.Sub(first.StartedAt); got < 30*time.Hour {
		t.Fatalf("the outage lasted %s, want at least 30h", got)
	}
	e.assertLedgerEqualsTruth(shop.ShopID)
}

func TestReauthRequiredStopsPolling(t *testing.T) {
	e := newEnv(t, envOptions{})
	shop := e.shop("Revoked", 3)
	other := e.shop("Fine", 3)
	if err := e.sim.RevokeTokens(shop.UserID); err != nil {
		t.Fatal(err)
	}
	e.sim.Advance(2 * time.Hour)
	_, err := e.rec.Run(context.Background(), shop.ShopID, reconcile.ScopeAll)
	if !errors.Is(err, etsy.ErrInvalidGrant) || !errors.Is(err, shops.ErrReauthRequired) {
		t.Fatalf("run = %v, want invalid_grant and reauth required", err)
	}
	if got := servicetest.Metric(t, e.reg, "shopledger_reconcile_runs_total", map[string]string{"result": "reauth_required"}); got != 1 {
		t.Errorf("runs{reauth_required} = %v, want 1", got)
	}
	sched, err := e.rec.Schedule(context.Background(), e.store, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, s := range sched {
		ids = append(ids, s.ShopID)
	}
	if diff := cmp.Diff([]int64{other.ShopID}, ids); diff != "" {
		t.Errorf("scheduled shops (-want +got):\n%s", diff)
	}
}

func TestScheduleFollowsSettingsMostStaleFirst(t *testing.T) {
	e := newEnv(t, envOptions{})
	never := e.shop("Never", 1)
	old := e.shop("Old", 1)
	recent := e.shop("Recent", 1)
	off := e.shop("Off", 1)
	e.run(old.ShopID, reconcile.ScopeAll)
	e.sim.Advance(20 * time.Minute)
	e.run(recent.ShopID, reconcile.ScopeAll)
	e.sim.Advance(5 * time.Minute)
	e.run(off.ShopID, reconcile.ScopeAll)
	e.sim.Advance(time.Minute)
	hour, no := int64(3600), false
	for _, ch := range []events.ShopSettingsChanged{
		{ShopID: recent.ShopID, SyncIntervalSeconds: &hour},
		{ShopID: off.ShopID, SyncEnabled: &no},
	} {
		if _, err := e.es.Append(context.Background(), events.ShopStream(ch.ShopID), eventstore.Any,
			events.New(events.ShopStream(ch.ShopID), ch.ShopID, e.sim.Now(), ch)); err != nil {
			t.Fatal(err)
		}
	}
	sched, err := e.rec.Schedule(context.Background(), e.store, 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		Shop     int64
		Enabled  bool
		Interval time.Duration
		DueNow   bool
	}
	var got []row
	now := e.sim.Now()
	for _, s := range sched {
		got = append(got, row{s.ShopID, s.SyncEnabled, s.Interval, !now.Before(s.Due)})
	}
	want := []row{
		{never.ShopID, true, 15 * time.Minute, true},
		{old.ShopID, true, 15 * time.Minute, true},
		{recent.ShopID, true, time.Hour, false},
		{off.ShopID, false, 15 * time.Minute, false},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("schedule (-want +got):\n%s", diff)
	}
}

// Each completed run records the interval that polls the shop: the
// scheduler's default until the shop has one of its own.
func TestCompletedRunsRecordTheIntervalInForce(t *testing.T) {
	e := newEnv(t, envOptions{defaultInterval: 5 * time.Minute})
	shop := e.shop("Intervals", 1)
	e.run(shop.ShopID, reconcile.ScopeAll)
	hour := int64(3600)
	ch := events.ShopSettingsChanged{ShopID: shop.ShopID, SyncIntervalSeconds: &hour}
	if _, err := e.es.Append(context.Background(), events.ShopStream(shop.ShopID), eventstore.Any,
		events.New(events.ShopStream(shop.ShopID), shop.ShopID, e.sim.Now(), ch)); err != nil {
		t.Fatal(err)
	}
	e.run(shop.ShopID, reconcile.ScopeAll)
	recs, err := e.es.ReadStream(context.Background(), reconcile.Stream(shop.ShopID), 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, r := range recs {
		got = append(got, r.Data.(events.ReconciliationCompleted).IntervalSeconds)
	}
	if diff := cmp.Diff([]int64{300, 3600}, got); diff != "" {
		t.Errorf("intervals recorded (-want +got):\n%s", diff)
	}
}

// A refusal by Etsy's rate limiter (another process spent the key's
// second) is waited out for all callers, and the run completes.
func TestRateLimitRefusalsAreWaitedOut(t *testing.T) {
	e := newEnv(t, envOptions{})
	shop := e.shop("Throttled", 8)
	e.steps(20, 5*time.Minute, activity...)
	e.front.mu.Lock()
	e.front.fault = func(n int, _ *http.Request) (int, http.Header, string, bool) {
		h := http.Header{"Retry-After": {"1"}, "X-Remaining-This-Second": {"0"}}
		return http.StatusTooManyRequests, h, `{"error":"Exceeded per second rate limit"}`, n == 3 || n == 6
	}
	e.front.mu.Unlock()
	e.run(shop.ShopID, reconcile.ScopeAll)
	e.assertLedgerEqualsTruth(shop.ShopID)

	e.front.mu.Lock()
	defer e.front.mu.Unlock()
	if diff := cmp.Diff([]int{3, 6}, e.front.faulted); diff != "" {
		t.Fatalf("429s answered (-want +got):\n%s", diff)
	}
	for _, n := range e.front.faulted {
		// A lower bound only: the client must not come back before
		// retry-after has passed.
		if gap := e.front.arrivals[n].Sub(e.front.arrivals[n-1]); gap < 900*time.Millisecond {
			t.Errorf("request %d came %s after the 429 with retry-after 1", n+1, gap)
		}
	}
	if got := servicetest.Metric(t, e.reg, "etsy_requests_total", map[string]string{"status": "429"}); got != 2 {
		t.Errorf("etsy_requests_total{status=429} = %v, want 2", got)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
