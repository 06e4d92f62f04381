package systemtest_test

// The seller's flow through the pages, compared at each step with what
// /v1 answers. The pages mark what the test reads:
//
//   - dashboard figures: data-metric="products|variants|units|low_stock|
//     open_alerts|orders_month" (the number in data-value, else the
//     element's text), and data-metric="sales_month" with data-currency
//     and data-value (minor units), one element per currency;
//   - the variant page's chart: an <svg> with at least one mark (circle,
//     rect, path, polyline or line) and its threshold form: a form with an
//     input named threshold and a submit button;
//   - the explain page: a table whose body has one row per movement, the
//     change in its fourth cell, the balance in
//     data-metric="explained_balance" and the changes' sum in
//     data-metric="explained_sum" (both in data-value).

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/chromedp/chromedp"
	"github.com/shopledger/shopledger/etsy/etsysim"
)

type flowVariant struct {
	VariantKey        string `json:"variant_key"`
	SKU               string `json:"sku"`
	Quantity          int64  `json:"quantity"`
	LowStockThreshold int64  `json:"low_stock_threshold"`
	ThresholdSource   string `json:"threshold_source"`
	LowStock          bool   `json:"low_stock"`
	Active            bool   `json:"active"`
}

type flowProduct struct {
	ListingID        int64         `json:"listing_id"`
	ShopID           int64         `json:"shop_id"`
	Title            string        `json:"title"`
	State            string        `json:"state"`
	Quantity         int64         `json:"quantity"`
	VariantCount     int64         `json:"variant_count"`
	LowStockVariants int64         `json:"low_stock_variants"`
	Variants         []flowVariant `json:"variants"`
}

// flowGate says whether the build has the page a step drives. The stock
// pages are added beside this test: once /products exists every page of
// the flow must, and a missing one fails the test; before, a step whose
// page is missing is left out (its /v1 side still runs where it can) and
// the test ends by skipping with the list of steps left out.
type flowGate struct {
	t       *testing.T
	routes  []string
	built   bool
	skipped []string
}

func (g *flowGate) has(pattern, step string) bool {
	g.t.Helper()
	for _, r := range g.routes {
		if normalise(r) == pattern {
			return true
		}
	}
	if g.built {
		g.t.Fatalf("%s: the stock pages are in this build but GET %s is not", step, pattern)
	}
	g.skipped = append(g.skipped, step+" (GET "+pattern+")")
	return false
}

