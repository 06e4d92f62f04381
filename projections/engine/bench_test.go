package engine_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/shopledger/shopledger/projections/engine"
	"github.com/shopledger/shopledger/projections/internal/projtest"

	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/projections"
)

// benchEvents is the size of the generated log; catch-up is timed over
// its first catchUpEvents.
const (
	benchEvents   = 1_000_000
	catchUpEvents = 200_000
)

// generateLogSQL appends events $1..$2 of a generated log straight into
// the events table (INSERT is what the log allows; this skips the
// eventstore only to make a million events in seconds). The mix, by event
// number: 20 shops connect, 5,000 listings of 3 variants are imported with
// initial stock, then in every 20 events: 5 webhook evidence events (with
// raw bodies), 4 receipts recorded, 4 stock.sold, 2 status facts (paid,
// shipped), 1 restock, 1 stock.observed, 1 listing.updated, 1 threshold
// or drift, 1 reconciliation or settings change.
const generateLogSQL = `
INSERT INTO events (event_id, stream_id, stream_version, type, schema_version, data, metadata, shop_id, occurred_at)
SELECT gen_random_uuid(), 'bench-' || (i % 1000), i / 1000 + 1, g.type, g.ver, g.data, '{"source": "bench"}', g.shop,
       timestamptz '2026-01-01 00:00:00+00' + make_interval(secs => i)
FROM generate_series($1::bigint, $2::bigint) AS i
CROSS JOIN LATERAL (
	SELECT CASE WHEN i <= 5020 THEN i - 20 WHEN i <= 20020 THEN 1 + (i - 5021) / 3 ELSE 1 + ((i * 7919) % 5000) END AS l,
	       CASE WHEN i <= 20020 THEN (i - 5021) % 3 ELSE i % 3 END AS v,
	       1 + (((i - 4) * 7919) % 5000) AS sold_l,
	       (i - 4) % 3 AS sold_v,
	       i % 20 AS k
) x
CROSS JOIN LATERAL (
	SELECT 10000 + x.l AS listing, 100 + (x.l % 20) AS lshop,
	       'sku:L' || (10000 + x.l) || '-' || x.v AS key,
	       10000 + x.sold_l AS sold_listing, 'sku:L' || (10000 + x.sold_l) || '-' || x.sold_v AS sold_key
) y
CROSS JOIN LATERAL (
	SELECT * FROM (VALUES (
	CASE
		WHEN i <= 20 THEN 'shop.connected'
		WHEN i <= 5020 THEN 'listing.imported'
		WHEN i <= 20020 THEN 'stock.adjusted'
		WHEN x.k < 5 THEN 'etsy.webhook.received'
		WHEN x.k < 9 THEN 'sale.recorded'
		WHEN x.k < 13 THEN 'stock.sold'
		WHEN x.k = 13 THEN 'sale.paid'
		WHEN x.k = 14 THEN 'sale.shipped'
		WHEN x.k = 15 THEN 'stock.adjusted'
		WHEN x.k = 16 THEN 'stock.observed'
		WHEN x.k = 17 THEN 'listing.updated'
		WHEN x.k = 18 AND i % 40 = 18 THEN 'stock.threshold_set'
		WHEN x.k = 18 THEN 'stock.drift_detected'
		WHEN i % 40 = 19 THEN 'reconciliation.completed'
		ELSE 'shop.settings_changed'
	END,
	CASE WHEN i > 20020 AND x.k = 18 AND i % 40 = 18 THEN 2 ELSE 1 END,
	CASE
		WHEN i <= 20 THEN jsonb_build_object('shop_id', 99 + i, 'shop_name', 'Bench shop ' || i, 'user_id', 5000 + i, 'currency', 'EUR')
		WHEN i <= 5020 OR (i > 20020 AND x.k = 17) THEN jsonb_build_object('listing_id', y.listing, 'shop_id', y.lshop,
			'title', 'Listing ' || y.listing || ' #' || i, 'state', 'active', 'url', 'https://www.etsy.com/listing/' || y.listing,
			'price', jsonb_build_object('amount', 1250, 'currency', 'EUR'),
			'variants', jsonb_build_array(
				jsonb_build_object('key', 'sku:L' || y.listing || '-0', 'sku', 'L' || y.listing || '-0', 'product_id', i * 3, 'properties', 'Size: S', 'price', jsonb_build_object('amount', 1250, 'currency', 'EUR'), 'enabled', true),
				jsonb_build_object('key', 'sku:L' || y.listing || '-1', 'sku', 'L' || y.listing || '-1', 'product_id', i * 3 + 1, 'properties', 'Size: M', 'price', jsonb_build_object('amount', 1250, 'currency', 'EUR'), 'enabled', true),
				jsonb_build_object('key', 'sku:L' || y.listing || '-2', 'sku', 'L' || y.listing || '-2', 'product_id', i * 3 + 2, 'properties', 'Size: L', 'price', jsonb_build_object('amount', 1350, 'currency', 'EUR'), 'enabled', true)),
			'etsy_updated_at', to_char(timestamptz '2026-01-01 00:00:00+00' + make_interval(secs => i), 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
		WHEN i <= 20020 THEN jsonb_build_object('listing_id', y.listing, 'variant_key', y.key, 'delta', 50, 'reason', 'initial_import', 'cause', 'reconciliation')
		WHEN x.k < 5 THEN jsonb_build_object('webhook_id', 'msg_' || i, 'timestamp', 1767225600 + i, 'event_type', 'order.paid',
			'resource_url', 'https://openapi.etsy.com/v3/application/shops/' || y.lshop || '/receipts/' || i, 'shop_id', y.lshop,
			'headers', jsonb_build_object('webhook-id', 'msg_' || i, 'webhook-timestamp', (1767225600 + i)::text, 'content-type', 'application/json'),
			'raw_body', encode(convert_to('{"event_type":"order.paid","resource_url":"https://openapi.etsy.com/v3/application/shops/' || y.lshop || '/receipts/' || i || '","shop_id":' || y.lshop || ',"user_id":1,"timestamp":' || (1767225600 + i) || '}', 'UTF8'), 'base64'),
			'received_at', to_char(timestamptz '2026-01-01 00:00:00+00' + make_interval(secs => i), 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
		WHEN x.k < 9 THEN jsonb_build_object('receipt_id', i, 'shop_id', y.lshop, 'status', 'paid',
			'items', jsonb_build_array(jsonb_build_object('transaction_id', i * 10, 'listing_id', y.listing, 'variant_key', y.key, 'sku', substr(y.key, 5), 'title', 'Listing ' || y.listing, 'quantity', 1 + i % 3, 'unit_price', jsonb_build_object('amount', 1250, 'currency', 'EUR'))),
			'subtotal', jsonb_build_object('amount', 1250 * (1 + i % 3), 'currency', 'EUR'), 'shipping', jsonb_build_object('amount', 400, 'currency', 'EUR'),
			'tax', jsonb_build_object('amount', 0, 'currency', 'EUR'), 'discount', jsonb_build_object('amount', 0, 'currency', 'EUR'),
			'grand_total', jsonb_build_object('amount', 1250 * (1 + i % 3) + 400, 'currency', 'EUR'),
			'created_at', to_char(timestamptz '2026-01-01 00:00:00+00' + make_interval(secs => i), 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
			'etsy_updated_at', to_char(timestamptz '2026-01-01 00:00:00+00' + make_interval(secs => i), 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
		WHEN x.k < 13 THEN jsonb_build_object('listing_id', y.sold_listing, 'variant_key', y.sold_key, 'quantity', 1 + (i - 4) % 3, 'receipt_id', i - 4, 'transaction_id', (i - 4) * 10)
		WHEN x.k = 13 THEN jsonb_build_object('receipt_id', i - 8)
		WHEN x.k = 14 THEN jsonb_build_object('receipt_id', i - 8, 'carrier', 'dhl', 'tracking_code', 'T' || i)
		WHEN x.k = 15 THEN jsonb_build_object('listing_id', y.listing, 'variant_key', y.key, 'delta', 5, 'reason', 'restock', 'cause', 'actor:bench')
		WHEN x.k = 16 THEN jsonb_build_object('listing_id', y.listing, 'variant_key', y.key, 'quantity', 40, 'source', 'reconciliation',
			'observed_at', to_char(timestamptz '2026-01-01 00:00:00+00' + make_interval(secs => i), 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
		WHEN x.k = 18 AND i % 40 = 18 THEN jsonb_build_object('scope', 'variant', 'shop_id', y.lshop, 'listing_id', y.listing, 'variant_key', y.key, 'threshold', 3, 'actor', 'bench')
		WHEN x.k = 18 THEN jsonb_build_object('listing_id', y.listing, 'variant_key', y.key, 'expected', 41, 'observed', 40)
		WHEN i % 40 = 19 THEN jsonb_build_object('shop_id', y.lshop, 'started_at', '2026-01-01T00:00:00Z', 'finished_at', '2026-01-01T00:00:01Z', 'watermark', '2026-01-01T00:00:00Z', 'receipts_seen', 3, 'listings_seen', 4, 'api_calls', 5, 'duration_ms', 1000, 'scope', 'all')
		ELSE jsonb_build_object('shop_id', y.lshop, 'sync_enabled', true, 'default_low_stock_threshold', i % 7)
	END,
	CASE WHEN i <= 20 THEN 99 + i ELSE y.lshop END
	)) AS g(type, ver, data, shop)
) g`

