package ingest_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/etsy/etsysim"
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/ingest"
	"github.com/shopledger/shopledger/projections"
	"github.com/shopledger/shopledger/projections/engine"
	"github.com/shopledger/shopledger/service/servicetest"
)

// Every consumer of the log reads only below the oldest transaction that
// holds a transaction id, anywhere in the cluster. These tests make Etsy
// slow for the fetcher and check that the rest of the ledger does not
// wait with it.

// slowWorld is the simulator delivering webhooks to the endpoint, the
// fetcher following them, and the products projection consuming the log.
type slowWorld struct {
	*pipeline
	sim     *etsysim.Sim
	shop    etsysim.ShopInfo
	listing etsysim.ListingTruth
	projReg *prometheus.Registry
}

func newSlowWorld(t *testing.T) *slowWorld {
	t.Helper()
	e := newEtsyRig(t, etsysim.Options{})
	// The client as cmd/ingest configures it: one retry that waits out a
	// 429's retry-after, and a timeout longer than the simulator's delay.
	client, err := etsy.NewClient(etsy.Config{
		BaseURL: e.srv.URL, KeyString: etsysim.DefaultKeyString, SharedSecret: etsysim.DefaultSharedSecret,
		HTTPClient: ingest.EtsyHTTPClient(time.Minute), MaxRetries: 1,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.client = client
	p := newPipeline(t, e, ingest.FetcherConfig{SettleWindow: -1})
	shop, err := e.sim.CreateShop(etsysim.ShopSpec{Name: "SlowShop"})
	if err != nil {
		t.Fatal(err)
	}
	e.connect(t, shop.ShopID)
	if _, err := e.sim.AddWebhook(etsysim.WebhookSpec{URL: p.srv.URL + ingest.WebhookPath, Secret: secretA}); err != nil {
		t.Fatal(err)
	}
	l, err := e.sim.CreateListing(shop.ShopID, etsysim.ListingSpec{Title: "Mug", Quantity: 999, SKU: "MUG"})
	if err != nil {
		t.Fatal(err)
	}
	p.run(t)
	// The listing is imported while Etsy is still quick.
	waitFor(t, func() bool { return len(streamOf(t, p.store, events.ListingStream(l.ListingID))) > 0 })

	reg := prometheus.NewRegistry()
	runner, err := engine.NewRunner(p.db.DB, []engine.Projection{projections.NewProducts()}, engine.RunnerConfig{
		PollInterval: 50 * time.Millisecond, LagInterval: 200 * time.Millisecond,
	}, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runner.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("projections: %v", err)
		}
	})
	return &slowWorld{pipeline: p, sim: e.sim, shop: shop, listing: l, projReg: reg}
}

