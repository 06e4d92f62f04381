package webapp_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopledger/shopledger/accounts"
	"github.com/shopledger/shopledger/domain"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/httpapi"
	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/projections"
	"github.com/shopledger/shopledger/service"
	"github.com/shopledger/shopledger/tokens"
	"github.com/shopledger/shopledger/webapp"
)

// Data set of the stock pages' benchmark, the size of cmd/query's: 100
// shops of 250 listings × 4 variants (100,000 variants), 10 movements per
// variant over the last 90 days (1,000,000 movements) and 100,000 sales
// over the last 60 days. The organisation measured owns 5 of the shops,
// as each of cmd/query's 20 sellers does (5,000 variants, 50,000
// movements, 5,000 sales); the others are in the same tables, as other
// sellers' are on a shared database. BENCH_PAGES_ORG_SHOPS sets how many
// it owns, to see how the pages grow with a seller's size. Movements are mostly sales
// with restocks between them, so balances differ and some variants are
// low, and each low variant has its open alert. BENCH_PAGES_SCALE
// (default 1) multiplies the listings and sales, for a quick run on a
// small set (0.1) or a heavier one.
const (
	pagesBenchShops      = 100
	pagesBenchListings   = 250 // per shop
	pagesBenchVariants   = 4
	pagesBenchMovements  = 10
	pagesBenchSales      = 100_000
	pagesBenchRequests   = 200 // measured, per page
	pagesBenchWarmUp     = 10
	pagesBenchSeedMax    = 20 * time.Minute
	pagesBenchConnection = 10
	pagesBenchTimezone   = "Europe/Paris" // the owner's
)

// pagesBenchOrgShops is how many shops (the first ones) the organisation
// owns: 5 unless BENCH_PAGES_ORG_SHOPS says otherwise.
func pagesBenchOrgShops() int {
	if n, err := strconv.Atoi(os.Getenv("BENCH_PAGES_ORG_SHOPS")); err == nil && n > 0 && n <= pagesBenchShops {
		return n
	}
	return 5
}

func pagesBenchScale() float64 {
	if s, err := strconv.ParseFloat(os.Getenv("BENCH_PAGES_SCALE"), 64); err == nil && s > 0 {
		return s
	}
	return 1
}

