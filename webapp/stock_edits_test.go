package webapp_test

import (
	"bytes"
	"html"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/shopledger/shopledger/events"
)

// requestIDRE finds the request ids the variant page's stock forms carry,
// in the page's order: count, received, correction, price, enabled.
var requestIDRE = regexp.MustCompile(`name="request_id" value="([^"]+)"`)

func formIDs(t *testing.T, page string) []string {
	t.Helper()
	var out []string
	for _, m := range requestIDRE.FindAllStringSubmatch(page, -1) {
		out = append(out, m[1])
	}
	return out
}

// commands counts the stock commands recorded under a request id: in
// the log and in the outbox.
func (s *site) commands(requestID string) (string, string) {
	return query(s.db.DB, `SELECT count(*) FROM events WHERE type = 'stock.edit_requested' AND data->>'request_id' = $1`, requestID),
		query(s.db.DB, `SELECT count(*) FROM stock_edit_outbox WHERE request_id = $1 AND state = 'queued'`, requestID)
}

func (s *site) allCommands() string {
	return query(s.db.DB, `SELECT count(*) FROM stock_edit_outbox`)
}

// command reads a field of the command recorded under a request id.
func (s *site) command(requestID, field string) string {
	return query(s.db.DB, `SELECT coalesce(data->>$2, '') FROM events WHERE type = 'stock.edit_requested' AND data->>'request_id' = $1`, requestID, field)
}

