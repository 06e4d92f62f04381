package main

import (
	"database/sql"
	"testing"
)

// seedShop makes the ledger know a shop of an Etsy seller: a connection,
// as ledger shops connect leaves one.
func seedShop(t *testing.T, db *sql.DB, shop, seller int64, name string) {
	t.Helper()
	if _, err := db.Exec(`INSERT INTO shop_connections (shop_id, user_id, shop_name, status, connected_at, status_changed_at)
		VALUES ($1, $2, $3, 'connected', now(), now())`, shop, seller, name); err != nil {
		t.Fatal(err)
	}
}

// seedListing makes the products read model hold a listing of shop as
// Etsy described it, with variants.
func seedListing(t *testing.T, db *sql.DB, shop, listing int64, title string, variants ...string) {
	t.Helper()
	if _, err := db.Exec(`INSERT INTO products (shop_id, listing_id, title, state, created_at, updated_at, last_position)
		VALUES ($1, $2, $3, 'active', now(), now(), 1)`, shop, listing, title); err != nil {
		t.Fatal(err)
	}
	for _, key := range variants {
		if _, err := db.Exec(`INSERT INTO product_variants (shop_id, listing_id, variant_key, sku, active, updated_at, last_position)
			VALUES ($1, $2, $3, $3, true, now(), 1)`, shop, listing, key); err != nil {
			t.Fatal(err)
		}
	}
}