// generateLog fills the log with n events in chunks of 10,000, one
// transaction each.
func generateLog(b testing.TB, db *pgtest.Database, n int64) {
	b.Helper()
	ctx := context.Background()
	for from := int64(1); from <= n; from += 10000 {
		if _, err := db.DB.ExecContext(ctx, generateLogSQL, from, min(from+9999, n)); err != nil {
			b.Fatalf("generate events %d..: %v", from, err)
		}
	}
	if _, err := db.DB.ExecContext(ctx, `ANALYZE events`); err != nil {
		b.Fatal(err)
	}
}

// passed reports whether every group's committed offset is at or past
// position n (positions grow with transaction ids in the generated log).
func passed(b *testing.B, db *pgtest.Database, groups []string, n int64) bool {
	b.Helper()
	var k int
	err := db.DB.QueryRow(`SELECT count(*) FROM event_offsets WHERE consumer_group = ANY($1) AND offset_acked >= $2`, groups, n).Scan(&k)
	if err != nil {
		b.Fatal(err)
	}
	return k == len(groups)
}

// BenchmarkProjector measures, on a generated log of a million events:
// COPY of the log to stdout (the baseline), live catch-up of every built-in
// projection and the seal from zero (over the first catchUpEvents), and a
// rebuild of every read model from the whole log by the projector binary,
// with its peak resident memory. It does the work
// once whatever b.N is (make bench runs it with -benchtime 1x).
func BenchmarkProjector(b *testing.B) {
	db := pgtest.New(b)
	ctx := context.Background()
	start := time.Now()
	generateLog(b, db, benchEvents)
	b.Logf("generated %d events in %s", benchEvents, time.Since(start).Round(time.Millisecond))
	bin := buildProjector(b)
	b.ResetTimer()

	// Baseline: the log as COPY hands it out, in position order.
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	start = time.Now()
	tag, err := conn.Conn().PgConn().CopyTo(ctx, io.Discard, `COPY (SELECT position, transaction_id, event_id, stream_id, stream_version, type,
		schema_version, data, metadata, shop_id, occurred_at, recorded_at, dedupe_key FROM events ORDER BY position) TO STDOUT`)
	copyOut := time.Since(start)
	conn.Release()
	if err != nil {
		b.Fatal(err)
	}
	if tag.RowsAffected() != benchEvents {
		b.Fatalf("COPY wrote %d rows, want %d", tag.RowsAffected(), benchEvents)
	}
	fmt.Printf("BENCH copy_out_events_per_s %.0f events/s\n", benchEvents/copyOut.Seconds())

	// Live catch-up from zero: every built-in projection and the seal,
	// each its own consumer group, as the projector runs them. The rate is
	// measured over the first catchUpEvents of the log so that make bench
	// stays within its time limit; the groups apply every event type of the
	// mix from the start.
	projs := projections.Default()
	cfg := engine.RunnerConfig{PollInterval: 50 * time.Millisecond, AckDeadline: time.Minute, RetryInterval: time.Second}
	r, err := engine.NewRunner(db.DB, projs, cfg, projtest.Logger(b), nil)
	if err != nil {
		b.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	start = time.Now()
	go func() { done <- r.Run(runCtx) }()
	for !passed(b, db, projtest.Names(projs), catchUpEvents) {
		if time.Since(start) > 20*time.Minute {
			b.Fatal("projections did not catch up within 20 minutes")
		}
		time.Sleep(200 * time.Millisecond)
	}
	catchUp := time.Since(start)
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	if err := r.Ready(ctx); err != nil {
		b.Fatalf("a projection stopped during catch-up: %v", err)
	}
	fmt.Printf("BENCH projector_catchup_events_per_s %.0f events/s\n", catchUpEvents/catchUp.Seconds())

	// Rebuild every read model with the projector binary.
	cmd := exec.Command(bin, "rebuild")
	cmd.Env = append(os.Environ(), "SHOPLEDGER_DATABASE_URL="+db.URL, "SHOPLEDGER_LOG_LEVEL=warn")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start = time.Now()
	if err := cmd.Run(); err != nil {
		b.Fatalf("projector rebuild: %v\n%s", err, out.String())
	}
	rebuild := time.Since(start)
	b.Logf("projector rebuild: %s", out.String())
	fmt.Printf("BENCH rebuild_events_per_s %.0f events/s\n", benchEvents/rebuild.Seconds())
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		// Linux reports ru_maxrss in KiB.
		fmt.Printf("BENCH rebuild_peak_rss_mib %s MiB\n", strconv.FormatFloat(float64(ru.Maxrss)/1024, 'f', 1, 64))
	}
}

