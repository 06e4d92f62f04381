package httpapi_test

import (
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/httpapi"
	"github.com/shopledger/shopledger/projections"
	"github.com/shopledger/shopledger/tokens"
)

// A write takes only the fields it documents; owner and
// tenant fields come from the path and the token, never from the body.
func TestThresholdWritesRejectUnknownAndTenantFields(t *testing.T) {
	t.Parallel()
	w, h := newWorldAPI(t, 44, nil)
	tok := w.tokens[1].seller
	v := w.variantOf(11)
	path := variantPath(v) + "/threshold"
	other := w.shops[2][0]
	bad := []badBody{
		{"shop_id injected", fmt.Sprintf(`{"threshold": 3, "shop_id": %d}`, other), "shop_id"},
		{"seller_id injected", `{"threshold": 3, "seller_id": 2}`, "seller_id"},
		{"actor injected", `{"threshold": 3, "actor": "someone else"}`, "actor"},
		{"scope injected", `{"threshold": 3, "scope": "shop"}`, "scope"},
		{"listing injected", `{"threshold": 3, "listing_id": 1}`, "listing_id"},
		{"missing threshold", `{}`, "threshold"},
		{"negative", `{"threshold": -1}`, "threshold"},
		{"not a number", `{"threshold": "3"}`, "threshold"},
		{"fraction", `{"threshold": 2.5}`, "threshold"},
		{"two objects", `{"threshold": 3}{"threshold": 4}`, ""},
		{"not json", `threshold=3`, ""},
	}
	wantBadBodies(t, h, http.MethodPut, path, tok, bad)
	var n int
	if err := w.db.DB.QueryRow(`SELECT count(*) FROM events WHERE type = $1`, events.TypeStockThresholdSet).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("rejected writes appended %d events", n)
	}

	// A valid write appends one event, attributed to the token, for the
	// shop that owns the listing.
	got := do(t, h, call{method: http.MethodPut, path: path, token: tok, body: `{"threshold": 1000}`})
	if got.Code != http.StatusAccepted {
		t.Fatalf("PUT = %d, want 202; body %s", got.Code, got.Body)
	}
	var ack struct {
		EventID string `json:"event_id"`
	}
	if err := json.Unmarshal(got.Body.Bytes(), &ack); err != nil {
		t.Fatal(err)
	}
	tokRow, err := tokens.NewStore(w.db.DB).List(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	var sellerTokenID string
	for _, tk := range tokRow {
		if tk.Role == tokens.RoleSeller {
			sellerTokenID = tk.ID.String()
		}
	}
	var rec struct {
		shop       int64
		stream     string
		data, meta string
	}
	if err := w.db.DB.QueryRow(`SELECT shop_id, stream_id, data::text, metadata::text FROM events WHERE event_id = $1`, ack.EventID).
		Scan(&rec.shop, &rec.stream, &rec.data, &rec.meta); err != nil {
		t.Fatal(err)
	}
	var data events.StockThresholdSet
	if err := json.Unmarshal([]byte(rec.data), &data); err != nil {
		t.Fatal(err)
	}
	want := events.StockThresholdSet{Scope: events.ScopeVariant, ShopID: 11, ListingID: v.listing, VariantKey: v.key, Threshold: 1000, Actor: "token:" + sellerTokenID}
	if diff := cmp.Diff(want, data); diff != "" {
		t.Errorf("appended threshold (-want +got):\n%s", diff)
	}
	if rec.shop != 11 || rec.stream != events.ListingStream(v.listing) {
		t.Errorf("event on shop %d stream %s, want shop 11 stream %s", rec.shop, rec.stream, events.ListingStream(v.listing))
	}
	if !strings.Contains(rec.meta, `"actor": "token:`+sellerTokenID) {
		t.Errorf("metadata %s does not name the token as actor", rec.meta)
	}

	// Once projected, the product shows the variant's new line.
	w.project()
	prod := do(t, h, call{path: fmt.Sprintf("/v1/products/%d", v.listing), token: tok})
	var detail projections.ProductDetail
	if err := json.Unmarshal(prod.Body.Bytes(), &detail); err != nil {
		t.Fatal(err)
	}
	for _, pv := range detail.Variants {
		if pv.VariantKey == v.key && (pv.LowStockThreshold != 1000 || pv.ThresholdSource != "variant" || !pv.LowStock) {
			t.Errorf("variant after threshold = %+v, want threshold 1000 from variant and low stock", pv)
		}
	}
}