// seedPagesBench writes the read models with SQL, in the shape the
// projections write them: the pages read, and folding events first would
// measure the projector (whose own benchmark does).
func seedPagesBench(b *testing.B, db *pgtest.Database, org int64) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), pagesBenchSeedMax)
	defer cancel()
	listings := max(1, int(float64(pagesBenchListings)*pagesBenchScale()))
	sales := max(1, int(float64(pagesBenchSales)*pagesBenchScale()))
	// h is a fixed pseudo-random number 0–99 per movement, so that every
	// run seeds the same data.
	stmts := []string{
		fmt.Sprintf(`INSERT INTO shops (shop_id, user_id, name, currency, connection_state, updated_at, last_position,
			    last_reconciliation_started_at, last_reconciliation_finished_at, last_reconciliation_drift)
			SELECT s, 5000 + s, 'Shop ' || s, 'EUR', 'connected', now(), 0, now() - interval '2 hours', now() - interval '2 hours' + interval '40 seconds', s %% 3
			FROM generate_series(1, %d) s`, pagesBenchShops),
		fmt.Sprintf(`INSERT INTO organisation_shops (shop_id, org_id) SELECT s, %d FROM generate_series(1, %d) s`, org, pagesBenchOrgShops()),
		fmt.Sprintf(`INSERT INTO products (shop_id, listing_id, title, state, url, price_amount, price_currency, created_at, updated_at, last_position)
			SELECT (l - 1) / %[1]d + 1, l, 'Listing ' || l, 'active', 'https://etsy.example/listing/' || l, 1500, 'EUR', now(), now() - l * interval '1 minute', 0
			FROM generate_series(1, %[2]d) l`, listings, listings*pagesBenchShops),
		fmt.Sprintf(`CREATE TEMP TABLE bench_moves AS
			SELECT (l - 1) / %[1]d + 1 AS shop_id, l AS listing_id, 'sku:SKU-' || l || '-' || v AS variant_key, m AS seq,
			       CASE WHEN m = 1 THEN 'initial_import' WHEN h < 70 THEN 'sale' ELSE 'restock' END AS reason,
			       CASE WHEN m = 1 THEN 8 + h %% 40 WHEN h < 70 THEN -(1 + h %% 3) ELSE 2 + h %% 6 END AS delta,
			       now() - interval '90 days' + (m - 1) * interval '9 days' + ((l * 13 + v * 5) %% 200) * interval '1 hour' AS at
			FROM generate_series(1, %[2]d) l, generate_series(1, %[3]d) v, generate_series(1, %[4]d) m,
			     LATERAL (SELECT (l * 31 + v * 17 + m * 7 + (l / 7) * m) %% 100 AS h) x`,
			listings, listings*pagesBenchShops, pagesBenchVariants, pagesBenchMovements),
		// A sale is a receipt's (stock.sold), the rest reconciliation's
		// (stock.adjusted); positions leave the log's first places to the
		// shops' connections (see logBenchSeed).
		fmt.Sprintf(`INSERT INTO stock_movements (shop_id, listing_id, variant_key, seq, delta, balance, reason, cause, receipt_id, transaction_id, event_id, position, occurred_at, recorded_at)
			SELECT shop_id, listing_id, variant_key, seq, delta, balance, reason,
			       CASE WHEN reason = 'sale' THEN 'receipt:' || (%[1]d + position) ELSE 'reconciliation' END,
			       CASE WHEN reason = 'sale' THEN %[1]d + position END, CASE WHEN reason = 'sale' THEN (%[1]d + position) * 10 END,
			       gen_random_uuid(), position, at, at
			FROM (SELECT *, sum(delta) OVER (PARTITION BY listing_id, variant_key ORDER BY seq) AS balance,
			             %[2]d + row_number() OVER (ORDER BY at, listing_id, variant_key) AS position
			      FROM bench_moves) m`, logBenchReceipts, pagesBenchShops),
		`INSERT INTO product_variants (shop_id, listing_id, variant_key, sku, properties, price_amount, price_currency, active, quantity, last_movement_at, updated_at, last_position)
			SELECT shop_id, listing_id, variant_key, substr(variant_key, 5), 'Size: ' || right(variant_key, 1), 1500, 'EUR', true, sum(delta), max(at), now(), 0
			FROM bench_moves GROUP BY shop_id, listing_id, variant_key`,
		`DROP TABLE bench_moves`,
		// Open alerts of the variants at or below the default line.
		fmt.Sprintf(`INSERT INTO alerts (alert_id, shop_id, listing_id, variant_key, status, threshold, quantity, raised_at, raised_event_id, last_position)
			SELECT gen_random_uuid(), shop_id, listing_id, variant_key, 'open', %[1]d, quantity, last_movement_at, gen_random_uuid(), 0
			FROM product_variants WHERE quantity <= %[1]d`, domain.DefaultLowStockThreshold),
		fmt.Sprintf(`INSERT INTO sales (shop_id, receipt_id, recorded, status, currency, subtotal, shipping, grand_total, item_count, units, created_at, updated_at, canceled_at)
			SELECT (r %% %[1]d) + 1, r, true, CASE WHEN r %% 13 = 0 THEN 'canceled' ELSE 'paid' END, 'EUR', 3000, 450, 3450, 1, 2,
			       now() - (r %% 86400) * interval '1 minute', now(), CASE WHEN r %% 13 = 0 THEN now() END
			FROM generate_series(1, %[2]d) r`, pagesBenchShops, sales),
		fmt.Sprintf(`INSERT INTO sale_items (shop_id, receipt_id, transaction_id, line, listing_id, variant_key, sku, title, quantity, unit_price, currency)
			SELECT s.shop_id, s.receipt_id, s.receipt_id * 10, 1, l, 'sku:SKU-' || l || '-1', 'SKU-' || l || '-1', 'Listing ' || l, 2, 1500, 'EUR'
			FROM sales s, LATERAL (SELECT (s.shop_id - 1) * %[1]d + 1 + (s.receipt_id %% %[1]d) AS l) x`, listings),
	}
	stmts = append(stmts, logBenchSeed()...)
	// One connection: bench_moves is a temporary table.
	conn, err := db.DB.Conn(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	for _, s := range stmts {
		start := time.Now()
		if _, err := conn.ExecContext(ctx, s); err != nil {
			b.Fatalf("seed: %v\n%s", err, s)
		}
		b.Logf("seed: %.1f s: %.60s", time.Since(start).Seconds(), strings.Join(strings.Fields(s), " "))
	}
	sealLogBench(ctx, b, conn)
	start := time.Now()
	if _, err := conn.ExecContext(ctx, `VACUUM (ANALYZE)`); err != nil {
		b.Fatalf("seed: %v", err)
	}
	b.Logf("seed: %.1f s: VACUUM (ANALYZE)", time.Since(start).Seconds())
}

