package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/service"
)

// A rebuild of every read model holds one connection per shadow table's
// COPY, one for reading the log and one for its lock, all at once. With a
// pool smaller than that the read of the log (or a COPY whose buffer the
// read fills) waits for a connection that never comes back, and the command
// hangs. More movements than a COPY's buffer holds make that certain
// rather than a race between goroutines.
func TestRebuildEveryReadModelWithMoreRowsThanACopyBuffers(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	ls := events.ListingStream(5)
	const moves = 6000
	evs := []events.Event{events.New(ls, 1, at, events.ListingImported{ListingID: 5, ShopID: 1, Title: "Mug", State: "active", EtsyUpdatedAt: at,
		Variants: []events.Variant{{Key: "sku:A", SKU: "A", Enabled: true}}})}
	for i := range moves {
		evs = append(evs, events.New(ls, 1, at.Add(time.Duration(i)*time.Second),
			events.StockAdjusted{ListingID: 5, VariantKey: "sku:A", Delta: 1, Reason: events.ReasonEtsyChange}))
	}
	appendVisible(t, db, evs...)

	// Which connection ends up waiting is a race between goroutines, so
	// the rebuild runs several times; each is bounded well above what the
	// work takes, since a hang is the failure.
	env := service.MapEnv(map[string]string{"SHOPLEDGER_DATABASE_URL": db.URL})
	var out bytes.Buffer
	for i := range 8 {
		out.Reset()
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		err := run(ctx, []string{"rebuild"}, env, &out)
		cancel()
		if err != nil {
			t.Fatalf("rebuild %d: %v\n%s", i+1, err, out.String())
		}
	}
	var qty, rows int64
	if err := db.DB.QueryRow(`SELECT quantity FROM product_variants WHERE listing_id = 5 AND variant_key = 'sku:A'`).Scan(&qty); err != nil {
		t.Fatal(err)
	}
	if err := db.DB.QueryRow(`SELECT count(*) FROM stock_movements`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if qty != moves || rows != moves {
		t.Errorf("after the rebuild: quantity %d over %d movements, want %d over %d\n%s", qty, rows, moves, moves, out.String())
	}
	if !strings.Contains(out.String(), "rebuilt and swapped in") {
		t.Errorf("rebuild output = %q", out.String())
	}
}