// However many rows a client asks for, a page holds at most
// 100, and the cursor walks the rest.
func TestPageSizeIsCapped(t *testing.T) {
	t.Parallel()
	w, h := newWorldAPI(t, 45, nil)
	v := w.variantOf(11)
	for range 130 {
		w.adjust(v, 1, events.ReasonRestock)
	}
	w.project()
	tok := w.tokens[1].seller
	for _, limit := range []string{"100000", "101", "9223372036854775808"} {
		got := do(t, h, call{path: variantPath(v) + "/history?limit=" + limit, token: tok})
		if got.Code != http.StatusOK {
			t.Fatalf("limit=%s: %d %s", limit, got.Code, got.Body)
		}
		var page struct {
			Items      []linkedMovement `json:"items"`
			NextCursor string           `json:"next_cursor"`
		}
		if err := json.Unmarshal(got.Body.Bytes(), &page); err != nil {
			t.Fatal(err)
		}
		if len(page.Items) != httpapi.MaxLimit || page.NextCursor == "" {
			t.Errorf("limit=%s: %d items, next cursor %q; want %d and a cursor", limit, len(page.Items), page.NextCursor, httpapi.MaxLimit)
		}
	}
	all := rowsOf(t, h, tok, variantPath(v)+"/history?limit=100000")
	var want int
	if err := w.db.DB.QueryRow(`SELECT count(*) FROM stock_movements WHERE listing_id = $1 AND variant_key = $2`, v.listing, v.key).Scan(&want); err != nil {
		t.Fatal(err)
	}
	if len(all) != want {
		t.Errorf("walking the cursor gave %d movements, want %d", len(all), want)
	}
	for i, m := range all {
		if int(m["seq"].(float64)) != i+1 {
			t.Fatalf("movement %d has seq %v: pages overlap or skip", i, m["seq"])
		}
	}
	for _, limit := range []string{"0", "-5", "ten"} {
		if got := do(t, h, call{path: "/v1/products?limit=" + limit, token: tok}); got.Code != http.StatusBadRequest {
			t.Errorf("limit=%s = %d, want 400", limit, got.Code)
		}
	}
}

// slowProducts is a ProductReader whose list runs a query that outlives
// any sane timeout, on the real database.
type slowProducts struct {
	httpapi.ProductReader
	db *sql.DB
}

func (s slowProducts) ListProducts(ctx context.Context, _ projections.ProductFilter) ([]projections.Product, error) {
	_, err := s.db.ExecContext(ctx, `SELECT pg_sleep(60) /* slow-products-test */`)
	return nil, err
}