func TestVariantStockFormsRecordEachCommandOnce(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	tm := s.team("ed")
	l := s.ledger()
	l.shop(tm.org, 901, "Edit shop", "EUR")
	l.listing(901, 90101, "Mug", "EUR", map[string]int64{"sku:MUG-B": 10, "sku:MUG-R": 3})
	l.project()
	page := "/products/90101/variants/" + url.PathEscape("sku:MUG-B")

	body := s.must(tm.owner.get(page), http.StatusOK, "variant page").body
	for _, want := range []string{"I counted", "Received +", "Correction: why", "Price in EUR", "Stop selling this variant", "No stock change has been made here yet"} {
		if !strings.Contains(html.UnescapeString(body), want) {
			t.Errorf("the owner's variant page lacks %q", want)
		}
	}
	ids := formIDs(t, body)
	if len(ids) != 5 {
		t.Fatalf("want 5 request ids on the page, got %d", len(ids))
	}
	if again := formIDs(t, s.must(tm.owner.get(page), http.StatusOK, "variant page").body); again[0] == ids[0] {
		t.Fatal("a new rendering reuses the request id")
	}

	// Each form, sent twice with its request id, records one command.
	type post struct {
		who    *browser
		path   string
		form   url.Values
		checks map[string]string
	}
	posts := []post{
		{tm.owner, "/adjust", url.Values{"kind": {"count"}, "quantity": {"12"}, "request_id": {ids[0]}},
			map[string]string{"kind": "count", "quantity": "12", "delta": "2", "balance_at_command": "10"}},
		{tm.staff, "/adjust", url.Values{"kind": {"received"}, "quantity": {"+5"}, "supplier_ref": {"PO-17"}, "request_id": {ids[1]}},
			map[string]string{"kind": "received", "quantity": "5", "delta": "5", "supplier_ref": "PO-17", "actor": "user:" + s.userID("ed-staff@example.com")}},
		{tm.owner, "/adjust", url.Values{"kind": {"correction"}, "quantity": {"−2"}, "reason": {"damaged"}, "note": {"dropped"}, "request_id": {ids[2]}},
			map[string]string{"kind": "correction", "quantity": "-2", "delta": "-2", "reason": "damaged", "note": "dropped"}},
		{tm.owner, "/price", url.Values{"price": {"22,5"}, "request_id": {ids[3]}},
			map[string]string{"kind": "price", "price": `{"amount": 2250, "currency": "EUR"}`}},
		{tm.staff, "/enabled", url.Values{"enabled": {"false"}, "request_id": {ids[4]}},
			map[string]string{"kind": "disable"}},
	}
	for i, p := range posts {
		for range 2 {
			a := s.must(p.who.post(page+p.path, p.form), http.StatusSeeOther, "form "+p.path)
			if loc := a.header.Get("Location"); !strings.HasPrefix(loc, page+"?notice=edit") {
				t.Fatalf("form %d redirects to %q", i, loc)
			}
		}
		rid := p.form.Get("request_id")
		if ev, ob := s.commands(rid); ev != "1" || ob != "1" {
			t.Fatalf("form %d sent twice: %s commands in the log, %s queued; want 1 and 1", i, ev, ob)
		}
		for field, want := range p.checks {
			if got := s.command(rid, field); got != want {
				t.Errorf("form %d: %s = %q, want %q", i, field, got, want)
			}
		}
	}
	if got := s.command(ids[0], "actor"); got != "user:"+s.userID("ed-owner@example.com") {
		t.Errorf("count actor %q", got)
	}

	// The history says each command in words with its state at Etsy.
	shown := html.UnescapeString(s.must(tm.owner.get(page+"?notice=edit"), http.StatusOK, "variant page").body)
	for _, want := range []string{"Recorded; it is being sent to Etsy", "counted 12 (+2 against 10)", "received +5 (PO-17)", "correction −2, damaged", "dropped",
		"price 22.50 EUR", "taken off sale", "queued, on its way to Etsy", "by you", "by Owner of ed-staff@example.com"} {
		if !strings.Contains(shown, want) {
			t.Errorf("the history lacks %q", want)
		}
	}

	// A command sent through the API shows the same way, naming its token.
	tok := s.apiToken(tm.owner, "seller")
	req, _ := http.NewRequest(http.MethodPost, s.srv.URL+"/v1/products/90101/variants/"+url.PathEscape("sku:MUG-B")+"/adjustments",
		strings.NewReader(`{"kind": "received", "quantity": 1, "request_id": "api-1"}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	res, err := s.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("API adjustment: %d", res.StatusCode)
	}
	shown = html.UnescapeString(s.must(tm.staff.get(page), http.StatusOK, "variant page").body)
	if !strings.Contains(shown, "received +1") || !strings.Contains(shown, "by API token “seller”") || !strings.Contains(shown, "by Owner of ed-owner@example.com") {
		t.Error("the history does not name the API token or the owner for the staff member")
	}

	// Etsy's answers, as the pusher records them, show on the entries.
	cmdOf := func(rid string) string { return s.command(rid, "command_id") }
	stream := events.ListingStream(90101)
	l.append(stream, 901, time.Now(), events.StockEditPushed{CommandIDs: []string{cmdOf(ids[0])}, Attempt: 1, ListingID: 90101,
		Quantities: map[string]int64{"sku:MUG-B": 11, "sku:MUG-R": 3}, ProductIDs: map[string]int64{"sku:MUG-B": 7, "sku:MUG-R": 8}})
	l.append(stream, 901, time.Now(), events.StockEditFailed{CommandIDs: []string{cmdOf(ids[3])}, Attempt: 1, ListingID: 90101,
		Code: "etsy_refused", Message: "Price is out of range", Status: 400})
	l.append(stream, 901, time.Now(), events.StockEditFailed{CommandIDs: []string{cmdOf(ids[1])}, Attempt: 1, ListingID: 90101,
		Code: "reauth_required", Message: "the shop must be connected again", Retryable: true})
	l.append(stream, 901, time.Now(), events.StockEditFailed{CommandIDs: []string{cmdOf(ids[2])}, Attempt: 1, ListingID: 90101,
		Code: "rate_limited", Message: "Etsy asked us to slow down", Retryable: true})
	shown = html.UnescapeString(s.must(tm.auditor.get(page), http.StatusOK, "variant page").body)
	for _, want := range []string{"pushed; Etsy now shows 11", "failed, not retried: Price is out of range", "waiting: the shop must be connected again",
		"failed, retrying: Etsy asked us to slow down"} {
		if !strings.Contains(shown, want) {
			t.Errorf("the history lacks %q", want)
		}
	}

	// Auditors see the history but no form, and may post nothing.
	if strings.Contains(shown, "Record the count") || strings.Contains(shown, `name="request_id"`) {
		t.Error("the auditor's page shows the stock forms")
	}
	before := s.allCommands()
	for _, p := range posts {
		form := url.Values{}
		for k, v := range p.form {
			form[k] = v
		}
		form.Set("request_id", "auditor-"+p.path)
		s.must(tm.auditor.post(page+p.path, form), http.StatusForbidden, "auditor "+p.path)
	}
	if got := s.allCommands(); got != before {
		t.Fatalf("auditor posts recorded commands: %s, was %s", got, before)
	}

	// Another organisation's variant is not there.
	other := s.signUp("ed-other@example.com")
	s.must(other.get(page), http.StatusNotFound, "other org's variant page")
	s.must(other.post(page+"/adjust", url.Values{"kind": {"count"}, "quantity": {"1"}, "request_id": {"other"}}), http.StatusNotFound, "other org's count")
	if got := s.allCommands(); got != before {
		t.Fatalf("another organisation recorded a command")
	}
}

func TestVariantStockFormsRefuseBadInputBesideTheField(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	b, org := s.signUpOwner("bad-edit@example.com")
	l := s.ledger()
	l.shop(org, 911, "Refusals", "EUR")
	l.listing(911, 91101, "Two-variant mug", "EUR", map[string]int64{"sku:A": 4, "sku:B": 0})
	l.listing(911, 91102, "Last one", "EUR", map[string]int64{"sku:ONLY": 2})
	l.project()
	page := "/products/91101/variants/" + url.PathEscape("sku:A")

	cases := []struct {
		path, field string
		form        url.Values
		want        string // message beside the field
		kept        string // the typed value, shown again
	}{
		{"/adjust", "ed-count", url.Values{"kind": {"count"}, "quantity": {"twelve"}}, `&#34;twelve&#34; is not a whole number`, `value="twelve"`},
		{"/adjust", "ed-count", url.Values{"kind": {"count"}, "quantity": {"1000"}}, "a count is between 0 and 999", `value="1000"`},
		{"/adjust", "ed-received", url.Values{"kind": {"received"}, "quantity": {"0"}, "supplier_ref": {"PO-9"}}, "units received are between 1 and 999", `value="PO-9"`},
		{"/adjust", "ed-correction", url.Values{"kind": {"correction"}, "quantity": {"2"}, "reason": {"damaged"}, "note": {"cracked"}},
			"a damaged correction takes away stock: want a negative quantity", `value="cracked"`},
		{"/adjust", "ed-correction", url.Values{"kind": {"correction"}, "quantity": {"-9"}, "reason": {"lost"}}, "the balance is 4: a change of -9 would make it negative", `value="-9"`},
		{"/price", "ed-price", url.Values{"price": {"12.345"}}, "want a price in EUR, up to two decimals", `value="12.345"`},
		{"/price", "ed-price", url.Values{"price": {"0.10"}}, "Etsy takes prices from 0.20 to 50000.00", `value="0.10"`},
	}
	for _, c := range cases {
		c.form.Set("request_id", "bad-"+c.form.Encode())
		a := s.must(b.post(page+c.path, c.form), http.StatusUnprocessableEntity, c.path+" "+c.form.Encode())
		beside := regexp.MustCompile(`(?s)id="` + c.field + `"[^>]*aria-invalid="true"[^>]*>\s*<p id="` + c.field + `-err" class="error">([^<]*)</p>`)
		m := beside.FindStringSubmatch(a.body)
		if m == nil || !strings.Contains(m[1], c.want) {
			t.Errorf("%s: no %q beside the field", c.form.Encode(), c.want)
		}
		if !strings.Contains(a.body, c.kept) {
			t.Errorf("%s: the typed %s is not kept", c.form.Encode(), c.kept)
		}
	}

	// Taking the listing's last stock away says what to do instead.
	last := "/products/91102/variants/" + url.PathEscape("sku:ONLY")
	for _, f := range []url.Values{
		{"kind": {"count"}, "quantity": {"0"}, "request_id": {"zero-count"}},
		{"kind": {"correction"}, "quantity": {"-2"}, "reason": {"lost"}, "request_id": {"zero-lost"}},
	} {
		a := s.must(b.post(last+"/adjust", f), http.StatusUnprocessableEntity, "zero stock")
		if !strings.Contains(a.body, "deactivate the listing on Etsy, or let the last unit sell") {
			t.Errorf("zero stock refusal does not say what to do:\n%s", a.body)
		}
	}
	a := s.must(b.post(last+"/enabled", url.Values{"enabled": {"false"}, "request_id": {"zero-disable"}}), http.StatusUnprocessableEntity, "disable the last")
	if !strings.Contains(a.body, "deactivate the listing on Etsy") {
		t.Error("disabling the last variant with stock is not explained")
	}
	if got := s.allCommands(); got != "0" {
		t.Fatalf("refused forms recorded %s commands", got)
	}
	// A request id already used for another command is refused.
	s.must(b.post(page+"/adjust", url.Values{"kind": {"count"}, "quantity": {"5"}, "request_id": {"one-id"}}), http.StatusSeeOther, "count")
	a = s.must(b.post(page+"/price", url.Values{"price": {"20"}, "request_id": {"one-id"}}), http.StatusUnprocessableEntity, "reused id")
	if !strings.Contains(a.body, "already used for another change") {
		t.Error("a reused request id is not explained")
	}
	if got := s.allCommands(); got != "1" {
		t.Fatalf("commands: %s, want 1", got)
	}
}

// postFile sends a multipart form as a browser does for a file upload.
func (b *browser) postFile(path string, fields map[string]string, file string) answer {
	b.s.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		_ = mw.WriteField(k, v)
	}
	if file != "" {
		fw, err := mw.CreateFormFile("file", "stocktake.csv")
		if err != nil {
			b.s.t.Fatal(err)
		}
		_, _ = io.WriteString(fw, file)
	}
	_ = mw.Close()
	return b.send(http.MethodPost, path, &buf, mw.FormDataContentType(), nil)
}

