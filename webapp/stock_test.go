package webapp_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"html"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shopledger/shopledger/alerts"
	"github.com/shopledger/shopledger/domain"
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/projections"
	"github.com/shopledger/shopledger/projections/engine"
)

// ledger writes test data the only way data gets in: events appended to
// the log, folded into the read models by the projections' own Apply.
type ledger struct {
	s     *site
	es    *eventstore.Store
	projs []engine.Projection
	now   time.Time
	sale  int64
}

func (s *site) ledger() *ledger {
	s.t.Helper()
	es := eventstore.New(s.db.DB)
	alerter, err := alerts.NewAlerter(es, alerts.AlerterConfig{DefaultThreshold: domain.DefaultLowStockThreshold}, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		s.t.Fatal(err)
	}
	return &ledger{s: s, es: es, projs: append(projections.Default(), alerter, alerts.NewReadModel()), now: time.Now().UTC()}
}

func (l *ledger) append(stream string, shop int64, at time.Time, p events.Payload, md ...events.Metadata) eventstore.Result {
	l.s.t.Helper()
	ev := events.New(stream, shop, at, p)
	if len(md) > 0 {
		ev = ev.WithMetadata(md[0])
	}
	res, err := l.es.Append(context.Background(), stream, eventstore.Any, ev)
	if err != nil {
		l.s.t.Fatalf("append %s: %v", stream, err)
	}
	return res
}

// shop gives org a shop, connected through the log.
func (l *ledger) shop(org, shopID int64, name, currency string) {
	l.s.t.Helper()
	if _, err := l.s.db.DB.Exec(`INSERT INTO organisation_shops (shop_id, org_id) VALUES ($1, $2)`, shopID, org); err != nil {
		l.s.t.Fatal(err)
	}
	l.append(events.ShopStream(shopID), shopID, l.now.Add(-60*24*time.Hour), events.ShopConnected{ShopID: shopID, ShopName: name, UserID: shopID, Currency: currency})
}

// listing imports a listing whose variants start with the given stock.
func (l *ledger) listing(shop, listingID int64, title, currency string, stock map[string]int64) {
	l.s.t.Helper()
	var vs []events.Variant
	keys := make([]string, 0, len(stock))
	for k := range stock {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		vs = append(vs, events.Variant{Key: k, SKU: strings.TrimPrefix(k, "sku:"), Properties: "Colour: " + k, Price: events.Money{Amount: 1800, Currency: currency}, Enabled: true})
	}
	at := l.now.Add(-50 * 24 * time.Hour)
	stream := events.ListingStream(listingID)
	l.append(stream, shop, at, events.ListingImported{ListingID: listingID, ShopID: shop, Title: title, State: "active",
		URL: fmt.Sprintf("https://etsy.example/listing/%d", listingID), Price: events.Money{Amount: 1800, Currency: currency}, Variants: vs, EtsyUpdatedAt: at})
	for _, k := range keys {
		l.append(stream, shop, at.Add(time.Minute), events.StockAdjusted{ListingID: listingID, VariantKey: k, Delta: stock[k], Reason: events.ReasonInitialImport, Cause: "reconciliation"})
	}
}

// sell records a receipt ago before now and the stock it sold.
func (l *ledger) sell(shop, listingID int64, key string, qty int64, currency string, ago time.Duration, canceled bool) int64 {
	l.s.t.Helper()
	l.sale++
	receipt := shop*10000 + l.sale
	at := l.now.Add(-ago)
	money := func(n int64) events.Money { return events.Money{Amount: n, Currency: currency} }
	items := []events.SaleItem{{TransactionID: receipt * 10, ListingID: listingID, VariantKey: key, SKU: strings.TrimPrefix(key, "sku:"),
		Title: "item", Quantity: qty, UnitPrice: money(1800)}}
	rs := events.ReceiptStream(receipt)
	res := l.append(rs, shop, at, events.SaleRecorded{ReceiptID: receipt, ShopID: shop, Status: "paid", Items: items,
		Subtotal: money(qty * 1800), Shipping: money(450), Tax: money(0), Discount: money(0), GrandTotal: money(qty*1800 + 450), CreatedAt: at, EtsyUpdatedAt: at})
	cause := res.Events[0].EventID.String()
	l.append(events.ListingStream(listingID), shop, at.Add(time.Second), events.StockSold{ListingID: listingID, VariantKey: key, Quantity: qty,
		ReceiptID: receipt, TransactionID: receipt * 10}, events.Metadata{CausationID: cause, CorrelationID: cause, Source: "test"})
	if canceled {
		l.append(rs, shop, at.Add(time.Hour), events.SaleCanceled{ReceiptID: receipt, Reason: "buyer asked"})
	}
	return receipt
}

