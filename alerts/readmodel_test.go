package alerts_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shopledger/shopledger/alerts"
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/service/servicetest"
)

func TestListAndGetAreScopedToTheCallersShops(t *testing.T) {
	const shopA, shopB = 41, 42
	r := newRig(t, 0)
	ctx := context.Background()
	r.feed(
		adjusted(shopA, 4100, "S", 3, 1), // A: raise S at minute 1
		adjusted(shopA, 4100, "M", 2, 2), // A: raise M at minute 2
		adjusted(shopA, 4100, "S", 9, 3), // A: clear S
		adjusted(shopB, 4200, "X", 1, 4), // B: raise X
	)

	type row struct {
		Shop    int64
		Variant string
		Status  string
	}
	list := func(shops []int64, f alerts.Filter) []row {
		t.Helper()
		as, err := alerts.List(ctx, r.db.DB, shops, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []row
		for _, a := range as {
			out = append(out, row{a.ShopID, a.VariantKey, a.Status})
		}
		return out
	}
	cases := []struct {
		name  string
		shops []int64
		f     alerts.Filter
		want  []row
	}{
		{"a seller sees their shop, newest first", []int64{shopA}, alerts.Filter{}, []row{{shopA, "M", "open"}, {shopA, "S", "cleared"}}},
		{"open only", []int64{shopA}, alerts.Filter{Status: alerts.StatusOpen}, []row{{shopA, "M", "open"}}},
		{"cleared only", []int64{shopA}, alerts.Filter{Status: alerts.StatusCleared}, []row{{shopA, "S", "cleared"}}},
		{"one variant", []int64{shopA, shopB}, alerts.Filter{ListingID: 4100, VariantKey: "S"}, []row{{shopA, "S", "cleared"}}},
		{"one shop of several", []int64{shopA, shopB}, alerts.Filter{ShopID: shopB}, []row{{shopB, "X", "open"}}},
		{"a shop filter outside the caller's shops", []int64{shopA}, alerts.Filter{ShopID: shopB}, nil},
		{"raised in a window", []int64{shopA, shopB}, alerts.Filter{From: at(2), To: at(4)}, []row{{shopA, "M", "open"}}},
		{"no shops sees nothing", nil, alerts.Filter{}, nil},
	}
	for _, tc := range cases {
		if diff := cmp.Diff(tc.want, list(tc.shops, tc.f)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}

	// Pages follow the cursor without repeating or skipping.
	var paged []row
	f := alerts.Filter{Limit: 1}
	for range 5 {
		as, err := alerts.List(ctx, r.db.DB, []int64{shopA, shopB}, f)
		if err != nil {
			t.Fatal(err)
		}
		if len(as) == 0 {
			break
		}
		paged = append(paged, row{as[0].ShopID, as[0].VariantKey, as[0].Status})
		c := alerts.CursorOf(as[0])
		f.After = &c
	}
	want := []row{{shopB, "X", "open"}, {shopA, "M", "open"}, {shopA, "S", "cleared"}}
	if diff := cmp.Diff(want, paged); diff != "" {
		t.Errorf("pages (-want +got):\n%s", diff)
	}

	if _, err := alerts.List(ctx, r.db.DB, []int64{shopA}, alerts.Filter{Status: "snoozed"}); err == nil {
		t.Error("List accepted an unknown status")
	}

	b := r.openAlerts(shopB)[0]
	if _, err := alerts.Get(ctx, r.db.DB, []int64{shopA}, b.AlertID); !errors.Is(err, alerts.ErrNotFound) {
		t.Errorf("Get of another shop's alert: %v, want ErrNotFound", err)
	}
	got, err := alerts.Get(ctx, r.db.DB, []int64{shopB}, b.AlertID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ShopID != shopB || got.Quantity != 1 || got.Threshold != 5 || !got.RaisedAt.Equal(at(4)) || got.ClearedAt != nil {
		t.Errorf("Get = %+v", got)
	}

	var cleared alerts.Alert
	for _, a := range mustList(t, r, shopA) {
		if a.Status == alerts.StatusCleared {
			cleared = a
		}
	}
	if cleared.ClearedAt == nil || !cleared.ClearedAt.Equal(at(3)) || *cleared.ClearedQuantity != 12 || cleared.ClearReason != events.ClearedStockAbove {
		t.Errorf("cleared alert = %+v", cleared)
	}
}

func mustList(t *testing.T, r *rig, shop int64) []alerts.Alert {
	t.Helper()
	as, err := alerts.List(context.Background(), r.db.DB, []int64{shop}, alerts.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	return as
}

func TestAlerterCountsRaisesAndClears(t *testing.T) {
	r := newRig(t, 0)
	r.feed(
		adjusted(51, 5100, "S", 3, 1),
		adjusted(51, 5100, "S", 3, 2),
		adjusted(51, 5100, "M", 1, 3),
	)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"shopledger_alerts_raised_total", map[string]string{"muted": "false"}, 2},
		{"shopledger_alerts_cleared_total", map[string]string{"reason": events.ClearedStockAbove}, 1},
	} {
		if got := servicetest.Metric(t, r.reg, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}
