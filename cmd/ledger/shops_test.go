package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/etsy/etsysim"
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/service"
	"github.com/shopledger/shopledger/shops"
)

func TestShopsConnectListRotateDisconnect(t *testing.T) {
	db := pgtest.New(t)
	sim, err := etsysim.New(etsysim.Options{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	if _, err := sim.CreateShop(etsysim.ShopSpec{Name: "First"}); err != nil {
		t.Fatal(err)
	}
	shop, err := sim.CreateShop(etsysim.ShopSpec{Name: "CeramicsByAda", Currency: "GBP"})
	if err != nil {
		t.Fatal(err)
	}
	k1, err := shops.GenerateKey("k1")
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{
		"SHOPLEDGER_DATABASE_URL":             db.URL,
		"SHOPLEDGER_ETSY_KEYSTRING":           etsysim.DefaultKeyString,
		"SHOPLEDGER_ETSY_SHARED_SECRET":       etsysim.DefaultSharedSecret,
		"SHOPLEDGER_ETSY_API_URL":             srv.URL,
		"SHOPLEDGER_ETSY_OAUTH_AUTHORIZE_URL": srv.URL + "/oauth/connect",
		"SHOPLEDGER_ETSY_OAUTH_TOKEN_URL":     srv.URL + "/v3/public/oauth/token",
		"SHOPLEDGER_ETSY_REDIRECT_URL":        "http://127.0.0.1:8081/connect/etsy/callback",
		"SHOPLEDGER_TOKEN_KEYS":               k1.Spec(),
	}
	ledger := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := run(context.Background(), args, service.MapEnv(vars), &out); err != nil {
			t.Fatalf("ledger %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
		return out.String()
	}
	id := fmt.Sprint(shop.ShopID)

	out := ledger("shops", "connect", "--sim-shop", id)
	if !strings.Contains(out, "connected shop "+id+" (CeramicsByAda)") || !strings.Contains(out, srv.URL+"/oauth/connect?") {
		t.Errorf("connect printed:\n%s", out)
	}
	row := listRow(t, ledger("shops", "list"), id)
	for _, want := range []string{"CeramicsByAda", "connected", "k1"} {
		if !strings.Contains(row, want) {
			t.Errorf("list row %q lacks %q", row, want)
		}
	}

	// Rotation: k2 first, k1 still there to decrypt.
	spec := strings.TrimSpace(ledger("keys", "generate", "--id", "k2"))
	if !strings.HasPrefix(spec, "k2:") {
		t.Fatalf("keys generate printed %q", spec)
	}
	vars["SHOPLEDGER_TOKEN_KEYS"] = spec + "," + k1.Spec()
	if out := ledger("keys", "rotate"); !strings.Contains(out, "re-encrypted 1 shops") {
		t.Errorf("rotate printed %q", out)
	}
	if out := ledger("keys", "rotate"); !strings.Contains(out, "re-encrypted 0 shops") {
		t.Errorf("second rotate printed %q", out)
	}
	vars["SHOPLEDGER_TOKEN_KEYS"] = spec // k1 retired
	if row := listRow(t, ledger("shops", "list"), id); !strings.Contains(row, " k2 ") {
		t.Errorf("after rotation the row reads %q", row)
	}

	// Etsy refuses the refresh token: the list says so.
	keys, err := shops.ParseKeyring(spec)
	if err != nil {
		t.Fatal(err)
	}
	store, err := shops.NewStore(shops.Config{
		DB: db.DB, Events: eventstore.New(db.DB), Keys: keys,
		OAuth: etsy.OAuthConfig{ClientID: etsysim.DefaultKeyString, TokenURL: srv.URL + "/v3/public/oauth/token"},
		Now:   func() time.Time { return time.Now().Add(2 * time.Hour) },
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.RevokeTokens(shop.UserID); err != nil {
		t.Fatal(err)
	}
	ts, err := store.ForShop(context.Background(), shop.ShopID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Token(context.Background()); err == nil {
		t.Fatal("a revoked grant refreshed")
	}
	if row := listRow(t, ledger("shops", "list"), id); !strings.Contains(row, "reauth_required") || !strings.Contains(row, "invalid_grant") {
		t.Errorf("after invalid_grant the row reads %q", row)
	}

	ledger("shops", "sync", "--shop", id, "--enabled=false", "--interval", "30m")
	recs, err := eventstore.New(db.DB).ReadStream(context.Background(), events.ShopStream(shop.ShopID), 0)
	if err != nil {
		t.Fatal(err)
	}
	last := recs[len(recs)-1].Data.(events.ShopSettingsChanged)
	if last.SyncEnabled == nil || *last.SyncEnabled || last.SyncIntervalSeconds == nil || *last.SyncIntervalSeconds != 1800 {
		t.Errorf("settings event %+v", last)
	}

	ledger("shops", "disconnect", "--shop", id)
	if row := listRow(t, ledger("shops", "list"), id); !strings.Contains(row, "disconnected") {
		t.Errorf("after disconnect the row reads %q", row)
	}
	var creds int
	if err := db.DB.QueryRow(`SELECT count(*) FROM shop_credentials`).Scan(&creds); err != nil {
		t.Fatal(err)
	}
	if creds != 0 {
		t.Errorf("%d credentials left after disconnect", creds)
	}
}

func TestShopsConnectNeedsTheAppKey(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"shops", "connect"}, service.MapEnv(map[string]string{"SHOPLEDGER_DATABASE_URL": "postgres://127.0.0.1:1/x"}), &out)
	if err == nil || !strings.Contains(err.Error(), "SHOPLEDGER_ETSY_KEYSTRING") {
		t.Errorf("connect without config = %v", err)
	}
}

func listRow(t *testing.T, out, shopID string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, shopID+" ") {
			return line
		}
	}
	t.Fatalf("shop %s not listed:\n%s", shopID, out)
	return ""
}
