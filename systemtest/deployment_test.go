package systemtest_test

// A deployment as an operator runs one: the simulator as Etsy, instances
// of ingest, query and projector on loopback ports, and Caddy with
// deploy/caddy/Caddyfile in front, its certificate from Caddy's own local
// CA. The proxy, two-of-everything and upgrade tests build on it.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/service/servicetest"
	"github.com/shopledger/shopledger/stdwebhooks"
)

// deployment is one database, the simulator and the settings every
// instance shares.
type deployment struct {
	t   *testing.T
	bin string // the binaries, see buildBinaries
	db  *pgtest.Database

	sim              *proc
	simURL           string
	shopIDs          []int64
	sellerIDs        []int64
	webhookSecret    string
	keyString        string
	sharedSecret     string
	tokenKeys        string
	sealKeys         string
	publicHost       string // localhost:PORT, the proxy's HTTPS name
	proxyAddr        string // 127.0.0.1:PORT, where it listens
	proxyHTTPAddr    string // its plain-HTTP listener (redirects)
	redirectURL      string // the OAuth callback through the proxy
	reconcileEnabled bool
}

// deploymentConfig chooses the simulator's shape.
type deploymentConfig struct {
	shops int
	// qps and qpd are the simulator's limits for the app key (default
	// generous: rate limits are not what most tests are about).
	qps, qpd int
	// webhookURL is where the simulator sends its webhooks, signed with
	// the deployment's secret; empty sends none.
	webhookURL string
	// simArgs are extra etsysim flags.
	simArgs []string
	// emptyDB leaves the database unmigrated, for a test that migrates it
	// with the binaries it upgrades from.
	emptyDB bool
}

func newDeployment(t *testing.T, bin string, cfg deploymentConfig) *deployment {
	t.Helper()
	if cfg.shops == 0 {
		cfg.shops = 1
	}
	if cfg.qps == 0 {
		cfg.qps = 200
	}
	if cfg.qpd == 0 {
		cfg.qpd = 1_000_000
	}
	secret, err := stdwebhooks.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	db := pgtest.New
	if cfg.emptyDB {
		db = pgtest.NewEmpty
	}
	d := &deployment{
		t: t, bin: bin, db: db(t),
		webhookSecret: secret,
		keyString:     "deploytest" + randomHex(t, 8),
		sharedSecret:  randomHex(t, 12),
		tokenKeys:     "k1:" + base64.StdEncoding.EncodeToString(randomBytes(t, 32)),
		sealKeys:      "s1:" + base64.StdEncoding.EncodeToString(randomBytes(t, 32)),
		proxyAddr:     servicetest.FreeAddr(t),
		proxyHTTPAddr: servicetest.FreeAddr(t),
	}
	_, port, _ := net.SplitHostPort(d.proxyAddr)
	d.publicHost = "localhost:" + port
	d.redirectURL = "https://" + d.publicHost + "/connect/etsy/callback"

	args := append(quietSimArgs(seed, cfg.shops, d.keyString, d.sharedSecret, d.redirectURL,
		"--qps", strconv.Itoa(cfg.qps), "--qpd", strconv.Itoa(cfg.qpd),
	), cfg.simArgs...)
	if cfg.webhookURL != "" {
		args = append(args, "--webhook-url", cfg.webhookURL, "--webhook-secret", d.webhookSecret)
	}
	d.sim = start(t, "etsysim", bin+"/etsysim", args, environ(nil))
	simURL, simShopList := simShops(t, d.sim, cfg.shops)
	d.simURL = simURL
	for _, s := range simShopList {
		d.shopIDs = append(d.shopIDs, s.ShopID)
		d.sellerIDs = append(d.sellerIDs, s.UserID)
	}
	return d
}