// TestBenchLogDecodesAndFolds keeps the benchmark's generated log honest:
// every generated payload decodes into the vocabulary and folds.
func TestBenchLogDecodesAndFolds(t *testing.T) {
	db := pgtest.New(t)
	generateLog(t, db, 24000)
	// A rebuild reads only below the server-wide oldest running
	// transaction; other packages' tests on a shared server can hold it
	// back for a while after the log was written.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var ahead int
		if err := db.DB.QueryRow(`SELECT count(*) FROM events WHERE transaction_id >= log_horizon()`).Scan(&ahead); err != nil {
			t.Fatal(err)
		}
		if ahead == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d generated events still above the snapshot horizon after 2 minutes", ahead)
		}
		time.Sleep(50 * time.Millisecond)
	}
	targets, _ := projtest.Rebuildable(t)
	rep, err := engine.Rebuild(context.Background(), db.Pool, targets, engine.RebuildOptions{}, projtest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rows["sales"] == 0 || rep.Rows["stock_movements"] == 0 || rep.Rows["product_variants"] != 15000 || rep.Rows["shops"] != 20 {
		t.Errorf("rebuild of the generated log: %v", rep.Rows)
	}
	var negative int
	if err := db.DB.QueryRow(`SELECT count(*) FROM product_variants WHERE quantity < 0`).Scan(&negative); err != nil {
		t.Fatal(err)
	}
	if negative != 0 {
		t.Errorf("%d variants sold below zero: the generated sales outrun the stock", negative)
	}
}