func (l *ledger) adjust(shop, listingID int64, key string, delta int64, ago time.Duration, cause string) {
	l.s.t.Helper()
	l.append(events.ListingStream(listingID), shop, l.now.Add(-ago), events.StockAdjusted{ListingID: listingID, VariantKey: key, Delta: delta,
		Reason: events.ReasonCorrection, Cause: cause})
}

// project folds every event not yet folded, until the projections (the
// alerter appends) add nothing more.
func (l *ledger) project() {
	l.s.t.Helper()
	ctx := context.Background()
	for idle := 0; idle < 3; {
		recs, err := l.es.ReadAll(ctx, l.s.cursor, 500)
		if err != nil {
			l.s.t.Fatal(err)
		}
		if len(recs) == 0 {
			var pending int
			if err := l.s.db.DB.QueryRow(`SELECT count(*) FROM events WHERE (transaction_id, position) > ($1::text::xid8, $2)`,
				fmt.Sprint(l.s.cursor.TransactionID), l.s.cursor.Position).Scan(&pending); err != nil {
				l.s.t.Fatal(err)
			}
			if pending == 0 {
				idle++
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		idle = 0
		for _, rec := range recs {
			tx, err := eventstore.BeginAppend(ctx, l.s.db.DB)
			if err != nil {
				l.s.t.Fatal(err)
			}
			for _, p := range l.projs {
				if p.Handles(rec.Type()) {
					if err := p.Apply(ctx, tx, rec); err != nil {
						_ = tx.Rollback()
						l.s.t.Fatalf("apply %s to %s: %v", rec.Type(), p.Name(), err)
					}
				}
			}
			if err := tx.Commit(); err != nil {
				l.s.t.Fatal(err)
			}
			l.s.cursor = eventstore.CursorOf(rec)
		}
	}
}

// shopWorld is an organisation with two shops in two currencies, stock,
// sales this month and earlier, a canceled sale and a low variant.
type shopWorld struct {
	s                     *site
	l                     *ledger
	owner, staff, auditor *browser
	org                   int64
	seller, auditorTok    string
	mug, tee, print       int64
	teeKey                string
	// webhookEvent is the evidence behind an Etsy change of MUG-BLUE.
	webhookEvent string
}

const (
	mugListing   = 70101
	teeListing   = 70102
	printListing = 70201
	teeKey       = "TEE/1 ä+x"
)

func newShopWorld(t *testing.T) *shopWorld {
	t.Helper()
	s := newSite(t)
	w := &shopWorld{s: s, mug: mugListing, tee: teeListing, print: printListing, teeKey: teeKey}
	w.owner, w.org = s.signUpOwner("olive@example.com")
	w.staff = s.signUp("stan@example.com")
	w.auditor = s.signUp("audrey@example.com")
	for _, m := range []struct {
		b    *browser
		role string
	}{{w.staff, "staff"}, {w.auditor, "auditor"}} {
		s.must(w.owner.post("/members/invite", url.Values{"email": {m.b.email}, "role": {m.role}}), http.StatusSeeOther, "invite")
		link := s.link(m.b.email, "invited")
		tok, _ := url.QueryUnescape(link[strings.Index(link, "token=")+len("token="):])
		s.must(m.b.post("/invitations/accept", url.Values{"token": {tok}}), http.StatusSeeOther, "accept")
	}
	w.seller = tokenRE.FindString(s.must(w.owner.post("/tokens", url.Values{"role": {"seller"}}), http.StatusOK, "seller token").body)
	w.auditorTok = tokenRE.FindString(s.must(w.owner.post("/tokens", url.Values{"role": {"auditor"}}), http.StatusOK, "auditor token").body)

	l := s.ledger()
	w.l = l
	l.shop(w.org, 701, "Olive's mugs", "EUR")
	l.shop(w.org, 702, "Olive's prints", "USD")
	l.listing(701, mugListing, "Blue mug", "EUR", map[string]int64{"sku:MUG-BLUE": 40, "sku:MUG-RED": 8})
	l.listing(701, teeListing, "Cat tee", "EUR", map[string]int64{teeKey: 3})
	l.listing(702, printListing, "=Poster print", "USD", map[string]int64{"sku:PRINT-A": 25})
	hour := time.Hour
	l.sell(701, mugListing, "sku:MUG-BLUE", 2, "EUR", 2*hour, false)
	l.sell(701, mugListing, "sku:MUG-RED", 3, "EUR", 3*hour, false)
	l.sell(701, mugListing, "sku:MUG-BLUE", 1, "EUR", 4*hour, true)
	l.sell(701, mugListing, "sku:MUG-BLUE", 4, "EUR", 12*24*hour, false)
	l.sell(702, printListing, "sku:PRINT-A", 5, "USD", 5*hour, false)
	l.sell(702, printListing, "sku:PRINT-A", 1, "USD", 40*24*hour, false)
	l.adjust(701, mugListing, "sku:MUG-BLUE", 10, 6*24*hour, "webhook:wh_restock_1")
	l.adjust(701, teeListing, teeKey, -1, 20*24*hour, "reconciliation")
	// A change Etsy reported by webhook: the movement's cause in the log
	// is the webhook's evidence.
	wh := l.append(events.WebhookStream("wh_evidence_1"), 701, l.now.Add(-25*hour), events.WebhookReceived{WebhookID: "wh_evidence_1",
		EtsyEventType: "listing.updated", ShopID: 701, ReceivedAt: l.now.Add(-25 * hour)})
	w.webhookEvent = wh.Events[0].EventID.String()
	l.append(events.ListingStream(mugListing), 701, l.now.Add(-24*hour), events.StockAdjusted{ListingID: mugListing, VariantKey: "sku:MUG-BLUE",
		Delta: 1, Reason: events.ReasonEtsyChange, Cause: "webhook:wh_evidence_1"}, events.Metadata{CausationID: w.webhookEvent, CorrelationID: w.webhookEvent, Source: "test"})
	l.project()
	return w
}

// api asks /v1 with a token and decodes JSON into v.
func (w *shopWorld) api(token, path string, v any) http.Header {
	w.s.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, w.s.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := w.s.srv.Client().Do(req)
	if err != nil {
		w.s.t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		w.s.t.Fatalf("GET %s: %d", path, res.StatusCode)
	}
	if strings.HasPrefix(res.Header.Get("Content-Type"), "text/csv") {
		rows, err := csv.NewReader(res.Body).ReadAll()
		if err != nil {
			w.s.t.Fatal(err)
		}
		*(v.(*[][]string)) = rows
		return res.Header
	}
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		w.s.t.Fatalf("GET %s: %v", path, err)
	}
	return res.Header
}

type apiProduct struct {
	ListingID        int64 `json:"listing_id"`
	Quantity         int64 `json:"quantity"`
	VariantCount     int64 `json:"variant_count"`
	LowStockVariants int64 `json:"low_stock_variants"`
}

// allProducts follows /v1/products' cursors from query to the end.
func (w *shopWorld) allProducts(query url.Values) []apiProduct {
	var out []apiProduct
	query.Set("limit", "2")
	for {
		var page struct {
			Items      []apiProduct `json:"items"`
			NextCursor string       `json:"next_cursor"`
		}
		w.api(w.seller, "/v1/products?"+query.Encode(), &page)
		out = append(out, page.Items...)
		if page.NextCursor == "" {
			return out
		}
		query.Set("cursor", page.NextCursor)
	}
}

var chartDayRE = regexp.MustCompile(`<tr><td>(\d{4}-\d\d-\d\d)</td><td class="num">(\d+)</td>`)

var metricRE = regexp.MustCompile(`data-metric="([a-z_]+)"(?: data-currency="([A-Z]{3})")? data-value="(-?\d+)"`)

// metrics reads the page's data-metric hooks: name (or name:currency) →
// value.
func metrics(page string) map[string]int64 {
	out := map[string]int64{}
	for _, m := range metricRE.FindAllStringSubmatch(page, -1) {
		name := m[1]
		if m[2] != "" {
			name += ":" + m[2]
		}
		n, _ := strconv.ParseInt(m[3], 10, 64)
		out[name] = n
	}
	return out
}

// Every dashboard figure is what /v1 answers for the same organisation.
func TestDashboardFiguresEqualTheAPI(t *testing.T) {
	t.Parallel()
	w := newShopWorld(t)
	page := w.s.must(w.owner.get("/"), http.StatusOK, "dashboard").body
	got := metrics(page)

	want := map[string]int64{}
	for _, p := range w.allProducts(url.Values{}) {
		want["products"]++
		want["variants"] += p.VariantCount
		want["units"] += p.Quantity
		want["low_stock"] += p.LowStockVariants
	}
	// The member's month, in the member's time zone (Europe/Paris).
	loc, _ := time.LoadLocation("Europe/Paris")
	now := time.Now().In(loc)
	from := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, loc)
	q := url.Values{"from": {from.UTC().Format(time.RFC3339)}, "to": {from.AddDate(0, 1, 0).UTC().Format(time.RFC3339)}, "limit": {"100"}}
	var sales struct {
		Items []struct {
			Currency   string     `json:"currency"`
			GrandTotal int64      `json:"grand_total"`
			CanceledAt *time.Time `json:"canceled_at"`
		} `json:"items"`
		NextCursor string `json:"next_cursor"`
	}
	w.api(w.seller, "/v1/sales?"+q.Encode(), &sales)
	if sales.NextCursor != "" {
		t.Fatal("more sales than one page; the test expects a few")
	}
	want["orders_month"] = 0
	for _, s := range sales.Items {
		if s.CanceledAt != nil {
			continue
		}
		want["orders_month"]++
		want["sales_month:"+s.Currency] += s.GrandTotal
	}
	var open struct {
		Items []json.RawMessage `json:"items"`
	}
	w.api(w.seller, "/v1/alerts?status=open&limit=100", &open)
	want["open_alerts"] = int64(len(open.Items))

	for k, v := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("the dashboard has no %s figure", k)
			continue
		}
		if g != v {
			t.Errorf("dashboard %s = %d, /v1 says %d", k, g, v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("the dashboard shows %s = %d, /v1 has none", k, got[k])
		}
	}
	// The chart's table: 30 days ending today in the member's zone, whose
	// orders are the /v1 sales created in them, canceled ones left out.
	days := chartDayRE.FindAllStringSubmatch(page, -1)
	if len(days) != 30 || days[29][1] != now.Format(time.DateOnly) {
		t.Fatalf("the chart's table has %d days, the last %v", len(days), days[len(days)-1])
	}
	first, _ := time.ParseInLocation(time.DateOnly, days[0][1], loc)
	q = url.Values{"from": {first.UTC().Format(time.RFC3339)}, "to": {now.AddDate(0, 0, 1).UTC().Format(time.RFC3339)}, "limit": {"100"}}
	w.api(w.seller, "/v1/sales?"+q.Encode(), &sales)
	var wantOrders, gotOrders int64
	for _, s := range sales.Items {
		if s.CanceledAt == nil {
			wantOrders++
		}
	}
	for _, d := range days {
		n, _ := strconv.ParseInt(d[2], 10, 64)
		gotOrders += n
	}
	if gotOrders != wantOrders || wantOrders < 4 {
		t.Errorf("the chart counts %d orders in 30 days, /v1 lists %d", gotOrders, wantOrders)
	}
	// The data are not trivial: the figures are worth comparing.
	// (In the first hours of a month the seeded sales fall in the one
	// before: then only the other figures must be there.)
	if want["products"] != 3 || want["low_stock"] < 1 || want["open_alerts"] < 1 || (now.Sub(from) > 6*time.Hour && want["orders_month"] < 1) {
		t.Fatalf("seed data too thin: %v", want)
	}
	for _, s := range []string{`href="/products?low_stock=1"`, `href="/alerts"`, `role="img"`, "<title", "Olive&#39;s prints", "Running out soonest", "Top products"} {
		if !strings.Contains(page, s) {
			t.Errorf("dashboard lacks %s", s)
		}
	}
	// Days of cover: MUG-RED has 5 left and sold 3 in 30 days, 50 days.
	if !strings.Contains(page, "50 days") {
		t.Errorf("dashboard does not give MUG-RED's 50 days of cover")
	}
	if strings.Contains(page, "style=") || strings.Contains(page, "<script") {
		t.Error("the dashboard carries inline style or script, which the CSP forbids")
	}
}

