package main

import (
	"bytes"
	"context"
	"database/sql"
	"testing"

	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/service"
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

// mugShop is a fresh database where the ledger knows shop 7 of seller 700
// and its listing 70 with the variant sku:M-1, and the settings of ledger
// commands against it.
func mugShop(t *testing.T) (*pgtest.Database, func(string) string) {
	t.Helper()
	db := pgtest.New(t)
	seedShop(t, db.DB, 7, 700, "Knots")
	seedListing(t, db.DB, 7, 70, "Mug", "sku:M-1")
	return db, service.MapEnv(map[string]string{"SHOPLEDGER_DATABASE_URL": db.URL})
}

// runAll runs each command line with env, failing the test at the first
// error, and returns what each printed.
func runAll(t *testing.T, env func(string) string, lines [][]string) []string {
	t.Helper()
	outs := make([]string, len(lines))
	for i, args := range lines {
		var out bytes.Buffer
		if err := run(context.Background(), args, env, &out); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		outs[i] = out.String()
	}
	return outs
}