// A slow query is cancelled on the server when the request's
// time is up, and the client gets a 503 problem rather than a hang.
func TestSlowQueryIsCancelled(t *testing.T) {
	t.Parallel()
	w, _ := newWorldAPI(t, 46, nil)
	h, _ := newAPI(t, w.db, apiOpts{mod: func(c *httpapi.Config) {
		c.QueryTimeout = 300 * time.Millisecond
		c.Data.Products = slowProducts{ProductReader: c.Data.Products, db: w.db.DB}
	}})
	got := do(t, h, call{path: "/v1/products", token: w.tokens[1].seller})
	if got.Code != http.StatusServiceUnavailable {
		t.Fatalf("slow list = %d, want 503; body %s", got.Code, got.Body)
	}
	if p := problemOf(t, got); !strings.HasSuffix(p.Type, "/timeout") {
		t.Errorf("problem type %q, want …/timeout", p.Type)
	}
	// The sleep must be gone from the server, not left running.
	for i := 0; ; i++ {
		var running int
		if err := w.db.DB.QueryRow(`SELECT count(*) FROM pg_stat_activity
			WHERE query LIKE '%slow-products-test%' AND query NOT LIKE '%pg_stat_activity%' AND state = 'active'`).Scan(&running); err != nil {
			t.Fatal(err)
		}
		if running == 0 {
			break
		}
		if i > 500 {
			t.Fatal("pg_sleep still running on the server after the request timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Stock as of any instant equals a replay of the log up to that instant,
// for random instants, per variant and per shop.
func TestStockAsOfMatchesReplay(t *testing.T) {
	t.Parallel()
	w, h := newWorldAPI(t, 47, nil)
	log := w.log()
	first, last := log[0].OccurredAt, log[0].OccurredAt
	for _, r := range log {
		if r.OccurredAt.Before(first) {
			first = r.OccurredAt
		}
		if r.OccurredAt.After(last) {
			last = r.OccurredAt
		}
	}
	rng := rand.New(rand.NewPCG(47, 1))
	span := last.Sub(first) + 2*time.Hour
	instants := []time.Time{first.Add(-time.Hour), last, first}
	for range 12 {
		instants = append(instants, first.Add(-time.Hour).Add(time.Duration(rng.Int64N(int64(span)))).Truncate(time.Second))
	}
	// Exact movement times too: "at or before" must include them.
	for range 5 {
		instants = append(instants, log[rng.IntN(len(log))].OccurredAt)
	}
	for _, at := range instants {
		want := replayStock(log, at)
		asOf := url.QueryEscape(at.Format(time.RFC3339Nano))
		for _, seller := range w.sellerIDs() {
			tok := w.tokens[seller].seller
			for _, shop := range w.shops[seller] {
				rows := rowsOf(t, h, tok, fmt.Sprintf("/v1/shops/%d/stock?as_of=%s&limit=40", shop, asOf))
				seen := 0
				for _, row := range rows {
					k := [2]string{fmt.Sprint(int64(row["listing_id"].(float64))), row["variant_key"].(string)}
					if got := int64(row["quantity"].(float64)); got != want[k] {
						t.Errorf("shop %d as of %s: %v = %d, replay says %d", shop, at, k, got, want[k])
					}
					seen++
				}
				for _, v := range w.variants {
					if v.shop == shop {
						seen--
					}
				}
				if seen != 0 {
					t.Errorf("shop %d stock lists %d variants more than it has", shop, seen)
				}
			}
		}
		v := w.variants[rng.IntN(len(w.variants))]
		got := do(t, h, call{path: variantPath(v) + "/stock?as_of=" + asOf, token: w.tokens[w.owner[v.shop]].seller})
		var st struct {
			Quantity int64     `json:"quantity"`
			AsOf     time.Time `json:"as_of"`
		}
		if err := json.Unmarshal(got.Body.Bytes(), &st); err != nil || got.Code != 200 {
			t.Fatalf("variant stock: %d %s", got.Code, got.Body)
		}
		if k := [2]string{fmt.Sprint(v.listing), v.key}; st.Quantity != want[k] || !st.AsOf.Equal(at) {
			t.Errorf("variant %v as of %s = %d (as_of %s), replay says %d", k, at, st.Quantity, st.AsOf, want[k])
		}
	}
}

// csvTable reads a CSV body into its header and rows.
func csvTable(t *testing.T, body []byte) ([]string, [][]string) {
	t.Helper()
	recs, err := csv.NewReader(strings.NewReader(string(body))).ReadAll()
	if err != nil {
		t.Fatalf("CSV does not parse: %v\n%s", err, body)
	}
	if len(recs) == 0 {
		t.Fatal("CSV without a header")
	}
	return recs[0], recs[1:]
}

// cell renders a JSON value the way the CSV writes it; nested objects are
// reached by joining keys with "_" (price_amount is price.amount).
func cell(t *testing.T, item map[string]any, col string) string {
	t.Helper()
	v, ok := item[col]
	if !ok {
		for k, nested := range item {
			if m, isMap := nested.(map[string]any); isMap && strings.HasPrefix(col, k+"_") {
				v, ok = m[strings.TrimPrefix(col, k+"_")], true
				break
			}
		}
	}
	if !ok {
		t.Fatalf("CSV column %q is not in the JSON item %v", col, item)
	}
	switch x := v.(type) {
	case nil:
		return ""
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	case string:
		if x != "" && strings.ContainsRune("=+-@\t\r", rune(x[0])) {
			if _, err := strconv.ParseFloat(x, 64); err != nil {
				return "'" + x // formula defused
			}
		}
		return x
	}
	t.Fatalf("column %q holds %T", col, v)
	return ""
}

// A variant's history with no movement in the range is an empty page; a
// variant that does not exist, or is another seller's, is a 404, with or
// without a range, in either order.
func TestHistoryTellsAnEmptyRangeFromNoVariant(t *testing.T) {
	t.Parallel()
	w, h := newWorldAPI(t, 49, nil)
	tok := w.tokens[1].seller
	mine, theirs := w.variantOf(11), w.variantOf(21)
	unknown := variantRef{listing: mine.listing, key: mine.key + "-none"}
	for _, q := range []string{"", "?order=desc", "?from=2100-01-01T00:00:00Z", "?order=desc&from=2100-01-01T00:00:00Z"} {
		got := do(t, h, call{path: variantPath(mine) + "/history" + q, token: tok})
		var page struct {
			Items []linkedMovement `json:"items"`
		}
		if err := json.Unmarshal(got.Body.Bytes(), &page); err != nil || got.Code != http.StatusOK {
			t.Fatalf("own variant%s: %d %s", q, got.Code, got.Body)
		}
		if inRange := !strings.Contains(q, "from="); inRange != (len(page.Items) > 0) {
			t.Errorf("own variant%s: %d movements", q, len(page.Items))
		}
		for _, v := range []variantRef{unknown, theirs} {
			if got := do(t, h, call{path: variantPath(v) + "/history" + q, token: tok}); got.Code != http.StatusNotFound {
				t.Errorf("%s%s: %d %s, want 404", variantPath(v), q, got.Code, got.Body)
			}
		}
	}
}

// CSV answers parse back to the same rows as the JSON answer.
func TestCSVMatchesJSON(t *testing.T) {
	t.Parallel()
	w, h := newWorldAPI(t, 48, nil)
	tok := w.tokens[1].seller
	v := w.variantOf(11)
	paths := []string{
		"/v1/products?include_deleted=true&sort=-quantity",
		"/v1/sales",
		variantPath(v) + "/history",
	}
	for _, path := range paths {
		t.Run(path, func(t *testing.T) {
			js := do(t, h, call{path: path, token: tok})
			var page struct {
				Items []map[string]any `json:"items"`
			}
			if err := json.Unmarshal(js.Body.Bytes(), &page); err != nil || js.Code != 200 {
				t.Fatalf("JSON: %d %s", js.Code, js.Body)
			}
			if len(page.Items) == 0 {
				t.Fatal("empty page proves nothing")
			}
			sep := "?"
			if strings.Contains(path, "?") {
				sep = "&"
			}
			for _, c := range []call{
				{path: path + sep + "format=csv", token: tok},
				{path: path, token: tok, header: map[string]string{"Accept": "text/csv"}},
				{path: path, token: tok, header: map[string]string{"Accept": "application/json;q=0.5, text/csv"}},
			} {
				got := do(t, h, c)
				if got.Code != 200 || !strings.HasPrefix(got.Header().Get("Content-Type"), "text/csv") {
					t.Fatalf("%v: %d %s %s", c.header, got.Code, got.Header().Get("Content-Type"), got.Body)
				}
				header, rows := csvTable(t, got.Body.Bytes())
				if len(rows) != len(page.Items) {
					t.Fatalf("CSV has %d rows, JSON %d items", len(rows), len(page.Items))
				}
				for i, item := range page.Items {
					want := make([]string, len(header))
					for j, col := range header {
						want[j] = cell(t, item, col)
					}
					if diff := cmp.Diff(want, rows[i]); diff != "" {
						t.Errorf("row %d (-json +csv):\n%s", i, diff)
					}
				}
			}
		})
	}
	if got := do(t, h, call{path: "/v1/shops?format=csv", token: tok}); got.Code != http.StatusBadRequest {
		t.Errorf("CSV of an endpoint without one = %d, want 400", got.Code)
	}
	if got := do(t, h, call{path: "/v1/products", token: tok, header: map[string]string{"Accept": "image/png"}}); got.Code != http.StatusNotAcceptable {
		t.Errorf("Accept: image/png = %d, want 406", got.Code)
	}
}
