package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/service"
)

// appendVisible appends evs to their stream and waits until the log shows
// them: a rebuild reads only below the oldest running transaction of the
// whole server, and other tests' transactions may hold that back a while.
func appendVisible(t *testing.T, db *pgtest.Database, evs ...events.Event) {
	t.Helper()
	if _, err := eventstore.New(db.DB).Append(context.Background(), evs[0].StreamID, eventstore.NoStream, evs...); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var visible int
		if err := db.DB.QueryRow(`SELECT count(*) FROM events WHERE transaction_id < log_horizon()`).Scan(&visible); err != nil {
			t.Fatal(err)
		}
		if visible == len(evs) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the appended events stayed above the oldest running transaction")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRebuildCommand(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	ls := events.ListingStream(5)
	appendVisible(t, db,
		events.New(ls, 1, at, events.ListingImported{ListingID: 5, ShopID: 1, Title: "Mug", State: "active", EtsyUpdatedAt: at,
			Variants: []events.Variant{{Key: "sku:A", SKU: "A", Enabled: true}}}),
		events.New(ls, 1, at, events.StockAdjusted{ListingID: 5, VariantKey: "sku:A", Delta: 4, Reason: events.ReasonInitialImport}),
	)
	env := service.MapEnv(map[string]string{"SHOPLEDGER_DATABASE_URL": db.URL})

	var out bytes.Buffer
	if err := run(ctx, []string{"rebuild", "--projection", "products"}, env, &out); err != nil {
		t.Fatalf("rebuild: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "rebuilt and swapped in products from 2 events") {
		t.Errorf("rebuild output = %q", out.String())
	}
	var qty int64
	if err := db.DB.QueryRow(`SELECT quantity FROM product_variants WHERE listing_id = 5 AND variant_key = 'sku:A'`).Scan(&qty); err != nil {
		t.Fatal(err)
	}
	if qty != 4 {
		t.Errorf("rebuilt quantity = %d, want 4", qty)
	}
	var group int
	if err := db.DB.QueryRow(`SELECT count(*) FROM event_offsets WHERE consumer_group = 'products' AND offset_acked > 0`).Scan(&group); err != nil {
		t.Fatal(err)
	}
	if group != 1 {
		t.Error("the products consumer group was not moved past the rebuilt events")
	}

	for _, name := range []string{"seal", "nonsense"} {
		out.Reset()
		if err := run(ctx, []string{"rebuild", "--projection", name}, env, &out); !errors.Is(err, errUsage) {
			t.Errorf("rebuild --projection %s: err = %v, want a usage error", name, err)
		}
	}
}
