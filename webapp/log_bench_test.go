package webapp_test

import (
	"context"
	"database/sql"
	"fmt"
	"html"
	"regexp"
	"testing"
	"time"

	"github.com/shopledger/shopledger/events"
)

// The event log of the pages' benchmark: one event per seeded stock
// movement, with the movement's event id and position, so that the log
// and the read models tell the same story, after one shop.connected per
// shop. A sale is a stock.sold of its receipt, any other movement a
// stock.adjusted with the movement's reason and cause; both are the
// listing's stream. Each movement names the variant's previous one as its
// cause and the variant's first as its correlation, so an event's page
// walks up to nine causes and nine effects: a longer chain than
// production's (webhook, receipt, stock.sold), which makes the event
// page's figure an upper bound. The log is sealed with seal_events, the
// function the projector seals with, in commit order.
const (
	logBenchReceipts  = 1_000_000_000 // receipt ids of the movements' sales start above it
	logBenchSealBatch = 20_000        // events per seal_events call
	logBenchFollow    = 5             // later pages followed from each first page
)

func schemaVersion(typ string) int {
	v, err := events.SchemaVersion(typ)
	if err != nil {
		panic(err)
	}
	return v
}

// logBenchSeed returns the statements that write the log from the seeded
// shops and stock_movements.
func logBenchSeed() []string {
	return []string{
		fmt.Sprintf(`INSERT INTO events (position, event_id, stream_id, stream_version, type, schema_version, data, metadata, shop_id, occurred_at, recorded_at)
			SELECT s.shop_id, gen_random_uuid(), 'shop-' || s.shop_id, 1, '%s', %d,
			       jsonb_build_object('shop_id', s.shop_id, 'shop_name', s.name, 'user_id', s.user_id, 'currency', s.currency,
			                          'scopes', jsonb_build_array('listings_r', 'listings_w', 'transactions_r')),
			       jsonb_build_object('source', 'oauth', 'actor', 'user:' || s.user_id, 'correlation_id', gen_random_uuid()),
			       s.shop_id, now() - interval '91 days', now() - interval '91 days'
			FROM shops s`, events.TypeShopConnected, schemaVersion(events.TypeShopConnected)),
		fmt.Sprintf(`INSERT INTO events (position, event_id, stream_id, stream_version, type, schema_version, data, metadata, shop_id, occurred_at, recorded_at)
			SELECT position, event_id, 'listing-' || listing_id, row_number() OVER (PARTITION BY listing_id ORDER BY position),
			       CASE WHEN reason = 'sale' THEN '%[1]s' ELSE '%[2]s' END,
			       CASE WHEN reason = 'sale' THEN %[3]d ELSE %[4]d END,
			       CASE WHEN reason = 'sale'
			            THEN jsonb_build_object('listing_id', listing_id, 'variant_key', variant_key, 'quantity', -delta,
			                                    'receipt_id', receipt_id, 'transaction_id', transaction_id)
			            ELSE jsonb_build_object('listing_id', listing_id, 'variant_key', variant_key, 'delta', delta,
			                                    'reason', reason, 'cause', cause) END,
			       jsonb_strip_nulls(jsonb_build_object(
			           'source', CASE WHEN reason = 'sale' THEN 'webhook' ELSE 'reconciliation' END,
			           'correlation_id', first_value(event_id) OVER v, 'causation_id', lag(event_id) OVER v)),
			       shop_id, occurred_at, recorded_at
			FROM stock_movements
			WINDOW v AS (PARTITION BY listing_id, variant_key ORDER BY seq)`,
			events.TypeStockSold, events.TypeStockAdjusted, schemaVersion(events.TypeStockSold), schemaVersion(events.TypeStockAdjusted)),
		`SELECT setval('events_position_seq', (SELECT max(position) FROM events))`,
	}
}