func (w *slowWorld) order(t *testing.T) etsysim.ReceiptTruth {
	t.Helper()
	r, err := w.sim.CreateOrder(w.shop.ShopID, etsysim.OrderSpec{Items: []etsysim.OrderItem{{ListingID: w.listing.ListingID, SKU: "MUG", Quantity: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// xidHolders lists the sessions of the test's database (other than the
// asking one) whose transaction has been open for over a second while
// holding a transaction id or sitting idle: what would hold back every
// consumer while the fetcher waits on Etsy.
func xidHolders(t *testing.T, p *pipeline) []string {
	t.Helper()
	rows, err := p.db.DB.Query(`
SELECT pid, state, coalesce(backend_xid::text, ''), extract(epoch FROM now() - xact_start)::numeric(10, 1)::text, left(query, 80)
FROM pg_stat_activity
WHERE datname = $1 AND pid <> pg_backend_pid() AND xact_start < now() - interval '1 second'
  AND (backend_xid IS NOT NULL OR state LIKE 'idle in transaction%')`, p.db.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var pid int
		var state, xid, age, query string
		if err := rows.Scan(&pid, &state, &xid, &age, &query); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("pid %d %s xid %q for %ss: %s", pid, state, xid, age, query))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestFetcherHoldsNoTransactionIDWhileEtsyIsSlow(t *testing.T) {
	t.Parallel()
	w := newSlowWorld(t)
	const held = 8 * time.Second
	if err := w.sim.SetAPIFaults(etsysim.APIFaults{ResourceDelay: held}); err != nil {
		t.Fatal(err)
	}
	r := w.order(t)
	waitFor(t, func() bool { return w.sim.Stats().ResourceDelayed > 0 })
	heldSince := time.Now()

	// A consumer of another group, as the projector's are, must see an
	// event appended now while the fetcher is still waiting for Etsy.
	probe, err := eventstore.NewSubscriber(w.db.DB, eventstore.SubscriberConfig{ConsumerGroup: "horizon-probe", PollInterval: 20 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { probe.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs, err := probe.Subscribe(ctx, eventstore.Topic)
	if err != nil {
		t.Fatal(err)
	}
	marker := events.New(events.ShopStream(w.shop.ShopID), w.shop.ShopID, time.Now(), events.ShopSettingsChanged{ShopID: w.shop.ShopID})
	appended := time.Now()
	if _, err := w.store.Append(context.Background(), marker.StreamID, eventstore.Any, marker); err != nil {
		t.Fatal(err)
	}

	var seen time.Duration
	samples := 0
	for until := heldSince.Add(held / 2); time.Now().Before(until); {
		for _, h := range xidHolders(t, w.pipeline) {
			t.Errorf("while Etsy held the fetch: %s", h)
		}
		samples++
		select {
		case m := <-msgs:
			m.Ack()
			if m.UUID == marker.ID.String() && seen == 0 {
				seen = time.Since(appended)
			}
		case <-time.After(100 * time.Millisecond):
		}
	}
	if n := len(streamOf(t, w.store, events.ReceiptStream(r.ReceiptID))); n != 0 {
		t.Fatalf("the receipt has %d events already: Etsy did not hold the fetch", n)
	}
	if seen == 0 || seen > 2*time.Second {
		t.Errorf("a consumer of another group saw an event appended during the fetch after %v, want within 2s", seen)
	}
	t.Logf("%d samples of pg_stat_activity over %v of a held fetch; probe consumer saw the new event after %v", samples, time.Since(heldSince).Round(time.Millisecond), seen.Round(time.Millisecond))

	// Once Etsy answers, the fetcher records the sale.
	if err := w.sim.SetAPIFaults(etsysim.APIFaults{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(streamOf(t, w.store, events.ReceiptStream(r.ReceiptID))) >= 2 })
	drain(msgs)
}

func drain(msgs <-chan *message.Message) {
	for {
		select {
		case m, ok := <-msgs:
			if !ok {
				return
			}
			m.Ack()
		default:
			return
		}
	}
}

// While Etsy makes the fetcher wait (answers delayed, or 429 with a long
// retry-after), orders keep arriving as webhooks, and the projector must
// keep consuming their evidence: its lag stays under 2 s. Etsy's delay
// here is 20 s rather than the 60 s seen in production, to bound the
// test; a fetcher that held a transaction id while it waited would
// already hold projection lag near 20 s.
func TestSlowEtsyDoesNotStallProjections(t *testing.T) {
	t.Parallel()
	const slow = 20 * time.Second
	for _, tc := range []struct {
		name   string
		faults etsysim.APIFaults
	}{
		{"delayed", etsysim.APIFaults{ResourceDelay: slow}},
		{"rate limited", etsysim.APIFaults{ResourceRetryAfter: slow}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newSlowWorld(t)
			if err := w.sim.SetAPIFaults(tc.faults); err != nil {
				t.Fatal(err)
			}
			var maxLag float64
			orders := 0
			for until := time.Now().Add(slow); time.Now().Before(until); {
				w.order(t)
				orders++
				time.Sleep(250 * time.Millisecond)
				lag := servicetest.Metric(t, w.projReg, "shopledger_projection_lag_seconds", map[string]string{"projection": "products"})
				maxLag = max(maxLag, lag)
			}
			wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer wcancel()
			if err := w.sim.WaitDeliveries(wctx); err != nil {
				t.Fatal(err)
			}
			st := w.sim.Stats()
			if st.ResourceDelayed+st.ResourceThrottled == 0 {
				t.Fatal("the fetcher never met the slow Etsy")
			}
			var evidence, recorded int
			if err := w.db.DB.QueryRow(`SELECT count(*) FILTER (WHERE type = $1), count(*) FILTER (WHERE type = $2) FROM events`,
				events.TypeWebhookReceived, events.TypeSaleRecorded).Scan(&evidence, &recorded); err != nil {
				t.Fatal(err)
			}
			t.Logf("%d orders, %d webhooks stored, %d sales recorded by the fetcher, resource fetches delayed %d and refused %d; products lag at most %.2fs over %d samples",
				orders, evidence, recorded, st.ResourceDelayed, st.ResourceThrottled, maxLag, orders)
			if evidence < orders {
				t.Errorf("%d webhooks stored for %d orders", evidence, orders)
			}
			if maxLag >= 2 {
				t.Errorf("products projection lag reached %.2fs while Etsy was slow, want under 2s", maxLag)
			}
			// Unblock the fetcher so that it stops promptly.
			if err := w.sim.SetAPIFaults(etsysim.APIFaults{}); err != nil {
				t.Fatal(err)
			}
		})
	}
}