// benchMailer keeps the messages the accounts store sends.
type benchMailer struct {
	mu   sync.Mutex
	sent []accounts.Message
}

func (m *benchMailer) Send(_ context.Context, msg accounts.Message) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sent = append(m.sent, msg)
	return nil
}

var benchTokenRE = regexp.MustCompile(`token=([A-Za-z0-9_%-]+)`)

// pagesBench is the seeded database and the pages' handler, signed in
// as the owner of the organisation.
type pagesBench struct {
	db       *pgtest.Database
	pages    http.Handler
	cookie   *http.Cookie
	listings int // the organisation's listings are 1…listings
}

func newPagesBench(b *testing.B) *pagesBench {
	b.Helper()
	db := pgtest.New(b)
	ctx := context.Background()
	qdb, qpool, err := service.OpenDB(ctx, db.RoleURL("shopledger_query"), pagesBenchConnection, nil, service.AllowNonDurable(true))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { qdb.Close(); qpool.Close() })
	mailer := &benchMailer{}
	store, err := accounts.New(accounts.Config{DB: qdb, Mailer: mailer, BaseURL: "https://bench.test",
		Argon2: accounts.Argon2Params{MemoryKiB: 64, Iterations: 1, Threads: 1}, Sessions: accounts.SessionConfig{Secure: true}})
	if err != nil {
		b.Fatal(err)
	}
	if err := store.SignUp(ctx, accounts.SignUp{Email: "bench@example.com", Password: password, Timezone: pagesBenchTimezone}, accounts.Client{}); err != nil {
		b.Fatal(err)
	}
	mailer.mu.Lock()
	m := benchTokenRE.FindStringSubmatch(mailer.sent[len(mailer.sent)-1].Body)
	mailer.mu.Unlock()
	if m == nil {
		b.Fatal("no verification link")
	}
	token, _ := url.QueryUnescape(m[1])
	user, err := store.Verify(ctx, token, accounts.Client{})
	if err != nil {
		b.Fatal(err)
	}
	var org int64
	if err := db.DB.QueryRow(`SELECT org_id FROM memberships WHERE user_id = $1`, user.ID).Scan(&org); err != nil {
		b.Fatal(err)
	}
	sid, err := store.NewSession(ctx, user.ID, org, accounts.Client{})
	if err != nil {
		b.Fatal(err)
	}
	seedPagesBench(b, db, org)

	readers := projections.NewReader(qdb, projections.ReaderConfig{DefaultThreshold: domain.DefaultLowStockThreshold})
	data := httpapi.Readers{Shops: readers, Products: readers, Stock: readers, Sales: readers, Events: readers, Alerts: httpapi.NewAlertStore(qdb), Thresholds: eventstore.New(qdb)}
	pages, err := webapp.New(webapp.Config{Accounts: store, Tokens: tokens.NewStore(qdb), Shops: readers, Data: data})
	if err != nil {
		b.Fatal(err)
	}
	return &pagesBench{db: db, pages: pages, cookie: &http.Cookie{Name: store.Sessions().CookieName(), Value: string(sid)},
		listings: max(1, int(float64(pagesBenchListings)*pagesBenchScale())) * pagesBenchOrgShops()}
}

// get serves path to the owner and returns the response and the time
// the handler took; anything but 200 fails the benchmark.
func (p *pagesBench) get(b *testing.B, path string) (*httptest.ResponseRecorder, time.Duration) {
	req := httptest.NewRequest(http.MethodGet, "https://bench.test"+path, nil)
	req.AddCookie(p.cookie)
	rec := httptest.NewRecorder()
	start := time.Now()
	p.pages.ServeHTTP(rec, req)
	took := time.Since(start)
	if rec.Code != http.StatusOK {
		b.Fatalf("GET %s: %d\n%s", path, rec.Code, rec.Body.String())
	}
	return rec, took
}