// sealLogBench seals the whole log, logBenchSealBatch events a
// transaction, in commit order as the projector does: each of
// logBenchSeed's statements commits on its own, in position order, so
// commit order is position order.
func sealLogBench(ctx context.Context, b *testing.B, conn *sql.Conn) {
	b.Helper()
	start := time.Now()
	var sealed, last int64
	for {
		var n sql.NullInt64
		err := conn.QueryRowContext(ctx, `
			WITH batch AS (
			    SELECT position FROM events WHERE position > $1 ORDER BY position LIMIT $2
			)
			SELECT seal_events(ARRAY(SELECT position FROM batch)), (SELECT max(position) FROM batch)`,
			last, logBenchSealBatch).Scan(&sealed, &n)
		if err != nil {
			b.Fatalf("seal after position %d: %v", last, err)
		}
		if !n.Valid {
			break
		}
		last = n.Int64
	}
	b.Logf("seed: %.1f s: sealed %d events", time.Since(start).Seconds(), sealed)
}

var nextPageRE = regexp.MustCompile(`<a href="([^"]+)" rel="next">`)

// nextPage returns the path of the page's "Next page" link, "" when it
// has none.
func (p *pagesBench) nextPage(b *testing.B, path string) string {
	rec, _ := p.get(b, path)
	m := nextPageRE.FindSubmatch(rec.Body.Bytes())
	if m == nil {
		return ""
	}
	return html.UnescapeString(string(m[1]))
}

// logBenchCases are the auditor's pages. page_log is the log's first
// page, filtered by shop, by a common type, by a type the shops have
// five events of, by stream and by a week of business time, and the
// later pages reached through each of these first pages' own "Next
// page" links; page_log_rare_type is the rare type's page alone;
// page_event is an event's page with its causation chain.
func (p *pagesBench) logBenchCases(b *testing.B) []pagesBenchCase {
	b.Helper()
	week := time.Now().In(benchLocation(b)).AddDate(0, 0, -30)
	firsts := []string{
		"/log",
		fmt.Sprintf("/log?shop_id=%d", 1+pagesBenchOrgShops()/2),
		"/log?type=" + events.TypeStockAdjusted,
		"/log?type=" + events.TypeShopConnected,
		fmt.Sprintf("/log?stream=listing-%d", 1+p.listings/2),
		fmt.Sprintf("/log?from=%s&to=%s", week.Format(time.DateOnly), week.AddDate(0, 0, 7).Format(time.DateOnly)),
	}
	paths := append([]string(nil), firsts...)
	for _, first := range firsts {
		next := first
		for range logBenchFollow {
			if next = p.nextPage(b, next); next == "" {
				break
			}
			paths = append(paths, next)
		}
	}
	if len(paths) == len(firsts) {
		b.Fatal("no log page links to a next page: the page or nextPageRE changed")
	}
	// Events in the middle of their variant's history: causes above and
	// effects below.
	rows, err := p.db.DB.Query(`SELECT event_id FROM stock_movements
		WHERE listing_id <= $1 AND seq = 5 ORDER BY (listing_id * 7919) % $1, variant_key LIMIT 100`, p.listings)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			b.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil || len(ids) == 0 {
		b.Fatalf("event ids: %v (%d)", err, len(ids))
	}
	return []pagesBenchCase{
		{"page_log_p95_ms", func(i int) string { return paths[i%len(paths)] }},
		// A type the organisation's shops have a handful of, read
		// through the type on the seal rows.
		{"page_log_rare_type_p95_ms", func(int) string { return "/log?type=" + events.TypeShopConnected }},
		{"page_event_p95_ms", func(i int) string { return "/log/events/" + ids[i%len(ids)] }},
	}
}

// benchLocation is the owner's time zone, in which the log's date
// filters are read.
func benchLocation(b *testing.B) *time.Location {
	loc, err := time.LoadLocation(pagesBenchTimezone)
	if err != nil {
		b.Fatal(err)
	}
	return loc
}
