package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/shopledger/shopledger/accounts"
	"github.com/shopledger/shopledger/etsy/etsysim"
	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/service"
	"github.com/shopledger/shopledger/service/servicetest"
	"github.com/shopledger/shopledger/shops"
)

// A seller connects through ingest's own /connect/etsy; the scheduler
// reconciles the shop; the one-shot command reports a pass.
func TestConnectThroughIngestThenReconcile(t *testing.T) {
	db := pgtest.New(t)
	var sim *etsysim.Sim
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { sim.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	sim, err := etsysim.New(etsysim.Options{Seed: 5, PublicURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	shop, err := sim.CreateShop(etsysim.ShopSpec{Name: "LinenLoft"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sim.GenerateCatalogue(shop.ShopID, 4); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.ScenarioStep(etsysim.StepOrder, etsysim.Scenario{}); err != nil {
		t.Fatal(err)
	}
	key, err := shops.GenerateKey("k1")
	if err != nil {
		t.Fatal(err)
	}
	// The redirect URL must name the port ingest will listen on.
	addr := servicetest.FreeAddr(t)
	vars := map[string]string{
		"SHOPLEDGER_DATABASE_URL":             db.RoleURL(pgtest.IngestRole),
		"SHOPLEDGER_INGEST_ADDR":              addr,
		"SHOPLEDGER_INGEST_OPS_ADDR":          "127.0.0.1:0",
		"SHOPLEDGER_ETSY_KEYSTRING":           etsysim.DefaultKeyString,
		"SHOPLEDGER_ETSY_SHARED_SECRET":       etsysim.DefaultSharedSecret,
		"SHOPLEDGER_ETSY_API_URL":             srv.URL,
		"SHOPLEDGER_ETSY_OAUTH_AUTHORIZE_URL": srv.URL + "/oauth/connect",
		"SHOPLEDGER_ETSY_OAUTH_TOKEN_URL":     srv.URL + "/v3/public/oauth/token",
		"SHOPLEDGER_TOKEN_KEYS":               key.Spec(),
		"SHOPLEDGER_RECONCILE_TICK":           "50ms",
		"SHOPLEDGER_WEBHOOK_SECRETS":          testSecret,
		"SHOPLEDGER_ETSY_ALLOWED_HOSTS":       strings.TrimPrefix(srv.URL, "http://"),
		"SHOPLEDGER_ETSY_ALLOW_HTTP":          "true",
		"SHOPLEDGER_APP_URL":                  "http://app.test",
	}
	p := servicetest.Start(t, run, vars, true)
	base, ops := p.Base, p.Ops

	// An owner presses "Connect an Etsy shop" in the app; the browser
	// carries the app's session cookie to ingest and on to Etsy, and lands
	// on the shop's page in the app.
	browser := connectingBrowser(t, db, base)
	resp, err := browser.get(base)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf("http://app.test/shops/%d?notice=connected", shop.ShopID); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != want {
		t.Fatalf("connect: %d to %q, want 303 to %q: %s", resp.StatusCode, resp.Header.Get("Location"), want, body)
	}

	deadline := time.Now().Add(60 * time.Second)
	for {
		m := servicetest.Scrape(t, ops)
		if strings.Contains(m, `shopledger_reconcile_runs_total{result="ok"} 1`) {
			for _, want := range []string{`shopledger_shops{status="connected"} 1`, `etsy_ratelimit_remaining{limiter="etsy",window="day"}`, "shopledger_reconcile_oldest_staleness_seconds", "shopledger_reconcile_drift_total 0", "shopledger_reconcile_api_calls_total", "shopledger_token_refreshes_total"} {
				if !strings.Contains(m, want) {
					t.Errorf("metrics lack %s", want)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no successful reconciliation reported:\n%s", grep(m, "shopledger_"))
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The fetcher follows webhooks with the connected shop's stored token.
	if _, err := sim.AddWebhook(etsysim.WebhookSpec{URL: base + "/webhooks/etsy", Secret: testSecret}); err != nil {
		t.Fatal(err)
	}
	receipt, err := sim.RandomOrder(shop.ShopID)
	if err != nil {
		t.Fatal(err)
	}
	for {
		var n int
		if err := db.DB.QueryRow(`SELECT count(*) FROM events WHERE type = 'sale.recorded' AND metadata->>'source' = 'webhook' AND stream_id = $1`,
			fmt.Sprintf("receipt-%d", receipt.ReceiptID)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the fetcher did not record receipt %d from its webhook", receipt.ReceiptID)
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.Stop()

	var buf bytes.Buffer
	if err := run(context.Background(), []string{"reconcile", "--shop", fmt.Sprint(shop.ShopID), "--sales-only"}, service.MapEnv(vars), &buf); err != nil {
		t.Fatalf("ingest reconcile: %v\n%s", err, buf.String())
	}
	for _, want := range []string{fmt.Sprintf("shop %d (sales):", shop.ShopID), "reconciled 1 of 1 shops"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("one-shot output lacks %q:\n%s", want, buf.String())
		}
	}
	buf.Reset()
	err = run(context.Background(), []string{"reconcile", "--products-only", "--sales-only"}, service.MapEnv(vars), &buf)
	if err == nil {
		t.Error("--products-only with --sales-only was accepted")
	}
}

func grep(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// appBrowser is a browser logged in to the app, holding a connect intent.
type appBrowser struct {
	client *http.Client
	intent string
}

func (b appBrowser) get(base string) (*http.Response, error) {
	return b.client.Get(base + "/connect/etsy?intent=" + url.QueryEscape(b.intent))
}

// connectingBrowser makes an owner of a new organisation, logs them in
// and has them start connecting a shop, as the app does.
func connectingBrowser(t *testing.T, db *pgtest.Database, base string) appBrowser {
	t.Helper()
	ctx := context.Background()
	acc, err := accounts.New(accounts.Config{DB: db.DB, BaseURL: "http://app.test", Argon2: accounts.Argon2Params{MemoryKiB: 64, Iterations: 1, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	var org int64
	if err := db.DB.QueryRow(`INSERT INTO organisations (name) VALUES ('Linen') RETURNING id`).Scan(&org); err != nil {
		t.Fatal(err)
	}
	u, _, err := acc.AddUser(ctx, accounts.OperatorUser{Email: "owner@example.com", Password: "correct horse battery", OrgID: org, Role: accounts.RoleOwner})
	if err != nil {
		t.Fatal(err)
	}
	id, err := acc.NewSession(ctx, u.ID, org, accounts.Client{})
	if err != nil {
		t.Fatal(err)
	}
	sess, err := acc.Session(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	intent, err := acc.StartConnect(ctx, sess, accounts.Client{})
	if err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	bu, _ := url.Parse(base)
	jar.SetCookies(bu, []*http.Cookie{{Name: "shopledger_session", Value: string(id), Path: "/"}})
	return appBrowser{intent: intent, client: &http.Client{Jar: jar, CheckRedirect: func(r *http.Request, _ []*http.Request) error {
		if r.URL.Host == "app.test" {
			return http.ErrUseLastResponse
		}
		return nil
	}}}
}
