package webapp

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/httpapi"
	"github.com/shopledger/shopledger/projections"
)

// The products list reads the same query parameters as GET /v1/products
// (httpapi.ProductQuery), pages with its cursors and exports its CSV.

type productsData struct {
	Shops     []projections.Shop
	States    []string
	Sorts     []option
	Q         url.Values
	Items     []productRow
	NextLink  string
	FirstLink string
	CSVLink   string
	Filtered  bool
	ReadsLog  bool
	// CanStocktake links each shop's stocktake page (owners and staff).
	CanStocktake bool
}

type option struct{ Value, Label string }

type productRow struct {
	projections.Product
	Link     string
	Shop     string
	Price    string
	Units    string
	LowStock bool
}

var productSorts = []option{
	{"listing_id", "Listing id"}, {"title", "Title, A to Z"}, {"-title", "Title, Z to A"},
	{"quantity", "Fewest units first"}, {"-quantity", "Most units first"},
	{"-updated_at", "Recently changed first"}, {"updated_at", "Least recently changed first"},
}

// productFilterKeys are the list's filters: what a next page and the CSV
// link carry on.
var productFilterKeys = []string{"q", "shop_id", "state", "low_stock", "include_deleted", "sort", "limit"}

func filterQuery(q url.Values) url.Values {
	out := url.Values{}
	for _, k := range productFilterKeys {
		if v := strings.TrimSpace(q.Get(k)); v != "" {
			out.Set(k, v)
		}
	}
	return out
}

// inputMessage returns the API's reason for refusing a query, when err
// is such a refusal (the page then shows it).
func inputMessage(err error) (string, bool) {
	var ie *httpapi.InputError
	if errors.As(err, &ie) {
		return ie.Error(), true
	}
	return "", false
}

