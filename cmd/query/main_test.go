package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/service"
	"github.com/shopledger/shopledger/service/servicetest"
	"github.com/shopledger/shopledger/tokens"
)

// TestStartsServesOpsApartAndStops: /metrics and /readyz answer on the ops
// listener only; the public one serves the API and a bare /healthz.
func TestStartsServesOpsApartAndStops(t *testing.T) {
	db := pgtest.New(t)
	p := servicetest.Start(t, run, map[string]string{
		"SHOPLEDGER_DATABASE_URL":   db.RoleURL(pgtest.QueryRole),
		"SHOPLEDGER_QUERY_ADDR":     "127.0.0.1:0",
		"SHOPLEDGER_QUERY_OPS_ADDR": "127.0.0.1:0",
	}, true)
	base, ops := p.Base, p.Ops
	servicetest.CheckStatuses(t, map[string]int{
		ops + "/healthz": http.StatusOK, ops + "/readyz": http.StatusOK, ops + "/metrics": http.StatusOK,
		base + "/healthz": http.StatusOK, base + "/openapi.json": http.StatusOK,
	})
	for _, path := range []string{"/readyz", "/metrics", "/debug/pprof/"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode < 400 || strings.HasPrefix(string(body), "ready") || strings.Contains(string(body), "not ready") || strings.Contains(string(body), "go_goroutines") {
			t.Errorf("public GET %s = %d %q, want an error that shows nothing", path, resp.StatusCode, body)
		}
	}
	// The API answers beside the ops endpoints, with a token from the
	// same database.
	secret, _, err := tokens.NewStore(db.DB).Create(context.Background(), tokens.NewToken{SellerID: 5, Role: tokens.RoleSeller})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/shops", nil)
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != `{"items":[]}` {
		t.Errorf("GET /v1/shops = %d %s, want 200 and no shops", resp.StatusCode, body)
	}
	// Paths that http.ServeMux would redirect (with an HTML body) are a
	// problem document from the API instead, ops paths included.
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, path := range []string{"/v1/../v1/shops", "//v1/shops", "/v1/./shops", "/v1/shops/%2e%2e/shops", "/../healthz"} {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("GET %s = %d %s, want 400 application/problem+json", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	p.Stop()
}

// The serving pool carries a statement_timeout a little above the request
// timeout, so PostgreSQL stops a query even if nothing cancels it.
func TestServingPoolHasStatementTimeout(t *testing.T) {
	db := pgtest.New(t)
	u, err := withStatementTimeout(db.URL, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	sdb := pgtest.Open(t, u, 1)
	var got string
	if err := sdb.QueryRow(`SHOW statement_timeout`).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != "6s" {
		t.Errorf("statement_timeout = %q, want 6s", got)
	}
	if _, err := sdb.Exec(`SET statement_timeout = 50`); err != nil {
		t.Fatal(err)
	}
	if _, err := sdb.Exec(`SELECT pg_sleep(5)`); err == nil || !strings.Contains(err.Error(), "statement timeout") {
		t.Errorf("pg_sleep past the timeout: %v, want statement timeout", err)
	}
}

func TestConfigRejectsBadValues(t *testing.T) {
	_, err := loadConfig(service.MapEnv(map[string]string{
		"SHOPLEDGER_QUERY_TIMEOUT":            "1ms",
		"SHOPLEDGER_QUERY_TOKEN_RATE":         "-1",
		"SHOPLEDGER_QUERY_TOKEN_BURST":        "0",
		"SHOPLEDGER_QUERY_DB_CONNS":           "many",
		"SHOPLEDGER_ETSY_OAUTH_AUTHORIZE_URL": "etsy.com/oauth",
	}))
	for _, name := range []string{"SHOPLEDGER_QUERY_TIMEOUT", "SHOPLEDGER_QUERY_TOKEN_RATE", "SHOPLEDGER_QUERY_TOKEN_BURST", "SHOPLEDGER_QUERY_DB_CONNS", "SHOPLEDGER_ETSY_OAUTH_AUTHORIZE_URL"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("config error %v does not name %s", err, name)
		}
	}
}

func TestConfigReadsTrustedProxies(t *testing.T) {
	cfg, err := loadConfig(service.MapEnv(map[string]string{
		"SHOPLEDGER_QUERY_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.10",
		"SHOPLEDGER_QUERY_PROXY_HEADER":    "forwarded",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintln(cfg.TrustedProxies, cfg.ProxyHeader, cfg.AuthFailureRate, cfg.AuthFailureBurst); got != "[10.0.0.0/8 192.0.2.10/32] Forwarded 1 10\n" {
		t.Errorf("config = %s", got)
	}
	_, err = loadConfig(service.MapEnv(map[string]string{
		"SHOPLEDGER_QUERY_TRUSTED_PROXIES":    "10.0.0.0/8, proxy.internal",
		"SHOPLEDGER_QUERY_PROXY_HEADER":       "X-Real-IP",
		"SHOPLEDGER_QUERY_AUTH_FAILURE_BURST": "0",
	}))
	for _, name := range []string{"SHOPLEDGER_QUERY_TRUSTED_PROXIES", "SHOPLEDGER_QUERY_PROXY_HEADER", "SHOPLEDGER_QUERY_AUTH_FAILURE_BURST"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("config error %v does not name %s", err, name)
		}
	}
}

// The binary collects garbage at GOGC=400 unless the operator set GOGC
// (main, not run: only the process's own setting is changed).
func TestBinaryCollectsAtGOGC400UnlessSet(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the binary")
	}
	db := pgtest.New(t)
	for _, c := range []struct {
		env  []string
		want string
	}{
		{nil, "400"},
		{[]string{"GOGC=150"}, "150"},
	} {
		_, ops, _ := startQueryBinary(t, db.URL, c.env...)
		got := ""
		for _, line := range strings.Split(servicetest.Scrape(t, ops), "\n") {
			if v, ok := strings.CutPrefix(line, "go_gc_gogc_percent "); ok {
				got = v
			}
		}
		if got != c.want {
			t.Errorf("environment %q: go_gc_gogc_percent %q, want %s", c.env, got, c.want)
		}
	}
}
