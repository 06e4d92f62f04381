package etsysim_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shopledger/shopledger/etsy/etsysim"
)

var update = flag.Bool("update", false, "rewrite golden files")

var goldenStart = time.Date(2026, 2, 14, 10, 0, 0, 0, time.UTC)

// goldenCase is one recorded answer and the schema it must follow.
type goldenCase struct {
	name   string
	method string
	path   string
	body   string
	schema string
	status int
}

// goldenWorld builds a small deterministic world and returns the requests
// to record.
func goldenWorld(t *testing.T) (*etsysim.Sim, http.Handler, string, []goldenCase) {
	t.Helper()
	sim, err := etsysim.New(etsysim.Options{Seed: 7, Start: goldenStart, FreezeClock: true, QPS: 1000, QPD: 100000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	shop, err := sim.CreateShop(etsysim.ShopSpec{Name: "GoldenGoods"})
	if err != nil {
		t.Fatal(err)
	}
	simple, err := sim.CreateListing(shop.ShopID, etsysim.ListingSpec{Title: "Walnut Spoon", Price: 1250, Quantity: 7, SKU: "SPOON-1", ShippingCost: 350})
	if err != nil {
		t.Fatal(err)
	}
	sim.Advance(time.Minute)
	grid, err := sim.CreateListing(shop.ShopID, etsysim.ListingSpec{Title: "Merino Beanie", Price: 2800, Products: []etsysim.ProductSpec{
		{SKU: "BEANIE-NAVY-S", Quantity: 2, PropertyValues: []etsysim.PropertyValueSpec{{PropertyID: 200, PropertyName: "Primary color", Value: "Navy"}, {PropertyName: "Size", Value: "S"}}},
		{Quantity: 5, Price: 3000, PropertyValues: []etsysim.PropertyValueSpec{{PropertyID: 200, PropertyName: "Primary color", Value: "Navy"}, {PropertyName: "Size", Value: "L"}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	sim.Advance(time.Hour)
	r, err := sim.CreateOrder(shop.ShopID, etsysim.OrderSpec{
		Items:    []etsysim.OrderItem{{ListingID: simple.ListingID, Quantity: 2}, {ListingID: grid.ListingID, VariantKey: grid.Variants[1].VariantKey, Quantity: 1}},
		Discount: 250, TaxCost: 310, BuyerName: "Ada Lovelace",
	})
	if err != nil {
		t.Fatal(err)
	}
	sim.Advance(time.Hour)
	if _, err := sim.ShipOrder(r.ReceiptID, "usps", "9400100000000000000001"); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.RefundOrder(r.ReceiptID, 500, "Scratched"); err != nil {
		t.Fatal(err)
	}
	other, err := sim.CreateShop(etsysim.ShopSpec{Name: "SomeoneElse"})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := sim.IssueToken(shop.ShopID, nil)
	if err != nil {
		t.Fatal(err)
	}
	id := func(n int64) string { return jsonNumber(n) }
	shopPath := "/v3/application/shops/" + id(shop.ShopID)
	lPath := "/v3/application/listings/"
	cases := []goldenCase{
		{"ping", "GET", "/v3/application/openapi-ping", "", "Pong", 200},
		{"getMe", "GET", "/v3/application/users/me", "", "Self", 200},
		{"getShop", "GET", shopPath, "", "Shop", 200},
		{"getListingsByShop", "GET", shopPath + "/listings?includes=Inventory&sort_order=asc", "", "ShopListingsWithAssociations", 200},
		{"getListing", "GET", lPath + id(simple.ListingID), "", "ShopListingWithAssociations", 200},
		{"getListingWithInventory", "GET", lPath + id(grid.ListingID) + "?includes=Inventory", "", "ShopListingWithAssociations", 200},
		{"getListingsByListingIds", "GET", lPath + "batch?listing_ids=" + id(simple.ListingID), "", "ShopListingsWithAssociations", 200},
		{"getListingInventory", "GET", lPath + id(grid.ListingID) + "/inventory", "", "ListingInventoryWithAssociations", 200},
		{"getListingProduct", "GET", lPath + id(grid.ListingID) + "/inventory/products/" + id(grid.Variants[0].ProductID), "", "ListingInventoryProduct", 200},
		{"updateListingInventory", "PUT", lPath + id(grid.ListingID) + "/inventory",
			`{"products":[{"sku":"BEANIE-NAVY-S","property_values":[{"property_id":200,"property_name":"Primary color","value_ids":[` + id(grid.Variants[0].ValueIDs[0]) + `],"values":["Navy"]},{"property_id":513,"property_name":"Size","value_ids":[` + id(grid.Variants[0].ValueIDs[1]) + `],"values":["S"]}],"offerings":[{"price":28.0,"quantity":4,"is_enabled":true}]},` +
				`{"sku":null,"property_values":[{"property_id":200,"property_name":"Primary color","value_ids":[` + id(grid.Variants[1].ValueIDs[0]) + `],"values":["Navy"]},{"property_id":513,"property_name":"Size","value_ids":[` + id(grid.Variants[1].ValueIDs[1]) + `],"values":["L"]}],"offerings":[{"price":30.5,"quantity":0,"is_enabled":true}]}],` +
				`"price_on_property":[513],"quantity_on_property":[513],"sku_on_property":[513]}`,
			"ListingInventory", 200},
		{"getShopReceipts", "GET", shopPath + "/receipts?was_paid=true", "", "ShopReceipts", 200},
		{"getShopReceipt", "GET", shopPath + "/receipts/" + id(r.ReceiptID), "", "ShopReceipt", 200},
		{"getShopReceiptTransactionsByReceipt", "GET", shopPath + "/receipts/" + id(r.ReceiptID) + "/transactions", "", "ShopReceiptTransactions", 200},
		{"getShopReceiptTransactionsByShop", "GET", shopPath + "/transactions", "", "ShopReceiptTransactions", 200},
		{"error404", "GET", lPath + "1", "", "ErrorSchema", 404},
		{"error400", "GET", shopPath + "/receipts?limit=500", "", "ErrorSchema", 400},
		{"error400Inventory", "PUT", lPath + id(simple.ListingID) + "/inventory", `{"products":[{"sku":"SPOON-1","property_values":[],"offerings":[{"price":12.5,"quantity":0,"is_enabled":true}]}]}`, "ErrorSchema", 400},
		{"error403", "GET", "/v3/application/shops/" + id(other.ShopID) + "/receipts", "", "ErrorSchema", 403},
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Set("x-api-key", etsysim.DefaultKeyString+":"+etsysim.DefaultSharedSecret)
		r.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		if r.Method == http.MethodPut {
			r.Header.Set("Content-Type", "application/json")
		}
		sim.ServeHTTP(w, r)
	})
	return sim, h, tok.AccessToken, cases
}

func jsonNumber(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func record(t *testing.T, h http.Handler, c goldenCase) []byte {
	t.Helper()
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	req := httptest.NewRequest(c.method, c.path, body)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != c.status {
		t.Fatalf("%s: status %d, want %d: %s", c.name, rec.Code, c.status, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: content type %q", c.name, ct)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, rec.Body.Bytes(), "", "  "); err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}
	out.WriteByte('\n')
	return out.Bytes()
}

func TestGolden(t *testing.T) {
	_, h, _, cases := goldenWorld(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := record(t, h, c)
			path := filepath.Join("testdata", "golden", c.name+".json")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("%s (-want +got):\n%s", path, diff)
			}
		})
	}
}
