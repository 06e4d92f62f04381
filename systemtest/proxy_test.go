package systemtest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shopledger/shopledger/service/servicetest"
)

// TestProxyServesEtsyAndSellersOverHTTPS puts Caddy with
// deploy/caddy/Caddyfile in front of ingest and query and talks to it only
// over HTTPS, trusting nothing but Caddy's local CA: a seller connects a
// shop through the OAuth flow (start and callback at ingest, consent at
// the simulator), signed webhooks reach ingest and are stored once, a
// forged one is refused by ingest, the API and the OpenAPI document come
// from query, the ops endpoints are not reachable, every answer carries
// HSTS, plain HTTP redirects to HTTPS, and query keys its per-client
// limits on the client behind the proxy, not on the proxy.
func TestProxyServesEtsyAndSellersOverHTTPS(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Caddy, ingest, query and the simulator")
	}
	caddy := servicetest.NeedTool(t, "caddy", "apt-get install caddy, or as root SHOPLEDGER_PODMAN_INSTALL=1 scripts/proxy-ensure")
	bin := buildBinaries(t, "etsysim", "ingest", "query", "projector", "ledger")
	d := newDeployment(t, bin, deploymentConfig{})
	ctx := context.Background()

	ingest := d.startIngest("ingest", nil)
	// Two failed authentications per client, then refusals for a long
	// while: the bucket shows whom query takes for the client.
	query := d.startQuery("query", map[string]string{
		"SHOPLEDGER_QUERY_AUTH_FAILURE_BURST": "2",
		"SHOPLEDGER_QUERY_AUTH_FAILURE_RATE":  "0.001",
	})
	d.startProjector("projector", nil)
	px := d.startProxy(caddy, []string{ingest.addr}, []string{query.addr})
	base := "https://" + d.publicHost
	seller := d.client(px, "127.0.0.2")

	checkHSTS := func(resp *http.Response, what string) {
		t.Helper()
		if got := resp.Header.Get("Strict-Transport-Security"); !strings.Contains(got, "max-age=31536000") {
			t.Errorf("%s: Strict-Transport-Security %q, want max-age=31536000", what, got)
		}
	}
	get := func(c *http.Client, path, token string, header map[string]string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}

	// 1. The OAuth connect flow through the proxy: the operator starts it
	// (ledger shops connect --no-follow prints Etsy's authorization URL);
	// the simulator's consent page approves at once and sends the seller's
	// browser back to the callback at ingest, over HTTPS through Caddy.
	shop := d.shopIDs[0]
	authURL := ""
	for l := range strings.Lines(d.ledger("shops", "connect", "--no-follow", "--sim-shop", strconv.FormatInt(shop, 10))) {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "http") {
			authURL = l
		}
	}
	if authURL == "" {
		t.Fatal("ledger shops connect --no-follow printed no authorization URL")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, authURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := seller.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", authURL, err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	body := string(raw)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Connected shop") {
		t.Fatalf("connect flow through the proxy ended with %s at %s: %q", resp.Status, resp.Request.URL, body)
	}
	if resp.Request.URL.Host != d.publicHost || resp.Request.URL.Path != "/connect/etsy/callback" {
		t.Errorf("connect flow ended at %s, want the callback at https://%s", resp.Request.URL, d.publicHost)
	}
	checkHSTS(resp, "OAuth callback")
	if out := d.ledger("shops", "list"); !strings.Contains(out, strconv.FormatInt(shop, 10)) {
		t.Fatalf("ledger shops list after the callback does not show shop %d:\n%s", shop, out)
	}

	// 2. Signed webhooks reach ingest and are stored once; a forged
	// signature is refused by ingest (Caddy passes the raw body and the
	// headers through untouched).
	const hooks = 20
	ids := make([]string, hooks)
	for i := range ids {
		ids[i] = fmt.Sprintf("msg_proxy_%d_%s", i, randomHex(t, 4))
		status, err := d.postWebhook(ctx, seller, base, ids[i], d.webhookBody(shop, i))
		if err != nil || status/100 != 2 {
			t.Fatalf("webhook %s through the proxy: status %d, %v", ids[i], status, err)
		}
	}
	// The same id again, as Etsy's retry would send it.
	if status, err := d.postWebhook(ctx, seller, base, ids[0], d.webhookBody(shop, 0)); err != nil || status/100 != 2 {
		t.Fatalf("repeated webhook through the proxy: status %d, %v", status, err)
	}
	forged := d.webhookSecret
	d.webhookSecret = "whsec_" + strings.Repeat("A", 43) + "="
	status, err := d.postWebhook(ctx, seller, base, "msg_proxy_forged", d.webhookBody(shop, 99))
	d.webhookSecret = forged
	if err != nil || status != http.StatusUnauthorized {
		t.Errorf("forged webhook through the proxy: status %d, %v; want 401 from ingest", status, err)
	}
	stored, err := d.storedWebhooks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if stored[id] != 1 {
			t.Errorf("webhook %s stored %d times, want once", id, stored[id])
		}
	}
	if stored["msg_proxy_forged"] != 0 {
		t.Error("the forged webhook was stored")
	}

	// 3. The API and the OpenAPI document come from query.
	token := d.token(d.sellerIDs[0])
	converge(t, "the connected shop in GET /v1/shops through the proxy", 30*time.Second, func(context.Context) (string, error) {
		resp, body = get(seller, "/v1/shops", token, nil)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, strconv.FormatInt(shop, 10)) {
			return fmt.Sprintf("%s %s", resp.Status, body), nil
		}
		return "", nil
	})
	checkHSTS(resp, "GET /v1/shops")
	resp, body = get(seller, "/openapi.json", "", nil)
	var doc struct {
		OpenAPI string `json:"openapi"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &doc) != nil || doc.OpenAPI == "" {
		t.Errorf("GET /openapi.json through the proxy: %s, not an OpenAPI document", resp.Status)
	}

	// 4. The ops endpoints are not exposed, however the path is spelled.
	for _, path := range []string{"/metrics", "/readyz", "/METRICS", "/metrics/", "/readyz/", "/./metrics"} {
		resp, body := get(seller, path, "", nil)
		if resp.StatusCode != http.StatusNotFound || strings.Contains(body, "# HELP") || strings.Contains(body, "ready") {
			t.Errorf("GET %s through the proxy: %s %q, want a bare 404", path, resp.Status, body)
		}
		checkHSTS(resp, "GET "+path)
	}

	// 5. Plain HTTP only redirects to HTTPS.
	httpClient := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, err = http.NewRequestWithContext(ctx, http.MethodGet, "http://"+d.proxyHTTPAddr+"/v1/shops", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "localhost"
	if resp, err := httpClient.Do(req); err != nil {
		t.Errorf("GET http://%s/v1/shops: %v", d.proxyHTTPAddr, err)
	} else {
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); resp.StatusCode/100 != 3 || !strings.HasPrefix(loc, "https://localhost") {
			t.Errorf("plain HTTP answered %s with Location %q, want a redirect to https://localhost", resp.Status, loc)
		}
	}

	// 6. The trusted-proxy setting: query sees the client behind Caddy.
	// 127.0.0.2 runs its failed-authentication bucket dry, also when it
	// claims another address in X-Forwarded-For; 127.0.0.3 behind the same
	// proxy is untouched. Were query keying on the proxy's address, both
	// would be refused.
	for i := range 2 {
		if resp, _ := get(seller, "/v1/shops", "slt_wrong", nil); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("bad token %d from 127.0.0.2: %s, want 401", i+1, resp.Status)
		}
	}
	if resp, _ := get(seller, "/v1/shops", "slt_wrong", nil); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("third bad token from 127.0.0.2: %s, want 429", resp.Status)
	}
	if resp, _ := get(seller, "/v1/shops", "slt_wrong", map[string]string{"X-Forwarded-For": "127.0.0.9"}); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("bad token from 127.0.0.2 claiming X-Forwarded-For 127.0.0.9: %s, want 429 (the claim is not believed)", resp.Status)
	}
	other := d.client(px, "127.0.0.3")
	if resp, _ := get(other, "/v1/shops", token, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /v1/shops from 127.0.0.3 after 127.0.0.2 was refused: %s, want 200", resp.Status)
	}
	if resp, _ := get(other, "/v1/shops", "slt_wrong", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("bad token from 127.0.0.3: %s, want 401 (its own bucket)", resp.Status)
	}
	for _, p := range []*proc{ingest.proc, query.proc, px.proc, d.sim} {
		p.running(t)
	}
}