func variantURL(listing int64, key string) string {
	return fmt.Sprintf("/products/%d/variants/%s", listing, url.PathEscape(key))
}

// Every stock page renders for every role, with what that role may do.
func TestStockPagesRenderForEveryRole(t *testing.T) {
	t.Parallel()
	w := newShopWorld(t)
	tee := variantURL(teeListing, teeKey)
	pages := []string{"/", "/products", "/products?low_stock=1&sort=-quantity", "/products?q=mug&shop_id=701&state=active",
		fmt.Sprintf("/products/%d", mugListing), fmt.Sprintf("/products/%d", teeListing), tee, variantURL(mugListing, "sku:MUG-BLUE"),
		tee + "?at=" + url.QueryEscape(time.Now().In(time.UTC).Add(-30*24*time.Hour).Format("2006-01-02T15:04")), tee + "?before=2"}
	for _, b := range []*browser{w.owner, w.staff, w.auditor} {
		for _, p := range pages {
			body := w.s.must(b.get(p), http.StatusOK, b.email+" GET "+p).body
			if strings.Contains(body, "style=") {
				t.Errorf("%s has an inline style", p)
			}
		}
		prod := w.s.must(b.get(fmt.Sprintf("/products/%d", mugListing)), http.StatusOK, "product").body
		variant := w.s.must(b.get(tee), http.StatusOK, "variant").body
		writes, reads := b != w.auditor, b != w.staff
		if got := strings.Contains(prod, `action="/products/70101/threshold"`); got != writes {
			t.Errorf("%s: listing threshold form shown = %v", b.email, got)
		}
		if got := strings.Contains(variant, `/threshold"`); got != writes {
			t.Errorf("%s: variant threshold form shown = %v", b.email, got)
		}
		if got := strings.Contains(variant, "/log/events/"); got != reads {
			t.Errorf("%s: event links shown = %v", b.email, got)
		}
		if got := strings.Contains(prod, "/explain?at="); got != reads {
			t.Errorf("%s: explain links shown = %v", b.email, got)
		}
		if !strings.Contains(variant, `id="adjust"`) || !strings.Contains(variant, `role="img"`) {
			t.Errorf("%s: the variant page lacks its chart or its adjust section", b.email)
		}
		explain := b.get(tee + "/explain")
		if reads && explain.status != http.StatusOK || !reads && explain.status != http.StatusForbidden {
			t.Errorf("%s: explain %d", b.email, explain.status)
		}
	}
	// The variant page shows the receipt and the webhook behind movements,
	// and the webhook's evidence to those who read the log.
	page := w.s.must(w.owner.get(variantURL(mugListing, "sku:MUG-BLUE")), http.StatusOK, "variant").body
	for _, s := range []string{`href="/sales/7010001"`, "wh_restock_1", "initial_import", `href="/log/events/` + w.webhookEvent + `"`, "wh_evidence_1"} {
		if !strings.Contains(page, s) {
			t.Errorf("the variant page lacks %s", s)
		}
	}
	if staff := w.s.must(w.staff.get(variantURL(mugListing, "sku:MUG-BLUE")), http.StatusOK, "variant").body; strings.Contains(staff, w.webhookEvent) ||
		!strings.Contains(staff, "wh_evidence_1") {
		t.Error("staff see the evidence's event id, or not the webhook")
	}
	// A bad instant is a clear 400, the page still there.
	bad := w.s.must(w.owner.get(tee+"?at=yesterday"), http.StatusBadRequest, "bad at")
	if !strings.Contains(bad.body, "not a date and time") || !strings.Contains(bad.body, `id="adjust"`) {
		t.Errorf("bad at: %s", bad.body)
	}
	w.s.must(w.owner.get("/products?sort=colour"), http.StatusBadRequest, "bad sort")
	w.s.must(w.owner.get("/products?shop_id=999"), http.StatusNotFound, "another shop")
	w.s.must(w.owner.get(variantURL(mugListing, "sku:NOPE")), http.StatusNotFound, "unknown variant")
	w.s.must(w.owner.get("/products/99999"), http.StatusNotFound, "unknown listing")
}

