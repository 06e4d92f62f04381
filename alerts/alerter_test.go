package alerts_test

import (
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shopledger/shopledger/alerts"
	"github.com/shopledger/shopledger/domain"
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/pgtest"
)

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// decision is an alert event as a seller would read it.
type decision struct {
	Kind      string // raise, clear
	Variant   string
	Quantity  int64
	Threshold int64
	Muted     bool
	Reason    string
	Minute    int
}

func decisions(t *testing.T, recs []events.Record) []decision {
	t.Helper()
	open := map[string]string{} // variant -> alert id
	var out []decision
	for _, r := range recs {
		minute := int(r.OccurredAt.Sub(t0) / time.Minute)
		switch p := r.Data.(type) {
		case events.LowStockRaised:
			if id, ok := open[p.VariantKey]; ok {
				t.Errorf("raised %s for %s while %s is open", p.AlertID, p.VariantKey, id)
			}
			open[p.VariantKey] = p.AlertID
			out = append(out, decision{Kind: "raise", Variant: p.VariantKey, Quantity: p.Quantity, Threshold: p.Threshold, Muted: p.Muted, Minute: minute})
		case events.LowStockCleared:
			if open[p.VariantKey] != p.AlertID {
				t.Errorf("cleared %s for %s, but the open alert is %q", p.AlertID, p.VariantKey, open[p.VariantKey])
			}
			delete(open, p.VariantKey)
			out = append(out, decision{Kind: "clear", Variant: p.VariantKey, Quantity: p.Quantity, Threshold: p.Threshold, Reason: p.Reason, Minute: minute})
		}
	}
	return out
}

func n(v int64) *int64 { return &v }

