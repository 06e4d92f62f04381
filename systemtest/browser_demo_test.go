package systemtest_test

// The system the browser tests look at, started the way scripts/run
// (make run) starts it: the local inbox, the simulator with two shops and
// its consent page, ingest with the first shop connected through the
// simulator's OAuth and imported by the reconciliation scheduler, projector
// and query, and a demo owner. The second shop belongs to nobody until a
// newcomer connects it from the browser, last of all. Unlike make run, the
// simulator makes no orders of its own: the test makes them, so that every
// figure it compares holds still.

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/shopledger/shopledger/accounts"
	"github.com/shopledger/shopledger/domain"
	"github.com/shopledger/shopledger/etsy/etsysim"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/httpapi"
	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/projections"
	"github.com/shopledger/shopledger/service/servicetest"
	"github.com/shopledger/shopledger/tokens"
	"github.com/shopledger/shopledger/webapp"
)

const (
	demoListings = 24
	demoOrders   = 6
	// The people of the demo organisation, as make run's demo owner and
	// two colleagues added the operator's way (ledger accounts add-user).
	ownerEmail   = "demo@example.com"
	staffEmail   = "staff@example.com"
	auditorEmail = "auditor@example.com"
)

type demo struct {
	db       *pgtest.Database
	queryURL string
	inboxURL string
	ctl      *etsysim.Control
	simURL   string
	shopID   int64
	// second is the simulator's other shop, which no organisation owns
	// until the newcomer connects it (newcomerConnects).
	second   etsysim.ShopInfo
	sellerID int64
	password string
	ledger   func(args ...string) string
	seller   *apiClient // a CLI-made seller token, to wait on the ledger
	auditor  *apiClient // a CLI-made auditor token
}

