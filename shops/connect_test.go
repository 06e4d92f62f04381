package shops_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shopledger/shopledger/etsy/etsysim"
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/shops"
)

// ingestServer mounts the connect handlers the way cmd/ingest does and
// points the redirect URL at them.
func (e *env) ingestServer() (*httptest.Server, *shops.Connector) {
	e.t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	e.t.Cleanup(srv.Close)
	o := e.oauth
	o.RedirectURL = srv.URL + "/connect/etsy/callback"
	c, err := shops.NewConnector(shops.ConnectorConfig{Store: e.store, OAuth: o, Client: e.client, Logger: e.logger()})
	if err != nil {
		e.t.Fatal(err)
	}
	mux.Handle("GET /connect/etsy", c.StartHandler())
	mux.Handle("GET /connect/etsy/callback", c.CallbackHandler())
	return srv, c
}

func TestConnectOverHTTP(t *testing.T) {
	e := newEnv(t)
	info, err := e.sim.CreateShop(etsysim.ShopSpec{Name: "WoolAndWillow", Currency: "EUR"})
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := e.ingestServer()

	// The seller's browser: follows our redirect to Etsy, Etsy's
	// (automatic) consent back to our callback.
	var visited []string
	browser := &http.Client{CheckRedirect: func(r *http.Request, _ []*http.Request) error {
		visited = append(visited, r.URL.Path)
		return nil
	}}
	resp, err := browser.Get(srv.URL + "/connect/etsy")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if diff := cmp.Diff([]string{"/oauth/connect", "/connect/etsy/callback"}, visited); diff != "" {
		t.Errorf("redirects (-want +got):\n%s", diff)
	}
	if !strings.Contains(string(body), "WoolAndWillow") {
		t.Errorf("body %q does not name the shop", body)
	}

	got, err := e.store.Get(context.Background(), info.ShopID)
	if err != nil {
		t.Fatal(err)
	}
	want := shops.Shop{
		ShopID: info.ShopID, UserID: info.UserID, Name: "WoolAndWillow", Currency: "EUR",
		Scopes: shops.DefaultScopes(), Status: shops.StatusConnected,
		ConnectedAt: simStart, StatusChangedAt: simStart, TokenExpiresAt: simStart.Add(time.Hour),
		KeyIDs: []string{"k1"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("shop (-want +got):\n%s", diff)
	}
	recs := e.events(events.ShopStream(info.ShopID))
	if len(recs) != 1 {
		t.Fatalf("shop stream has %d events, want 1", len(recs))
	}
	wantEv := events.ShopConnected{ShopID: info.ShopID, ShopName: "WoolAndWillow", UserID: info.UserID, Currency: "EUR", Scopes: shops.DefaultScopes()}
	if diff := cmp.Diff(wantEv, recs[0].Data); diff != "" {
		t.Errorf("shop.connected (-want +got):\n%s", diff)
	}
	if s := e.sim.Stats(); s.TokenExchanges != 1 || s.Authorizations != 1 {
		t.Errorf("simulator saw %d authorizations and %d exchanges, want 1 and 1", s.Authorizations, s.TokenExchanges)
	}

	// The token works for API calls.
	ts, err := e.store.ForShop(context.Background(), info.ShopID)
	if err != nil {
		t.Fatal(err)
	}
	me, err := e.client.GetMe(context.Background(), ts)
	if err != nil {
		t.Fatal(err)
	}
	if me.ShopID != info.ShopID {
		t.Errorf("getMe shop = %d, want %d", me.ShopID, info.ShopID)
	}
	tok, _ := ts.Token(context.Background())
	e.secret(tok)
}

func TestCallbackStateIsSingleUse(t *testing.T) {
	e := newEnv(t)
	if _, err := e.sim.CreateShop(etsysim.ShopSpec{Name: "Once"}); err != nil {
		t.Fatal(err)
	}
	srv, c := e.ingestServer()
	authURL, err := c.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	assertAuthURL(t, authURL)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	callback := resp.Header.Get("Location")
	if !strings.HasPrefix(callback, srv.URL+"/connect/etsy/callback?") {
		t.Fatalf("etsy redirected to %q", callback)
	}
	for i, want := range []int{http.StatusOK, http.StatusBadRequest} {
		resp, err := http.Get(callback)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("callback #%d: status %d, want %d", i+1, resp.StatusCode, want)
		}
	}
	if n := e.sim.Stats().TokenExchanges; n != 1 {
		t.Errorf("token exchanges = %d, want 1: a replayed state must not reach Etsy", n)
	}
}

