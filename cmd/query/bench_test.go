package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/service/servicetest"
	"github.com/shopledger/shopledger/tokens"
)

// Dataset of the query benchmark: 20 sellers with 5 shops each, 1,000
// variants per shop (250 listings × 4), 9 movements per variant and one
// busy variant with 100,000 more: 1,000,000 movements.
const (
	benchSellers          = 20
	benchShops            = 100
	benchListingsPerShop  = 250
	benchVariantsPer      = 4
	benchMovementsPer     = 9
	benchBusyMovements    = 100_000
	benchRate             = 500 // requests per second
	benchDuration         = 20 * time.Second
	benchWarmUp           = 2 * time.Second // not measured, see BenchmarkQueryAPI
	benchHistoryRate      = 100
	benchHistoryDuration  = 5 * time.Second
	benchListings         = benchShops * benchListingsPerShop
	benchMovementsPerVar  = benchMovementsPer
	benchBusyListing      = 1
	benchBusyVariantKey   = "SKU-1-1"
	benchSeedStatementMax = 10 * time.Minute
)

// seedQueryBench fills the read models with SQL. The benchmark measures
// the query service, so the rows are written straight into the tables the
// projector owns (in the shape its Apply writes them) instead of folding
// a million events first; the projector's own benchmark covers that.
func seedQueryBench(b *testing.B, db *pgtest.Database) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), benchSeedStatementMax)
	defer cancel()
	stmts := []string{
		fmt.Sprintf(`INSERT INTO shops (shop_id, user_id, name, currency, connection_state, updated_at, last_position)
			SELECT s, 1000 + (s - 1) / %d, 'Shop ' || s, 'EUR', 'connected', now(), 0 FROM generate_series(1, %d) s`,
			benchShops/benchSellers, benchShops),
		fmt.Sprintf(`INSERT INTO products (shop_id, listing_id, title, state, url, price_amount, price_currency, created_at, updated_at, last_position)
			SELECT (l - 1) / %d + 1, l, 'Listing ' || l, 'active', 'https://etsy.example/listing/' || l, 1500, 'EUR', now(), now(), 0
			FROM generate_series(1, %d) l`, benchListingsPerShop, benchListings),
		fmt.Sprintf(`INSERT INTO product_variants (shop_id, listing_id, variant_key, sku, properties, price_amount, price_currency, active, quantity, updated_at, last_position)
			SELECT (l - 1) / %d + 1, l, 'SKU-' || l || '-' || v, 'SKU-' || l || '-' || v, 'Size: ' || v, 1500, 'EUR', true, 0, now(), 0
			FROM generate_series(1, %d) l, generate_series(1, %d) v`, benchListingsPerShop, benchListings, benchVariantsPer),
		fmt.Sprintf(`INSERT INTO stock_movements (shop_id, listing_id, variant_key, seq, delta, balance, reason, cause, event_id, position, occurred_at, recorded_at)
			SELECT shop_id, listing_id, variant_key, m, delta, sum(delta) OVER (PARTITION BY listing_id, variant_key ORDER BY m),
			       CASE WHEN m = 1 THEN 'initial_import' WHEN delta < 0 THEN 'sale' ELSE 'restock' END, 'reconciliation',
			       gen_random_uuid(), row_number() OVER (), at, at
			FROM (
			    SELECT pv.shop_id, pv.listing_id, pv.variant_key, m,
			           CASE WHEN m = 1 THEN 20 ELSE (m %% 3) - 1 END AS delta,
			           timestamptz '2026-01-01' + (m * interval '1 hour') + (pv.listing_id * interval '1 second') AS at
			    FROM product_variants pv, generate_series(1, %d) m
			) g`, benchMovementsPerVar),
		fmt.Sprintf(`INSERT INTO stock_movements (shop_id, listing_id, variant_key, seq, delta, balance, reason, cause, event_id, position, occurred_at, recorded_at)
			SELECT 1, %d, '%s', m, delta, 18 + sum(delta) OVER (ORDER BY m), 'restock', 'reconciliation', gen_random_uuid(), 10000000 + m, at, at
			FROM (SELECT m, (m %% 3) - 1 AS delta, timestamptz '2026-02-01' + m * interval '1 minute' AS at
			      FROM generate_series(%d, %d) m) g`, benchBusyListing, benchBusyVariantKey, benchMovementsPerVar+1, benchMovementsPerVar+benchBusyMovements),
		`UPDATE product_variants pv SET quantity = b.balance, last_movement_at = b.occurred_at
			FROM (SELECT DISTINCT ON (listing_id, variant_key) listing_id, variant_key, balance, occurred_at
			      FROM stock_movements ORDER BY listing_id, variant_key, seq DESC) b
			WHERE b.listing_id = pv.listing_id AND b.variant_key = pv.variant_key`,
		// A live database is vacuumed; without this the benchmark would
		// measure autovacuum and hint-bit writes over the fresh million rows.
		`VACUUM (ANALYZE)`,
	}
	for _, s := range stmts {
		if _, err := db.DB.ExecContext(ctx, s); err != nil {
			b.Fatalf("seed: %v\n%s", err, s)
		}
	}
	var n int64
	if err := db.DB.QueryRowContext(ctx, `SELECT count(*) FROM stock_movements`).Scan(&n); err != nil {
		b.Fatal(err)
	}
	if n != benchShops*benchListingsPerShop*benchVariantsPer*benchMovementsPer+benchBusyMovements {
		b.Fatalf("seeded %d movements", n)
	}
}