func (a *app) productsPage(w http.ResponseWriter, r *http.Request) {
	s, _ := sessionOf(r)
	ctx := r.Context()
	shops, err := a.orgShops(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	q := filterQuery(r.URL.Query())
	d := productsData{States: etsy.ListingStates(), Sorts: productSorts, Q: q, ReadsLog: s.Role.ReadsLog(), CanStocktake: s.Role.Writes() && a.cfg.StockEdits != nil}
	if d.Shops, err = a.cfg.Data.Shops.ListShops(ctx, shops); err != nil {
		a.fail(w, r, err)
		return
	}
	v := view{Title: "Products", Data: &d}
	f, err := httpapi.ProductQuery(r.URL.Query(), shops)
	if msg, ok := inputMessage(err); ok {
		v.Error = "This filter cannot be used: " + msg + "."
		a.render(w, r, http.StatusBadRequest, "products", v)
		return
	}
	if err != nil {
		a.lookupError(w, r, err)
		return
	}
	d.Filtered = f.ShopID != 0 || f.State != "" || f.LowStockOnly || f.Search != "" || f.IncludeDeleted
	items, next, err := httpapi.ProductPage(ctx, a.cfg.Data.Products, f)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	names := map[int64]string{}
	for _, sh := range d.Shops {
		names[sh.ShopID] = sh.Name
	}
	for _, p := range items {
		d.Items = append(d.Items, productRow{Product: p, Link: productPath(p.ListingID), Shop: cmp.Or(names[p.ShopID], strconv.FormatInt(p.ShopID, 10)),
			Price: money(p.Price.Amount, p.Price.Currency), Units: number(p.Quantity), LowStock: p.LowStockVariants > 0})
	}
	if next != "" {
		nq := filterQuery(q)
		nq.Set("cursor", next)
		d.NextLink = "/products?" + nq.Encode()
	}
	if r.URL.Query().Get("cursor") != "" {
		d.FirstLink = "/products?" + q.Encode()
	}
	cq := filterQuery(q)
	cq.Del("limit")
	d.CSVLink = "/products.csv"
	if len(cq) > 0 {
		d.CSVLink += "?" + cq.Encode()
	}
	a.render(w, r, http.StatusOK, "products", v)
}

// csvPage is how many products the CSV reads at a time.
const csvPage = 500

// productsCSV writes every product the filters select, in the columns of
// GET /v1/products?format=csv, reading page after page with the API's
// cursors.
func (a *app) productsCSV(w http.ResponseWriter, r *http.Request) {
	shops, err := a.orgShops(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	q := filterQuery(r.URL.Query())
	q.Del("limit")
	f, err := httpapi.ProductQuery(q, shops)
	if msg, ok := inputMessage(err); ok {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte("This filter cannot be used: " + msg + ".\n"))
		return
	}
	if err != nil {
		a.lookupError(w, r, err)
		return
	}
	f.Limit = csvPage
	all, err := allPages(func() ([]projections.Product, string, error) {
		return httpapi.ProductPage(r.Context(), a.cfg.Data.Products, f)
	},
		func(last projections.Product) {
			f.After = &projections.ProductCursor{ListingID: last.ListingID, Title: last.Title, Quantity: last.Quantity, UpdatedAt: last.UpdatedAt}
		})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpapi.WriteProductsCSV(w, "products", all)
}

// Product page.

type productData struct {
	projections.ProductDetail
	Shop       projections.Shop
	Link       string
	Price      string
	Variants   []variantRow
	CanWrite   bool
	ReadsLog   bool
	Form       url.Values
	FormTarget string
}

type variantRow struct {
	projections.Variant
	Link        string
	ExplainLink string
	Name        string
	Price       string
	// DriftShown is Etsy's last quantity less the balance; Drifted is
	// true when they differ.
	DriftShown string
	Drifted    bool
	Cover      string
}

// loadProduct finds the listing of {listingID} among the organisation's
// shops, with its variants' days of cover; ok false means it answered.
func (a *app) loadProduct(w http.ResponseWriter, r *http.Request) (productData, bool) {
	s, _ := sessionOf(r)
	ctx := r.Context()
	id, ok := listingParam(r)
	if !ok {
		a.notFound(w, r)
		return productData{}, false
	}
	shops, err := a.orgShops(r)
	if err != nil {
		a.fail(w, r, err)
		return productData{}, false
	}
	prod, err := a.cfg.Data.Products.GetProduct(ctx, shops, id)
	if err != nil {
		a.lookupError(w, r, err)
		return productData{}, false
	}
	d := productData{ProductDetail: prod, Link: productPath(id), Price: money(prod.Price.Amount, prod.Price.Currency),
		CanWrite: s.Role.Writes(), ReadsLog: s.Role.ReadsLog()}
	if sh, err := a.cfg.Data.Shops.GetShop(ctx, shops, prod.ShopID); err == nil {
		d.Shop = sh
	} else if !errors.Is(err, projections.ErrNotFound) {
		a.fail(w, r, err)
		return productData{}, false
	} else {
		d.Shop = projections.Shop{ShopID: prod.ShopID, Name: "Shop " + strconv.FormatInt(prod.ShopID, 10)}
	}
	sp, err := a.stockPages()
	if err != nil {
		a.fail(w, r, err)
		return productData{}, false
	}
	now := timeNow()
	covers, err := sp.RunningOut(ctx, shops, id, now.Add(-coverWindow), now, len(prod.Variants)+1)
	if err != nil {
		a.fail(w, r, err)
		return productData{}, false
	}
	cover := map[string]projections.Cover{}
	for _, c := range covers {
		cover[c.VariantKey] = c
	}
	for _, v := range prod.Variants {
		row := variantRow{Variant: v, Link: variantPath(id, v.VariantKey), Name: variantName(v), Price: money(v.Price.Amount, v.Price.Currency),
			Cover: "no sales in 30 days"}
		if c, ok := cover[v.VariantKey]; ok {
			row.Cover = days(c.DaysOfCover) + " (" + number(c.Sold) + " sold in 30 days)"
		}
		row.DriftShown = "—"
		if v.ObservedQuantity != nil {
			drift := *v.ObservedQuantity - v.Quantity
			row.Drifted = drift != 0
			row.DriftShown = "none"
			if row.Drifted {
				row.DriftShown = fmt.Sprintf("%+d", drift)
			}
		}
		if d.ReadsLog {
			row.ExplainLink = explainPath(id, v.VariantKey, now)
		}
		d.Variants = append(d.Variants, row)
	}
	return d, true
}

func variantName(v projections.Variant) string {
	name := cmp.Or(v.SKU, v.VariantKey)
	if v.Properties != "" {
		name += " · " + v.Properties
	}
	return name
}

func (a *app) productPage(w http.ResponseWriter, r *http.Request) {
	d, ok := a.loadProduct(w, r)
	if !ok {
		return
	}
	a.render(w, r, http.StatusOK, "product", view{Title: cmp.Or(d.Title, "Listing "+strconv.FormatInt(d.ListingID, 10)), Data: &d})
}

// findVariant returns the row of key among a product's variants.
func findVariant(d productData, key string) (variantRow, bool) {
	i := slices.IndexFunc(d.Variants, func(v variantRow) bool { return v.VariantKey == key })
	if i < 0 {
		return variantRow{}, false
	}
	return d.Variants[i], true
}
