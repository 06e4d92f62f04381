package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/projections"
)

func getJSON[T any](t *testing.T, h http.Handler, token, path string) T {
	t.Helper()
	got := do(t, h, call{path: path, token: token})
	if got.Code != http.StatusOK {
		t.Fatalf("GET %s = %d %s", path, got.Code, got.Body)
	}
	var v T
	if err := json.Unmarshal(got.Body.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func allProducts(t *testing.T, h http.Handler, token, query string) []projections.Product {
	t.Helper()
	var out []projections.Product
	for _, row := range rowsOf(t, h, token, "/v1/products?limit=2&"+query) {
		b, _ := json.Marshal(row)
		var p projections.Product
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

func listingIDs(ps []projections.Product) []int64 {
	var out []int64
	for _, p := range ps {
		out = append(out, p.ListingID)
	}
	return out
}

// Product filters and sorts agree with the products' own details, and
// every sort walks all rows in order across pages.
func TestProductFiltersAndSorts(t *testing.T) {
	t.Parallel()
	w, h := newWorldAPI(t, 70, nil)
	tok := w.tokens[1].seller
	all := allProducts(t, h, tok, "")
	details := map[int64]projections.ProductDetail{}
	for _, p := range all {
		details[p.ListingID] = getJSON[projections.ProductDetail](t, h, tok, fmt.Sprintf("/v1/products/%d", p.ListingID))
	}
	filter := func(keep func(projections.ProductDetail) bool) []int64 {
		var out []int64
		for _, p := range all {
			if keep(details[p.ListingID]) {
				out = append(out, p.ListingID)
			}
		}
		return out
	}
	cases := []struct {
		query string
		keep  func(projections.ProductDetail) bool
	}{
		{"state=active", func(d projections.ProductDetail) bool { return d.State == "active" }},
		{"shop_id=12", func(d projections.ProductDetail) bool { return d.ShopID == 12 }},
		{"low_stock=true", func(d projections.ProductDetail) bool {
			return slices.ContainsFunc(d.Variants, func(v projections.Variant) bool { return v.LowStock })
		}},
		{"q=MUG", func(d projections.ProductDetail) bool {
			return strings.Contains(strings.ToLower(d.Title), "mug") ||
				slices.ContainsFunc(d.Variants, func(v projections.Variant) bool { return strings.Contains(strings.ToLower(v.SKU), "mug") })
		}},
		{"q=" + url.QueryEscape("%off"), func(d projections.ProductDetail) bool {
			return slices.ContainsFunc(d.Variants, func(v projections.Variant) bool { return strings.Contains(v.SKU, "%off") })
		}},
		{"q=" + url.QueryEscape("TEE/"), func(d projections.ProductDetail) bool {
			return slices.ContainsFunc(d.Variants, func(v projections.Variant) bool { return strings.Contains(v.SKU, "TEE/") })
		}},
	}
	for _, tc := range cases {
		got := listingIDs(allProducts(t, h, tok, tc.query))
		if diff := cmp.Diff(filter(tc.keep), got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.query, diff)
		}
	}
	for _, d := range details {
		var qty, low int64
		for _, v := range d.Variants {
			if v.Active {
				qty += v.Quantity
				if v.LowStock {
					low++
				}
			}
		}
		if d.Quantity != qty || d.LowStockVariants != low {
			t.Errorf("product %d: quantity %d, low %d; its variants sum to %d, %d low", d.ListingID, d.Quantity, d.LowStockVariants, qty, low)
		}
	}

	sorts := map[string]func(a, b projections.Product) int{
		"title":       func(a, b projections.Product) int { return strings.Compare(a.Title, b.Title) },
		"quantity":    func(a, b projections.Product) int { return int(a.Quantity - b.Quantity) },
		"updated_at":  func(a, b projections.Product) int { return a.UpdatedAt.Compare(b.UpdatedAt) },
		"listing_id":  func(a, b projections.Product) int { return int(a.ListingID - b.ListingID) },
		"-title":      func(a, b projections.Product) int { return -strings.Compare(a.Title, b.Title) },
		"-quantity":   func(a, b projections.Product) int { return int(b.Quantity - a.Quantity) },
		"-updated_at": func(a, b projections.Product) int { return b.UpdatedAt.Compare(a.UpdatedAt) },
	}
	for key, cmpFn := range sorts {
		got := allProducts(t, h, tok, "sort="+key)
		want := slices.Clone(all)
		slices.SortStableFunc(want, func(a, b projections.Product) int {
			if c := cmpFn(a, b); c != 0 {
				return c
			}
			if strings.HasPrefix(key, "-") {
				return int(b.ListingID - a.ListingID)
			}
			return int(a.ListingID - b.ListingID)
		})
		if diff := cmp.Diff(listingIDs(want), listingIDs(got)); diff != "" {
			t.Errorf("sort=%s (-want +got):\n%s", key, diff)
		}
	}
	if got := do(t, h, call{path: "/v1/products?sort=price", token: tok}); got.Code != http.StatusBadRequest {
		t.Errorf("sort=price = %d, want 400", got.Code)
	}
}

// Sales filters, the daily series and top products agree with the log.
func TestSalesFiltersSeriesAndTopProducts(t *testing.T) {
	t.Parallel()
	w, h := newWorldAPI(t, 71, nil)
	tok := w.tokens[1].seller
	type fact struct {
		shop     int64
		created  time.Time
		canceled bool
		items    []events.SaleItem
	}
	facts := map[int64]*fact{}
	for _, r := range w.log() {
		switch d := r.Data.(type) {
		case events.SaleRecorded:
			facts[d.ReceiptID] = &fact{shop: d.ShopID, created: d.CreatedAt, items: d.Items}
		case events.SaleCanceled:
			facts[d.ReceiptID].canceled = true
		}
	}
	all := rowsOf(t, h, tok, "/v1/sales?limit=3")
	var times []time.Time
	for _, s := range all {
		ts, _ := time.Parse(time.RFC3339Nano, s["created_at"].(string))
		times = append(times, ts)
	}
	if !slices.IsSortedFunc(times, func(a, b time.Time) int { return b.Compare(a) }) {
		t.Error("sales are not newest first")
	}
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	from, to := times[len(times)/4], times[3*len(times)/4]
	var want []int64
	for id, f := range facts {
		if w.owner[f.shop] == 1 && f.canceled && !f.created.Before(from) && f.created.Before(to) {
			want = append(want, id)
		}
	}
	var got []int64
	for _, s := range rowsOf(t, h, tok, "/v1/sales?status=canceled&from="+url.QueryEscape(from.Format(time.RFC3339Nano))+"&to="+url.QueryEscape(to.Format(time.RFC3339Nano))) {
		got = append(got, int64(s["receipt_id"].(float64)))
	}
	slices.Sort(want)
	slices.Sort(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("canceled sales in [%s, %s) (-log +api):\n%s", from, to, diff)
	}

	// Top products of shop 11 over the whole seed, canceled sales left out.
	day := func(t time.Time) string { return t.UTC().Format(time.DateOnly) }
	units := map[int64]int64{}
	revenue := map[int64]int64{}
	orders := map[int64]map[int64]bool{}
	unitsPerDay := map[string]int64{}
	for id, f := range facts {
		if f.shop != 11 {
			continue
		}
		for _, it := range f.items {
			unitsPerDay[day(f.created)] += it.Quantity
			if f.canceled {
				continue
			}
			units[it.ListingID] += it.Quantity
			revenue[it.ListingID] += it.Quantity * it.UnitPrice.Amount
			if orders[it.ListingID] == nil {
				orders[it.ListingID] = map[int64]bool{}
			}
			orders[it.ListingID][id] = true
		}
	}
	top := getJSON[struct {
		Items []projections.TopProduct `json:"items"`
	}](t, h, tok, "/v1/shops/11/top-products?by=revenue&from=2026-01-01&to=2026-03-01&limit=100")
	if len(top.Items) != len(units) {
		t.Errorf("top products lists %d listings, log sold %d", len(top.Items), len(units))
	}
	for i, p := range top.Items {
		if p.Units != units[p.ListingID] || p.Revenue.Amount != revenue[p.ListingID] || p.Orders != int64(len(orders[p.ListingID])) {
			t.Errorf("top product %d: %+v; log says %d units, %d revenue, %d orders", p.ListingID, p, units[p.ListingID], revenue[p.ListingID], len(orders[p.ListingID]))
		}
		if i > 0 && top.Items[i-1].Revenue.Amount < p.Revenue.Amount {
			t.Errorf("top products by revenue out of order at %d", i)
		}
	}

	series := getJSON[struct {
		Days []projections.DailySales `json:"days"`
	}](t, h, tok, "/v1/shops/11/sales/daily?from=2026-01-01&to=2026-03-01")
	if len(series.Days) != 59 {
		t.Errorf("series has %d points, want one per day of Jan and Feb (59)", len(series.Days))
	}
	for _, d := range series.Days {
		if d.Units != unitsPerDay[d.Day] {
			t.Errorf("%s: %d units, the log's receipts of that day hold %d", d.Day, d.Units, unitsPerDay[d.Day])
		}
	}
}
