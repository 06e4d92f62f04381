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
	db := pgtest.New(t)
	env := service.MapEnv(map[string]string{"SHOPLEDGER_DATABASE_URL": db.URL})
	for _, args := range [][]string{
		{"thresholds", "set", "--shop", "7", "3", "--actor", "ann"},
		{"thresholds", "set", "--shop", "7", "--listing", "70", "--actor", "bob", "8"},
		{"thresholds", "set", "--shop", "7", "--listing", "70", "--variant", "sku:M-1", "0", "--actor", "cy"},
	} {
		var out bytes.Buffer
		if err := run(context.Background(), args, env, &out); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if !strings.Contains(out.String(), "set to") {
			t.Errorf("%v printed %q", args, out.String())
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
