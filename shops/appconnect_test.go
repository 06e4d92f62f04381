package shops_test

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"

	"github.com/shopledger/shopledger/accounts"
	"github.com/shopledger/shopledger/etsy/etsysim"
	"github.com/shopledger/shopledger/shops"
)

// appBrowser is a browser holding an app session cookie, stopping at the
// first answer that leaves stopAt's path (or at any non-redirect).
func appBrowser(t *testing.T, srvURL, session string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	u, _ := url.Parse(srvURL)
	if session != "" {
		jar.SetCookies(u, []*http.Cookie{{Name: "shopledger_session", Value: session, Path: "/"}})
	}
	return &http.Client{Jar: jar, CheckRedirect: func(r *http.Request, _ []*http.Request) error {
		if r.URL.Path == "/connect/etsy/callback" || r.URL.Host == "app.test" {
			return http.ErrUseLastResponse
		}
		return nil
	}}
}

func TestConnectFromTheAppIsBoundToTheBrowserSession(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	info, err := e.sim.CreateShop(etsysim.ShopSpec{Name: "BoundShop", Currency: "EUR"})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	o := e.oauth
	o.RedirectURL = srv.URL + "/connect/etsy/callback"
	c, err := shops.NewConnector(shops.ConnectorConfig{Store: e.store, OAuth: o, Client: e.client, Logger: e.logger()})
	if err != nil {
		t.Fatal(err)
	}
	start, callback := c.AppHandlers(shops.AppConnectConfig{AppURL: "https://app.test", SessionCookie: "shopledger_session"})
	mux.Handle("GET /connect/etsy", start)
	mux.Handle("GET /connect/etsy/callback", callback)

	acc, err := accounts.New(accounts.Config{DB: e.db.DB, BaseURL: "https://app.test", Argon2: accounts.Argon2Params{MemoryKiB: 64, Iterations: 1, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	var org int64
	if err := e.db.DB.QueryRow(`INSERT INTO organisations (name) VALUES ('Bound') RETURNING id`).Scan(&org); err != nil {
		t.Fatal(err)
	}
	u, _, err := acc.AddUser(ctx, accounts.OperatorUser{Email: "owner@example.com", Password: "correct horse battery", OrgID: org, Role: accounts.RoleOwner})
	if err != nil {
		t.Fatal(err)
	}
	session := func() (accounts.SessionID, accounts.Session) {
		id, err := acc.NewSession(ctx, u.ID, org, accounts.Client{})
		if err != nil {
			t.Fatal(err)
		}
		s, err := acc.Session(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return id, s
	}
	mine, mySession := session()
	other, _ := session()
	pending := func() int {
		var n int
		if err := e.db.DB.QueryRow(`SELECT count(*) FROM oauth_pending`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	// An intent opened by another browser session starts nothing.
	intent, err := acc.StartConnect(ctx, mySession, accounts.Client{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := appBrowser(t, srv.URL, string(other)).Get(srv.URL + "/connect/etsy?intent=" + url.QueryEscape(intent))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest || pending() != 0 {
		t.Fatalf("intent from another session: status %d, %d pending rows; want 400 and none", res.StatusCode, pending())
	}
	if res, err = http.Get(srv.URL + "/connect/etsy"); err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest || pending() != 0 {
		t.Fatalf("bare /connect/etsy: status %d, %d pending rows; want 400 and none", res.StatusCode, pending())
	}

	// The right browser starts; Etsy sends it back with a state that
	// another browser session then presents: refused, and burned.
	intent, err = acc.StartConnect(ctx, mySession, accounts.Client{})
	if err != nil {
		t.Fatal(err)
	}
	me := appBrowser(t, srv.URL, string(mine))
	res, err = me.Get(srv.URL + "/connect/etsy?intent=" + url.QueryEscape(intent))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	back := res.Header.Get("Location")
	if res.StatusCode != http.StatusFound || back == "" {
		t.Fatalf("start: status %d, location %q", res.StatusCode, back)
	}
	res, err = appBrowser(t, srv.URL, string(other)).Get(back)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("callback from another session: %d, want 403", res.StatusCode)
	}
	if _, err := e.store.Get(ctx, info.ShopID); err == nil {
		t.Fatal("the shop was connected through another session's callback")
	}
	if res, err = me.Get(back); err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest {
		t.Fatalf("a state presented twice: %d, want 400", res.StatusCode)
	}

	// Start to finish in one browser: the shop joins the organisation and
	// the browser lands on its page in the app.
	intent, err = acc.StartConnect(ctx, mySession, accounts.Client{})
	if err != nil {
		t.Fatal(err)
	}
	if res, err = me.Get(srv.URL + "/connect/etsy?intent=" + url.QueryEscape(intent)); err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res, err = me.Get(res.Header.Get("Location")); err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	want := "https://app.test/shops/" + strconv.FormatInt(info.ShopID, 10) + "?notice=connected"
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != want {
		t.Fatalf("callback: %d to %q, want 303 to %q", res.StatusCode, res.Header.Get("Location"), want)
	}
	ids, err := acc.ShopIDs(ctx, org)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 || ids[0] != info.ShopID {
		t.Fatalf("organisation's shops %v, want [%d]", ids, info.ShopID)
	}
	trail, err := acc.AuditTrail(ctx, org, 0, 50)
	if err != nil {
		t.Fatal(err)
	}
	var started, connected int
	for _, en := range trail {
		switch en.Action {
		case accounts.ActionShopConnectStarted:
			started++
		case accounts.ActionShopConnected:
			connected++
		}
	}
	if started != 3 || connected != 1 {
		t.Fatalf("audit: %d starts and %d connections, want 3 and 1", started, connected)
	}
}
