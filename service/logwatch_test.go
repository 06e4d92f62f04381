package service_test

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/service"
	"github.com/shopledger/shopledger/service/servicetest"
)

// Every binary opens its database through OpenDB: a log restored from a
// cluster that ran ahead is refused with the fix in the message, until
// `ledger migrate`'s AdoptMovedLog adopts it.
func TestOpenDBRefusesALogRestoredFromAnotherCluster(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	if _, err := db.DB.ExecContext(ctx, `INSERT INTO events (transaction_id, event_id, stream_id, stream_version, type, schema_version, data, occurred_at)
		VALUES (log_shift_xid(pg_snapshot_xmax(pg_current_snapshot()), 4000000), gen_random_uuid(), 'receipt-1', 1, 'sale.paid', 1, '{"receipt_id": 1}', now())`); err != nil {
		t.Fatal(err)
	}
	_, _, err := service.OpenDB(ctx, db.URL, 2, nil)
	if !errors.Is(err, eventstore.ErrLogOutOfOrder) || !strings.Contains(err.Error(), "ledger migrate") {
		t.Fatalf("OpenDB = %v, want ErrLogOutOfOrder naming the fix", err)
	}

	reg := prometheus.NewRegistry()
	ready := &service.Readiness{}
	service.WatchLog(reg, ready, db.DB, time.Second)
	rec := httptest.NewRecorder()
	ready.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	body, _ := io.ReadAll(rec.Body)
	if rec.Code != 503 || !strings.Contains(string(body), "log:") {
		t.Errorf("/readyz on an unadopted log = %d %q, want 503 naming the log", rec.Code, body)
	}

	sdb, pool, err := service.OpenDB(ctx, db.URL, 2, nil, service.AdoptMovedLog())
	if err != nil {
		t.Fatalf("OpenDB with AdoptMovedLog: %v", err)
	}
	sdb.Close()
	pool.Close()
	sdb, pool, err = service.OpenDB(ctx, db.URL, 2, nil)
	if err != nil {
		t.Fatalf("OpenDB after adopting: %v", err)
	}
	sdb.Close()
	pool.Close()
}

// A transaction that holds an id without appending (an operator's BEGIN
// in psql) hides nothing. An appending transaction left open while others
// append hides their events from every consumer: the metrics show it at
// the next scrape, and /readyz names the transaction once the events have
// been hidden past the grace period.
func TestHorizonHolderShowsInMetricsAndReadiness(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	s := eventstore.New(db.DB)
	reg := prometheus.NewRegistry()
	ready := &service.Readiness{}
	service.WatchLog(reg, ready, db.DB, 500*time.Millisecond)
	hidden := func() float64 { return servicetest.Metric(t, reg, "shopledger_log_hidden_events", nil) }

	stranger, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Rollback(ctx) //nolint:errcheck // test cleanup
	if _, err := stranger.Exec(ctx, `SET LOCAL application_name = 'psql'; SELECT pg_current_xact_id()`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "listing-1", eventstore.NoStream, adjustedEvent(1)); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(reg, "shopledger_log_hidden_events"); err != nil || n != 1 {
		t.Fatalf("gathered %d series of shopledger_log_hidden_events (%v), want one gauge", n, err)
	}
	// Other tests' appenders may hold the horizon for a moment.
	deadline := time.Now().Add(30 * time.Second)
	for hidden() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := hidden(); got != 0 {
		t.Errorf("with a stranger's transaction open, shopledger_log_hidden_events = %v, want 0", got)
	}

	holder, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(ctx) //nolint:errcheck // test cleanup
	if _, err := holder.Exec(ctx, `SET LOCAL application_name = 'stuck-appender'; SELECT log_announce(); SELECT pg_current_xact_id()`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "listing-2", eventstore.NoStream, adjustedEvent(2)); err != nil {
		t.Fatal(err)
	}
	if got := hidden(); got < 1 {
		t.Errorf("shopledger_log_hidden_events = %v, want at least the appended event", got)
	}
	time.Sleep(700 * time.Millisecond)
	rec := httptest.NewRecorder()
	ready.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	body, _ := io.ReadAll(rec.Body)
	if rec.Code != 503 || !strings.Contains(string(body), "hidden from consumers") || !strings.Contains(string(body), "stuck-appender") {
		t.Errorf("/readyz with events hidden = %d %q, want 503 naming the holding transaction", rec.Code, body)
	}
	if err := holder.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		rec = httptest.NewRecorder()
		ready.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		if rec.Code == 200 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if rec.Code != 200 {
		t.Errorf("/readyz after the holder ended = %d %q, want 200", rec.Code, rec.Body.String())
	}
}

func adjustedEvent(listing int64) events.Event {
	return events.New(events.ListingStream(listing), 7, time.Now(), events.StockAdjusted{
		ListingID: listing, VariantKey: "sku:A", Delta: 1, Reason: events.ReasonRestock,
	})
}
