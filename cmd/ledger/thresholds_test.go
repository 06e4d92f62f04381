package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/service"
)

func TestThresholdsSetAppendsAnEventWithItsActor(t *testing.T) {
	db, env := mugShop(t)
	lines := [][]string{
		{"thresholds", "set", "--shop", "7", "3", "--actor", "ann"},
		{"thresholds", "set", "--shop", "7", "--listing", "70", "--actor", "bob", "8"},
		{"thresholds", "set", "--shop", "7", "--listing", "70", "--variant", "sku:M-1", "0", "--actor", "cy"},
	}
	for i, out := range runAll(t, env, lines) {
		if !strings.Contains(out, "set to") {
			t.Errorf("%v printed %q", lines[i], out)
		}
	}
	// Read by position: ReadAll waits for every older transaction of the
	// server, and other tests' may be running.
	rows, err := db.DB.Query(`SELECT ` + eventstore.RecordColumns + ` FROM events ORDER BY position`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var recs []events.Record
	for rows.Next() {
		r, err := eventstore.ScanRecord(rows)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	type row struct {
		Stream, Actor string
		Payload       events.StockThresholdSet
	}
	var got []row
	for _, r := range recs {
		got = append(got, row{r.StreamID, r.Metadata.Actor, r.Data.(events.StockThresholdSet)})
	}
	want := []row{
		{"shop-7", "ann", events.StockThresholdSet{Scope: events.ScopeShop, ShopID: 7, Threshold: 3, Actor: "ann"}},
		{"listing-70", "bob", events.StockThresholdSet{Scope: events.ScopeListing, ShopID: 7, ListingID: 70, Threshold: 8, Actor: "bob"}},
		{"listing-70", "cy", events.StockThresholdSet{Scope: events.ScopeVariant, ShopID: 7, ListingID: 70, VariantKey: "sku:M-1", Threshold: 0, Actor: "cy"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("threshold events (-want +got):\n%s", diff)
	}
}

func TestThresholdsSetRefusesBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"thresholds", "set", "--shop", "7", "3"},                                   // no actor
		{"thresholds", "set", "--shop", "7", "-1", "--actor", "ann"},                // negative
		{"thresholds", "set", "--actor", "ann", "3"},                                // no shop
		{"thresholds", "set", "--shop", "7", "--variant", "S", "3", "--actor", "a"}, // variant without listing
		{"thresholds", "set", "--shop", "7", "3", "4", "--actor", "ann"},            // two thresholds
	} {
		var out bytes.Buffer
		if err := run(context.Background(), args, service.MapEnv(nil), &out); !errors.Is(err, errUsage) {
			t.Errorf("%v: err = %v, want a usage error", args, err)
		}
	}
}

func TestAlertChannelsAddListAndSecret(t *testing.T) {
	db := pgtest.New(t)
	seedShop(t, db.DB, 7, 700, "Knots")
	env := service.MapEnv(map[string]string{"SHOPLEDGER_DATABASE_URL": db.URL})
	ledger := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := run(context.Background(), args, env, &out); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return out.String()
	}
	ledger("alert-channels", "add", "--shop", "7", "--kind", "slack", "--target", "https://hooks.slack.test/services/T0/B0/tok3n")
	list := ledger("alert-channels", "list", "--shop", "7")
	if strings.Contains(list, "tok3n") || !strings.Contains(list, "https://hooks.slack.test/…") {
		t.Errorf("list shows the Slack URL or no channel:\n%s", list)
	}
	first := ledger("alert-channels", "secret", "--shop", "7")
	again := ledger("alert-channels", "secret", "--shop", "7")
	rotated := ledger("alert-channels", "secret", "--shop", "7", "--rotate")
	if !strings.HasPrefix(first, "whsec_") || first != again || rotated == first {
		t.Errorf("secrets: first %q, again %q, rotated %q", first, again, rotated)
	}
	var out bytes.Buffer
	err := run(context.Background(), []string{"alert-channels", "add", "--shop", "7", "--kind", "pager", "--target", "x"}, env, &out)
	if !errors.Is(err, errUsage) {
		t.Errorf("unknown kind: err = %v, want a usage error", err)
	}
}