func startDemo(t *testing.T) *demo {
	t.Helper()
	bin := buildBinaries(t, "etsysim", "ingest", "projector", "query", "ledger", "inbox")
	db := pgtest.New(t)
	ctx := context.Background()
	d := &demo{db: db, password: "demo-" + randomHex(t, 9)}

	// The inbox: every e-mail the system sends lands here.
	inbox := start(t, "inbox", bin+"/inbox", nil, environ(map[string]string{
		"SHOPLEDGER_INBOX_SMTP_ADDR": "127.0.0.1:0",
		"SHOPLEDGER_INBOX_ADDR":      "127.0.0.1:0",
	}))
	_, smtpLine := inbox.waitLine(t, 0, time.Minute, func(s string) bool { return strings.HasPrefix(s, "inbox smtp listening on ") })
	smtpAddr := strings.TrimPrefix(smtpLine, "inbox smtp listening on ")
	d.inboxURL, _ = inbox.listening(t)
	waitHealthy(t, d.inboxURL, "/healthz", inbox)

	app := newEtsyApp(t, "demo", 12)
	queryAddr := servicetest.FreeAddr(t)
	d.queryURL = "http://" + queryAddr

	sim := start(t, "etsysim", bin+"/etsysim", []string{
		"--port", "0", "--seed", "42", "--shops", "2", "--consent", "page", "--demo-listings", strconv.Itoa(demoListings),
		"--order-rate", "0", "--restock-rate", "0", "--cancel-rate", "0", "--edit-rate", "0",
		"--ship-rate", "0", "--deliver-rate", "0",
		"--webhook-url", app.ingestURL() + "/webhooks/etsy", "--webhook-secret", app.webhookSecret,
		"--key-string", app.keyString, "--shared-secret", app.sharedSecret, "--redirect-uris", app.redirectURL(),
	}, environ(nil))
	simURL, simShopList := simShops(t, sim, 2)
	d.shopID, d.sellerID, d.second = simShopList[0].ShopID, simShopList[0].UserID, simShopList[1]
	d.ctl, d.simURL = &etsysim.Control{BaseURL: simURL}, simURL

	sealKeys := "s1:" + base64.StdEncoding.EncodeToString(randomBytes(t, 32))
	common := merge(app.env(simURL), map[string]string{
		"SHOPLEDGER_LOG_LEVEL":          "info",
		"SHOPLEDGER_TOKEN_KEYS":         "k1:" + base64.StdEncoding.EncodeToString(randomBytes(t, 32)),
		"SHOPLEDGER_SEAL_KEYS":          sealKeys,
		"SHOPLEDGER_RECONCILE_INTERVAL": "5m",
		// A freshly connected shop is imported on the scheduler's next tick.
		"SHOPLEDGER_RECONCILE_TICK":  "1s",
		"SHOPLEDGER_ALERT_LINK_BASE": d.queryURL,
		"SHOPLEDGER_SMTP_ADDR":       smtpAddr,
		"SHOPLEDGER_SMTP_STARTTLS":   "false",
		"SHOPLEDGER_SMTP_FROM":       "shopledger <noreply@shopledger.localhost>",
		"SHOPLEDGER_APP_URL":         d.queryURL,
		"SHOPLEDGER_APP_CONNECT_URL": app.ingestURL() + "/connect/etsy",
		"SHOPLEDGER_SESSION_SECURE":  "false",
	})
	ledgerEnv := environ(merge(common, map[string]string{"SHOPLEDGER_DATABASE_URL": db.URL}))
	d.ledger = ledgerRunner(t, bin, ledgerEnv)

	ingest := start(t, "ingest", bin+"/ingest", nil, environ(merge(common, map[string]string{
		"SHOPLEDGER_DATABASE_URL":    db.RoleURL(pgtest.IngestRole),
		"SHOPLEDGER_INGEST_ADDR":     app.ingestAddr,
		"SHOPLEDGER_INGEST_OPS_ADDR": "127.0.0.1:0",
	})))
	ingest.listening(t)
	waitHealthy(t, ingest.ops(t), "/readyz", ingest)
	shop := strconv.FormatInt(d.shopID, 10)
	if out := d.ledger("shops", "connect", "--sim-shop", shop); !strings.Contains(out, "connected shop "+shop) {
		t.Fatalf("ledger shops connect did not connect shop %s:\n%s", shop, out)
	}

	projector, _ := startProjector(t, bin, merge(common, map[string]string{
		"SHOPLEDGER_DATABASE_URL":            db.RoleURL(pgtest.ProjectorRole),
		"SHOPLEDGER_ALERT_COOLDOWN":          "0s",
		"SHOPLEDGER_ALERT_DISPATCH_INTERVAL": "200ms",
		"SHOPLEDGER_ALERT_BACKOFF_INITIAL":   "1s",
	}))

	query, u := startQuery(t, bin, queryAddr, merge(common, map[string]string{
		"SHOPLEDGER_DATABASE_URL": db.RoleURL(pgtest.QueryRole),
	}))
	if u != d.queryURL {
		t.Fatalf("query listens on %s, want %s", u, d.queryURL)
	}

	// The people, as make run makes its demo owner: the password from a
	// file, never the command line.
	pwFile := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pwFile, []byte(d.password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	seller := strconv.FormatInt(d.sellerID, 10)
	for _, p := range []struct{ email, role, name string }{
		{ownerEmail, "owner", "Demo seller"}, {staffEmail, "staff", "Sam Staff"}, {auditorEmail, "auditor", "Ada Auditor"},
	} {
		d.ledger("accounts", "add-user", "--email", p.email, "--seller", seller, "--role", p.role, "--name", p.name, "--password-file", pwFile)
	}
	// Alerts for the shop go by e-mail to the owner, through the inbox.
	d.ledger("alert-channels", "add", "--shop", shop, "--kind", "email", "--target", ownerEmail)

	token := func(args ...string) string {
		t.Helper()
		return createToken(t, d.ledger, d.sellerID, args...)
	}
	d.seller = &apiClient{base: d.queryURL, token: token("--label", "browser test seller")}
	d.auditor = &apiClient{base: d.queryURL, token: token("--role", "auditor", "--label", "browser test auditor")}

	// The import, then a few orders, as make run's demo would have had.
	d.waitLedger(t, ctx, "the demo shop's import")
	for range demoOrders {
		if _, err := d.ctl.RandomOrder(ctx, d.shopID); err != nil {
			t.Fatalf("order: %v", err)
		}
	}
	d.waitLedger(t, ctx, "the demo orders")
	converge(t, "the demo orders in /v1/sales", time.Minute, func(ctx context.Context) (string, error) {
		sales, err := pages[struct {
			ReceiptID int64 `json:"receipt_id"`
		}](ctx, d.seller, fmt.Sprintf("/v1/sales?shop_id=%d&limit=100", d.shopID))
		if err != nil {
			return "", err
		}
		if len(sales) != demoOrders {
			return fmt.Sprintf("%d sales, want %d", len(sales), demoOrders), nil
		}
		return "", nil
	})
	for _, p := range []*proc{inbox, sim, ingest, projector, query} {
		p.running(t)
	}
	if t.Failed() {
		t.FailNow()
	}
	return d
}

// waitLedger waits until the ledger's products and stock, read through
// /v1, are the simulator's.
func (d *demo) waitLedger(t *testing.T, ctx context.Context, what string) {
	t.Helper()
	if err := d.ctl.WaitDeliveries(ctx, 30*time.Second); err != nil {
		t.Fatalf("%s: webhook deliveries: %v", what, err)
	}
	truth, err := d.ctl.Truth(ctx, d.shopID)
	if err != nil {
		t.Fatal(err)
	}
	want := productsFromTruth(truth)
	if !converge(t, what+": products and stock against the simulator", 90*time.Second, func(ctx context.Context) (string, error) {
		got, err := readProducts(ctx, d.seller, d.shopID)
		if err != nil {
			return "", err
		}
		return gocmp.Diff(want, got), nil
	}) {
		t.FailNow()
	}
}

// pagesHandler builds the pages' handler as cmd/query does, over the same
// database, for its list of routes (webapp.Routes).
func (d *demo) pagesHandler(t *testing.T) http.Handler {
	t.Helper()
	store, err := accounts.New(accounts.Config{DB: d.db.DB, BaseURL: d.queryURL})
	if err != nil {
		t.Fatal(err)
	}
	readers := projections.NewReader(d.db.DB, projections.ReaderConfig{DefaultThreshold: domain.DefaultLowStockThreshold})
	data := httpapi.Readers{Shops: readers, Products: readers, Stock: readers, Sales: readers, Events: readers, Alerts: httpapi.NewAlertStore(d.db.DB), Thresholds: eventstore.New(d.db.DB)}
	h, err := webapp.New(webapp.Config{Accounts: store, Tokens: tokens.NewStore(d.db.DB), Shops: readers, ConnectURL: "http://ingest.invalid/connect/etsy", Data: data})
	if err != nil {
		t.Fatal(err)
	}
	return h
}