func sellerFlow(t *testing.T, d *demo, c *chrome, routes []string) {
	ctx := context.Background()
	gate := &flowGate{t: t, routes: routes, built: slices.Contains(routes, "/products")}
	owner := c.tab(t, "owner")
	owner.login(ownerEmail, d.password)

	// An API token made on the tokens page, for the /v1 side of every
	// comparison: the same person's view.
	if st := owner.open("/tokens"); st != http.StatusOK {
		t.Fatalf("/tokens answered %d", st)
	}
	owner.eval(`document.querySelector('form[action="/tokens"] select[name="role"]').value = "seller"`, nil)
	st := owner.submit("create a token",
		chromedp.SendKeys(chromedp.CSS(`form[action="/tokens"] input[name="label"]`), "browser flow"),
		chromedp.Click(chromedp.CSS(`form[action="/tokens"] button[type="submit"]`)),
	)
	var secret string
	owner.eval(`(document.querySelector(".secret code") || {innerText: ""}).innerText`, &secret)
	if st != http.StatusOK || !strings.HasPrefix(secret, "slt_") {
		t.Fatalf("creating a token on /tokens: %d, secret %q:\n%s", st, secret, owner.text())
	}
	api := &apiClient{base: d.queryURL, token: strings.TrimSpace(secret)}
	var shops struct {
		Items []struct {
			ShopID int64 `json:"shop_id"`
		} `json:"items"`
	}
	if err := api.get(ctx, "/v1/shops", &shops); err != nil {
		t.Fatalf("the token from /tokens does not read /v1: %v", err)
	}
	if len(shops.Items) != 1 || shops.Items[0].ShopID != d.shopID {
		t.Fatalf("the token from /tokens sees shops %+v, want only %d", shops.Items, d.shopID)
	}

	// The dashboard's figures are /v1's.
	if gate.has("/products", "the dashboard's figures") {
		if st := owner.open("/"); st != http.StatusOK {
			t.Fatalf("the dashboard answered %d", st)
		}
		checkDashboard(t, ctx, owner, api, d.shopID)
	}

	// A low-stock product, and its low variant's chart.
	all, err := pages[flowProduct](ctx, api, fmt.Sprintf("/v1/products?shop_id=%d&limit=100", d.shopID))
	if err != nil {
		t.Fatal(err)
	}
	var low, target flowProduct
	var lowKey string
	var pick flowVariant
	for _, p := range all {
		var full flowProduct
		if err := api.get(ctx, fmt.Sprintf("/v1/products/%d", p.ListingID), &full); err != nil {
			t.Fatal(err)
		}
		for _, v := range full.Variants {
			if v.LowStock && lowKey == "" {
				low, lowKey = full, v.VariantKey
			}
			// The threshold's variant: stocked, not low, so that two
			// sales take it across a line set just under it.
			if !v.LowStock && v.Active && v.Quantity >= 3 && pick.VariantKey == "" {
				target, pick = full, v
			}
		}
	}
	if lowKey == "" || pick.VariantKey == "" {
		t.Fatalf("the demo has no low variant (%q) or no stocked one (%q)", lowKey, pick.VariantKey)
	}
	if gate.has("/products/{}", "a low-stock product's page") {
		if st := owner.open(fmt.Sprintf("/products/%d", low.ListingID)); st != http.StatusOK {
			t.Fatalf("/products/%d answered %d", low.ListingID, st)
		}
		if !strings.Contains(owner.text(), low.Title) {
			t.Errorf("/products/%d does not show the title %q", low.ListingID, low.Title)
		}
	}
	variantPath := func(l int64, key string) string {
		return fmt.Sprintf("/products/%d/variants/%s", l, url.PathEscape(key))
	}
	variantPage := gate.has("/products/{}/variants/{}", "a variant's chart and its threshold form")
	if variantPage {
		if st := owner.open(variantPath(low.ListingID, lowKey)); st != http.StatusOK {
			t.Fatalf("%s answered %d", variantPath(low.ListingID, lowKey), st)
		}
		var marks int
		owner.eval(`Array.from(document.querySelectorAll("svg")).reduce((n, s) => n + s.querySelectorAll("circle, rect, path, polyline, line").length, 0)`, &marks)
		if marks == 0 {
			t.Errorf("%s: no chart (an <svg> with data points)", variantPath(low.ListingID, lowKey))
		}
	}

	// A threshold set in the variant page's form, just under its stock
	// (through /v1 while the page is not built).
	line := pick.Quantity - 2
	vp := variantPath(target.ListingID, pick.VariantKey)
	if variantPage {
		if st := owner.open(vp); st != http.StatusOK {
			t.Fatalf("%s answered %d", vp, st)
		}
		owner.eval(`(() => { const i = document.querySelector('form input[name="threshold"]'); if (i) i.value = ""; return !!i })()`, nil)
		st = owner.submit("set the threshold on "+vp,
			chromedp.SendKeys(chromedp.CSS(`form input[name="threshold"]`), strconv.FormatInt(line, 10)),
			chromedp.Click(chromedp.CSS(`form:has(input[name="threshold"]) button[type="submit"]`)),
		)
		if st != http.StatusOK {
			t.Fatalf("setting the threshold on %s: %d:\n%s", vp, st, owner.text())
		}
	} else if err := api.put(ctx, fmt.Sprintf("/v1/products/%d/variants/%s/threshold", target.ListingID, url.PathEscape(pick.VariantKey)), fmt.Sprintf(`{"threshold": %d}`, line)); err != nil {
		t.Fatal(err)
	}
	converge(t, "the threshold set on the page, through /v1", 30*time.Second, func(ctx context.Context) (string, error) {
		var p flowProduct
		if err := api.get(ctx, fmt.Sprintf("/v1/products/%d", target.ListingID), &p); err != nil {
			return "", err
		}
		for _, v := range p.Variants {
			if v.VariantKey == pick.VariantKey {
				return gocmp.Diff([2]any{line, "variant"}, [2]any{v.LowStockThreshold, v.ThresholdSource}), nil
			}
		}
		return "variant gone", nil
	})

	// Two units sold at the simulator take it across the line.
	if _, err := d.ctl.CreateOrder(ctx, d.shopID, etsysim.OrderSpec{Items: []etsysim.OrderItem{{ListingID: target.ListingID, VariantKey: pick.VariantKey, Quantity: 2}}}); err != nil {
		t.Fatalf("sell 2 of %s: %v", pick.VariantKey, err)
	}
	d.waitLedger(t, ctx, "the sale across the threshold")
	var alertID string
	converge(t, "the open alert for the variant", 30*time.Second, func(ctx context.Context) (string, error) {
		open, err := pages[struct {
			AlertID    string `json:"alert_id"`
			ListingID  int64  `json:"listing_id"`
			VariantKey string `json:"variant_key"`
			Threshold  int64  `json:"threshold"`
		}](ctx, api, fmt.Sprintf("/v1/alerts?shop_id=%d&status=open&limit=100", d.shopID))
		if err != nil {
			return "", err
		}
		for _, a := range open {
			if a.ListingID == target.ListingID && a.VariantKey == pick.VariantKey {
				alertID = a.AlertID
				return gocmp.Diff(line, a.Threshold), nil
			}
		}
		return "no open alert yet", nil
	})
	if gate.has("/alerts", "the alert on the alerts page") {
		if st := owner.open("/alerts"); st != http.StatusOK {
			t.Fatalf("/alerts answered %d", st)
		}
		if page := owner.text(); !strings.Contains(page, pick.SKU) && !strings.Contains(page, pick.VariantKey) {
			t.Errorf("/alerts does not show the new alert of %s (%s):\n%s", pick.VariantKey, pick.SKU, page)
		}
	}
	mailbox := c.tab(t, "inbox")
	mailbox.waitMail(d.inboxURL, time.Minute, func(m inboxMessage) bool {
		return strings.Contains(m.Meta, ownerEmail) && (strings.Contains(m.Body, alertID) || strings.Contains(m.Subject, pick.SKU))
	})

	// The products download is /v1/products.
	if gate.has("/products.csv", "the products download") {
		checkProductsCSV(t, ctx, owner, api, d)
	}

	// The auditor's "explain this number".
	if !gate.has("/products/{}/variants/{}/explain", "explain this number") {
		t.Skipf("the seller flow ran without the pages this build lacks: %s", strings.Join(gate.skipped, "; "))
	}
	auditor := c.tab(t, "auditor")
	auditor.login(auditorEmail, d.password)
	ep := vp + "/explain"
	if st := auditor.open(ep); st != http.StatusOK {
		t.Fatalf("auditor: %s answered %d", ep, st)
	}
	var shown struct {
		Deltas  []string `json:"deltas"`
		Balance string   `json:"balance"`
		Sum     string   `json:"sum"`
	}
	auditor.eval(`({deltas: Array.from(document.querySelectorAll("table tbody tr")).map(r => r.cells[3].innerText),
		balance: (document.querySelector('[data-metric="explained_balance"]') || {dataset: {value: ""}}).dataset.value,
		sum: (document.querySelector('[data-metric="explained_sum"]') || {dataset: {value: ""}}).dataset.value})`, &shown)
	var sum int64
	for _, s := range shown.Deltas {
		// The page writes a change with its sign, the minus as U+2212.
		n, err := strconv.ParseInt(strings.NewReplacer("+", "", "\u2212", "-", " ", "", "\u00a0", "").Replace(strings.TrimSpace(s)), 10, 64)
		if err != nil {
			t.Fatalf("%s: the change %q is not a number", ep, s)
		}
		sum += n
	}
	balance, err := strconv.ParseInt(shown.Balance, 10, 64)
	if err != nil || len(shown.Deltas) == 0 {
		t.Fatalf("%s: balance %q and %d movements:\n%s", ep, shown.Balance, len(shown.Deltas), auditor.text())
	}
	if sum != balance || shown.Sum != strconv.FormatInt(balance, 10) || balance != pick.Quantity-2 {
		t.Errorf("%s: the movements sum to %d, the page's sum is %s and its balance %d, the ledger holds %d", ep, sum, shown.Sum, balance, pick.Quantity-2)
	}
	if len(gate.skipped) > 0 {
		t.Skipf("the seller flow ran without the pages this build lacks: %s", strings.Join(gate.skipped, "; "))
	}
}