var balanceRE = regexp.MustCompile(`data-metric="explained_(balance|sum)" data-value="(-?\d+)"`)

// The explanation lists movements whose deltas add up to the balance the
// API gives for the same instant, now and in the past.
func TestExplainSumsToTheBalance(t *testing.T) {
	t.Parallel()
	w := newShopWorld(t)
	loc, _ := time.LoadLocation("Europe/Paris")
	for _, at := range []time.Time{{}, time.Now().Add(-10 * 24 * time.Hour).Truncate(time.Minute)} {
		path := variantURL(mugListing, "sku:MUG-BLUE") + "/explain"
		api := fmt.Sprintf("/v1/products/%d/variants/%s/stock", mugListing, url.PathEscape("sku:MUG-BLUE"))
		if !at.IsZero() {
			path += "?at=" + url.QueryEscape(at.In(loc).Format("2006-01-02T15:04"))
			api += "?as_of=" + url.QueryEscape(at.UTC().Format(time.RFC3339))
		}
		page := w.s.must(w.auditor.get(path), http.StatusOK, "explain").body
		got := map[string]int64{}
		for _, m := range balanceRE.FindAllStringSubmatch(page, -1) {
			got[m[1]], _ = strconv.ParseInt(m[2], 10, 64)
		}
		var st struct {
			Quantity int64 `json:"quantity"`
		}
		w.api(w.auditorTok, api, &st)
		if got["balance"] != st.Quantity || got["sum"] != st.Quantity {
			t.Errorf("explain at %v: balance %d, sum %d; /v1 says %d", at, got["balance"], got["sum"], st.Quantity)
		}
		if !strings.Contains(page, "= the balance") {
			t.Errorf("explain at %v does not show the sum equal to the balance", at)
		}
	}
}

