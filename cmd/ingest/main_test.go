package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shopledger/shopledger/etsy/etsysim"
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/ingest"
	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/service"
	"github.com/shopledger/shopledger/service/servicetest"
	"github.com/shopledger/shopledger/stdwebhooks"
)

var testSecret = mustSecret()

func mustSecret() string {
	s, err := stdwebhooks.NewSecret()
	if err != nil {
		panic(err)
	}
	return s
}

// baseEnv is the least configuration ingest starts with.
func baseEnv(dbURL string) map[string]string {
	return map[string]string{
		"SHOPLEDGER_DATABASE_URL":    pgtest.WithUser(dbURL, pgtest.IngestRole),
		"SHOPLEDGER_INGEST_ADDR":     "127.0.0.1:0",
		"SHOPLEDGER_INGEST_OPS_ADDR": "127.0.0.1:0",
		"SHOPLEDGER_WEBHOOK_SECRETS": testSecret,
		"SHOPLEDGER_FETCHER_ENABLED": "false",
		"SHOPLEDGER_LOG_LEVEL":       "warn",
	}
}

// startInProcess runs the whole binary in this process and returns its
// base URL and a stop function that waits for a clean exit.
func startInProcess(t testing.TB, env map[string]string) (string, func()) {
	t.Helper()
	p := servicetest.Start(t, run, env, true)
	return p.Base, p.Stop
}

// startWithOps is startInProcess that also returns the ops listener's URL.
func startWithOps(t testing.TB, env map[string]string) (base, ops string, stop func()) {
	t.Helper()
	p := servicetest.Start(t, run, env, true)
	return p.Base, p.Ops, p.Stop
}

// TestStartsServesOpsApartAndStops: the ops endpoints answer on the ops
// listener only; the public one has /healthz, which says nothing more.
func TestStartsServesOpsApartAndStops(t *testing.T) {
	db := pgtest.New(t)
	base, ops, stop := startWithOps(t, baseEnv(db.URL))
	bodies := servicetest.CheckStatuses(t, map[string]int{
		ops + "/healthz": http.StatusOK, ops + "/readyz": http.StatusOK, ops + "/metrics": http.StatusOK,
		base + "/healthz": http.StatusOK, base + "/readyz": http.StatusNotFound, base + "/metrics": http.StatusNotFound,
		base + "/debug/pprof/": http.StatusNotFound,
	})
	if body := bodies[base+"/healthz"]; body != "ok\n" {
		t.Errorf("public /healthz says %q, want only ok", body)
	}
	stop()
}

func TestConfigValidatesAndMasksSecrets(t *testing.T) {
	other := mustSecret()
	for name, c := range map[string]struct {
		env     map[string]string
		wantErr string
	}{
		"malformed secret":   {map[string]string{"SHOPLEDGER_WEBHOOK_SECRETS": testSecret + ",whsec_!!!"}, "secret 2 is not"},
		"no allowed hosts":   {map[string]string{"SHOPLEDGER_WEBHOOK_SECRETS": testSecret, "SHOPLEDGER_ETSY_ALLOWED_HOSTS": " , "}, "SHOPLEDGER_ETSY_ALLOWED_HOSTS"},
		"zero fetch attempt": {map[string]string{"SHOPLEDGER_FETCH_ATTEMPTS": "0"}, "SHOPLEDGER_FETCH_ATTEMPTS"},
		"no committers":      {map[string]string{"SHOPLEDGER_WEBHOOK_COMMITTERS": "0"}, "SHOPLEDGER_WEBHOOK_COMMITTERS"},
		"key without secret": {map[string]string{"SHOPLEDGER_ETSY_KEYSTRING": "k"}, "SHOPLEDGER_ETSY_SHARED_SECRET"},
		"bad api url":        {map[string]string{"SHOPLEDGER_ETSY_API_URL": "openapi.etsy.com"}, "SHOPLEDGER_ETSY_API_URL"},
		"defaults":           {map[string]string{"SHOPLEDGER_WEBHOOK_SECRETS": testSecret + ", " + other}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			cfg, err := loadConfig(service.MapEnv(c.env))
			if c.wantErr == "" {
				if err != nil {
					t.Fatalf("loadConfig: %v", err)
				}
				got := fmt.Sprint(cfg.WebhookSecrets, cfg.EtsyAllowedHosts, cfg.EtsyAllowHTTP, cfg.FetcherEnabled, cfg.CommitMaxBatch, cfg.CommitWorkers, cfg.EtsyAPIURL)
				want := fmt.Sprint([]string{testSecret, other}, []string{"openapi.etsy.com", "api.etsy.com"}, false, true, 256, 1, "https://openapi.etsy.com")
				if got != want {
					t.Errorf("config = %s, want %s", got, want)
				}
				logged := cfg.logValue().String()
				for _, secret := range append(cfg.WebhookSecrets, "whsec_") {
					if strings.Contains(logged, secret) {
						t.Errorf("logged config contains a secret: %s", logged)
					}
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("err = %v, want one naming %s", err, c.wantErr)
			}
			for _, secret := range []string{testSecret, "whsec_!!!"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error echoes a secret: %v", err)
				}
			}
		})
	}
}