var hiddenRE = regexp.MustCompile(`<input type="hidden" name="(csv|request_id)" value="([^"]*)">`)

func TestStocktakePreviewsAndAppliesCounts(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	tm := s.team("st")
	l := s.ledger()
	l.shop(tm.org, 921, "Stock shop", "EUR")
	l.listing(921, 92101, "Mugs", "EUR", map[string]int64{"sku:M-1": 5, "sku:M-2": 7})
	l.listing(921, 92102, "Plates", "EUR", map[string]int64{"sku:P-1": 3})
	l.project()
	const path = "/shops/921/stocktake"

	// Linked from the shop page and the products page, for writers only.
	for _, p := range []string{"/shops/921", "/products"} {
		if !strings.Contains(s.must(tm.staff.get(p), http.StatusOK, p).body, `href="/shops/921/stocktake"`) {
			t.Errorf("%s does not link the stocktake", p)
		}
		if strings.Contains(s.must(tm.auditor.get(p), http.StatusOK, p).body, `href="/shops/921/stocktake"`) {
			t.Errorf("%s links the stocktake for an auditor", p)
		}
	}
	page := s.must(tm.staff.get(path), http.StatusOK, "stocktake page").body
	if !strings.Contains(page, `enctype="multipart/form-data"`) || !strings.Contains(page, "sku,counted") {
		t.Fatal("the stocktake page has no upload form or no format")
	}

	// A file with refused lines: each says why; nothing can be applied.
	bad := "sku,counted\nM-1,4\nNOPE,3\nM-2,x\nP-1,-1\nM-1,6\n"
	a := s.must(tm.staff.postFile(path+"/preview", nil, bad), http.StatusOK, "preview refused")
	shown := html.UnescapeString(a.body)
	for _, want := range []string{"unknown SKU", "is not a whole number", "counted -1 is negative", "SKU listed twice", "lines are refused"} {
		if !strings.Contains(shown, want) {
			t.Errorf("the refused preview lacks %q", want)
		}
	}
	if strings.Contains(a.body, "Apply the stocktake") {
		t.Error("a refused file offers Apply")
	}
	// Applying it anyway records nothing.
	a = s.must(tm.staff.postFile(path+"/apply", map[string]string{"csv": bad, "request_id": "bad-take"}, ""), http.StatusUnprocessableEntity, "apply refused")
	if !strings.Contains(a.body, "Nothing was applied") {
		t.Errorf("a refused apply does not say so:\n%s", a.body)
	}
	if got := s.allCommands(); got != "0" {
		t.Fatalf("a refused stocktake recorded %s commands", got)
	}
	// A file that is no stocktake at all.
	a = s.must(tm.staff.postFile(path+"/preview", nil, "name;qty\nx;1\n"), http.StatusUnprocessableEntity, "not a stocktake")
	if !strings.Contains(html.UnescapeString(a.body), `the header must be "sku,counted"`) {
		t.Errorf("a file without the header is not explained:\n%s", a.body)
	}

	// A good file: the differences line by line, then Apply.
	good := "sku,counted\r\nM-1,4\r\nM-2,7\r\nP-1,10\r\n"
	a = s.must(tm.staff.postFile(path+"/preview", nil, good), http.StatusOK, "preview")
	rows := regexp.MustCompile(`(?s)<tr>\s*<td class="num">(\d+)</td>\s*<td><code>([^<]+)</code></td>\s*<td><a href="([^"]+)">[^<]*</a>.*?</td>\s*<td class="num">(-?\d+)</td><td class="num">(\d+)</td>\s*<td class="num[^"]*">([^<]+)</td>`).FindAllStringSubmatch(a.body, -1)
	got := []string{}
	for _, r := range rows {
		got = append(got, html.UnescapeString(strings.Join(r[2:], " ")))
	}
	want := []string{
		"M-1 /products/92101/variants/sku:M-1 5 4 −1",
		"M-2 /products/92101/variants/sku:M-2 7 7 0",
		"P-1 /products/92102/variants/sku:P-1 3 10 +7",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("preview rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !strings.Contains(a.body, "2 variants differ") {
		t.Error("the preview does not count the changes")
	}
	fields := map[string]string{}
	for _, m := range hiddenRE.FindAllStringSubmatch(a.body, -1) {
		fields[m[1]] = html.UnescapeString(m[2])
	}
	if fields["csv"] != good || fields["request_id"] == "" {
		t.Fatalf("the Apply form carries %q", fields)
	}
	if got := s.allCommands(); got != "0" {
		t.Fatalf("a preview recorded %s commands", got)
	}
	// Auditors may not take stock at all.
	s.must(tm.auditor.get(path), http.StatusForbidden, "auditor page")
	s.must(tm.auditor.postFile(path+"/preview", nil, good), http.StatusForbidden, "auditor preview")
	s.must(tm.auditor.postFile(path+"/apply", fields, ""), http.StatusForbidden, "auditor apply")
	// Applied twice (a double submit): recorded once.
	for range 2 {
		a = s.must(tm.staff.postFile(path+"/apply", fields, ""), http.StatusSeeOther, "apply")
		if loc := a.header.Get("Location"); loc != path+"?notice=stocktake" {
			t.Fatalf("apply redirects to %q", loc)
		}
	}
	if got := s.allCommands(); got != "2" {
		t.Fatalf("apply recorded %s commands, want 2", got)
	}
	for sku, want := range map[string]string{"M-1": "4 -1", "P-1": "10 7"} {
		rid := fields["request_id"] + ":" + sku
		if got := s.command(rid, "quantity") + " " + s.command(rid, "delta"); got != want || s.command(rid, "kind") != "count" {
			t.Errorf("%s: count %s, want %s", sku, got, want)
		}
	}
	if !strings.Contains(s.must(tm.staff.get(path+"?notice=stocktake"), http.StatusOK, "after").body, "The stocktake is applied") {
		t.Error("no notice after applying")
	}

	// Too large a file is refused with 413 and nothing is recorded.
	big := "sku,counted\n" + strings.Repeat("M-1,4\n", 2<<20/6+10)
	s.must(tm.staff.postFile(path+"/preview", nil, big), http.StatusRequestEntityTooLarge, "too large")
	s.must(tm.staff.postFile(path+"/apply", map[string]string{"request_id": "huge"}, big+big), http.StatusRequestEntityTooLarge, "far too large")
	if got := s.allCommands(); got != "2" {
		t.Fatalf("too large files recorded commands: %s", got)
	}

	// Another organisation's shop is not there.
	other := s.signUp("st-other@example.com")
	s.must(other.get(path), http.StatusNotFound, "other org's stocktake")
	s.must(other.postFile(path+"/apply", fields, ""), http.StatusNotFound, "other org's apply")
}