// Staff set thresholds through the forms; bad numbers come back with the
// reason and status 422; auditors are refused.
func TestThresholdFormsValidateAndRespectRoles(t *testing.T) {
	t.Parallel()
	w := newShopWorld(t)
	variant := variantURL(mugListing, "sku:MUG-BLUE")
	for _, bad := range []string{"", "ten", "-1", "1000001", "3.5"} {
		a := w.s.must(w.staff.post(variant+"/threshold", url.Values{"threshold": {bad}}), http.StatusUnprocessableEntity, "bad threshold "+bad)
		if !strings.Contains(a.body, "whole number from 0 to 1000000") || !strings.Contains(a.body, `aria-invalid="true"`) {
			t.Errorf("bad threshold %q: no clear error:\n%s", bad, a.body)
		}
		if !strings.Contains(a.body, `value="`+html.EscapeString(bad)+`"`) {
			t.Errorf("bad threshold %q is not kept in the form", bad)
		}
	}
	w.s.must(w.staff.post(fmt.Sprintf("/products/%d/threshold", mugListing), url.Values{"threshold": {"x"}}), http.StatusUnprocessableEntity, "bad listing threshold")
	for _, c := range []struct {
		path string
		n    string
	}{
		{variant + "/threshold", "45"},
		{fmt.Sprintf("/products/%d/threshold", teeListing), "2"},
		{fmt.Sprintf("/products/%d/shop-threshold", printListing), "30"},
		{variantURL(teeListing, teeKey) + "/threshold", "0"},
	} {
		if a := w.auditor.post(c.path, url.Values{"threshold": {c.n}}); a.status != http.StatusForbidden {
			t.Errorf("auditor POST %s: %d, want 403", c.path, a.status)
		}
		a := w.s.must(w.staff.post(c.path, url.Values{"threshold": {c.n}}), http.StatusSeeOther, "staff POST "+c.path)
		if loc := a.header.Get("Location"); !strings.HasPrefix(loc, "/products/") || !strings.Contains(loc, "notice=threshold") {
			t.Errorf("after POST %s: Location %q", c.path, loc)
		}
	}
	if got := query(w.s.db.DB, `SELECT count(*) FROM events WHERE type = 'stock.threshold_set' AND metadata->>'actor' = 'user:' || $1`, w.s.userID("stan@example.com")); got != "4" {
		t.Fatalf("threshold events by the staff member: %s, want 4", got)
	}
	w.l.project()
	var prod struct {
		Variants []struct {
			VariantKey string `json:"variant_key"`
			Threshold  int64  `json:"low_stock_threshold"`
			Source     string `json:"threshold_source"`
		} `json:"variants"`
	}
	w.api(w.seller, fmt.Sprintf("/v1/products/%d", mugListing), &prod)
	page := w.s.must(w.owner.get(fmt.Sprintf("/products/%d", mugListing)), http.StatusOK, "product").body
	for _, v := range prod.Variants {
		if v.VariantKey == "sku:MUG-BLUE" && (v.Threshold != 45 || v.Source != "variant") {
			t.Errorf("MUG-BLUE line %d from %s, want 45 from variant", v.Threshold, v.Source)
		}
	}
	if !strings.Contains(page, "45 <span class=\"hint\">(variant)</span>") {
		t.Error("the product page does not show the variant's new line")
	}
	var shop struct {
		Default int64 `json:"default_low_stock_threshold"`
	}
	w.api(w.seller, "/v1/shops/702", &shop)
	if shop.Default != 30 {
		t.Errorf("shop 702 default %d, want 30", shop.Default)
	}
}

