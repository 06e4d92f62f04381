package httpapi

import (
	"context"
	"net/http"
	"net/url"

	"github.com/shopledger/shopledger/projections"
)

// What the web pages share with the API's products list, so that a page
// and GET /v1/products read the same query the same way, page with the
// same cursors and export the same CSV.

// ProductQuery reads the query parameters of GET /v1/products (q, state,
// shop_id, low_stock, include_deleted, sort, limit, cursor) into a filter
// over shops. A parameter that is wrong is an *InputError; a shop_id
// outside shops is ErrNotFound.
func ProductQuery(q url.Values, shops []int64) (projections.ProductFilter, error) {
	return productQuery(q, Principal{Shops: shops})
}

// ProductPage reads one page of products as GET /v1/products does: the
// items and the cursor of the next page ("" on the last).
func ProductPage(ctx context.Context, r ProductReader, f projections.ProductFilter) ([]projections.Product, string, error) {
	f.Limit++
	items, err := r.ListProducts(ctx, f)
	if err != nil {
		return nil, "", err
	}
	items, next := pageOf(items, f.Limit, func(last projections.Product) any {
		return projections.ProductCursor{ListingID: last.ListingID, Title: last.Title, Quantity: last.Quantity, UpdatedAt: last.UpdatedAt, Sort: sortParam(f.Sort)}
	})
	return items, next, nil
}

// WriteProductsCSV writes products as GET /v1/products?format=csv does,
// under the file name name.csv.
func WriteProductsCSV(w http.ResponseWriter, name string, items []projections.Product) {
	writeCSV(w, name, productPage{Items: nonNil(items)})
}
