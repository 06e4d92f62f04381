package webapp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shopledger/shopledger/accounts"
	"github.com/shopledger/shopledger/alerts"
	"github.com/shopledger/shopledger/service"
	"github.com/shopledger/shopledger/shops"
)

var ledgerBase = time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)

// Every page renders for the roles allowed to see it and is a 403 for the
// others; staff and auditors change no sync setting.
func TestLedgerPagesByRole(t *testing.T) {
	t.Parallel()
	s, tm, sd := newTeamSite(t, "rl", 801, "Rosa's mugs")
	variant := "/products/8010/variants/" + url.PathEscape(sd.key)
	pages := []struct {
		path     string
		auditor  bool // auditors and owners read the log; staff do not
		logOnly  bool
		contains []string
	}{
		{path: "/sales", contains: []string{fmt.Sprint(sd.receipts[0]), "Rosa&#39;s mugs", "Download these sales as CSV"}},
		{path: "/sales?status=canceled", contains: []string{fmt.Sprint(sd.canceled)}},
		{path: "/sales/" + fmt.Sprint(sd.receipts[0]), contains: []string{"Timeline", "Ordered", "Stock movements", variant, "Total", "34.95 EUR"}},
		{path: "/sales/" + fmt.Sprint(sd.canceled), contains: []string{"Canceled"}},
		{path: "/alerts", contains: []string{"/alerts/" + sd.alertID, variant}},
		{path: "/alerts?status=open", contains: []string{"/alerts/" + sd.alertID}},
		{path: "/alerts/" + sd.alertID, contains: []string{"Deliveries", variant}},
		{path: "/shops", contains: []string{"/shops/801", "connected"}},
		{path: "/shops/801", contains: []string{"Reconciliation runs", "1234 ms", "listings: 1", "sales: 3"}},
		{path: "/log", logOnly: true, contains: []string{"shop.connected", "/log/events/"}},
		{path: "/log?type=sale.recorded", logOnly: true, contains: []string{"/log/events/" + sd.saleEvent}},
		{path: "/log/events/" + sd.saleEvent, logOnly: true, contains: []string{"sale.recorded", "Led to", "stock.sold", "/sales/" + fmt.Sprint(sd.receipts[0])}},
		{path: "/log/chain", logOnly: true, contains: []string{"Every checked event verifies", "Head hash"}},
	}
	for _, p := range pages {
		for _, who := range []struct {
			name string
			b    *browser
			may  bool
		}{{"owner", tm.owner, true}, {"staff", tm.staff, !p.logOnly}, {"auditor", tm.auditor, true}} {
			a := who.b.get(p.path)
			if !who.may {
				if a.status != http.StatusForbidden {
					t.Errorf("%s GET %s: %d, want 403", who.name, p.path, a.status)
				}
				continue
			}
			if a.status != http.StatusOK {
				t.Errorf("%s GET %s: %d, want 200\n%s", who.name, p.path, a.status, a.body)
				continue
			}
			for _, c := range p.contains {
				if !strings.Contains(a.body, c) {
					t.Errorf("%s GET %s lacks %q", who.name, p.path, c)
				}
			}
		}
	}
	// The receipt's times show in the member's zone (Europe/Paris, UTC+1
	// in March before the change): ordered at 11:00 CET.
	if body := tm.owner.get(fmt.Sprintf("/sales/%d", sd.receipts[0])).body; !strings.Contains(body, "10 Mar 2026 11:00 CET") {
		t.Errorf("the receipt's times are not in the member's zone:\n%s", body)
	}
	if a := tm.staff.get("/log/export"); a.status != http.StatusForbidden {
		t.Errorf("staff export: %d, want 403", a.status)
	}
	// Only owners change the sync settings; auditors write nothing.
	form := url.Values{"enabled": {"false"}, "interval": {"3600"}}
	for _, b := range []*browser{tm.staff, tm.auditor} {
		if a := b.post("/shops/801/sync", form); a.status != http.StatusForbidden {
			t.Errorf("%s changing sync: %d, want 403", b.email, a.status)
		}
	}
	if a := tm.owner.post("/shops/801/sync", url.Values{"interval": {"61"}}); a.status != http.StatusUnprocessableEntity {
		t.Errorf("an interval not offered: %d, want 422", a.status)
	}
	s.must(tm.owner.post("/shops/801/sync", form), http.StatusSeeOther, "owner turns sync off")
	var data, actor string
	if err := s.db.DB.QueryRow(`SELECT data::text, metadata->>'actor' FROM events WHERE type = 'shop.settings_changed' AND stream_id = 'shop-801'`).Scan(&data, &actor); err != nil {
		t.Fatalf("no shop.settings_changed appended: %v", err)
	}
	var got struct {
		Enabled  *bool  `json:"sync_enabled"`
		Interval *int64 `json:"sync_interval_seconds"`
	}
	if err := json.Unmarshal([]byte(data), &got); err != nil || got.Enabled == nil || *got.Enabled || got.Interval == nil || *got.Interval != 3600 {
		t.Fatalf("settings event %s, want sync off every 3600 s", data)
	}
	if actor != "user:"+s.userID("rl-owner@example.com") {
		t.Errorf("settings event actor %q", actor)
	}
	s.project(eventstoreOf(s))
	if body := tm.owner.get("/shops/801").body; !strings.Contains(body, "off: ingest does not poll") {
		t.Errorf("the shop page does not show sync off:\n%s", body)
	}
	// A bad filter is explained on the page, not a failure.
	if a := tm.owner.get("/sales?status=lost"); a.status != http.StatusBadRequest || !strings.Contains(a.body, "status") {
		t.Errorf("bad status filter: %d", a.status)
	}
	if a := tm.owner.get("/sales?shop_id=999"); a.status != http.StatusNotFound {
		t.Errorf("a shop not the organisation's in the filter: %d, want 404", a.status)
	}
}