// ingestEnv is one ingest instance's settings on addr.
func (d *deployment) ingestEnv(addr string) map[string]string {
	simHost := strings.TrimPrefix(d.simURL, "http://")
	return map[string]string{
		"SHOPLEDGER_DATABASE_URL":             d.db.RoleURL(pgtest.IngestRole),
		"SHOPLEDGER_LOG_LEVEL":                "info",
		"SHOPLEDGER_INGEST_ADDR":              addr,
		"SHOPLEDGER_INGEST_OPS_ADDR":          "127.0.0.1:0",
		"SHOPLEDGER_WEBHOOK_SECRETS":          d.webhookSecret,
		"SHOPLEDGER_TOKEN_KEYS":               d.tokenKeys,
		"SHOPLEDGER_ETSY_KEYSTRING":           d.keyString,
		"SHOPLEDGER_ETSY_SHARED_SECRET":       d.sharedSecret,
		"SHOPLEDGER_ETSY_API_URL":             d.simURL,
		"SHOPLEDGER_ETSY_ALLOWED_HOSTS":       simHost,
		"SHOPLEDGER_ETSY_ALLOW_HTTP":          "true",
		"SHOPLEDGER_ETSY_OAUTH_AUTHORIZE_URL": d.simURL + "/oauth/connect",
		"SHOPLEDGER_ETSY_OAUTH_TOKEN_URL":     d.simURL + "/v3/public/oauth/token",
		"SHOPLEDGER_ETSY_REDIRECT_URL":        d.redirectURL,
		"SHOPLEDGER_RECONCILE_ENABLED":        strconv.FormatBool(d.reconcileEnabled),
	}
}

// instance is a running service and the addresses it serves.
type instance struct {
	*proc
	addr string // public listener, host:port
	ops  string // ops listener base URL
	env  []string
	bin  string
}

// startIngest starts an ingest instance and waits until it is ready.
func (d *deployment) startIngest(name string, extra map[string]string) *instance {
	d.t.Helper()
	addr := servicetest.FreeAddr(d.t)
	env := environ(merge(d.ingestEnv(addr), extra))
	return d.startInstance(name, d.bin+"/ingest", env)
}

// queryEnv is one query instance's settings: it trusts the proxy on
// 127.0.0.1 for X-Forwarded-For, as deploy/caddy/Caddyfile requires.
func (d *deployment) queryEnv(addr string) map[string]string {
	return map[string]string{
		"SHOPLEDGER_DATABASE_URL":          d.db.RoleURL(pgtest.QueryRole),
		"SHOPLEDGER_LOG_LEVEL":             "info",
		"SHOPLEDGER_TOKEN_KEYS":            d.tokenKeys,
		"SHOPLEDGER_QUERY_ADDR":            addr,
		"SHOPLEDGER_QUERY_OPS_ADDR":        "127.0.0.1:0",
		"SHOPLEDGER_QUERY_TRUSTED_PROXIES": "127.0.0.1",
	}
}

func (d *deployment) startQuery(name string, extra map[string]string) *instance {
	d.t.Helper()
	addr := servicetest.FreeAddr(d.t)
	return d.startInstance(name, d.bin+"/query", environ(merge(d.queryEnv(addr), extra)))
}

func (d *deployment) projectorEnv() map[string]string {
	return map[string]string{
		"SHOPLEDGER_DATABASE_URL":           d.db.RoleURL(pgtest.ProjectorRole),
		"SHOPLEDGER_LOG_LEVEL":              "info",
		"SHOPLEDGER_SEAL_KEYS":              d.sealKeys,
		"SHOPLEDGER_TOKEN_KEYS":             d.tokenKeys,
		"SHOPLEDGER_PROJECTOR_ADDR":         "127.0.0.1:0",
		"SHOPLEDGER_PROJECTOR_LAG_INTERVAL": "200ms",
		"SHOPLEDGER_ALERT_LINK_BASE":        "https://" + d.publicHost,
	}
}

func (d *deployment) startProjector(name string, extra map[string]string) *instance {
	d.t.Helper()
	return d.startInstance(name, d.bin+"/projector", environ(merge(d.projectorEnv(), extra)))
}

// startInstance runs a service binary and waits for its readiness; the
// process's name in its banner lines is the binary's.
func (d *deployment) startInstance(name, bin string, env []string) *instance {
	d.t.Helper()
	p := start(d.t, name, bin, nil, env)
	p.name = filepath.Base(bin) // the banner lines name the binary
	u, _ := p.listening(d.t)
	in := &instance{proc: p, addr: strings.TrimPrefix(u, "http://"), env: env, bin: bin}
	if p.name == "projector" {
		// Its one listener serves /readyz.
		in.ops = u
	} else {
		in.ops = p.ops(d.t)
	}
	waitHealthy(d.t, in.ops, "/readyz", p)
	return in
}

// ledger runs a ledger command as the schema's owner.
func (d *deployment) ledger(args ...string) string {
	d.t.Helper()
	return d.ledgerEnv(nil, args...)
}

// ledgerEnv runs a ledger command with extra settings.
func (d *deployment) ledgerEnv(extra map[string]string, args ...string) string {
	d.t.Helper()
	env := merge(d.ingestEnv("127.0.0.1:0"), map[string]string{"SHOPLEDGER_DATABASE_URL": d.db.URL, "SHOPLEDGER_SEAL_KEYS": d.sealKeys}, extra)
	return runCmd(d.t, time.Minute, d.bin+"/ledger", args, environ(env))
}