func assertAuthURL(t *testing.T, raw string) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if q.Get("code_challenge_method") != "S256" || len(q.Get("code_challenge")) != 43 || len(q.Get("state")) < 43 {
		t.Errorf("authorization url lacks PKCE S256 or an unguessable state: %s", q.Encode())
	}
	if q.Get("response_type") != "code" || q.Get("scope") != strings.Join(shops.DefaultScopes(), " ") {
		t.Errorf("authorization url: response_type %q scope %q", q.Get("response_type"), q.Get("scope"))
	}
}

func TestCallbackRefusals(t *testing.T) {
	e := newEnv(t)
	if _, err := e.sim.CreateShop(etsysim.ShopSpec{Name: "Refused"}); err != nil {
		t.Fatal(err)
	}
	_, c := e.ingestServer()
	ctx := context.Background()
	stateOf := func(authURL string) string {
		u, err := url.Parse(authURL)
		if err != nil {
			t.Fatal(err)
		}
		return u.Query().Get("state")
	}

	t.Run("denied burns the state", func(t *testing.T) {
		u, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		st := stateOf(u)
		_, err = c.Callback(ctx, url.Values{"state": {st}, "error": {"access_denied"}})
		if !errors.Is(err, shops.ErrAccessDenied) {
			t.Fatalf("callback = %v, want ErrAccessDenied", err)
		}
		_, err = c.Complete(ctx, st, "any-code")
		if !errors.Is(err, shops.ErrUnknownState) {
			t.Fatalf("complete after denial = %v, want ErrUnknownState", err)
		}
	})
	t.Run("unknown state", func(t *testing.T) {
		_, err := c.Complete(ctx, "never-issued", "code")
		if !errors.Is(err, shops.ErrUnknownState) {
			t.Fatalf("complete = %v, want ErrUnknownState", err)
		}
	})
	t.Run("expired state", func(t *testing.T) {
		u, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		e.sim.Advance(11 * time.Minute)
		_, err = c.Complete(ctx, stateOf(u), "code")
		if !errors.Is(err, shops.ErrUnknownState) {
			t.Fatalf("complete = %v, want ErrUnknownState", err)
		}
	})
	if n := e.sim.Stats().TokenExchanges; n != 0 {
		t.Errorf("token exchanges = %d, want 0", n)
	}
}

func TestDisconnect(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	info, _ := e.connectShop("Leaving")
	if err := e.store.Disconnect(ctx, info.ShopID, "seller asked", events.Metadata{Actor: "operator"}); err != nil {
		t.Fatal(err)
	}
	if err := e.store.Disconnect(ctx, info.ShopID, "again", events.Metadata{}); err != nil {
		t.Fatalf("second disconnect: %v", err)
	}
	var creds int
	if err := e.db.DB.QueryRow(`SELECT count(*) FROM shop_credentials`).Scan(&creds); err != nil {
		t.Fatal(err)
	}
	if creds != 0 {
		t.Errorf("%d credentials rows left, want 0", creds)
	}
	if _, err := e.store.ForShop(ctx, info.ShopID); !errors.Is(err, shops.ErrNotConnected) {
		t.Errorf("ForShop = %v, want ErrNotConnected", err)
	}
	got, err := e.store.Get(ctx, info.ShopID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != shops.StatusDisconnected || got.StatusReason != "seller asked" || !got.TokenExpiresAt.IsZero() {
		t.Errorf("after disconnect: %+v", got)
	}
	var types []string
	for _, r := range e.events(events.ShopStream(info.ShopID)) {
		types = append(types, r.Type())
	}
	if diff := cmp.Diff([]string{events.TypeShopConnected, events.TypeShopDisconnected}, types); diff != "" {
		t.Errorf("shop stream (-want +got):\n%s", diff)
	}
	if err := e.store.Disconnect(ctx, 999, "", events.Metadata{}); !errors.Is(err, shops.ErrUnknownShop) {
		t.Errorf("disconnect unknown = %v, want ErrUnknownShop", err)
	}
}