// The CSV holds exactly the filtered products, in /v1's columns.
func TestProductsCSVEqualsTheFilteredAPI(t *testing.T) {
	t.Parallel()
	w := newShopWorld(t)
	for _, q := range []url.Values{
		{},
		{"q": {"mug"}},
		{"low_stock": {"1"}},
		{"shop_id": {"701"}, "sort": {"-quantity"}},
		{"q": {"print"}, "state": {"active"}},
	} {
		a := w.s.must(w.owner.get("/products.csv?"+q.Encode()), http.StatusOK, "csv "+q.Encode())
		if !strings.HasPrefix(a.header.Get("Content-Type"), "text/csv") {
			t.Fatalf("csv content type %q", a.header.Get("Content-Type"))
		}
		got, err := csv.NewReader(strings.NewReader(a.body)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		var want [][]string
		aq := url.Values{}
		for k, v := range q {
			aq[k] = v
		}
		if aq.Get("low_stock") != "" {
			aq.Set("low_stock", "true")
		}
		aq.Set("format", "csv")
		aq.Set("limit", "100")
		w.api(w.seller, "/v1/products?"+aq.Encode(), &want)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("CSV for %v:\n%v\nwant /v1's\n%v", q, got, want)
		}
		// The page lists the same products.
		page := w.s.must(w.owner.get("/products?"+q.Encode()), http.StatusOK, "products").body
		for _, row := range want[1:] {
			if !strings.Contains(page, `href="/products/`+row[0]+`"`) {
				t.Errorf("products page for %v lacks listing %s", q, row[0])
			}
		}
		if len(want) == 1 && !strings.Contains(page, "No product matches") {
			t.Errorf("empty filter result shows no polite message")
		}
	}
	// The page's cursors walk every product once.
	seen := map[string]int{}
	next := "/products?limit=1&sort=title"
	for i := 0; next != "" && i < 10; i++ {
		page := w.s.must(w.owner.get(next), http.StatusOK, "page").body
		for _, m := range regexp.MustCompile(`href="/products/(\d+)"`).FindAllStringSubmatch(page, -1) {
			seen[m[1]]++
		}
		next = ""
		if m := regexp.MustCompile(`href="([^"]+)" rel="next"`).FindStringSubmatch(page); m != nil {
			next = html.UnescapeString(m[1])
		}
	}
	if len(seen) != 3 {
		t.Errorf("pages walked %v, want the 3 listings once each", seen)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("listing %s on %d pages", id, n)
		}
	}
}

// An organisation without shops gets polite empty pages, and the owner
// the way to connect one.
func TestStockPagesWithoutShops(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	b := s.signUp("nell@example.com")
	home := s.must(b.get("/"), http.StatusOK, "dashboard").body
	for _, want := range []string{"No shop yet", "Connect an Etsy shop"} {
		if !strings.Contains(home, want) {
			t.Errorf("empty dashboard lacks %q", want)
		}
	}
	if strings.Contains(home, "data-metric") {
		t.Error("an organisation without shops shows figures")
	}
	if page := s.must(b.get("/products"), http.StatusOK, "products").body; !strings.Contains(page, "No shop is connected yet") {
		t.Error("the empty products page says nothing")
	}
	csvBody := s.must(b.get("/products.csv"), http.StatusOK, "csv").body
	if strings.TrimSpace(csvBody) != "listing_id,shop_id,title,state,url,price_amount,price_currency,quantity,variant_count,low_stock_variants,low_stock_threshold,deleted,updated_at" {
		t.Errorf("empty CSV: %q", csvBody)
	}
}
