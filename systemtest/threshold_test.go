package systemtest_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/pgtest"
)

// variantLine is what every reader says about one variant's low-stock
// line: the line in force, where it comes from, and whether the variant
// is low.
type variantLine struct {
	Threshold int64
	Source    string
	Low       bool
}

// TestConfiguredDefaultThreshold sets SHOPLEDGER_DEFAULT_LOW_STOCK_THRESHOLD
// to 7 for the projector, the query service and ledger, and checks that
// the API's threshold fields and low_stock filter, `ledger thresholds
// show` and the open alerts agree on every variant, and with the rule:
// variant, else listing, else shop, else the configured default.
func TestConfiguredDefaultThreshold(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the projector, query and ledger binaries")
	}
	bin := buildBinaries(t, "projector", "query", "ledger")
	db := pgtest.New(t)
	ctx := context.Background()
	const seller, shopA, shopB = int64(500), int64(61), int64(62)

	// Two shops of one seller, three listings, and the stock of each
	// variant as the ledger imported it.
	at := time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)
	stock := map[string]int64{"sku:A": 6, "sku:B": 8, "sku:C": 2, "sku:D": 9, "sku:E": 11, "sku:F": 4, "sku:G": 3}
	catalogue := []struct {
		shop, listing int64
		keys          []string
	}{
		{shopA, 6101, []string{"sku:A", "sku:B", "sku:C"}},
		{shopA, 6102, []string{"sku:D", "sku:E"}},
		{shopB, 6201, []string{"sku:F", "sku:G"}},
	}
	es := eventstore.New(db.DB)
	for _, shop := range []int64{shopA, shopB} {
		ss := events.ShopStream(shop)
		ev := events.New(ss, shop, at, events.ShopConnected{ShopID: shop, ShopName: fmt.Sprintf("Shop %d", shop), UserID: seller, Currency: "EUR"})
		if _, err := es.Append(ctx, ss, eventstore.Any, ev); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range catalogue {
		ls := events.ListingStream(c.listing)
		var variants []events.Variant
		for _, k := range c.keys {
			variants = append(variants, events.Variant{Key: k, SKU: strings.TrimPrefix(k, "sku:"), Price: events.Money{Amount: 900, Currency: "EUR"}, Enabled: true})
		}
		evs := []events.Event{events.New(ls, c.shop, at, events.ListingImported{ListingID: c.listing, ShopID: c.shop, Title: fmt.Sprintf("Listing %d", c.listing),
			State: "active", Price: events.Money{Amount: 900, Currency: "EUR"}, Variants: variants, EtsyUpdatedAt: at})}
		for _, k := range c.keys {
			evs = append(evs, events.New(ls, c.shop, at, events.StockAdjusted{ListingID: c.listing, VariantKey: k, Delta: stock[k], Reason: events.ReasonInitialImport}))
		}
		if _, err := es.Append(ctx, ls, eventstore.Any, evs...); err != nil {
			t.Fatal(err)
		}
	}

	const def = "7"
	sealKeys := "s1:" + base64.StdEncoding.EncodeToString(randomBytes(t, 32))
	common := map[string]string{"SHOPLEDGER_LOG_LEVEL": "info", "SHOPLEDGER_DEFAULT_LOW_STOCK_THRESHOLD": def, "SHOPLEDGER_SEAL_KEYS": sealKeys}
	_, projectorURL := startProjector(t, bin, merge(common, map[string]string{
		"SHOPLEDGER_DATABASE_URL":   db.RoleURL(pgtest.ProjectorRole),
		"SHOPLEDGER_ALERT_COOLDOWN": "0s",
	}))
	_, queryURL := startQuery(t, bin, "127.0.0.1:0", merge(common, map[string]string{
		"SHOPLEDGER_DATABASE_URL": db.RoleURL(pgtest.QueryRole),
	}))
	ledgerEnv := environ(merge(common, map[string]string{"SHOPLEDGER_DATABASE_URL": db.URL}))
	ledger := ledgerRunner(t, bin, ledgerEnv)
	waitProjector(t, ctx, projectorURL)

	// Lines at every scope, set the way an operator sets them: shop B's
	// default, listing 6102's line, and variant E's own.
	ledger("thresholds", "set", "--shop", "62", "3", "--actor", "ann")
	ledger("thresholds", "set", "--shop", "61", "--listing", "6102", "10", "--actor", "ann")
	ledger("thresholds", "set", "--shop", "61", "--listing", "6102", "--variant", "sku:E", "12", "--actor", "ann")
	waitProjector(t, ctx, projectorURL)

	want := map[string]variantLine{
		"sku:A": {7, "default", true}, // low under the configured 7, not under the built-in 5
		"sku:B": {7, "default", false},
		"sku:C": {7, "default", true},
		"sku:D": {10, "listing", true},
		"sku:E": {12, "variant", true},
		"sku:F": {3, "shop", false},
		"sku:G": {3, "shop", true},
	}
	api := &apiClient{base: queryURL, token: createToken(t, ledger, seller)}

	// The API's threshold fields.
	converge(t, "API product variants", time.Minute, func(ctx context.Context) (string, error) {
		got := map[string]variantLine{}
		for _, c := range catalogue {
			var p struct {
				Variants []struct {
					VariantKey        string `json:"variant_key"`
					LowStockThreshold int64  `json:"low_stock_threshold"`
					ThresholdSource   string `json:"threshold_source"`
					LowStock          bool   `json:"low_stock"`
				} `json:"variants"`
			}
			if err := api.get(ctx, fmt.Sprintf("/v1/products/%d", c.listing), &p); err != nil {
				return "", err
			}
			for _, v := range p.Variants {
				got[v.VariantKey] = variantLine{v.LowStockThreshold, v.ThresholdSource, v.LowStock}
			}
		}
		return cmp.Diff(want, got), nil
	})

	// The shops' default fields.
	for shop, wantDefault := range map[int64]int64{shopA: 7, shopB: 3} {
		var sh struct {
			Default int64 `json:"default_low_stock_threshold"`
		}
		if err := api.get(ctx, fmt.Sprintf("/v1/shops/%d", shop), &sh); err != nil {
			t.Fatal(err)
		}
		if sh.Default != wantDefault {
			t.Errorf("shop %d: default_low_stock_threshold %d, want %d", shop, sh.Default, wantDefault)
		}
	}

	// The low_stock filter keeps exactly the listings with a low variant.
	var wantLow []int64
	for _, c := range catalogue {
		if slices.ContainsFunc(c.keys, func(k string) bool { return want[k].Low }) {
			wantLow = append(wantLow, c.listing)
		}
	}
	low, err := pages[struct {
		ListingID int64 `json:"listing_id"`
		Low       int64 `json:"low_stock_variants"`
	}](ctx, api, "/v1/products?low_stock=true")
	if err != nil {
		t.Fatal(err)
	}
	var gotLow []int64
	for _, p := range low {
		gotLow = append(gotLow, p.ListingID)
	}
	if diff := cmp.Diff(wantLow, gotLow); diff != "" {
		t.Errorf("/v1/products?low_stock=true (-want +got):\n%s", diff)
	}

	// The CLI.
	got := map[string]variantLine{}
	for _, shop := range []string{"61", "62"} {
		out := ledger("thresholds", "show", "--shop", shop)
		for l := range strings.Lines(out) {
			f := strings.Fields(l)
			if len(f) != 6 || !strings.HasPrefix(f[1], "sku:") {
				continue
			}
			n, err := strconv.ParseInt(f[3], 10, 64)
			if err != nil {
				t.Fatalf("ledger thresholds show: line %q: %v", l, err)
			}
			got[f[1]] = variantLine{n, f[4], f[5] == "true"}
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ledger thresholds show (-want +got):\n%s", diff)
	}

	// The alerts: one open alert for each low variant. An alert keeps the
	// line it was raised at, so the lines compared are those of variants
	// whose line never moved: the configured default's.
	wantAlerts := map[string]int64{}
	for k, l := range want {
		if l.Low {
			wantAlerts[k] = 0
			if l.Source == "default" {
				wantAlerts[k] = l.Threshold
			}
		}
	}
	converge(t, "open alerts", time.Minute, func(ctx context.Context) (string, error) {
		open, err := pages[struct {
			VariantKey string `json:"variant_key"`
			Threshold  int64  `json:"threshold"`
		}](ctx, api, "/v1/alerts?status=open")
		if err != nil {
			return "", err
		}
		got := map[string]int64{}
		for _, a := range open {
			got[a.VariantKey] = 0
			if want[a.VariantKey].Source == "default" {
				got[a.VariantKey] = a.Threshold
			}
		}
		return cmp.Diff(wantAlerts, got), nil
	})
}
