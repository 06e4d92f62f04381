package reconcile_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shopledger/shopledger/etsy/etsysim"
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/ingest"
	"github.com/shopledger/shopledger/reconcile"
	"github.com/shopledger/shopledger/service/servicetest"
	"github.com/shopledger/shopledger/shops"
)

// The shop store is what the fetcher and reconciliation get their tokens
// from.
var (
	_ ingest.TokenSources    = (*shops.Store)(nil)
	_ reconcile.TokenSources = (*shops.Store)(nil)
	_ reconcile.ShopLister   = (*shops.Store)(nil)
)

// webhookPath runs the real webhook endpoint and fetcher against the
// simulator, with the shop store's tokens.
func (e *env) webhookPath() {
	e.t.Helper()
	u, err := url.Parse(e.srv.URL)
	if err != nil {
		e.t.Fatal(err)
	}
	committer, err := ingest.NewCommitter(e.es, ingest.CommitterConfig{}, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(committer.Close)
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	handler, err := ingest.NewWebhookHandler(committer, ingest.WebhookConfig{Secrets: []string{secret}, Now: e.sim.Now, Logger: e.logger()}, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	hooks := httptest.NewServer(handler)
	e.t.Cleanup(hooks.Close)
	if _, err := e.sim.AddWebhook(etsysim.WebhookSpec{URL: hooks.URL, Secret: secret}); err != nil {
		e.t.Fatal(err)
	}
	fetcher, err := ingest.NewFetcher(e.db.DB, e.es, e.client, e.store, e.tr, ingest.FetcherConfig{
		Policy: ingest.URLPolicy{Hosts: []string{u.Host}, AllowHTTP: true}, Backoff: 5 * time.Millisecond,
		PollInterval: 20 * time.Millisecond, Now: e.sim.Now, Logger: e.logger(),
	}, e.reg)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fetcher.Run(ctx) }()
	e.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			e.t.Errorf("fetcher: %v", err)
		}
	})
}

// waitFetched waits until the fetcher has dealt with every stored webhook.
func (e *env) waitFetched() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := e.sim.WaitDeliveries(ctx); err != nil {
		e.t.Fatal(err)
	}
	for {
		var evidence int
		if err := e.db.DB.QueryRow(`SELECT count(*) FROM events WHERE type = $1`, events.TypeWebhookReceived).Scan(&evidence); err != nil {
			e.t.Fatal(err)
		}
		var done float64
		for _, o := range []string{ingest.OutcomeApplied, ingest.OutcomeIgnored, ingest.OutcomeFailed} {
			if v := servicetest.Metric(e.t, e.reg, "ingest_fetch_total", map[string]string{"outcome": o}); v > 0 {
				done += v
			}
		}
		if int(done) >= evidence {
			return
		}
		select {
		case <-ctx.Done():
			e.t.Fatalf("fetcher handled %v of %d webhooks", done, evidence)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// The simulator drops one webhook in ten; the fetcher applies
// the rest; one reconciliation makes the ledger whole, appending only what
// was missed.
func TestTenPercentDroppedWebhooksAreRecovered(t *testing.T) {
	e := newEnv(t, envOptions{sim: etsysim.Options{Faults: etsysim.Faults{Drop: 0.1}, QPS: 100}, clientQPS: 100})
	e.webhookPath()
	shop := e.shop("Leaky", 10)
	e.run(shop.ShopID, reconcile.ScopeAll)

	e.steps(80, 3*time.Minute, activity...)
	e.waitFetched()
	st := e.sim.Stats()
	if st.WebhookDropped == 0 || st.WebhookSucceeded == 0 {
		t.Fatalf("webhooks: %d dropped, %d delivered; the test needs both", st.WebhookDropped, st.WebhookSucceeded)
	}
	var fromWebhooks int
	if err := e.db.DB.QueryRow(`SELECT count(*) FROM events WHERE metadata->>'source' = 'webhook' AND type = $1`, events.TypeSaleRecorded).Scan(&fromWebhooks); err != nil {
		t.Fatal(err)
	}
	if fromWebhooks == 0 {
		t.Fatal("the webhook path recorded no sale; the test would prove nothing")
	}

	sum := e.run(shop.ShopID, reconcile.ScopeAll)
	e.assertLedgerEqualsTruth(shop.ShopID)
	if sum.Appended == 0 {
		t.Errorf("reconciliation appended nothing, yet %d webhooks were dropped", st.WebhookDropped)
	}
	before := e.eventCount()
	if again := e.run(shop.ShopID, reconcile.ScopeAll); again.Appended != 0 {
		t.Errorf("a second run appended %d events", again.Appended)
	}
	if got := e.eventCount() - before; got != 1 {
		t.Errorf("a second run added %d events, want only its reconciliation.completed", got)
	}
}

// Twenty shops reconciled at once by the scheduler share one
// limiter, and Etsy (the simulator, counting in any sliding second) never
// sees more than the key's QPS nor refuses a request.
func TestTwentyShopsNeverExceedTheKeysQPS(t *testing.T) {
	const qps = 10
	e := newEnv(t, envOptions{sim: etsysim.Options{QPS: qps}, clientQPS: qps})
	var ids []int64
	for i := range 20 {
		ids = append(ids, e.shop("Shop"+itoa(int64(i)), 2).ShopID)
	}
	e.steps(20, time.Minute, etsysim.StepOrder)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- e.rec.RunScheduler(ctx, reconcile.ScheduleConfig{Shops: e.store, Tick: 20 * time.Millisecond, Concurrency: 20})
	}()
	deadline := time.After(80 * time.Second)
	for {
		sched, err := e.rec.Schedule(context.Background(), e.store, 0)
		if err != nil {
			t.Fatal(err)
		}
		ok := 0
		for _, s := range sched {
			if !s.LastSuccess.IsZero() {
				ok++
			}
		}
		if ok == len(ids) {
			break
		}
		select {
		case <-deadline:
			t.Fatalf("%d of %d shops reconciled", ok, len(ids))
		case <-time.After(50 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	key := e.sim.Stats().Keys[etsysim.DefaultKeyString]
	if key.Served < 20*7 {
		t.Fatalf("the simulator served %d requests; 20 shops need at least 140", key.Served)
	}
	if key.MaxQPS > qps || key.RateLimited != 0 {
		t.Errorf("the simulator saw up to %d requests in one second (limit %d) and refused %d", key.MaxQPS, qps, key.RateLimited)
	}
	for _, id := range ids {
		if diff := cmp.Diff(e.truth(id), e.ledger(id)); diff != "" {
			t.Errorf("shop %d: ledger differs from the simulator (-want +got):\n%s", id, diff)
		}
	}
	if !servicetest.MetricExists(t, e.reg, "shopledger_reconcile_oldest_staleness_seconds", nil) {
		t.Errorf("staleness gauge missing")
	}
}
