package systemtest_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	gocmp "github.com/google/go-cmp/cmp"

	"github.com/shopledger/shopledger/etsy/etsysim"
)

// stockEditFlow is a seller counting a variant on its page: the count
// reaches the simulator (Etsy), every other variant of the listing stays
// as it was, the page's "Sent to Etsy" entry shows Etsy's answer, and the
// ledger's stock is Etsy's again afterwards.
func stockEditFlow(t *testing.T, d *demo, c *chrome) {
	ctx := context.Background()
	listings, err := d.ctl.Listings(ctx, d.shopID)
	if err != nil {
		t.Fatal(err)
	}
	// A listing with several variants, one of them on sale with stock.
	var before etsysim.ListingTruth
	var key string
	for _, l := range listings {
		if l.Deleted || l.State != "active" || len(l.Variants) < 2 {
			continue
		}
		if i := slices.IndexFunc(l.Variants, func(v etsysim.VariantTruth) bool { return v.Enabled && v.Quantity > 0 }); i >= 0 {
			before, key = l, l.Variants[i].VariantKey
			break
		}
	}
	if key == "" {
		t.Fatal("the demo shop has no active listing with several variants and stock")
	}
	i := slices.IndexFunc(before.Variants, func(v etsysim.VariantTruth) bool { return v.VariantKey == key })
	counted := before.Variants[i].Quantity + 7

	owner := c.tab(t, "owner counting")
	owner.login(ownerEmail, d.password)
	vp := fmt.Sprintf("/products/%d/variants/%s", before.ListingID, url.PathEscape(key))
	if st := owner.open(vp); st != http.StatusOK {
		t.Fatalf("%s answered %d", vp, st)
	}
	st := owner.submit("record a count on "+vp,
		chromedp.SendKeys(chromedp.CSS(`#ed-count`), strconv.Itoa(counted)),
		chromedp.SendKeys(chromedp.CSS(`#ed-count-note`), "shelf count"),
		chromedp.Click(chromedp.CSS(`form:has(#ed-count) button[type="submit"]`)),
	)
	if st != http.StatusOK {
		t.Fatalf("recording the count on %s: %d:\n%s", vp, st, owner.text())
	}

	// Etsy holds the count; the listing's other variants are untouched.
	if !converge(t, "the count at the simulator", time.Minute, func(ctx context.Context) (string, error) {
		after, err := d.ctl.Listing(ctx, before.ListingID)
		if err != nil {
			return "", err
		}
		want := slices.Clone(before.Variants)
		want[i].Quantity = counted
		// Etsy gives products and offerings new ids on every write.
		ids := func(vs []etsysim.VariantTruth) []etsysim.VariantTruth {
			out := slices.Clone(vs)
			for j := range out {
				out[j].ProductID, out[j].OfferingID = 0, 0
			}
			return out
		}
		return gocmp.Diff(ids(want), ids(after.Variants)), nil
	}) {
		t.FailNow()
	}

	// The page says what was sent and what Etsy answered.
	want := fmt.Sprintf("pushed; Etsy now shows %d", counted)
	converge(t, "the count's entry under Sent to Etsy", time.Minute, func(context.Context) (string, error) {
		if st := owner.open(vp); st != http.StatusOK {
			return fmt.Sprintf("%s answered %d", vp, st), nil
		}
		var entries string
		owner.eval(`(document.querySelector("ul.edits") || {innerText: ""}).innerText`, &entries)
		if !strings.Contains(entries, fmt.Sprintf("counted %d", counted)) || !strings.Contains(entries, want) ||
			!strings.Contains(entries, "shelf count") {
			return fmt.Sprintf("entries %q", entries), nil
		}
		// Etsy's answer is what the page says Etsy holds: our own write
		// is no drift.
		var drift string
		owner.eval(`(() => { const dt = Array.from(document.querySelectorAll("dt")).find(d => d.innerText.trim() === "Drift"); return dt ? dt.nextElementSibling.innerText.trim() : "" })()`, &drift)
		if drift != "none" {
			return fmt.Sprintf("drift shown %q after our own write, want none", drift), nil
		}
		return "", nil
	})
	owner.screenshot(shotName("owner count sent to etsy"))
	d.waitLedger(t, ctx, "the count's push and its echo")
}