// checkDashboard compares every figure the dashboard marks with
// data-metric with /v1's for the organisation's shop.
func checkDashboard(t *testing.T, ctx context.Context, b *tab, api *apiClient, shopID int64) {
	t.Helper()
	var marks []struct {
		Metric, Currency, Value, Text string
	}
	b.eval(`Array.from(document.querySelectorAll("[data-metric]")).map(e => ({
		Metric: e.dataset.metric, Currency: e.dataset.currency || "", Value: e.dataset.value || "", Text: e.innerText}))`, &marks)
	got := map[string]int64{}
	for _, m := range marks {
		raw := m.Value
		if raw == "" {
			raw = strings.Map(func(r rune) rune {
				if r >= '0' && r <= '9' || r == '-' {
					return r
				}
				return -1
			}, m.Text)
		}
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			t.Errorf("dashboard: %s shows %q, not a number", m.Metric, m.Text)
			continue
		}
		key := m.Metric
		if m.Currency != "" {
			key += " " + m.Currency
		}
		got[key] = n
	}

	want := map[string]int64{"products": 0, "variants": 0, "units": 0, "low_stock": 0, "orders_month": 0}
	products, err := pages[flowProduct](ctx, api, fmt.Sprintf("/v1/products?shop_id=%d&limit=100", shopID))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range products {
		want["products"]++
		want["variants"] += p.VariantCount
		want["units"] += p.Quantity
		want["low_stock"] += p.LowStockVariants
	}
	// The month's orders and their value: the sales /v1/sales lists as
	// created since the 1st (UTC, the demo people's zone), canceled ones
	// left out, valued at their grand total.
	now := time.Now().UTC()
	from := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	sales, err := pages[struct {
		Currency   string     `json:"currency"`
		GrandTotal int64      `json:"grand_total"`
		CanceledAt *time.Time `json:"canceled_at"`
	}](ctx, api, fmt.Sprintf("/v1/sales?shop_id=%d&from=%s&limit=100", shopID, url.QueryEscape(from.Format(time.RFC3339))))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sales {
		if s.CanceledAt == nil {
			want["orders_month"]++
			want["sales_month "+s.Currency] += s.GrandTotal
		}
	}
	open, err := pages[struct {
		AlertID string `json:"alert_id"`
	}](ctx, api, fmt.Sprintf("/v1/alerts?shop_id=%d&status=open&limit=100", shopID))
	if err != nil {
		t.Fatal(err)
	}
	want["open_alerts"] = int64(len(open))
	if diff := gocmp.Diff(want, got); diff != "" {
		t.Errorf("dashboard figures against /v1 (-/v1 +dashboard):\n%s", diff)
	}
}