// Without signing secrets ingest still starts (reconciliation may run),
// says it is not ready, and answers webhooks 503 so Etsy keeps retrying.
func TestWithoutSecretsWebhooksAre503(t *testing.T) {
	db := pgtest.New(t)
	env := baseEnv(db.URL)
	delete(env, "SHOPLEDGER_WEBHOOK_SECRETS")
	base, ops, _ := startWithOps(t, env)
	bodies := servicetest.CheckStatuses(t, map[string]int{ops + "/readyz": http.StatusServiceUnavailable, base + "/healthz": http.StatusOK})
	// The reason goes to the log; /readyz names the check only.
	if body := bodies[ops+"/readyz"]; body != "webhooks: not ready\n" {
		t.Errorf("/readyz says %q", body)
	}
	if got := postEmpty(t, http.DefaultClient, base+ingest.WebhookPath); got != http.StatusServiceUnavailable {
		t.Errorf("webhook without configured secrets = %d, want 503", got)
	}
}

// postEmpty posts an empty JSON object to url and returns the status.
func postEmpty(t *testing.T, client *http.Client, url string) int {
	t.Helper()
	resp, err := client.Post(url, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// The endpoint never redirects and never answers 410, on
// any path variant a sender or proxy might produce.
func TestNeverRedirectsOrGone(t *testing.T) {
	db := pgtest.New(t)
	base, _ := startInProcess(t, baseEnv(db.URL))
	u, _ := url.Parse(base)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, c := range []struct {
		method, path string
		header       map[string]string
	}{
		{"POST", "/webhooks/etsy/", nil},
		{"POST", "/webhooks//etsy", nil},
		{"POST", "/webhooks/./etsy", nil},
		{"POST", "/webhooks/../webhooks/etsy", nil},
		{"POST", "//webhooks/etsy", nil},
		{"POST", "/Webhooks/Etsy", nil},
		{"POST", "/webhooks/etsy%2F", nil},
		{"GET", "/webhooks/etsy", nil},
		{"POST", "/webhooks/etsy", map[string]string{"X-Forwarded-Proto": "http"}},
		{"POST", "/webhooks/etsy", nil},
		{"GET", "/healthz/", nil},
		{"GET", "//healthz", nil},
	} {
		// A raw request, so no client library cleans the path first.
		conn, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 2\r\nConnection: close\r\n", c.method, c.path, u.Host)
		for k, v := range c.header {
			req += k + ": " + v + "\r\n"
		}
		req += "\r\n{}"
		if _, err := io.WriteString(conn, req); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%s %s: %v", c.method, c.path, err)
		}
		resp.Body.Close()
		conn.Close()
		if resp.StatusCode >= 300 && resp.StatusCode < 400 || resp.StatusCode == http.StatusGone || resp.Header.Get("Location") != "" {
			t.Errorf("%s %s answered %d (Location %q)", c.method, c.path, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	// And through a client that would follow redirects to HTTPS.
	if got := postEmpty(t, client, base+"/webhooks/etsy"); got != http.StatusBadRequest {
		t.Errorf("unsigned POST over plain HTTP = %d, want 400 (no redirect to HTTPS)", got)
	}
}

// The binary's fetcher follows stored webhooks; with no credentials store
// wired in, each is parked as fetch_failed without calling Etsy.
func TestFetcherRunsAndParksWithoutCredentials(t *testing.T) {
	db := pgtest.New(t)
	var calls atomic.Int64
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer api.Close()
	au, _ := url.Parse(api.URL)
	env := baseEnv(db.URL)
	env["SHOPLEDGER_FETCHER_ENABLED"] = "true"
	env["SHOPLEDGER_ETSY_API_URL"] = api.URL
	env["SHOPLEDGER_ETSY_ALLOWED_HOSTS"] = au.Host
	env["SHOPLEDGER_ETSY_ALLOW_HTTP"] = "true"
	env["SHOPLEDGER_ETSY_KEYSTRING"] = etsysim.DefaultKeyString
	env["SHOPLEDGER_ETSY_SHARED_SECRET"] = etsysim.DefaultSharedSecret
	base, _ := startInProcess(t, env)
	s := newSender(testSecret, 1)
	body := fmt.Sprintf(`{"event_type":"order.paid","resource_url":"%s/v3/application/shops/5/receipts/6","shop_id":5}`, api.URL)
	sig, _ := stdwebhooks.Sign(testSecret, "msg_parked", time.Now(), []byte(body))
	req, _ := http.NewRequest(http.MethodPost, base+ingest.WebhookPath, strings.NewReader(body))
	req.Header.Set(stdwebhooks.HeaderID, "msg_parked")
	req.Header.Set(stdwebhooks.HeaderTimestamp, fmt.Sprint(time.Now().Unix()))
	req.Header.Set(stdwebhooks.HeaderSignature, sig)
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("delivery = %d", resp.StatusCode)
	}
	deadline := time.Now().Add(20 * time.Second)
	var reason string
	for {
		err := db.DB.QueryRow(`SELECT data->>'reason' FROM events WHERE type = $1 AND stream_id = $2`, events.TypeFetchFailed, events.WebhookStream("msg_parked")).Scan(&reason)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no fetch_failed recorded: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(reason, "not connected") || calls.Load() != 0 {
		t.Errorf("fetch_failed reason %q after %d Etsy calls; want not connected and none", reason, calls.Load())
	}
}

// As far as a shared server allows: the service's database
// sessions are terminated again and again during a soak; it recovers
// without a restart and the checker passes.
func TestSoakSurvivesTerminatedBackends(t *testing.T) {
	db := pgtest.New(t)
	// The service's sessions carry their own application_name, so that
	// only they are terminated, not the test's own pool that checks the
	// result afterwards.
	const app = "ingest-under-test"
	sep := "?"
	if strings.Contains(db.URL, "?") {
		sep = "&"
	}
	base, _ := startInProcess(t, baseEnv(db.URL+sep+"application_name="+app))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	admin, err := pgx.Connect(ctx, pgtest.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	terminations := make(chan int, 1)
	go func() {
		n := 0
		defer func() { terminations <- n }()
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(150 * time.Millisecond):
			}
			var killed int
			if err := admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1 AND application_name = $2`, db.Name, app).Scan(&killed); err == nil {
				n += killed
			}
		}
	}()
	cfg := soakConfig{base: func() string { return base }, n: 1500, dupFraction: 0.1, concurrency: 32, secret: testSecret, seed: 37}
	h := soak(context.Background(), cfg, nil)
	cancel()
	killed := <-terminations
	ok, failed, unknown := h.counts()
	t.Logf("first pass: ok %d, failed %d, unknown %d; %d sessions terminated", ok, failed, unknown, killed)
	if killed == 0 {
		t.Fatal("no session was terminated: the test did not test anything")
	}
	checkBeforeResend(t, h, stored(t, db.DB))
	resend(context.Background(), t, cfg, h, time.Minute)
	checkAfterResend(t, h, stored(t, db.DB))
}

func TestSoak(t *testing.T) {
	db := pgtest.New(t)
	base, _ := startInProcess(t, baseEnv(db.URL))
	cfg := soakConfig{base: func() string { return base }, n: 5000, dupFraction: 0.1, concurrency: 32, secret: testSecret, seed: 34}
	if testing.Short() {
		cfg.n = 1000
	}
	start := time.Now()
	h := soak(context.Background(), cfg, nil)
	ok, failed, unknown := h.counts()
	t.Logf("first pass: %d attempts in %v: ok %d, failed %d, unknown %d", ok+failed+unknown, time.Since(start).Round(time.Millisecond), ok, failed, unknown)
	checkBeforeResend(t, h, stored(t, db.DB))
	resend(context.Background(), t, cfg, h, time.Minute)
	got := stored(t, db.DB)
	checkAfterResend(t, h, got)
	if len(got) != cfg.n {
		t.Errorf("%d webhook ids stored, want %d", len(got), cfg.n)
	}
}
