package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/etsy/etsysim"
	"github.com/shopledger/shopledger/service/servicetest"
)

func noEnv(string) string { return "" }

func TestHelpDocumentsEveryFlag(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--help"}, noEnv, &out); err != nil {
		t.Fatal(err)
	}
	flags(&config{}).VisitAll(func(f *flag.Flag) {
		if !strings.Contains(out.String(), "-"+f.Name+" ") && !strings.Contains(out.String(), "-"+f.Name+"\n") {
			t.Errorf("--help does not list -%s", f.Name)
		}
		if f.Usage == "" {
			t.Errorf("-%s has no description", f.Name)
		}
	})
	for _, want := range []string{"SHOPLEDGER_ETSYSIM_", "/_sim/", "-port", "-seed", "-demo-listings", "-order-rate", "-drop", "-webhook-url", "-webhook-secret", "-token-ttl", "-qps", "-qpd", "-time-scale", "-consent", "-webhook-shops"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help does not mention %s", want)
		}
	}
}

func TestConfigFromEnvironment(t *testing.T) {
	env := map[string]string{
		"SHOPLEDGER_ETSYSIM_ORDER_RATE": "7.5",
		"SHOPLEDGER_ETSYSIM_QPS":        "25",
		"SHOPLEDGER_ETSYSIM_DROP":       "0.1",
		"SHOPLEDGER_HTTP_ADDR":          "127.0.0.1:9999",
	}
	c, err := parse([]string{"--qps", "30"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.orderRate != 7.5 || c.qps != 30 || c.drop != 0.1 || c.addr != "127.0.0.1:9999" {
		t.Errorf("config %+v", c)
	}
	c, err = parse([]string{"--addr", "127.0.0.1:1", "--port", "2"}, noEnv)
	if err != nil || c.addr != "127.0.0.1:2" {
		t.Errorf("--port: %q, %v", c.addr, err)
	}
	if c, err = parse([]string{"--port", "0"}, noEnv); err != nil || c.addr != "127.0.0.1:0" {
		t.Errorf("--port 0: %q, %v", c.addr, err)
	}
	if c, err = parse(nil, noEnv); err != nil || c.addr != "127.0.0.1:8090" || c.consent != "auto" {
		t.Errorf("defaults: address %q, consent %q, %v", c.addr, c.consent, err)
	}
	pageEnv := func(k string) string { return map[string]string{"SHOPLEDGER_ETSYSIM_CONSENT": "page"}[k] }
	if c, err = parse(nil, pageEnv); err != nil || c.consent != "page" {
		t.Errorf("SHOPLEDGER_ETSYSIM_CONSENT=page: consent %q, %v", c.consent, err)
	}
	if c, err = parse([]string{"--consent", "auto"}, pageEnv); err != nil || c.consent != "auto" {
		t.Errorf("--consent auto over the environment's page: consent %q, %v", c.consent, err)
	}
	if c, err = parse(nil, noEnv); err != nil || c.webhookShops != "all" {
		t.Errorf("default webhook-shops %q, %v", c.webhookShops, err)
	}
	if c, err = parse([]string{"--webhook-shops", "authorised"}, noEnv); err != nil || c.webhookShops != "authorised" {
		t.Errorf("--webhook-shops authorised: %q, %v", c.webhookShops, err)
	}
	for _, bad := range []map[string]string{
		{"SHOPLEDGER_ETSYSIM_QPS": "many"},
		{"SHOPLEDGER_ETSYSIM_WEBHOOK_SECRET": "whsec_***"},
		{"SHOPLEDGER_ETSYSIM_CONSENT": "ask"},
		{"SHOPLEDGER_ETSYSIM_WEBHOOK_SHOPS": "some"},
	} {
		if _, err := parse(nil, func(k string) string { return bad[k] }); err == nil {
			t.Errorf("parse accepted %v", bad)
		}
	}
	if err := run(context.Background(), []string{"--drop", "2"}, noEnv, io.Discard); err == nil {
		t.Error("run accepted a drop fraction of 2")
	}
}

func TestRunServesTheSimulator(t *testing.T) {
	var mu sync.Mutex
	var hooks []http.Header
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hooks = append(hooks, r.Header.Clone())
		mu.Unlock()
	}))
	defer receiver.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &servicetest.Output{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{
			"--port", "0", "--seed", "3", "--demo-listings", "4", "--order-rate", "0",
			"--restock-rate", "0", "--edit-rate", "0", "--cancel-rate", "0", "--ship-rate", "0", "--deliver-rate", "0",
			"--webhook-url", receiver.URL, "--webhook-events", "order.paid", "--log-level", "warn",
		}, noEnv, out)
	}()
	var sum summary
	deadline := time.Now().Add(10 * time.Second)
	for {
		ls := out.Lines()
		if len(ls) >= 2 {
			if !strings.HasPrefix(ls[0], "etsysim listening on http://127.0.0.1:") {
				t.Fatalf("first line %q", ls[0])
			}
			if err := json.Unmarshal([]byte(ls[1]), &sum); err != nil {
				t.Fatalf("second line %q: %v", ls[1], err)
			}
			break
		}
		select {
		case err := <-done:
			t.Fatalf("run returned early: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("no start-up lines")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(sum.Shops) != 1 || !strings.HasPrefix(sum.WebhookSecret, "whsec_") {
		t.Fatalf("summary %+v", sum)
	}

	tctx, tcancel := context.WithTimeout(ctx, 20*time.Second)
	defer tcancel()
	resp, err := http.Get(sum.URL + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
	// /metrics and /readyz live on the ops listener, announced third.
	var opsURL string
	for opsURL == "" {
		if ls := out.Lines(); len(ls) >= 3 {
			var ok bool
			if _, opsURL, ok = strings.Cut(ls[2], "etsysim ops endpoints on "); !ok {
				t.Fatalf("third line %q", ls[2])
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	servicetest.CheckStatuses(t, map[string]int{opsURL + "/metrics": 200, opsURL + "/readyz": 200, sum.URL + "/metrics": 404, sum.URL + "/readyz": 404})
	ctl := &etsysim.Control{BaseURL: sum.URL}
	shop := sum.Shops[0]
	tok, err := ctl.IssueToken(tctx, shop.ShopID, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := etsy.NewClient(etsy.Config{BaseURL: sum.URL, KeyString: sum.KeyString, SharedSecret: sum.SharedSecret}, nil)
	if err != nil {
		t.Fatal(err)
	}
	page, err := c.GetListingsByShop(tctx, etsy.StaticTokenSource(tok.AccessToken), shop.ShopID, etsy.ListingsQuery{Includes: []string{etsy.IncludeInventory}})
	if err != nil {
		t.Fatal(err)
	}
	if page.Count == 0 {
		t.Fatalf("no active listings in the demo shop")
	}
	if _, err := ctl.RandomOrder(tctx, shop.ShopID); err != nil {
		t.Fatal(err)
	}
	if err := ctl.WaitDeliveries(tctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	got := len(hooks)
	mu.Unlock()
	if got != 1 {
		t.Errorf("receiver got %d webhooks, want 1 order.paid", got)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not stop")
	}
}