func TestAlerterRaisesAndClearsExactlyAtTheLine(t *testing.T) {
	const shop, listing, other = 7, 70, 71
	cases := []struct {
		name     string
		cooldown time.Duration
		history  []events.Event
		want     []decision
	}{
		{
			name: "selling down to the default threshold raises once",
			history: []events.Event{
				imported(shop, listing, "Mug", "S"),
				adjusted(shop, listing, "S", 10, 0),
				sold(shop, listing, "S", 4, 1), // 6: above 5
				sold(shop, listing, "S", 1, 2), // 5: at the line
				sold(shop, listing, "S", 2, 3), // 3: still low, no second alert
			},
			want: []decision{{Kind: "raise", Variant: "S", Quantity: 5, Threshold: 5, Minute: 2}},
		},
		{
			name: "a restock clears and a new crossing raises again",
			history: []events.Event{
				adjusted(shop, listing, "S", 8, 0),
				sold(shop, listing, "S", 4, 1),      // 4
				adjusted(shop, listing, "S", 10, 2), // 14
				sold(shop, listing, "S", 9, 3),      // 5
			},
			want: []decision{
				{Kind: "raise", Variant: "S", Quantity: 4, Threshold: 5, Minute: 1},
				{Kind: "clear", Variant: "S", Quantity: 14, Threshold: 5, Reason: events.ClearedStockAbove, Minute: 2},
				{Kind: "raise", Variant: "S", Quantity: 5, Threshold: 5, Minute: 3},
			},
		},
		{
			name: "selling out raises even with a zero threshold",
			history: []events.Event{
				threshold(events.ScopeVariant, shop, listing, "S", 0, 0),
				adjusted(shop, listing, "S", 2, 1),
				sold(shop, listing, "S", 1, 2), // 1: above 0
				sold(shop, listing, "S", 1, 3), // 0: sold out
			},
			want: []decision{{Kind: "raise", Variant: "S", Quantity: 0, Threshold: 0, Minute: 3}},
		},
		{
			name: "raising a threshold above the balance raises, lowering it below clears",
			history: []events.Event{
				adjusted(shop, listing, "S", 8, 0),
				threshold(events.ScopeVariant, shop, listing, "S", 10, 1), // 8 <= 10
				threshold(events.ScopeVariant, shop, listing, "S", 9, 2),  // still low: nothing
				threshold(events.ScopeVariant, shop, listing, "S", 3, 3),  // 8 > 3
				threshold(events.ScopeVariant, shop, listing, "S", 8, 4),  // 8 <= 8
			},
			want: []decision{
				{Kind: "raise", Variant: "S", Quantity: 8, Threshold: 10, Minute: 1},
				{Kind: "clear", Variant: "S", Quantity: 8, Threshold: 3, Reason: events.ClearedThresholdMoved, Minute: 3},
				{Kind: "raise", Variant: "S", Quantity: 8, Threshold: 8, Minute: 4},
			},
		},
		{
			name: "clearing a mistaken line falls back to the next one up",
			history: []events.Event{
				adjusted(shop, listing, "S", 8, 0),
				threshold(events.ScopeListing, shop, listing, "", 9, 1),      // 8 <= 9
				threshold(events.ScopeVariant, shop, listing, "S", 40, 2),    // still low
				thresholdCleared(events.ScopeVariant, shop, listing, "S", 3), // back to the listing's 9: still low
				thresholdCleared(events.ScopeListing, shop, listing, "", 4),  // back to the default 5: 8 > 5
				threshold(events.ScopeShop, shop, 0, "", 8, 5),               // 8 <= 8
				thresholdCleared(events.ScopeShop, shop, 0, "", 6),           // 5 again
			},
			want: []decision{
				{Kind: "raise", Variant: "S", Quantity: 8, Threshold: 9, Minute: 1},
				{Kind: "clear", Variant: "S", Quantity: 8, Threshold: 5, Reason: events.ClearedThresholdMoved, Minute: 4},
				{Kind: "raise", Variant: "S", Quantity: 8, Threshold: 8, Minute: 5},
				{Kind: "clear", Variant: "S", Quantity: 8, Threshold: 5, Reason: events.ClearedThresholdMoved, Minute: 6},
			},
		},
		{
			name: "a listing threshold covers its variants unless a variant sets its own",
			history: []events.Event{
				adjusted(shop, listing, "S", 6, 0),
				adjusted(shop, listing, "M", 6, 0),
				threshold(events.ScopeVariant, shop, listing, "M", 1, 1),
				threshold(events.ScopeListing, shop, listing, "", 7, 2), // S: 6 <= 7; M keeps 1
				adjusted(shop, other, "L", 6, 3),                        // other listing: default 5
			},
			want: []decision{{Kind: "raise", Variant: "S", Quantity: 6, Threshold: 7, Minute: 2}},
		},
		{
			name: "a shop default from settings and from a shop threshold moves every variant without its own",
			history: []events.Event{
				adjusted(shop, listing, "S", 8, 0),
				adjusted(shop, other, "L", 8, 0),
				threshold(events.ScopeVariant, shop, other, "L", 2, 1),
				settings(shop, n(8), nil, 2),                   // S: 8 <= 8
				threshold(events.ScopeShop, shop, 0, "", 3, 3), // S: 8 > 3
			},
			want: []decision{
				{Kind: "raise", Variant: "S", Quantity: 8, Threshold: 8, Minute: 2},
				{Kind: "clear", Variant: "S", Quantity: 8, Threshold: 3, Reason: events.ClearedThresholdMoved, Minute: 3},
			},
		},
		{
			name: "a variant only described by a listing has no balance to judge",
			history: []events.Event{
				imported(shop, listing, "Mug", "S", "M"),
				threshold(events.ScopeListing, shop, listing, "", 50, 1),
				adjusted(shop, listing, "M", 60, 2),
				sold(shop, listing, "M", 10, 3), // 50
			},
			want: []decision{{Kind: "raise", Variant: "M", Quantity: 50, Threshold: 50, Minute: 3}},
		},
		{
			name: "deleting the listing clears its open alerts and later movements stay quiet",
			history: []events.Event{
				adjusted(shop, listing, "S", 3, 0),
				events.New(events.ListingStream(listing), shop, at(1), events.ListingDeleted{ListingID: listing}),
				sold(shop, listing, "S", 1, 2),
			},
			want: []decision{
				{Kind: "raise", Variant: "S", Quantity: 3, Threshold: 5, Minute: 0},
				{Kind: "clear", Variant: "S", Quantity: 3, Threshold: 5, Reason: events.ClearedListingDeleted, Minute: 1},
			},
		},
		{
			name: "oscillating without a cooldown pages on every crossing",
			history: []events.Event{
				adjusted(shop, listing, "S", 6, 0),
				sold(shop, listing, "S", 1, 1),     // 5
				adjusted(shop, listing, "S", 1, 2), // 6
				sold(shop, listing, "S", 1, 3),     // 5
				adjusted(shop, listing, "S", 1, 4), // 6
				sold(shop, listing, "S", 1, 5),     // 5
			},
			want: []decision{
				{Kind: "raise", Variant: "S", Quantity: 5, Threshold: 5, Minute: 1},
				{Kind: "clear", Variant: "S", Quantity: 6, Threshold: 5, Reason: events.ClearedStockAbove, Minute: 2},
				{Kind: "raise", Variant: "S", Quantity: 5, Threshold: 5, Minute: 3},
				{Kind: "clear", Variant: "S", Quantity: 6, Threshold: 5, Reason: events.ClearedStockAbove, Minute: 4},
				{Kind: "raise", Variant: "S", Quantity: 5, Threshold: 5, Minute: 5},
			},
		},
		{
			// Facts arrive out of business-time order (a sale whose
			// webhook was lost is found later by reconciliation); a
			// zero cooldown still pages on every crossing.
			name: "without a cooldown a crossing by an older fact that arrived late pages too",
			history: []events.Event{
				adjusted(shop, listing, "S", 6, 0),
				sold(shop, listing, "S", 1, 20),     // 5: pages
				adjusted(shop, listing, "S", 1, 30), // 6
				sold(shop, listing, "S", 1, 15),     // 5: a sale of minute 15, recorded after the page of minute 20
			},
			want: []decision{
				{Kind: "raise", Variant: "S", Quantity: 5, Threshold: 5, Minute: 20},
				{Kind: "clear", Variant: "S", Quantity: 6, Threshold: 5, Reason: events.ClearedStockAbove, Minute: 30},
				{Kind: "raise", Variant: "S", Quantity: 5, Threshold: 5, Minute: 15},
			},
		},
		{
			name:     "oscillating within the cooldown mutes the raises until the cooldown has passed",
			cooldown: time.Hour,
			history: []events.Event{
				adjusted(shop, listing, "S", 6, 0),
				sold(shop, listing, "S", 1, 10),     // 5: pages
				adjusted(shop, listing, "S", 1, 20), // 6
				sold(shop, listing, "S", 1, 30),     // 5: 20 min after the page: muted
				adjusted(shop, listing, "S", 1, 40), // 6
				sold(shop, listing, "S", 1, 69),     // 5: 59 min: muted
				adjusted(shop, listing, "S", 1, 70), // 6
				sold(shop, listing, "S", 1, 70),     // 5: 60 min: pages again
				adjusted(shop, listing, "S", 1, 80), // 6
				sold(shop, listing, "S", 1, 90),     // 5: 20 min after the second page: muted
			},
			want: []decision{
				{Kind: "raise", Variant: "S", Quantity: 5, Threshold: 5, Minute: 10},
				{Kind: "clear", Variant: "S", Quantity: 6, Threshold: 5, Reason: events.ClearedStockAbove, Minute: 20},
				{Kind: "raise", Variant: "S", Quantity: 5, Threshold: 5, Muted: true, Minute: 30},
				{Kind: "clear", Variant: "S", Quantity: 6, Threshold: 5, Reason: events.ClearedStockAbove, Minute: 40},
				{Kind: "raise", Variant: "S", Quantity: 5, Threshold: 5, Muted: true, Minute: 69},
				{Kind: "clear", Variant: "S", Quantity: 6, Threshold: 5, Reason: events.ClearedStockAbove, Minute: 70},
				{Kind: "raise", Variant: "S", Quantity: 5, Threshold: 5, Minute: 70},
				{Kind: "clear", Variant: "S", Quantity: 6, Threshold: 5, Reason: events.ClearedStockAbove, Minute: 80},
				{Kind: "raise", Variant: "S", Quantity: 5, Threshold: 5, Muted: true, Minute: 90},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := pgtest.New(t)
			store := eventstore.New(db.DB)
			a, err := alerts.NewAlerter(store, alerts.AlerterConfig{DefaultThreshold: domain.DefaultLowStockThreshold, Cooldown: tc.cooldown}, discard(), nil)
			if err != nil {
				t.Fatal(err)
			}
			appendAll(t, store, tc.history...)
			run(t, db.DB, a)
			catchUp(t, db.DB, alerts.AlerterName)
			got := decisions(t, alertEvents(t, db.DB))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("alerts (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAlertEventsNameTheirCause(t *testing.T) {
	db := pgtest.New(t)
	store := eventstore.New(db.DB)
	a, err := alerts.NewAlerter(store, alerts.AlerterConfig{DefaultThreshold: 5}, discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	trigger := sold(1, 10, "S", 1, 1)
	appendAll(t, store, adjusted(1, 10, "S", 6, 0), trigger)
	run(t, db.DB, a)
	catchUp(t, db.DB, alerts.AlerterName)
	recs := alertEvents(t, db.DB)
	if len(recs) != 1 {
		t.Fatalf("got %d alert events, want 1", len(recs))
	}
	r := recs[0]
	p := r.Data.(events.LowStockRaised)
	got := []string{r.StreamID, r.DedupeKey, r.Metadata.CausationID, r.Metadata.Source, fmt.Sprint(r.ShopID), r.OccurredAt.String()}
	want := []string{"alert-" + p.AlertID, "alert-raised:" + p.AlertID, trigger.ID.String(), alerts.AlerterName, "1", trigger.OccurredAt.String()}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stream, dedupe key, causation, source, shop, time (-want +got):\n%s", diff)
	}
}