// The ledger refuses, before writing anything, thresholds and channels for
// what it does not know, and says what it found and what it did not.
func TestThresholdsAndChannelsRefuseWhatTheLedgerDoesNotKnow(t *testing.T) {
	db := pgtest.New(t)
	seedShop(t, db.DB, 7, 700, "Knots")
	seedShop(t, db.DB, 8, 800, "Other")
	seedListing(t, db.DB, 7, 70, "Mug", "sku:M-1", "sku:M-2")
	seedListing(t, db.DB, 8, 80, "Scarf")
	// A listing row that only a stray threshold made: never described.
	if _, err := db.DB.Exec(`INSERT INTO products (shop_id, listing_id, created_at, updated_at, last_position) VALUES (7, 999, now(), now(), 1)`); err != nil {
		t.Fatal(err)
	}
	env := service.MapEnv(map[string]string{"SHOPLEDGER_DATABASE_URL": db.URL})
	for _, tc := range []struct {
		args  []string
		found []string
		not   []string
	}{
		{[]string{"thresholds", "set", "--shop", "9", "3", "--actor", "ann"}, nil, []string{"shop 9"}},
		{[]string{"thresholds", "set", "--shop", "7", "--listing", "999", "3", "--actor", "ann"}, []string{"shop 7 (Knots)"}, []string{"listing 999 (never imported)"}},
		{[]string{"thresholds", "set", "--shop", "7", "--listing", "71", "3", "--actor", "ann"}, []string{"shop 7 (Knots)"}, []string{"listing 71"}},
		{[]string{"thresholds", "set", "--shop", "7", "--listing", "80", "3", "--actor", "ann"}, []string{"shop 7 (Knots)"}, []string{"listing 80 (of shop 8, not 7)"}},
		{[]string{"thresholds", "set", "--shop", "7", "--listing", "70", "--variant", "NOPE", "3", "--actor", "ann"},
			[]string{"shop 7 (Knots)", `listing 70 ("Mug")`}, []string{`variant "NOPE" (the listing has sku:M-1, sku:M-2)`}},
		{[]string{"thresholds", "clear", "--shop", "7", "--listing", "70", "--variant", "sku:M-9", "--actor", "ann"},
			[]string{"shop 7 (Knots)"}, []string{`variant "sku:M-9"`}},
		{[]string{"alert-channels", "add", "--shop", "9", "--kind", "email", "--target", "a@example.com"}, nil, []string{"shop 9"}},
	} {
		var out bytes.Buffer
		err := run(context.Background(), tc.args, env, &out)
		if !errors.Is(err, errUnknown) {
			t.Errorf("%v: err = %v, want errUnknown", tc.args, err)
			continue
		}
		for _, s := range append(tc.found, tc.not...) {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%v: %q does not name %s", tc.args, err, s)
			}
		}
		if len(tc.found) > 0 && !strings.Contains(err.Error(), "found: "+tc.found[0]) {
			t.Errorf("%v: %q does not say what it found", tc.args, err)
		}
	}
	var n int
	if err := db.DB.QueryRow(`SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM alert_channels)`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d events or channels written, want none", n)
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"thresholds", "set", "--shop", "7", "--listing", "70", "--variant", "sku:M-2", "2", "--actor", "ann"}, env, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `found shop 7 (Knots), listing 70 ("Mug"), variant "sku:M-2"`) {
		t.Errorf("set printed %q, want what it found", out.String())
	}
}

// A threshold set by mistake is taken back by thresholds clear: the log
// keeps both facts, and the clear names the same line, its actor and why.
func TestThresholdsClearCompensatesAMistake(t *testing.T) {
	db, env := mugShop(t)
	runAll(t, env, [][]string{
		{"thresholds", "set", "--shop", "7", "--listing", "70", "--variant", "sku:M-1", "40", "--actor", "ann"},
		{"thresholds", "clear", "--shop", "7", "--listing", "70", "--variant", "sku:M-1", "--actor", "bob", "--reason", "meant 4, not 40"},
		{"thresholds", "clear", "--shop", "7", "--actor", "bob"},
	})
	rows, err := db.DB.Query(`SELECT ` + eventstore.RecordColumns + ` FROM events ORDER BY position`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []any
	for rows.Next() {
		r, err := eventstore.ScanRecord(rows)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r.Data)
	}
	want := []any{
		events.StockThresholdSet{Scope: events.ScopeVariant, ShopID: 7, ListingID: 70, VariantKey: "sku:M-1", Threshold: 40, Actor: "ann"},
		events.StockThresholdCleared{Scope: events.ScopeVariant, ShopID: 7, ListingID: 70, VariantKey: "sku:M-1", Actor: "bob", Reason: "meant 4, not 40"},
		events.StockThresholdCleared{Scope: events.ScopeShop, ShopID: 7, Actor: "bob"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"thresholds", "clear", "--shop", "7", "--listing", "70"}, env, &out); !errors.Is(err, errUsage) {
		t.Errorf("clear without --actor: %v, want a usage error", err)
	}
}