// checkProductsCSV downloads /products.csv with the owner's session and
// compares it with /v1/products: the same listings, and for every column
// named as a /v1 field, the same value.
func checkProductsCSV(t *testing.T, ctx context.Context, b *tab, api *apiClient, d *demo) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.queryURL+"/products.csv", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range b.cookies() {
		req.AddCookie(c)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("/products.csv: %s, %s:\n%.500s", resp.Status, resp.Header.Get("Content-Type"), body)
	}
	rows, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if err != nil || len(rows) == 0 {
		t.Fatalf("/products.csv is not CSV: %v", err)
	}
	header := rows[0]
	if !slices.Contains(header, "listing_id") {
		t.Fatalf("/products.csv has no listing_id column: %v", header)
	}
	products, err := pages[map[string]any](ctx, api, fmt.Sprintf("/v1/products?shop_id=%d&limit=100", d.shopID))
	if err != nil {
		t.Fatal(err)
	}
	// Scalar fields only: how a CSV writes money is its own choice.
	want := map[string]map[string]string{}
	for _, p := range products {
		cols := map[string]string{}
		for _, col := range header {
			switch v := p[col].(type) {
			case json.Number, string, bool:
				cols[col] = fmt.Sprint(v)
			}
		}
		want[fmt.Sprint(p["listing_id"])] = cols
	}
	got := map[string]map[string]string{}
	for _, r := range rows[1:] {
		row := map[string]string{}
		for i, col := range header {
			if i < len(r) {
				row[col] = r[i]
			}
		}
		cols := map[string]string{}
		for col := range want[row["listing_id"]] {
			cols[col] = row[col]
		}
		if want[row["listing_id"]] == nil {
			cols = row
		}
		got[row["listing_id"]] = cols
	}
	if diff := gocmp.Diff(want, got); diff != "" {
		t.Errorf("/products.csv against /v1/products (-/v1 +csv):\n%s", diff)
	}
}