// pagesBenchCase is one measured page: path gives the i-th request's
// path. A page joins the benchmark with one more row in pagesBenchCases.
type pagesBenchCase struct {
	name string // the BENCH line: page_<page>_p95_ms
	path func(i int) string
}

func pagesBenchCases(listings int) []pagesBenchCase {
	product := func(i int) int { return 1 + (i*7919)%listings }
	return []pagesBenchCase{
		{"page_dashboard_p95_ms", func(int) string { return "/" }},
		{"page_products_p95_ms", func(i int) string {
			// The first page and filtered, sorted pages.
			return []string{"/products", "/products?low_stock=1", "/products?sort=-quantity&shop_id=2", "/products?q=SKU-1"}[i%4]
		}},
		{"page_product_p95_ms", func(i int) string { return fmt.Sprintf("/products/%d", product(i)) }},
		// A variant's page: its facts, 90 days of stock and its history.
		{"page_variant_p95_ms", func(i int) string {
			return fmt.Sprintf("/products/%d/variants/sku:SKU-%[1]d-%d", product(i), 1+i%pagesBenchVariants)
		}},
	}
}

// BenchmarkStockPages measures the server time of the stock pages and
// the auditor's log pages (page_*_p95_ms; see logBenchCases): each
// request goes straight to the pages' handler, as
// the owner of the organisation, one after another, so the figure is the
// time the server spends on a page (database included), without a
// network or a client. dashboard_bytes is what a browser fetches for the
// dashboard, compressed: the page and every stylesheet and /static asset
// it links, each gzipped at the default level.
func BenchmarkStockPages(b *testing.B) {
	p := newPagesBench(b)
	cases := append(pagesBenchCases(p.listings), p.logBenchCases(b)...)
	b.ResetTimer()
	for range b.N {
		for _, c := range cases {
			for i := range pagesBenchWarmUp {
				p.get(b, c.path(i))
			}
			lat := make([]time.Duration, pagesBenchRequests)
			slowest := ""
			for i := range lat {
				_, lat[i] = p.get(b, c.path(i))
				if lat[i] >= slices.Max(lat[:i+1]) {
					slowest = c.path(i)
				}
			}
			slices.Sort(lat)
			p95 := lat[int(float64(len(lat))*0.95+0.999999)-1]
			b.Logf("%s: p50 %.2f ms, p95 %.2f ms, max %.2f ms (%s) over %d", c.name, ms(lat[len(lat)/2]), ms(p95), ms(lat[len(lat)-1]), slowest, len(lat))
			fmt.Printf("BENCH %s %.2f ms\n", c.name, ms(p95))
		}
		raw, gz := p.pageBytes(b, "/")
		b.Logf("dashboard_bytes: %d bytes compressed, %d uncompressed", gz, raw)
		fmt.Printf("BENCH dashboard_bytes %d bytes\n", gz)
	}
}

// assetRE finds what a page makes a browser fetch: stylesheets, scripts,
// images and anything under /static.
var assetRE = regexp.MustCompile(`<(?:link[^>]*\brel="stylesheet"[^>]*\bhref|script[^>]*\bsrc|img[^>]*\bsrc)="([^"]+)"|"(/static/[^"]+)"`)

// pageBytes returns the bytes of path and every asset it references,
// uncompressed and gzip-compressed (each body on its own, as a server
// compresses each response).
func (p *pagesBench) pageBytes(b *testing.B, path string) (raw, compressed int) {
	rec, _ := p.get(b, path)
	body := rec.Body.Bytes()
	seen := map[string]bool{}
	bodies := [][]byte{body}
	for _, m := range assetRE.FindAllSubmatch(body, -1) {
		ref := html.UnescapeString(string(m[1]) + string(m[2]))
		if seen[ref] || !strings.HasPrefix(ref, "/") || strings.HasPrefix(ref, "//") {
			continue
		}
		seen[ref] = true
		a, _ := p.get(b, ref)
		bodies = append(bodies, a.Body.Bytes())
	}
	if len(seen) == 0 {
		b.Fatalf("GET %s references no assets: the page or assetRE changed", path)
	}
	for _, body := range bodies {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		if _, err := zw.Write(body); err != nil {
			b.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			b.Fatal(err)
		}
		raw += len(body)
		compressed += buf.Len()
	}
	return raw, compressed
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