// Another organisation's receipt, alert, event and shop are 404 on every
// route that names them, and its rows appear on no list.
func TestLedgerHidesOtherOrganisations(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	a := s.team("ha")
	b := s.team("hb")
	sa := s.seedShop(a.org, 811, "Anna secret shop", ledgerBase)
	s.seedShop(b.org, 812, "Bert shop", ledgerBase)
	for _, path := range []string{
		fmt.Sprintf("/sales/%d", sa.receipts[0]), "/alerts/" + sa.alertID, "/log/events/" + sa.saleEvent, "/shops/811",
		"/sales?shop_id=811", "/sales.csv?shop_id=811", "/alerts?shop_id=811", "/log?shop_id=811", "/log/export?shop_id=811",
	} {
		for _, br := range []*browser{b.owner, b.auditor} {
			if ans := br.get(path); ans.status != http.StatusNotFound {
				t.Errorf("B's %s GET %s: %d, want 404", br.email, path, ans.status)
			}
		}
	}
	if ans := b.owner.post("/shops/811/sync", url.Values{"enabled": {"false"}}); ans.status != http.StatusNotFound {
		t.Errorf("B's owner changing A's sync: %d, want 404", ans.status)
	}
	for _, path := range []string{"/sales", "/sales.csv", "/alerts", "/shops", "/log", "/log/export", "/log/chain"} {
		body := b.owner.get(path).body
		for _, leak := range []string{"Anna secret shop", fmt.Sprint(sa.receipts[0]), sa.alertID, sa.saleEvent} {
			if strings.Contains(body, leak) {
				t.Errorf("B's %s shows A's %q", path, leak)
			}
		}
	}
}

