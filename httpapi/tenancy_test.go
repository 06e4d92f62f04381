package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/httpapi"
)

// routeCall fills a route pattern with the objects of one tenant.
func routeCall(t *testing.T, w *world, seller int64, pattern string) (path string, ok bool) {
	t.Helper()
	shop, listing, v, receipt, eventID := w.firstOf(seller)
	repl := map[string]string{
		"{shopID}":     fmt.Sprint(shop),
		"{listingID}":  fmt.Sprint(listing),
		"{variantKey}": url.PathEscape(v.key),
		"{receiptID}":  fmt.Sprint(receipt),
		"{eventID}":    eventID,
	}
	if strings.Contains(pattern, "{alertID}") {
		repl["{alertID}"] = w.alertOf(shop)
	}
	path = pattern
	for k, val := range repl {
		path = strings.ReplaceAll(path, k, val)
	}
	return path, !strings.Contains(path, "{")
}

// shopScoped lists the routes without a path id that take ?shop_id=; for
// them another tenant's shop in the query must be a 404 as well.
var shopScoped = map[string]bool{
	"GET /v1/products": true, "GET /v1/sales": true, "GET /v1/events": true, "GET /v1/events/export": true, "GET /v1/alerts": true,
}

// Every route that names an object answers 404 when one
// seller's token names another seller's object, and 2xx for the owner. The
// routes come from the router itself, so a new route is covered (or fails
// this test) without anyone remembering to add it.
func TestEveryRouteHidesOtherTenantsObjects(t *testing.T) {
	t.Parallel()
	w, h := newWorldAPI(t, 40, nil)
	routes, err := httpapi.Routes(h)
	if err != nil {
		t.Fatal(err)
	}
	tested := 0
	for _, route := range routes {
		method, pattern, _ := strings.Cut(route, " ")
		if !strings.HasPrefix(pattern, "/v1/") {
			continue
		}
		for _, pair := range [][2]int64{{1, 2}, {2, 1}} {
			caller, owner := pair[0], pair[1]
			t.Run(fmt.Sprintf("%s seller %d asks for seller %d", route, caller, owner), func(t *testing.T) {
				token := w.tokens[caller].auditor
				ownerToken := w.tokens[owner].auditor
				body := ""
				if b, ok := writeBody(method, pattern); ok {
					token, ownerToken = w.tokens[caller].seller, w.tokens[owner].seller
					body = b
				}
				path, ok := routeCall(t, w, owner, pattern)
				if !ok {
					t.Fatalf("route %s has a path parameter this test cannot fill: add it to routeCall", route)
				}
				if !strings.Contains(pattern, "{") {
					if !shopScoped[route] {
						t.Skipf("%s names no object; the list property test covers it", route)
					}
					path += fmt.Sprintf("?shop_id=%d", w.shops[owner][0])
				}
				tested++
				if got := do(t, h, call{method: method, path: path, token: token, body: body}); got.Code != http.StatusNotFound {
					t.Errorf("%s %s with seller %d's token = %d, want 404; body %s", method, path, caller, got.Code, got.Body)
				} else {
					problemOf(t, got)
				}
				if got := do(t, h, call{method: method, path: path, token: ownerToken, body: body}); got.Code/100 != 2 {
					t.Errorf("%s %s with the owner's token = %d, want 2xx; body %s", method, path, got.Code, got.Body)
				}
			})
		}
	}
	if tested < 20 {
		t.Errorf("only %d route × tenant cases ran", tested)
	}
}

