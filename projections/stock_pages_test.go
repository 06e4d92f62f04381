package projections_test

import (
	"cmp"
	"context"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/projections"
)

// The dashboard's readers give what the readers they stand for give:
// TopProductsOf each shop's TopProducts merged, OpenAlertCount the open
// alerts of the shops, RunningOut without deleted listings or other
// shops' variants. The data have ties, two currencies, canceled and
// unrecorded sales, a deleted listing and a shop outside the set.
func TestDashboardReadersAgreeWithTheReadersTheyStandFor(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	r := reader(db.DB)
	for _, s := range []string{
		`INSERT INTO shops (shop_id, name, currency, updated_at, last_position) SELECT s, 'Shop ' || s, 'EUR', now(), 0 FROM generate_series(1, 4) s`,
		`INSERT INTO products (shop_id, listing_id, title, deleted, created_at, updated_at, last_position)
			SELECT (l - 1) / 10 + 1, l, CASE WHEN l % 7 = 0 THEN '' ELSE 'Listing ' || l END, l = 12, now(), now(), 0
			FROM generate_series(1, 39) l`,
		`INSERT INTO product_variants (shop_id, listing_id, variant_key, sku, active, quantity, updated_at, last_position)
			SELECT (l - 1) / 10 + 1, l, 'k' || v, 'SKU-' || l || '-' || v, v <> 3, (l * 3 + v) % 9 - 1, now(), 0
			FROM generate_series(1, 40) l, generate_series(1, 3) v`,
		// Sales over the last 20 days: listing l sells (l % 4) + 1 units a
		// line, some in USD; every 7th canceled, every 11th not recorded.
		`INSERT INTO sales (shop_id, receipt_id, recorded, currency, grand_total, created_at, updated_at, canceled_at)
			SELECT (r % 4) + 1, r, r % 11 <> 0, CASE WHEN r % 6 = 0 THEN 'USD' ELSE 'EUR' END, 1000, now() - (r % 20) * interval '1 day' - interval '1 minute', now(),
			       CASE WHEN r % 7 = 0 THEN now() END
			FROM generate_series(1, 400) r`,
		`INSERT INTO sale_items (shop_id, receipt_id, transaction_id, line, listing_id, variant_key, title, quantity, unit_price, currency)
			SELECT s.shop_id, s.receipt_id, s.receipt_id * 10 + n, n, l, 'k' || n, 'Item ' || l, l % 4 + 1, 100 * n, s.currency
			FROM sales s, generate_series(1, 2) n, LATERAL (SELECT (s.shop_id - 1) * 10 + 1 + (s.receipt_id / 4 + n) % 10 AS l) x`,
		`INSERT INTO stock_movements (shop_id, listing_id, variant_key, seq, delta, balance, reason, event_id, position, occurred_at, recorded_at)
			SELECT pv.shop_id, pv.listing_id, pv.variant_key, m, CASE WHEN m % 3 = 0 THEN 4 ELSE -1 - (pv.listing_id + m) % 2 END, 0,
			       CASE WHEN m % 3 = 0 THEN 'restock' ELSE 'sale' END, gen_random_uuid(), pv.listing_id * 100 + m,
			       now() - (m * 4) * interval '1 day', now()
			FROM product_variants pv, generate_series(1, 12) m`,
		`INSERT INTO alerts (alert_id, shop_id, listing_id, variant_key, status, threshold, quantity, raised_at, raised_event_id, last_position)
			SELECT gen_random_uuid(), shop_id, listing_id, variant_key, CASE WHEN listing_id % 3 = 0 THEN 'cleared' ELSE 'open' END, 5, quantity, now(), gen_random_uuid(), 0
			FROM product_variants WHERE quantity <= 2`,
	} {
		if _, err := db.DB.ExecContext(ctx, s); err != nil {
			t.Fatalf("%v\n%s", err, s)
		}
	}
	shops := []int64{1, 2, 3} // shop 4 is someone else's
	now := time.Now()
	for _, span := range []time.Duration{24 * time.Hour, 10 * 24 * time.Hour, 30 * 24 * time.Hour} {
		from := now.Add(-span)
		for _, limit := range []int{1, 5, 100} {
			var want []projections.TopProduct
			for _, shop := range shops {
				top, err := r.TopProducts(ctx, shops, shop, from, now, false, limit)
				if err != nil {
					t.Fatal(err)
				}
				want = append(want, top...)
			}
			slices.SortStableFunc(want, func(x, y projections.TopProduct) int {
				return cmp.Or(cmp.Compare(y.Units, x.Units), cmp.Compare(y.Revenue.Amount, x.Revenue.Amount), cmp.Compare(x.ListingID, y.ListingID),
					cmp.Compare(x.Revenue.Currency, y.Revenue.Currency))
			})
			want = want[:min(limit, len(want))]
			got, err := r.TopProductsOf(ctx, shops, from, now, limit)
			if err != nil {
				t.Fatal(err)
			}
			if limit == 100 && len(got) < 5 {
				t.Fatalf("only %d top products over %v: the data are too thin", len(got), span)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("top %d over %v:\n got %v\nwant %v", limit, span, got, want)
			}
		}
	}

	var wantOpen int64
	if err := db.DB.QueryRow(`SELECT count(*) FROM alerts WHERE status = 'open' AND shop_id IN (1, 2, 3)`).Scan(&wantOpen); err != nil {
		t.Fatal(err)
	}
	if got, err := r.OpenAlertCount(ctx, shops); err != nil || got != wantOpen || wantOpen == 0 {
		t.Errorf("open alerts = %d, %v; want %d (> 0)", got, err, wantOpen)
	}

	since := now.Add(-30 * 24 * time.Hour)
	all, err := r.RunningOut(ctx, shops, 0, since, now, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) < 20 {
		t.Fatalf("only %d variants running out", len(all))
	}
	for _, c := range all {
		if c.ListingID == 12 || c.ListingID > 30 || c.VariantKey == "k3" || c.Sold <= 0 {
			t.Errorf("running out lists %+v: deleted, inactive, not sold or not the shops'", c)
		}
	}
	few, err := r.RunningOut(ctx, shops, 0, since, now, 5)
	if err != nil || !reflect.DeepEqual(few, all[:5]) {
		t.Errorf("the first 5 running out are %v, %v; the first of all are %v", few, err, all[:5])
	}
	one, err := r.RunningOut(ctx, shops, 7, since, now, 10)
	var want []projections.Cover
	for _, c := range all {
		if c.ListingID == 7 {
			want = append(want, c)
		}
	}
	if err != nil || len(want) == 0 || !reflect.DeepEqual(one, want) {
		t.Errorf("listing 7 running out: %v, %v; want %v", one, err, want)
	}
}