// /sales.csv holds exactly the filtered set, in /v1's CSV form: the same
// bytes as /v1/sales?format=csv with the same filters.
func TestSalesCSVEqualsTheAPIs(t *testing.T) {
	t.Parallel()
	s, tm, _ := newTeamSite(t, "cs", 821, "=Formula shop")
	s.seedShop(tm.org, 822, "Other shop", ledgerBase.Add(24*time.Hour))
	tok := s.apiToken(tm.owner, "seller")
	for _, q := range []string{"", "shop_id=821", "status=canceled", "status=paid&shop_id=822",
		"from=" + url.QueryEscape(ledgerBase.Add(90*time.Minute).Format(time.RFC3339)) + "&to=" + url.QueryEscape(ledgerBase.Add(25*time.Hour).Format(time.RFC3339))} {
		page := s.must(tm.owner.get("/sales.csv?"+q), http.StatusOK, "csv "+q)
		api := s.api(tok, "/v1/sales?format=csv&limit=100&"+q)
		if api.status != http.StatusOK {
			t.Fatalf("/v1/sales?%s: %d %s", q, api.status, api.body)
		}
		if page.body != api.body {
			t.Errorf("/sales.csv?%s differs from /v1's:\n%s\n---\n%s", q, page.body, api.body)
		}
		if ct := page.header.Get("Content-Type"); ct != "text/csv; charset=utf-8" {
			t.Errorf("csv content type %q", ct)
		}
		if n := strings.Count(page.body, "\n"); n < 2 && q == "" {
			t.Errorf("the unfiltered CSV holds %d lines", n)
		}
	}
	// The JSON page of the same filter lists the same receipts.
	var list struct {
		Items []struct {
			ReceiptID int64 `json:"receipt_id"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(s.api(tok, "/v1/sales?status=canceled").body), &list); err != nil {
		t.Fatal(err)
	}
	csv := tm.owner.get("/sales.csv?status=canceled").body
	if got := strings.Count(csv, "\n") - 1; got != len(list.Items) || len(list.Items) != 2 {
		t.Errorf("canceled CSV rows %d, JSON items %d, want 2", got, len(list.Items))
	}
	for _, it := range list.Items {
		if !strings.Contains(csv, fmt.Sprintf("\n%d,", it.ReceiptID)) {
			t.Errorf("CSV lacks receipt %d", it.ReceiptID)
		}
	}
}

// /log/export answers the same bytes, trailer included, as /v1's export
// for the same scope and filters.
func TestLogExportEqualsTheAPIs(t *testing.T) {
	t.Parallel()
	s, tm, _ := newTeamSite(t, "ex", 831, "Export shop")
	other, otherOrg := s.signUpOwner("stranger@example.com")
	s.seedShop(otherOrg, 832, "Stranger shop", ledgerBase)
	tok := s.apiToken(tm.auditor, "auditor")
	for _, q := range []string{"", "type=stock.sold", "shop_id=831&after_seq=3"} {
		page := s.must(tm.auditor.get("/log/export?"+q), http.StatusOK, "export "+q)
		api := s.api(tok, "/v1/events/export?"+q)
		if api.status != http.StatusOK || page.body != api.body {
			t.Errorf("/log/export?%s differs from /v1's (%d):\n%s\n---\n%s", q, api.status, page.body, api.body)
		}
		if !strings.Contains(page.body, `"trailer"`) || !strings.Contains(page.body, `"complete":true`) {
			t.Errorf("export %s has no complete trailer", q)
		}
		if strings.Contains(page.body, `"shop_id":832`) {
			t.Errorf("export %s holds another organisation's events", q)
		}
	}
	if a := other.get("/log/export?shop_id=831"); a.status != http.StatusNotFound {
		t.Errorf("another organisation's shop in the export filter: %d, want 404", a.status)
	}
}

// The daily series counts days in a time zone when asked: a sale at 23:30
// UTC is the next day in Paris. A bad zone is a 400.
func TestDailySalesInTheMembersZone(t *testing.T) {
	t.Parallel()
	s, tm, _ := newTeamSite(t, "tz", 841, "Zone shop")
	tok := s.apiToken(tm.owner, "seller")
	orders := func(tz string) map[string]int64 {
		t.Helper()
		a := s.api(tok, "/v1/shops/841/sales/daily?from=2026-03-09&to=2026-03-13"+tz)
		if a.status != http.StatusOK {
			t.Fatalf("daily%s: %d %s", tz, a.status, a.body)
		}
		var series struct {
			TZ   string `json:"tz"`
			Days []struct {
				Day    string `json:"day"`
				Orders int64  `json:"orders"`
			} `json:"days"`
		}
		if err := json.Unmarshal([]byte(a.body), &series); err != nil {
			t.Fatal(err)
		}
		out := map[string]int64{"tz": 0}
		for _, d := range series.Days {
			out[d.Day] += d.Orders
		}
		if len(series.Days) != 4 {
			t.Errorf("daily%s: %d days, want 4", tz, len(series.Days))
		}
		return out
	}
	utc, paris := orders(""), orders("&tz=Europe/Paris")
	if utc["2026-03-10"] != 3 || utc["2026-03-11"] != 0 {
		t.Errorf("UTC days: %v, want 3 orders on the 10th", utc)
	}
	if paris["2026-03-10"] != 2 || paris["2026-03-11"] != 1 {
		t.Errorf("Paris days: %v, want 2 on the 10th and 1 on the 11th", paris)
	}
	// Dates name days of the zone, west of UTC too.
	la := s.api(tok, "/v1/shops/841/sales/daily?from=2026-03-10&to=2026-03-11&tz=America/Los_Angeles")
	if la.status != http.StatusOK || !strings.Contains(la.body, `"from":"2026-03-10"`) || !strings.Contains(la.body, `"day":"2026-03-10"`) || !strings.Contains(la.body, `"orders":3`) {
		t.Errorf("Los Angeles day: %d %s, want the 10th with 3 orders", la.status, la.body)
	}
	for _, bad := range []string{"Mars/Olympus", "Local", "../../etc/passwd"} {
		if a := s.api(tok, "/v1/shops/841/sales/daily?tz="+url.QueryEscape(bad)); a.status != http.StatusBadRequest || !strings.Contains(a.body, "tz") {
			t.Errorf("tz=%s: %d %s, want a 400 naming tz", bad, a.status, a.body)
		}
	}
}

// The alert e-mail's link opens the alert page: logged out, the browser
// logs in and comes back to it; a next= that leaves the site goes home.
func TestAlertLinkComesBackAfterLogin(t *testing.T) {
	t.Parallel()
	s, _, sd := newTeamSite(t, "al", 851, "Link shop")
	b := s.browser("al-owner@example.com")
	a := s.must(b.get("/alerts/"+sd.alertID), http.StatusSeeOther, "logged out")
	loc := a.header.Get("Location")
	if loc != "/login?next="+url.QueryEscape("/alerts/"+sd.alertID) {
		t.Fatalf("logged-out alert link goes to %q", loc)
	}
	u, _ := url.Parse(loc)
	a = s.must(b.post("/login", url.Values{"email": {b.email}, "password": {password}, "next": {u.Query().Get("next")}}), http.StatusSeeOther, "log in")
	if got := a.header.Get("Location"); got != "/alerts/"+sd.alertID {
		t.Fatalf("after login the browser goes to %q", got)
	}
	s.must(b.get("/alerts/"+sd.alertID), http.StatusOK, "alert page")
	for _, next := range []string{"https://evil.example/", "//evil.example/", "/\\evil.example", "/\t/evil.example", "evil"} {
		a := s.must(b.post("/login", url.Values{"email": {b.email}, "password": {password}, "next": {next}}), http.StatusSeeOther, "log in")
		if got := a.header.Get("Location"); got != "/" {
			t.Errorf("next=%q sends the browser to %q", next, got)
		}
	}
}

var secretRE = regexp.MustCompile(`whsec_[A-Za-z0-9+/=]+`)

// Owners add, test and remove channels; a webhook's signing secret shows
// once, is stored sealed under the token keys and can be rotated; each
// change is in the security audit trail. Staff and auditors change
// nothing.
func TestAlertChannelsPage(t *testing.T) {
	t.Parallel()
	s, tm, _ := newTeamSite(t, "ch", 861, "Channel shop")
	s.must(tm.owner.get("/channels"), http.StatusOK, "empty channels page")
	for _, b := range []*browser{tm.staff, tm.auditor} {
		if a := b.get("/channels"); a.status != http.StatusForbidden {
			t.Errorf("%s GET /channels: %d, want 403", b.email, a.status)
		}
		if a := b.post("/channels", url.Values{"shop_id": {"861"}, "kind": {"email"}, "target": {"x@example.com"}}); a.status != http.StatusForbidden {
			t.Errorf("%s adding a channel: %d, want 403", b.email, a.status)
		}
		if a := b.post("/shops/861/webhook-secret/rotate", nil); a.status != http.StatusForbidden {
			t.Errorf("%s rotating the secret: %d, want 403", b.email, a.status)
		}
	}
	if a := tm.owner.post("/channels", url.Values{"shop_id": {"861"}, "kind": {"email"}, "target": {"not an address"}}); a.status != http.StatusUnprocessableEntity || !strings.Contains(a.body, "valid e-mail") {
		t.Errorf("a bad address: %d", a.status)
	}
	s.must(tm.owner.post("/channels", url.Values{"shop_id": {"861"}, "kind": {"email"}, "target": {"alerts@example.com"}}), http.StatusSeeOther, "add e-mail")
	s.must(tm.owner.post("/channels", url.Values{"shop_id": {"861"}, "kind": {"slack"}, "target": {"https://hooks.slack.example/services/T0/B0/SECRETPATH"}}), http.StatusSeeOther, "add slack")
	added := s.must(tm.owner.post("/channels", url.Values{"shop_id": {"861"}, "kind": {"webhook"}, "target": {"https://receiver.example/hook"}}), http.StatusOK, "add webhook")
	secret := secretRE.FindString(html.UnescapeString(added.body))
	if secret == "" {
		t.Fatalf("the new webhook's signing secret is not shown:\n%s", added.body)
	}
	page := s.must(tm.owner.get("/channels"), http.StatusOK, "channels page").body
	if strings.Contains(html.UnescapeString(page), secret) || strings.Contains(page, "SECRETPATH") {
		t.Fatal("the channels page shows a secret again")
	}
	for _, want := range []string{"alerts@example.com", "https://receiver.example/hook", "https://hooks.slack.example/…"} {
		if !strings.Contains(page, want) {
			t.Errorf("the channels page lacks %q", want)
		}
	}
	// Stored sealed; the dispatcher's configuration (same keys) signs with
	// the secret shown.
	var stored string
	if err := s.db.DB.QueryRow(`SELECT secret FROM alert_webhook_secrets WHERE shop_id = 861`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(stored, "sealed:k1:") || strings.Contains(stored, strings.TrimPrefix(secret, "whsec_")) {
		t.Fatalf("the webhook secret is stored as %q, want it sealed", stored)
	}
	got, err := alerts.NewChannels(s.db.DB).WithSecretBox(s.keys).WebhookSecret(context.Background(), 861)
	if err != nil || got != secret {
		t.Fatalf("the dispatcher's secret %q (%v), want the one shown", got, err)
	}
	if _, err := alerts.NewChannels(s.db.DB).WebhookSecret(context.Background(), 861); err == nil {
		t.Fatal("a sealed secret opened without keys")
	}
	rotated := secretRE.FindString(html.UnescapeString(s.must(tm.owner.post("/shops/861/webhook-secret/rotate", nil), http.StatusOK, "rotate").body))
	if rotated == "" || rotated == secret {
		t.Fatalf("rotation showed %q", rotated)
	}
	// Key rotation re-seals the secret under the new current key; a plain
	// secret from before keys were configured still reads, and is sealed.
	k2, err := shops.GenerateKey("k2")
	if err != nil {
		t.Fatal(err)
	}
	ring, err := shops.ParseKeyring(k2.Spec() + "," + s.keySpec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.DB.Exec(`INSERT INTO alert_webhook_secrets (shop_id, secret) VALUES (999, 'whsec_cGxhaW4=')`); err != nil {
		t.Fatal(err)
	}
	if n, err := alerts.NewChannels(s.db.DB).WithSecretBox(ring).ResealSecrets(context.Background()); err != nil || n != 2 {
		t.Fatalf("resealed %d (%v), want 2", n, err)
	}
	if got := query(s.db.DB, `SELECT count(*) FROM alert_webhook_secrets WHERE secret LIKE 'sealed:k2:%'`); got != "2" {
		t.Fatalf("secrets sealed under k2: %s, want 2", got)
	}
	for shop, want := range map[int64]string{861: rotated, 999: "whsec_cGxhaW4="} {
		if got, err := alerts.NewChannels(s.db.DB).WithSecretBox(ring).WebhookSecret(context.Background(), shop); err != nil || got != want {
			t.Errorf("shop %d secret after resealing %q (%v), want %q", shop, got, err, want)
		}
	}
	// A test alert goes through the outbox, marked as a test.
	var emailID string
	if err := s.db.DB.QueryRow(`SELECT channel_id::text FROM alert_channels WHERE shop_id = 861 AND kind = 'email'`).Scan(&emailID); err != nil {
		t.Fatal(err)
	}
	s.must(tm.owner.post("/channels/"+emailID+"/test", nil), http.StatusSeeOther, "test")
	if got := query(s.db.DB, `SELECT count(*) FROM alert_deliveries WHERE channel_id = $1 AND (message->>'test')::boolean AND status = 'pending'`, emailID); got != "1" {
		t.Fatalf("queued test deliveries: %s, want 1", got)
	}
	if !strings.Contains(s.must(tm.owner.get("/channels"), http.StatusOK, "channels").body, "pending") {
		t.Error("the channels page does not show the test's state")
	}
	for _, b := range []*browser{tm.staff, tm.auditor} {
		if a := b.post("/channels/"+emailID+"/remove", nil); a.status != http.StatusForbidden {
			t.Errorf("%s removing a channel: %d, want 403", b.email, a.status)
		}
	}
	s.must(tm.owner.post("/channels/"+emailID+"/remove", nil), http.StatusSeeOther, "remove")
	if got := query(s.db.DB, `SELECT count(*) FROM alert_channels WHERE channel_id = $1`, emailID); got != "0" {
		t.Fatal("the channel is still there")
	}
	acts := s.actions(tm.org)
	for _, w := range []string{accounts.ActionChannelAdded, accounts.ActionChannelRotated, accounts.ActionChannelTested, accounts.ActionChannelRemoved} {
		if !slices.Contains(acts, w) {
			t.Errorf("audit trail lacks %s: %v", w, acts)
		}
	}
	var details string
	if err := s.db.DB.QueryRow(`SELECT string_agg(detail::text, ' ') FROM security_audit WHERE org_id = $1`, tm.org).Scan(&details); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(details, "SECRETPATH") || strings.Contains(details, "whsec_") {
		t.Errorf("the audit trail holds a secret: %s", details)
	}
}

// An owner disconnects a shop after confirming: its tokens are gone, the
// connection is disconnected (ingest polls connected shops only), the log
// says so, the page shows it and the audit trail records it. Staff and
// auditors cannot; another organisation gets a 404.
func TestShopDisconnect(t *testing.T) {
	t.Parallel()
	s, tm, _ := newTeamSite(t, "dc", 871, "Leaving shop")
	if _, err := s.db.DB.Exec(`INSERT INTO shop_connections (shop_id, user_id, shop_name, status, connected_at, status_changed_at) VALUES (871, 7871, 'Leaving shop', 'connected', now(), now());
		INSERT INTO shop_credentials (shop_id, user_id, access_token_key, access_token, refresh_token_key, refresh_token, expires_at) VALUES (871, 7871, 'k1', 'x', 'k1', 'y', now() + interval '1 hour')`); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s.must(tm.owner.get("/shops/871"), http.StatusOK, "shop page").body, "Disconnect the shop") {
		t.Fatal("the owner's shop page has no disconnect button")
	}
	if strings.Contains(s.must(tm.staff.get("/shops/871"), http.StatusOK, "staff's shop page").body, "Disconnect the shop") {
		t.Error("staff see the disconnect button")
	}
	for _, b := range []*browser{tm.staff, tm.auditor} {
		if a := b.post("/shops/871/disconnect", url.Values{"confirm": {"yes"}}); a.status != http.StatusForbidden {
			t.Errorf("%s disconnecting: %d, want 403", b.email, a.status)
		}
	}
	// Sync now: owners only; recorded for ingest's scheduler and audited.
	for _, b := range []*browser{tm.staff, tm.auditor} {
		if a := b.post("/shops/871/sync-now", nil); a.status != http.StatusForbidden {
			t.Errorf("%s sync now: %d, want 403", b.email, a.status)
		}
	}
	s.must(tm.owner.post("/shops/871/sync-now", nil), http.StatusSeeOther, "sync now")
	if got := query(s.db.DB, `SELECT count(*) FROM shop_sync_requests WHERE shop_id = 871`); got != "1" {
		t.Fatalf("sync requests: %s, want 1", got)
	}
	if !strings.Contains(s.must(tm.owner.get("/shops/871"), http.StatusOK, "shop page").body, "A sync was requested") {
		t.Error("the shop page does not show the pending sync")
	}
	if !slices.Contains(s.actions(tm.org), accounts.ActionShopSyncRequested) {
		t.Errorf("audit trail lacks %s", accounts.ActionShopSyncRequested)
	}
	stranger := s.signUp("dc-stranger@example.com")
	if a := stranger.post("/shops/871/sync-now", nil); a.status != http.StatusNotFound {
		t.Errorf("another organisation's sync now: %d, want 404", a.status)
	}
	if a := stranger.post("/shops/871/disconnect", url.Values{"confirm": {"yes"}}); a.status != http.StatusNotFound {
		t.Errorf("another organisation disconnecting: %d, want 404", a.status)
	}
	if a := tm.owner.post("/shops/871/disconnect", nil); a.status != http.StatusUnprocessableEntity {
		t.Errorf("disconnect without confirming: %d, want 422", a.status)
	}
	if got := query(s.db.DB, `SELECT count(*) FROM shop_credentials WHERE shop_id = 871`); got != "1" {
		t.Fatalf("refused disconnections deleted the tokens")
	}
	// The query role may delete a shop's tokens but never read them.
	qdb, qpool, err := service.OpenDB(context.Background(), s.db.RoleURL("shopledger_query"), 1, nil, service.AllowNonDurable(true))
	if err != nil {
		t.Fatal(err)
	}
	var token []byte
	if err := qdb.QueryRow(`SELECT access_token FROM shop_credentials WHERE shop_id = 871`).Scan(&token); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("the query role reads a token: %v", err)
	}
	qdb.Close()
	qpool.Close()
	s.must(tm.owner.post("/shops/871/disconnect", url.Values{"confirm": {"yes"}}), http.StatusSeeOther, "disconnect")
	if got := query(s.db.DB, `SELECT count(*) FROM shop_credentials WHERE shop_id = 871`); got != "0" {
		t.Fatal("the tokens are still there")
	}
	if got := query(s.db.DB, `SELECT status FROM shop_connections WHERE shop_id = 871`); got != "disconnected" {
		t.Fatalf("connection status %s", got)
	}
	if got := query(s.db.DB, `SELECT metadata->>'actor' FROM events WHERE type = 'shop.disconnected' AND shop_id = 871`); got != "user:"+s.userID("dc-owner@example.com") {
		t.Fatalf("shop.disconnected actor %s", got)
	}
	s.project(eventstoreOf(s))
	page := s.must(tm.owner.get("/shops/871"), http.StatusOK, "shop page after").body
	if !strings.Contains(page, "disconnected") || strings.Contains(page, "Disconnect the shop") || strings.Contains(page, "Sync now") {
		t.Errorf("the shop page does not show the disconnection:\n%s", page)
	}
	if !slices.Contains(s.actions(tm.org), accounts.ActionShopDisconnected) {
		t.Errorf("audit trail lacks %s", accounts.ActionShopDisconnected)
	}
}

// Auditors read; they change nothing. Every state-changing route of the
// ledger pages (shops and channels) refuses an auditor and staff alike,
// before looking at what is asked. The routes come from the router, so a
// new one is covered.
func TestAuditorsAndStaffPostNothingOnLedgerPages(t *testing.T) {
	t.Parallel()
	s, tm, _ := newTeamSite(t, "ap", 881, "Read-only shop")
	ch := s.channel(881, "email", "ap-alerts@example.com")
	n := 0
	for _, rt := range s.routes(func(method, pattern string) bool {
		return method == http.MethodPost && (strings.HasPrefix(pattern, "/shops/") || strings.HasPrefix(pattern, "/channels"))
	}) {
		pattern := rt.pattern
		if strings.Contains(pattern, "/stocktake/") {
			continue // staff take stock: TestStocktakePreviewsAndAppliesCounts
		}
		path := strings.NewReplacer("{shopID}", "881", "{channelID}", ch).Replace(pattern)
		for _, b := range []*browser{tm.auditor, tm.staff} {
			if a := b.post(path, url.Values{"shop_id": {"881"}, "kind": {"email"}, "target": {"x@example.com"}, "confirm": {"yes"}, "enabled": {"false"}}); a.status != http.StatusForbidden {
				t.Errorf("%s POST %s: %d, want 403", b.email, path, a.status)
			}
		}
		n++
	}
	if n < 7 {
		t.Fatalf("only %d state-changing ledger routes found", n)
	}
	if got := query(s.db.DB, `SELECT count(*) FROM alert_channels WHERE shop_id = 881`); got != "1" {
		t.Fatalf("channels after refused posts: %s, want 1", got)
	}
	if got := query(s.db.DB, `SELECT count(*) FROM events WHERE stream_id = 'shop-881' AND type IN ('shop.settings_changed', 'shop.disconnected')`); got != "0" {
		t.Fatalf("refused posts appended %s events", got)
	}
}