// token creates a seller's API token.
func (d *deployment) token(seller int64) string {
	d.t.Helper()
	return createToken(d.t, d.ledger, seller, "--label", "deployment test")
}

// proxy is Caddy running deploy/caddy/Caddyfile.
type proxy struct {
	*proc
	roots *x509.CertPool // Caddy's local CA
}

// startProxy runs Caddy with the repository's Caddyfile behind a global
// options block for the test: loopback ports, certificates from Caddy's
// local CA (never installed into the system's trust store), state in a
// temporary folder.
func (d *deployment) startProxy(caddy string, ingests, queries []string) *proxy {
	t := d.t
	t.Helper()
	dir := t.TempDir()
	_, httpsPort, _ := net.SplitHostPort(d.proxyAddr)
	_, httpPort, _ := net.SplitHostPort(d.proxyHTTPAddr)
	conf := filepath.Join(dir, "Caddyfile")
	global := fmt.Sprintf(`{
	admin off
	default_bind 127.0.0.1
	local_certs
	skip_install_trust
	http_port %s
	https_port %s
}
import %s
`, httpPort, httpsPort, filepath.Join(repoRoot(t), "deploy", "caddy", "Caddyfile"))
	if err := os.WriteFile(conf, []byte(global), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + dir,
		"XDG_DATA_HOME=" + filepath.Join(dir, "data"), "XDG_CONFIG_HOME=" + filepath.Join(dir, "config"),
		"PUBLIC_HOST=localhost",
		"INGEST_UPSTREAMS=" + strings.Join(ingests, " "),
		"QUERY_UPSTREAMS=" + strings.Join(queries, " "),
	}
	p := &proxy{proc: start(t, "caddy", caddy, []string{"run", "--config", conf, "--adapter", "caddyfile"}, env)}
	rootFile := filepath.Join(dir, "data", "caddy", "pki", "authorities", "local", "root.crt")
	deadline := time.Now().Add(time.Minute)
	for {
		p.running(t)
		if pem, err := os.ReadFile(rootFile); err == nil {
			pool := x509.NewCertPool()
			if pool.AppendCertsFromPEM(pem) {
				p.roots = pool
				client := d.client(p, "127.0.0.1")
				resp, err := client.Get("https://" + d.publicHost + "/healthz")
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						return p
					}
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("caddy did not serve https://%s/healthz with a certificate from its local CA within a minute", d.publicHost)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// client is an HTTPS client that trusts only the proxy's local CA and
// connects from the loopback address from (127.0.0.x), so that tests can
// be several clients on one machine. Every name it dials reaches the
// proxy; plain-HTTP URLs (the simulator's) are dialled as they are.
func (d *deployment) client(p *proxy, from string) *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: p.roots, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: 64,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			switch addr {
			case d.publicHost:
				addr = d.proxyAddr
			case "localhost:" + strings.TrimPrefix(d.proxyHTTPAddr, "127.0.0.1:"):
				addr = d.proxyHTTPAddr
			}
			return dialer.DialContext(ctx, network, addr)
		},
	}
	return &http.Client{Transport: tr, Timeout: 15 * time.Second}
}

// webhookBody is a thin webhook as Etsy sends it, pointing at a receipt of
// shop at the simulator; n picks the receipt.
func (d *deployment) webhookBody(shop int64, n int) []byte {
	return fmt.Appendf(nil, `{"event_type":"order.paid","resource_url":"%s/v3/application/shops/%d/receipts/%d","shop_id":%d}`,
		d.simURL, shop, 900_000_000+n, shop)
}

// postWebhook delivers one signed webhook to base and returns the status
// (0 when no answer came).
func (d *deployment) postWebhook(ctx context.Context, c *http.Client, base, id string, body []byte) (int, error) {
	now := time.Now()
	sig, err := stdwebhooks.Sign(d.webhookSecret, id, now, body)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/webhooks/etsy", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(stdwebhooks.HeaderID, id)
	req.Header.Set(stdwebhooks.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(stdwebhooks.HeaderSignature, sig)
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// storedWebhooks counts the evidence events per webhook id.
func (d *deployment) storedWebhooks(ctx context.Context) (map[string]int, error) {
	return eventstore.WebhookEvidence(ctx, d.db.DB)
}

// repoRoot is the module root: tests run in systemtest/.
func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(wd)
}