// rowsOf collects every row of a list endpoint, page by page.
func rowsOf(t *testing.T, h http.Handler, token, path string) []map[string]any {
	t.Helper()
	var out []map[string]any
	next := path
	for pages := 0; next != ""; pages++ {
		if pages > 200 {
			t.Fatalf("%s: more than 200 pages", path)
		}
		w := do(t, h, call{path: next, token: token})
		if w.Code != http.StatusOK {
			t.Fatalf("GET %s = %d: %s", next, w.Code, w.Body)
		}
		var page struct {
			Items      []map[string]any `json:"items"`
			NextCursor string           `json:"next_cursor"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &page); err != nil {
			t.Fatal(err)
		}
		out = append(out, page.Items...)
		next = ""
		if page.NextCursor != "" {
			u, _ := url.Parse(path)
			q := u.Query()
			q.Set("cursor", page.NextCursor)
			u.RawQuery = q.Encode()
			next = u.String()
		}
	}
	return out
}

// exportRows reads a whole export the way a client should: through
// httpapi.ReadExport, which fails unless the trailer says it is complete.
func exportRows(t *testing.T, h http.Handler, token, path string) []map[string]any {
	t.Helper()
	w := do(t, h, call{path: path, token: token})
	if w.Code != http.StatusOK {
		t.Fatalf("GET %s = %d: %s", path, w.Code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("export Content-Type %q", ct)
	}
	var out []map[string]any
	if _, err := httpapi.ReadExport(w.Body, func(ev eventstore.LoggedEvent) error {
		b, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		var row map[string]any
		if err := json.Unmarshal(b, &row); err != nil {
			return err
		}
		out = append(out, row)
		return nil
	}); err != nil {
		t.Fatalf("export %s: %v", path, err)
	}
	return out
}

// Whatever the data, every row a list returns belongs to the
// caller's shops, and the caller sees all of its own rows. Several random
// worlds, every list endpoint, small pages so pagination is exercised.
func TestListsReturnOnlyTheCallersRows(t *testing.T) {
	t.Parallel()
	for seed := uint64(1); seed <= 3; seed++ {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			w, h := newWorldAPI(t, seed, nil)
			for _, seller := range w.sellerIDs() {
				mine := w.shops[seller]
				tok := w.tokens[seller].auditor
				lists := map[string][]map[string]any{
					"shops":    rowsOf(t, h, tok, "/v1/shops"),
					"products": rowsOf(t, h, tok, "/v1/products?limit=3&include_deleted=true"),
					"sales":    rowsOf(t, h, tok, "/v1/sales?limit=4"),
					"events":   rowsOf(t, h, tok, "/v1/events?limit=7"),
					"export":   exportRows(t, h, tok, "/v1/events/export"),
					"alerts":   rowsOf(t, h, tok, "/v1/alerts?limit=2"),
				}
				for _, shop := range mine {
					lists[fmt.Sprint("stock of ", shop)] = rowsOf(t, h, tok, fmt.Sprintf("/v1/shops/%d/stock?limit=5", shop))
				}
				var wantProducts, wantSales, wantEvents, wantAlerts int
				if err := w.db.DB.QueryRow(`SELECT (SELECT count(*) FROM products WHERE shop_id = ANY($1)),
					(SELECT count(*) FROM sales WHERE shop_id = ANY($1) AND recorded),
					(SELECT count(*) FROM event_seal WHERE shop_id = ANY($1)),
					(SELECT count(*) FROM alerts WHERE shop_id = ANY($1))`, mine).Scan(&wantProducts, &wantSales, &wantEvents, &wantAlerts); err != nil {
					t.Fatal(err)
				}
				if wantAlerts == 0 {
					t.Fatal("seed raised no alert")
				}
				counts := map[string]int{"shops": len(mine), "products": wantProducts, "sales": wantSales, "events": wantEvents, "export": wantEvents, "alerts": wantAlerts}
				for name, rows := range lists {
					if want, ok := counts[name]; ok && len(rows) != want {
						t.Errorf("seller %d %s: %d rows, want all %d of theirs", seller, name, len(rows), want)
					}
					for _, row := range rows {
						shop, ok := row["shop_id"].(float64)
						if l, isStock := row["listing_id"].(float64); !ok && isStock {
							// Stock rows name their listing; the page names the shop.
							shop, ok = float64(w.listings[int64(l)]), true
						}
						if !ok {
							t.Fatalf("%s row without shop_id: %v", name, row)
						}
						if !slices.Contains(mine, int64(shop)) {
							t.Errorf("seller %d %s: row of shop %v: %v", seller, name, shop, row)
						}
					}
				}
			}
		})
	}
}