// startQueryBinary builds and starts cmd/query as its own process, so that
// its resident memory and its runtime settings are its own: it inherits
// the environment but GOGC, and env adds to it.
func startQueryBinary(tb testing.TB, dbURL string, env ...string) (base, ops string, peakRSS func() int64) {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), "query")
	goBin := os.Getenv("GO")
	if goBin == "" {
		goBin = "go"
	}
	if out, err := exec.Command(goBin, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		tb.Fatalf("build cmd/query: %v\n%s", err, out)
	}
	cmd := exec.Command(bin)
	inherited := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "GOGC=") })
	cmd.Env = append(inherited,
		"SHOPLEDGER_DATABASE_URL="+pgtest.WithUser(dbURL, pgtest.QueryRole),
		"SHOPLEDGER_QUERY_ADDR=127.0.0.1:0",
		"SHOPLEDGER_QUERY_OPS_ADDR=127.0.0.1:0",
		"SHOPLEDGER_QUERY_TOKEN_RATE=0",
		"SHOPLEDGER_QUERY_ADDRESS_RATE=0",
		"SHOPLEDGER_LOG_LEVEL=warn",
	)
	cmd.Env = append(cmd.Env, env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	})
	base, ops = servicetest.ReadURLs(tb, stdout, true)
	pid := cmd.Process.Pid
	return base, ops, func() int64 {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			tb.Fatal(err)
		}
		for _, line := range strings.Split(string(raw), "\n") {
			if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				return kb / 1024
			}
		}
		tb.Fatal("no VmHWM in /proc status")
		return 0
	}
}

// openLoop sends requests on a fixed schedule, whatever the answers take,
// and measures each from its scheduled time, so a stall shows in the
// percentiles instead of slowing the load (no coordinated omission).
func openLoop(b *testing.B, client *http.Client, rate int, d time.Duration, next func(i int) (url, token string)) []time.Duration {
	b.Helper()
	n := int(d.Seconds() * float64(rate))
	interval := time.Second / time.Duration(rate)
	lat := make([]time.Duration, n)
	var failed sync.Map
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		at := start.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(at))
		url, token := next(i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := client.Do(req)
			if err != nil {
				failed.Store(url, err.Error())
				lat[i] = time.Since(at)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			lat[i] = time.Since(at)
			if resp.StatusCode != http.StatusOK {
				failed.Store(url, resp.Status)
			}
		}()
	}
	wg.Wait()
	failed.Range(func(k, v any) bool {
		b.Fatalf("GET %v: %v", k, v)
		return false
	})
	return lat
}