// put sends a JSON body to path with the client's token and wants it
// accepted (a threshold is an event, projected a moment later: 202).
func (a *apiClient) put(ctx context.Context, path, body string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, a.base+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("PUT %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return fmt.Errorf("PUT %s: %s %s", path, resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// newcomerConnects is the story of the newcomer, who signed up during the
// pages walk with an organisation of their own: on /shops they press
// "Connect an Etsy shop" and meet the simulator's consent page; signing in
// there as the demo organisation's seller is refused and connects
// nothing; allowing the second shop lands on its page, whose import then
// brings its products to the newcomer and to nobody else.
func newcomerConnects(t *testing.T, d *demo, c *chrome) {
	ctx := context.Background()
	b := c.tab(t, "newcomer")
	b.login(newcomerEmail, d.password)
	demoShop, second := strconv.FormatInt(d.shopID, 10), strconv.FormatInt(d.second.ShopID, 10)

	toConsent := func(what string) {
		t.Helper()
		if st := b.open("/shops"); st != http.StatusOK {
			t.Fatalf("/shops answered %d:\n%s", st, b.text())
		}
		st := b.submit(what, chromedp.Click(chromedp.CSS(`form[action="/shops/connect"] button[type="submit"]`)))
		var href string
		b.eval(`location.href`, &href)
		if st != http.StatusOK || !strings.HasPrefix(href, d.simURL+"/oauth/connect?") || !strings.Contains(b.text(), "Local Etsy simulator") {
			t.Fatalf("%s: pressing Connect an Etsy shop ended on %s (%d), want the simulator's consent page:\n%s", what, href, st, b.text())
		}
	}
	allow := func(shopID string) int {
		t.Helper()
		return b.submit("allow access as shop "+shopID, chromedp.Click(chromedp.CSS(`button[name="shop_id"][value="`+shopID+`"]`)))
	}

	toConsent("connect a shop")
	text := b.text()
	for _, want := range []string{"Allow access", "Deny", "listings_r", demoShop, second, d.second.Name,
		strconv.FormatInt(d.sellerID, 10), strconv.FormatInt(d.second.UserID, 10)} {
		if !strings.Contains(text, want) {
			t.Errorf("the consent page does not show %q:\n%s", want, text)
		}
	}
	b.screenshot(shotName("newcomer etsy consent page"))
	b.axe("the simulator's consent page")

	// The demo organisation's seller: Etsy grants, the ledger refuses.
	if st := allow(demoShop); st != http.StatusConflict || !strings.Contains(b.text(), "connected to another organisation") {
		t.Errorf("allowing the demo organisation's shop answered %d, want 409 saying it is connected to another organisation:\n%s", st, b.text())
	}
	b.open("/shops")
	var listed int
	b.eval(`document.querySelectorAll('a[href^="/shops/"]').length`, &listed)
	if listed != 0 || !strings.Contains(b.text(), "No shop is connected") {
		t.Errorf("after the refusal the newcomer's /shops lists a shop:\n%s", b.text())
	}
	if st := b.open("/shops/" + demoShop); st != http.StatusNotFound {
		t.Errorf("after the refusal the newcomer opens the demo shop's page: %d", st)
	}

	// Their own shop: they land on its page, which tells the import.
	toConsent("connect a shop again")
	st := allow(second)
	if p := b.path(); st != http.StatusOK || !strings.HasPrefix(p, "/shops/"+second) {
		t.Fatalf("allowing shop %s ended on %s (%d), want its page:\n%s", second, p, st, b.text())
	}
	// Before the first import the page may know the shop by its id only.
	for _, want := range []string{second, "Import", "Imported so far"} {
		if !strings.Contains(b.text(), want) {
			t.Errorf("the connected shop's page does not show %q:\n%s", want, b.text())
		}
	}
	b.screenshot(shotName("newcomer shop connected"))
	b.axe("the newly connected shop's page")

	want := truthListingIDs(t, d, d.second.ShopID)
	converge(t, "the second shop's products on the newcomer's /products", 90*time.Second, func(context.Context) (string, error) {
		return gocmp.Diff(want, listedProducts(b)), nil
	})
	b.screenshot(shotName("newcomer products after connecting"))
	converge(t, "the second shop's page after its import", 30*time.Second, func(context.Context) (string, error) {
		b.open("/shops/" + second)
		if text := b.text(); !strings.Contains(text, d.second.Name) || !strings.Contains(text, "last reconciled") {
			return "the page shows neither the shop's name nor its last reconciliation:\n" + text, nil
		}
		return "", nil
	})
	b.screenshot(shotName("newcomer shop imported"))

	// Tenancy: the demo organisation still has its one shop and its own
	// products only.
	owner := c.tab(t, "owner after the newcomer connected")
	owner.login(ownerEmail, d.password)
	if diff := gocmp.Diff(truthListingIDs(t, d, d.shopID), listedProducts(owner)); diff != "" {
		t.Errorf("the demo owner's /products is not the demo shop's (-want +got):\n%s", diff)
	}
	if st := owner.open("/shops/" + second); st != http.StatusNotFound {
		t.Errorf("the demo owner opens the newcomer's shop page: %d, want 404", st)
	}
	if len(want) > 0 {
		if st := owner.open(fmt.Sprintf("/products/%d", want[0])); st != http.StatusNotFound {
			t.Errorf("the demo owner opens the newcomer's product %d: %d, want 404", want[0], st)
		}
	}
	var shops struct {
		Items []struct {
			ShopID int64 `json:"shop_id"`
		} `json:"items"`
	}
	if err := d.seller.get(ctx, "/v1/shops", &shops); err != nil {
		t.Fatal(err)
	}
	if len(shops.Items) != 1 || shops.Items[0].ShopID != d.shopID {
		t.Errorf("the demo organisation's token sees shops %+v, want only %d", shops.Items, d.shopID)
	}
}

// truthListingIDs are the simulator's listings of a shop that the ledger
// holds as products (every one not deleted), sorted.
func truthListingIDs(t *testing.T, d *demo, shopID int64) []int64 {
	t.Helper()
	truth, err := d.ctl.Truth(context.Background(), shopID)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for id := range productsFromTruth(truth) {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

var listingHintRE = regexp.MustCompile(`Listing (\d+)`)

// listedProducts reads the listing ids of every page of /products, sorted.
func listedProducts(b *tab) []int64 {
	b.t.Helper()
	var ids []int64
	next := "/products"
	for next != "" {
		if st := b.open(next); st != http.StatusOK {
			b.t.Fatalf("%s: GET %s answered %d", b.name, next, st)
		}
		var hints []string
		b.eval(`Array.from(document.querySelectorAll("table tbody tr td:first-child .hint")).map(e => e.innerText)`, &hints)
		for _, h := range hints {
			if m := listingHintRE.FindStringSubmatch(h); m != nil {
				id, _ := strconv.ParseInt(m[1], 10, 64)
				ids = append(ids, id)
			}
		}
		b.eval(`(a => a ? a.getAttribute("href") : "")(document.querySelector('nav.pager a[rel="next"]'))`, &next)
	}
	slices.Sort(ids)
	return ids
}