// quantile returns the q-quantile (0 < q <= 1) in milliseconds.
func quantile(lat []time.Duration, q float64) float64 {
	s := slices.Clone(lat)
	slices.Sort(s)
	i := int(float64(len(s))*q+0.999999) - 1
	return float64(s[max(i, 0)].Microseconds()) / 1000
}

// BenchmarkQueryAPI measures product detail and stock lookups at 500
// requests/s for 20 s (query_p99_ms), pages of a busy variant's history
// (history_p99_ms), and the query process's peak resident memory. It does
// its work once per invocation (make bench runs -benchtime 1x).
func BenchmarkQueryAPI(b *testing.B) {
	db := pgtest.New(b)
	seedQueryBench(b, db)
	secrets := make([]string, benchSellers)
	for i := range secrets {
		secret, _, err := tokens.NewStore(db.DB).Create(context.Background(), tokens.NewToken{SellerID: int64(1000 + i), Role: tokens.RoleSeller})
		if err != nil {
			b.Fatal(err)
		}
		secrets[i] = secret
	}
	base, _, peakRSS := startQueryBinary(b, db.URL)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, Timeout: 30 * time.Second}
	rng := rand.New(rand.NewPCG(8, 8))
	shopsPerSeller := benchShops / benchSellers

	lookup := func(i int) (string, string) {
		listing := 1 + rng.IntN(benchListings)
		shop := (listing-1)/benchListingsPerShop + 1
		token := secrets[(shop-1)/shopsPerSeller]
		if i%2 == 0 {
			return fmt.Sprintf("%s/v1/products/%d", base, listing), token
		}
		at := time.Date(2026, 1, 1, 1+rng.IntN(12), 0, 0, 0, time.UTC).Format(time.RFC3339)
		return fmt.Sprintf("%s/v1/products/%d/variants/SKU-%d-%d/stock?as_of=%s", base, listing, listing, 1+rng.IntN(benchVariantsPer), at), token
	}
	// Warm up at the same rate before measuring: the first second of a
	// fresh process opens its client and database connections (up to
	// 0.4-1 s for the first requests on two cores), which is start-up,
	// not the serving latency sellers see. The warm-up is logged.
	warm := openLoop(b, client, benchRate, benchWarmUp, lookup)
	b.Logf("warm-up: p50 %.2f ms, p99 %.2f ms, max %.2f ms over %d", quantile(warm, .5), quantile(warm, .99), quantile(warm, 1), len(warm))

	b.ResetTimer()
	for range b.N {
		lat := openLoop(b, client, benchRate, benchDuration, lookup)
		hist := openLoop(b, client, benchHistoryRate, benchHistoryDuration, func(i int) (string, string) {
			q := "order=desc&limit=100"
			if i%2 == 1 {
				// A page somewhere in the middle, as a client walking the
				// cursor gets it (the cursor is the last seq of a page).
				cursor := base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, `{"s":%d}`, rng.IntN(benchBusyMovements)))
				q = "limit=100&cursor=" + cursor
			}
			return fmt.Sprintf("%s/v1/products/%d/variants/%s/history?%s", base, benchBusyListing, benchBusyVariantKey, q), secrets[0]
		})
		b.StopTimer()
		b.Logf("lookups: p50 %.2f ms, p99 %.2f ms, max %.2f ms over %d", quantile(lat, .5), quantile(lat, .99), quantile(lat, 1), len(lat))
		b.Logf("history: p50 %.2f ms, p99 %.2f ms, max %.2f ms over %d", quantile(hist, .5), quantile(hist, .99), quantile(hist, 1), len(hist))
		fmt.Printf("BENCH query_p99_ms %.2f ms\n", quantile(lat, .99))
		fmt.Printf("BENCH history_p99_ms %.2f ms\n", quantile(hist, .99))
		fmt.Printf("BENCH query_peak_rss_mib %d MiB\n", peakRSS())
		b.StartTimer()
	}
}
