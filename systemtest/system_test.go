package systemtest_test

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/etsy/etsysim"
	"github.com/shopledger/shopledger/httpapi"
	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/stdwebhooks"
)

const (
	// seed drives the simulator and the test's own choice of operations,
	// so a failure can be run again as it happened.
	seed       = 20260109
	listings   = 30
	operations = 500
	rounds     = 10
)

// TestWholeSystem runs every binary against one fresh database and the
// simulator over HTTP: the simulator's webhooks (10% dropped, 10% sent
// twice) reach ingest, the fetcher follows them, one reconciliation
// repairs what the dropped ones hid, and projector and query serve the
// result. Everything is then checked through the query API alone.
func TestWholeSystem(t *testing.T) {
	if testing.Short() {
		t.Skip("whole-system test: builds and runs every binary")
	}
	bin := buildBinaries(t, "etsysim", "ingest", "projector", "query", "ledger")
	db := pgtest.New(t)
	ctx := context.Background()

	// The receiver of the shop's alert webhooks.
	rcv := &alertReceiver{}
	rsrv := httptest.NewServer(rcv)
	t.Cleanup(rsrv.Close)

	app := newEtsyApp(t, "systest", 8)

	// 1. The simulator: one shop, no scenario of its own (the test drives
	// every change), webhooks to ingest with faults. Its catalogue is
	// created once ingest follows webhooks, so that listings arrive the way
	// they would for a connected shop.
	sim := start(t, "etsysim", bin+"/etsysim", app.simArgs(seed, 1,
		"--drop", "0.1", "--duplicate", "0.1",
		// Retries of a failed delivery come within seconds, not minutes.
		"--webhook-retry-scale", "0.01",
		// The fetcher, its settling reads and the reconciliation share one
		// key; rate limits are not what this test is about.
		"--qps", "200", "--qpd", "1000000",
	), environ(nil))
	simURL, simShopList := simShops(t, sim, 1)
	shopID, sellerID := simShopList[0].ShopID, simShopList[0].UserID
	ctl := &etsysim.Control{BaseURL: simURL}

	// 2. ingest, the shop connected through the simulator's OAuth, the
	// alert channel, query and projector, tokens.
	env := app.ingestEnv(t, db, simURL)
	ingestEnv := environ(env)
	// The operator's commands run as the role that owns the schema; each
	// service as its own runtime role.
	ledgerEnv := environ(merge(env, map[string]string{"SHOPLEDGER_DATABASE_URL": db.URL}))
	ingest := start(t, "ingest", bin+"/ingest", nil, ingestEnv)
	if u, _ := ingest.listening(t); u != app.ingestURL() {
		t.Fatalf("ingest listens on %s, want %s", u, app.ingestURL())
	}
	ingestOps := ingest.ops(t)
	waitHealthy(t, ingestOps, "/readyz", ingest)

	ledger := ledgerRunner(t, bin, ledgerEnv)
	shop := strconv.FormatInt(shopID, 10)
	if out := ledger("shops", "connect", "--sim-shop", shop); !strings.Contains(out, "connected shop "+shop) {
		t.Fatalf("ledger shops connect did not connect shop %s:\n%s", shop, out)
	}
	ledger("alert-channels", "add", "--shop", shop, "--kind", "webhook", "--target", rsrv.URL+"/alerts")
	rcv.setSecret(strings.TrimSpace(ledger("alert-channels", "secret", "--shop", shop)))

	// The projector signs the seal's head; ledger verify checks the
	// signatures.
	sealKeys := "s1:" + base64.StdEncoding.EncodeToString(randomBytes(t, 32))
	env["SHOPLEDGER_SEAL_KEYS"] = sealKeys
	ledgerEnv = environ(merge(env, map[string]string{"SHOPLEDGER_DATABASE_URL": db.URL}))
	ledger = ledgerRunner(t, bin, ledgerEnv)
	// The token keys open the alert webhook's signing secret, which
	// ledger stored encrypted with them.
	dbOnly := map[string]string{"SHOPLEDGER_DATABASE_URL": db.RoleURL(pgtest.ProjectorRole), "SHOPLEDGER_LOG_LEVEL": "info", "SHOPLEDGER_SEAL_KEYS": sealKeys,
		"SHOPLEDGER_TOKEN_KEYS": env["SHOPLEDGER_TOKEN_KEYS"]}
	// The checks read every variant's history: no per-token limit.
	query, queryURL := startQuery(t, bin, "127.0.0.1:0", merge(dbOnly, map[string]string{
		"SHOPLEDGER_DATABASE_URL": db.RoleURL(pgtest.QueryRole),
	}))

	projector, projectorURL := startProjector(t, bin, merge(dbOnly, map[string]string{
		"SHOPLEDGER_PROJECTOR_LAG_INTERVAL":      "200ms",
		"SHOPLEDGER_ALERT_COOLDOWN":              "0s",
		"SHOPLEDGER_ALERT_WEBHOOK_ALLOW_PRIVATE": "true",
		"SHOPLEDGER_ALERT_DISPATCH_INTERVAL":     "200ms",
		"SHOPLEDGER_ALERT_BACKOFF_INITIAL":       "1s",
		"SHOPLEDGER_ALERT_LINK_BASE":             queryURL,
	}))

	token := func(args ...string) string {
		t.Helper()
		return createToken(t, ledger, sellerID, args...)
	}
	seller := &apiClient{base: queryURL, token: token("--label", "systemtest seller")}
	auditor := &apiClient{base: queryURL, token: token("--role", "auditor", "--label", "systemtest auditor")}

	// 3. The catalogue, then 500 operations in rounds. Between rounds the
	// simulator finishes sending and the fetcher catches up, so the ledger
	// sees the shop change step by step (restocks and cancellations as
	// Etsy-side changes of a known listing) and not only as one late
	// import of the final state.
	if _, err := ctl.GenerateCatalogue(ctx, shopID, listings); err != nil {
		t.Fatalf("catalogue: %v", err)
	}
	waitQuiet(t, ctx, ctl, shopID, ingestOps)
	d := newDriver(ctl, shopID)
	for done := 0; done < operations; done += operations / rounds {
		d.run(t, ctx, operations/rounds)
		waitQuiet(t, ctx, ctl, shopID, ingestOps)
	}
	t.Logf("operations: %v", d.done)
	checkDeliveries(t, ctx, ctl, shopID)

	// One reconciliation repairs what the dropped webhooks hid.
	rec := runCmd(t, 2*time.Minute, bin+"/ingest", []string{"reconcile", "--shop", shop}, ingestEnv)
	t.Logf("ingest reconcile:\n%s", strings.TrimSpace(rec))
	for _, p := range []*proc{sim, ingest, query, projector} {
		p.running(t)
	}

	// 4. Through the query API: stock, receipts, alerts and deliveries.
	truth, err := ctl.Truth(ctx, shopID)
	if err != nil {
		t.Fatal(err)
	}
	wantProducts := productsFromTruth(truth)
	converge(t, "products and variant stock against the simulator", 90*time.Second, func(ctx context.Context) (string, error) {
		got, err := readProducts(ctx, seller, shopID)
		if err != nil {
			return "", err
		}
		return gocmp.Diff(wantProducts, got), nil
	})
	wantSales := salesFromTruth(truth)
	if converge(t, "sales against the simulator", 60*time.Second, func(ctx context.Context) (string, error) {
		got, err := readSales(ctx, seller, shopID, false)
		if err != nil {
			return "", err
		}
		return gocmp.Diff(salesWithoutItems(wantSales), got), nil
	}) {
		got, err := readSales(ctx, seller, shopID, true)
		if err != nil {
			t.Fatal(err)
		}
		if diff := gocmp.Diff(wantSales, got); diff != "" {
			t.Errorf("sales with their items (-simulator +ledger):\n%s", diff)
		}
	}
	if t.Failed() {
		t.FailNow() // alerts and rebuilds are judged on a ledger that is right
	}

	var raised []apiAlert
	var reasons map[string]int
	converge(t, "alerts against the crossings in the stock history", 60*time.Second, func(ctx context.Context) (string, error) {
		var want []alertView
		var err error
		want, reasons, err = expectedAlerts(ctx, seller, shopID)
		if err != nil {
			return "", err
		}
		got, err := pages[apiAlert](ctx, seller, fmt.Sprintf("/v1/alerts?shop_id=%d&limit=100", shopID))
		if err != nil {
			return "", err
		}
		raised = got
		return gocmp.Diff(want, alertViews(got)), nil
	})
	// The movements must show that the ledger followed changes at Etsy as
	// they happened, not only imports of a final state.
	t.Logf("stock movements by reason: %v", reasons)
	for _, r := range []string{"initial_import", "sale", "etsy_change"} {
		if reasons[r] == 0 {
			t.Errorf("no stock movement with reason %s: the scenario did not exercise it", r)
		}
	}
	var muted int
	for _, a := range raised {
		if a.Muted {
			muted++
		}
	}
	t.Logf("%d low-stock alerts raised (%d muted)", len(raised), muted)
	if len(raised) == 0 {
		t.Error("no low-stock alert was raised: the scenario did not exercise alerts")
	}
	converge(t, "alert deliveries: each raised alert once to the webhook receiver", 60*time.Second, func(ctx context.Context) (string, error) {
		got, err := pages[apiAlert](ctx, seller, fmt.Sprintf("/v1/alerts?shop_id=%d&limit=100", shopID))
		if err != nil {
			return "", err
		}
		want, have := map[string]deliveryView{}, map[string]deliveryView{}
		for _, a := range got {
			if !a.Muted {
				want[a.AlertID] = deliveryView{Received: 1, Payload: a.payload(), Delivery: []string{"webhook:delivered"}}
			}
			dv := rcv.view(a.AlertID)
			for _, d := range a.Deliveries {
				dv.Delivery = append(dv.Delivery, d.Kind+":"+d.Status)
			}
			if dv.Received > 0 || len(dv.Delivery) > 0 {
				have[a.AlertID] = dv
			}
		}
		for _, id := range rcv.unknown(got) {
			have[id] = rcv.view(id)
		}
		return gocmp.Diff(want, have), nil
	})
	if errs := rcv.verifyErrors(); len(errs) > 0 {
		t.Errorf("alert webhooks that do not verify with the shop's secret: %v", errs)
	}

	// The sealed log: ledger verify (with the signed heads) and the
	// auditor's chain check.
	waitProjector(t, ctx, projectorURL)
	// The projector signs the head every 2 s.
	converge(t, "ledger verify with every sealed event under a valid signed head", time.Minute, func(context.Context) (string, error) {
		out := ledger("verify")
		if strings.Contains(out, "all signatures valid") && strings.Contains(out, "(0 sealed after it)") {
			t.Log(strings.TrimSpace(out))
			return "", nil
		}
		return out, nil
	})
	var chain struct {
		Valid   bool  `json:"valid"`
		Checked int64 `json:"checked"`
	}
	if err := auditor.get(ctx, "/v1/chain", &chain); err != nil {
		t.Fatal(err)
	}
	if !chain.Valid || chain.Checked == 0 {
		t.Errorf("GET /v1/chain: valid %v over %d events, want a valid chain over the shop's events", chain.Valid, chain.Checked)
	}

	// 5. A rebuild under the running projector gives the same answers.
	waitProjector(t, ctx, projectorURL)
	before := snapshot(t, ctx, seller, shopID, truth)
	// A rebuild swaps tables: an operator's command, as the schema's owner.
	out := runCmd(t, 2*time.Minute, bin+"/projector", []string{"rebuild"}, environ(merge(dbOnly, map[string]string{"SHOPLEDGER_DATABASE_URL": db.URL})))
	t.Logf("projector rebuild:\n%s", strings.TrimSpace(out))
	movements := 0
	for _, n := range reasons {
		movements += n
	}
	wantRows := map[string]int{"products": len(wantProducts), "sales": len(wantSales), "stock_movements": movements}
	if diff := gocmp.Diff(wantRows, rebuiltRows(out, wantRows)); diff != "" {
		t.Errorf("rows the rebuild wrote (-want +got):\n%s", diff)
	}
	waitProjector(t, ctx, projectorURL)
	after := snapshot(t, ctx, seller, shopID, truth)
	if diff := gocmp.Diff(before, after); diff != "" {
		t.Errorf("query API answers changed by projector rebuild (-before +after):\n%s", diff)
	}
	for _, p := range []*proc{sim, ingest, query, projector} {
		p.running(t)
	}
	if t.Failed() {
		return
	}

	// 6. The ledger moves to a brand-new cluster, its transaction counter
	// in the hundreds, far below the ids the log holds: ledger backup,
	// ledger restore there, the services started against it, and new
	// orders from the simulator (webhook ids never seen before). The
	// restored and the new events are all consumed, in order: stock and
	// sales equal the simulator's again, and the seal verifies.
	backupFile := filepath.Join(t.TempDir(), "ledger.slbak")
	t.Log(strings.TrimSpace(ledger("backup", "--out", backupFile)))
	for _, p := range []*proc{ingest, query, projector} {
		p.stop()
	}
	fresh := pgtest.NewCluster(t)
	owner := fresh.CreateDatabase("ledger")
	movedEnv := environ(merge(env, map[string]string{"SHOPLEDGER_DATABASE_URL": owner}))
	t.Logf("ledger restore:\n%s", strings.TrimSpace(runCmd(t, 3*time.Minute, bin+"/ledger", []string{"restore", "--in", backupFile}, movedEnv)))
	ingest = start(t, "ingest", bin+"/ingest", nil, environ(merge(env, map[string]string{"SHOPLEDGER_DATABASE_URL": pgtest.WithUser(owner, pgtest.IngestRole)})))
	ingestOps = ingest.ops(t)
	waitHealthy(t, ingestOps, "/readyz", ingest)
	query, queryURL = startQuery(t, bin, "127.0.0.1:0", merge(dbOnly, map[string]string{
		"SHOPLEDGER_DATABASE_URL": pgtest.WithUser(owner, pgtest.QueryRole),
	}))
	projector, projectorURL = startProjector(t, bin, merge(dbOnly, map[string]string{
		"SHOPLEDGER_DATABASE_URL": pgtest.WithUser(owner, pgtest.ProjectorRole),
	}))
	// The tokens came along with the backup.
	seller = &apiClient{base: queryURL, token: seller.token}

	d.run(t, ctx, 60)
	waitQuiet(t, ctx, ctl, shopID, ingestOps)
	t.Logf("ingest reconcile after the move:\n%s", strings.TrimSpace(runCmd(t, 2*time.Minute, bin+"/ingest", []string{"reconcile", "--shop", shop},
		environ(merge(env, map[string]string{"SHOPLEDGER_DATABASE_URL": pgtest.WithUser(owner, pgtest.IngestRole)})))))
	truth, err = ctl.Truth(ctx, shopID)
	if err != nil {
		t.Fatal(err)
	}
	wantProducts = productsFromTruth(truth)
	converge(t, "products after the move against the simulator", 90*time.Second, func(ctx context.Context) (string, error) {
		got, err := readProducts(ctx, seller, shopID)
		if err != nil {
			return "", err
		}
		return gocmp.Diff(wantProducts, got), nil
	})
	wantSales = salesFromTruth(truth)
	converge(t, "sales after the move against the simulator", 60*time.Second, func(ctx context.Context) (string, error) {
		got, err := readSales(ctx, seller, shopID, false)
		if err != nil {
			return "", err
		}
		return gocmp.Diff(salesWithoutItems(wantSales), got), nil
	})
	waitProjector(t, ctx, projectorURL)
	if out := runCmd(t, time.Minute, bin+"/ledger", []string{"verify"}, movedEnv); !strings.Contains(out, "ok:") {
		t.Errorf("ledger verify after the move:\n%s", out)
	} else {
		t.Log(strings.TrimSpace(out))
	}
	for _, p := range []*proc{sim, ingest, query, projector} {
		p.running(t)
	}
}

// rebuiltRows reads the row counts "  <table> <n> rows" that projector
// rebuild prints, for the tables of want.
func rebuiltRows(out string, want map[string]int) map[string]int {
	got := map[string]int{}
	for l := range strings.Lines(out) {
		f := strings.Fields(l)
		if len(f) == 3 && f[2] == "rows" {
			if _, ok := want[f[0]]; ok {
				got[f[0]], _ = strconv.Atoi(f[1])
			}
		}
	}
	return got
}

// driver performs operations through the simulator's control API: random
// orders, restocks of variants running low, listing edits, cancellations
// of recent orders, shipments and deliveries.
type driver struct {
	ctl    *etsysim.Control
	shopID int64
	rng    *mrand.Rand
	orders []*order
	done   map[string]int
}

type order struct {
	id                           int64
	shipped, delivered, canceled bool
}

func newDriver(ctl *etsysim.Control, shopID int64) *driver {
	return &driver{ctl: ctl, shopID: shopID, rng: mrand.New(mrand.NewPCG(seed, 1)), done: map[string]int{}}
}

// pick returns a random one of the last recent orders that ok accepts.
func (d *driver) pick(recent int, ok func(o *order) bool) *order {
	var cands []*order
	for _, o := range d.orders[max(0, len(d.orders)-recent):] {
		if ok(o) {
			cands = append(cands, o)
		}
	}
	if len(cands) == 0 {
		return nil
	}
	return cands[d.rng.IntN(len(cands))]
}

func (d *driver) order(t *testing.T, ctx context.Context) {
	t.Helper()
	r, err := d.ctl.RandomOrder(ctx, d.shopID)
	if err != nil {
		t.Fatalf("random order: %v", err)
	}
	d.orders = append(d.orders, &order{id: r.ReceiptID})
	d.done["order"]++
}

// run performs n operations.
func (d *driver) run(t *testing.T, ctx context.Context, n int) {
	t.Helper()
	for range n {
		switch k := d.rng.IntN(100); {
		case k < 52:
			d.order(t, ctx)
		case k < 70:
			if !d.restock(t, ctx) {
				d.order(t, ctx)
			}
		case k < 76:
			d.edit(t, ctx)
		case k < 87:
			o := d.pick(25, func(o *order) bool { return !o.shipped && !o.canceled })
			if o == nil {
				d.order(t, ctx)
				continue
			}
			// Most cancellations put the units back, as Etsy offers.
			restock := d.rng.IntN(4) != 0
			if _, err := d.ctl.CancelOrder(ctx, o.id, restock); err != nil {
				t.Fatalf("cancel receipt %d: %v", o.id, err)
			}
			o.canceled = true
			d.done["cancel"]++
		case k < 95:
			o := d.pick(len(d.orders), func(o *order) bool { return !o.shipped && !o.canceled })
			if o == nil {
				d.order(t, ctx)
				continue
			}
			if _, err := d.ctl.ShipOrder(ctx, o.id, "", ""); err != nil {
				t.Fatalf("ship receipt %d: %v", o.id, err)
			}
			o.shipped = true
			d.done["ship"]++
		default:
			o := d.pick(len(d.orders), func(o *order) bool { return o.shipped && !o.delivered })
			if o == nil {
				d.order(t, ctx)
				continue
			}
			if _, err := d.ctl.DeliverOrder(ctx, o.id); err != nil {
				t.Fatalf("deliver receipt %d: %v", o.id, err)
			}
			o.delivered = true
			d.done["deliver"]++
		}
	}
}

// edit retitles a listing or changes its price, as a seller editing it on
// Etsy does; a price change is an inventory write.
func (d *driver) edit(t *testing.T, ctx context.Context) {
	t.Helper()
	ls, err := d.ctl.Listings(ctx, d.shopID)
	if err != nil {
		t.Fatal(err)
	}
	var active []etsysim.ListingTruth
	for _, l := range ls {
		if !l.Deleted && l.State == etsy.ListingActive {
			active = append(active, l)
		}
	}
	if len(active) == 0 {
		d.order(t, ctx)
		return
	}
	l := active[d.rng.IntN(len(active))]
	var e etsysim.ListingEdit
	if d.rng.IntN(2) == 0 {
		title := fmt.Sprintf("%s, edition %d", strings.SplitN(l.Title, ",", 2)[0], d.done["edit"]+1)
		e.Title = &title
	} else {
		price := l.Price + 100*int64(1+d.rng.IntN(5))
		e.Price = &price
	}
	if _, err := d.ctl.EditListing(ctx, l.ListingID, e); err != nil {
		t.Fatalf("edit listing %d: %v", l.ListingID, err)
	}
	d.done["edit"]++
}

// restock adds 5 to 20 units to a variant at 3 or below, reporting false
// when none is.
func (d *driver) restock(t *testing.T, ctx context.Context) bool {
	t.Helper()
	ls, err := d.ctl.Listings(ctx, d.shopID)
	if err != nil {
		t.Fatal(err)
	}
	type low struct {
		listing int64
		key     string
	}
	var cands []low
	for _, l := range ls {
		if l.Deleted || (l.State != etsy.ListingActive && l.State != etsy.ListingSoldOut) {
			continue
		}
		for _, v := range l.Variants {
			if v.Quantity <= 3 {
				cands = append(cands, low{l.ListingID, v.VariantKey})
			}
		}
	}
	if len(cands) == 0 {
		return false
	}
	c := cands[d.rng.IntN(len(cands))]
	if _, err := d.ctl.RestockListing(ctx, c.listing, etsysim.Restock{VariantKey: c.key, Delta: 5 + d.rng.IntN(16)}); err != nil {
		t.Fatalf("restock listing %d %s: %v", c.listing, c.key, err)
	}
	d.done["restock"]++
	return true
}

// waitQuiet waits until the simulator has nothing left to send (no
// message in flight or waiting for a retry) and ingest's fetcher has
// followed every webhook ingest stored.
// waitQuiet reads ingest's metrics at ingestOps, its ops listener.
func waitQuiet(t *testing.T, ctx context.Context, ctl *etsysim.Control, shopID int64, ingestOps string) {
	t.Helper()
	converge(t, "simulator sending every webhook", 2*time.Minute, func(ctx context.Context) (string, error) {
		if err := ctl.WaitDeliveries(ctx, 30*time.Second); err != nil {
			return "", err
		}
		pending, err := ctl.Deliveries(ctx, etsysim.DeliveryFilter{ShopID: shopID, State: etsysim.DeliveryPending})
		if err != nil {
			return "", err
		}
		if len(pending) > 0 {
			return fmt.Sprintf("%d webhook messages pending", len(pending)), nil
		}
		return "", nil
	})
	waitFetcher(t, ctx, ingestOps)
}

// checkDeliveries checks that every webhook message was either dropped on
// purpose or taken by ingest, and that the faults happened.
func checkDeliveries(t *testing.T, ctx context.Context, ctl *etsysim.Control, shopID int64) {
	t.Helper()
	all, err := ctl.Deliveries(ctx, etsysim.DeliveryFilter{ShopID: shopID})
	if err != nil {
		t.Fatal(err)
	}
	states, faults := map[string]int{}, map[string]int{}
	for _, d := range all {
		states[d.State]++
		for _, f := range d.Faults {
			faults[f]++
		}
		if d.State == etsysim.DeliveryFailed {
			t.Errorf("webhook %s (%s) failed every attempt: %+v", d.MessageID, d.EventType, d.Attempts)
		}
	}
	t.Logf("%d webhook messages: states %v, faults %v", len(all), states, faults)
	if states[etsysim.DeliveryDropped] == 0 || faults["duplicate"] == 0 {
		t.Errorf("the faults did not happen (states %v, faults %v): the test would prove nothing about them", states, faults)
	}
}

// waitFetcher waits until ingest's fetcher has an outcome for every piece
// of webhook evidence ingest stored.
func waitFetcher(t *testing.T, ctx context.Context, ingestOps string) {
	t.Helper()
	converge(t, "fetcher following every stored webhook", 2*time.Minute, func(ctx context.Context) (string, error) {
		stored, err := metricSum(ctx, ingestOps, "ingest_webhooks_total", map[string]string{"result": "accepted"})
		if err != nil {
			return "", err
		}
		var followed float64
		for _, o := range []string{"applied", "ignored", "failed"} {
			n, err := metricSum(ctx, ingestOps, "ingest_fetch_total", map[string]string{"outcome": o})
			if err != nil {
				return "", err
			}
			followed += n
		}
		if stored == 0 || followed < stored {
			return fmt.Sprintf("%v webhooks stored, %v followed", stored, followed), nil
		}
		return "", nil
	})
}

// waitProjector waits until every consumer group of the projector has
// applied the whole log.
func waitProjector(t *testing.T, ctx context.Context, projectorURL string) {
	t.Helper()
	converge(t, "projector lag", time.Minute, func(ctx context.Context) (string, error) {
		n, err := metricSum(ctx, projectorURL, "shopledger_projection_lag_events", nil)
		if err != nil {
			return "", err
		}
		if n != 0 {
			return fmt.Sprintf("%v events behind", n), nil
		}
		return "", nil
	})
}

// Products and variants as the checks compare them.

type money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

type apiVariant struct {
	VariantKey        string `json:"variant_key"`
	SKU               string `json:"sku"`
	Price             money  `json:"price"`
	Enabled           bool   `json:"enabled"`
	Active            bool   `json:"active"`
	Quantity          int64  `json:"quantity"`
	LowStockThreshold int64  `json:"low_stock_threshold"`
}

type apiProduct struct {
	ListingID int64        `json:"listing_id"`
	Title     string       `json:"title"`
	State     string       `json:"state"`
	Quantity  int64        `json:"quantity"`
	Deleted   bool         `json:"deleted"`
	Variants  []apiVariant `json:"variants"`
}

type listingView struct {
	Title    string
	State    string
	Quantity int64
	Variants map[string]variantView
}

type variantView struct {
	SKU      string
	Price    money
	Quantity int64
	Enabled  bool
	Active   bool
}

func productsFromTruth(tr etsysim.Truth) map[int64]listingView {
	out := map[int64]listingView{}
	for _, l := range tr.Listings {
		if l.Deleted {
			continue
		}
		lv := listingView{Title: l.Title, State: l.State, Quantity: int64(l.Quantity), Variants: map[string]variantView{}}
		for _, v := range l.Variants {
			lv.Variants[v.VariantKey] = variantView{SKU: v.SKU, Price: money{v.Price, l.Currency}, Quantity: int64(v.Quantity), Enabled: v.Enabled, Active: true}
		}
		out[l.ListingID] = lv
	}
	return out
}

// readProducts lists the shop's products and reads each one with its
// variants.
func readProducts(ctx context.Context, a *apiClient, shopID int64) (map[int64]listingView, error) {
	list, err := pages[apiProduct](ctx, a, fmt.Sprintf("/v1/products?shop_id=%d&limit=100", shopID))
	if err != nil {
		return nil, err
	}
	out := map[int64]listingView{}
	for _, p := range list {
		var d apiProduct
		if err := a.get(ctx, fmt.Sprintf("/v1/products/%d", p.ListingID), &d); err != nil {
			return nil, err
		}
		lv := listingView{Title: d.Title, State: d.State, Quantity: d.Quantity, Variants: map[string]variantView{}}
		for _, v := range d.Variants {
			lv.Variants[v.VariantKey] = variantView{SKU: v.SKU, Price: v.Price, Quantity: v.Quantity, Enabled: v.Enabled, Active: v.Active}
		}
		out[d.ListingID] = lv
	}
	return out, nil
}

// Sales.

type saleView struct {
	Listed     int // times the receipt appears in GET /v1/sales
	Status     string
	Currency   string
	Subtotal   int64
	Shipping   int64
	Tax        int64
	Discount   int64
	GrandTotal int64
	Refunded   int64
	ItemCount  int64
	Units      int64
	CreatedAt  time.Time
	Items      []itemView
}

type itemView struct {
	TransactionID int64
	ListingID     int64
	VariantKey    string
	SKU           string
	Quantity      int64
	UnitPrice     money
}

// wantStatus is the status a seller should see for a receipt, by the
// ledger's documented rule that a receipt's status only moves forward
// (paid < shipped < delivered < canceled < refunded) and a receipt whose
// refunds reach its grand total is refunded.
func wantStatus(r etsysim.ReceiptTruth) string {
	switch {
	case r.GrandTotal > 0 && r.Refunded >= r.GrandTotal:
		return "refunded"
	case r.IsCanceled:
		return "canceled"
	case r.IsDelivered:
		return "delivered"
	case r.IsShipped:
		return "shipped"
	case r.IsPaid:
		return "paid"
	}
	return r.Status
}

func salesFromTruth(tr etsysim.Truth) map[int64]saleView {
	out := map[int64]saleView{}
	for _, r := range tr.Receipts {
		s := saleView{
			Listed: 1, Status: wantStatus(r), Currency: r.Currency,
			Subtotal: r.Subtotal, Shipping: r.ShippingCost, Tax: r.TaxCost, Discount: r.Discount,
			GrandTotal: r.GrandTotal, Refunded: r.Refunded, ItemCount: int64(len(r.Items)),
			// Etsy's timestamps are whole seconds.
			CreatedAt: r.CreatedAt.Truncate(time.Second),
		}
		for _, it := range r.Items {
			s.Units += int64(it.Quantity)
			s.Items = append(s.Items, itemView{TransactionID: it.TransactionID, ListingID: it.ListingID, VariantKey: it.VariantKey,
				SKU: it.SKU, Quantity: int64(it.Quantity), UnitPrice: money{it.Price, r.Currency}})
		}
		out[r.ReceiptID] = s
	}
	return out
}

func salesWithoutItems(in map[int64]saleView) map[int64]saleView {
	out := make(map[int64]saleView, len(in))
	for id, s := range in {
		s.Items = nil
		out[id] = s
	}
	return out
}

type apiSale struct {
	ReceiptID  int64     `json:"receipt_id"`
	Status     string    `json:"status"`
	Currency   string    `json:"currency"`
	Subtotal   int64     `json:"subtotal"`
	Shipping   int64     `json:"shipping"`
	Tax        int64     `json:"tax"`
	Discount   int64     `json:"discount"`
	GrandTotal int64     `json:"grand_total"`
	Refunded   int64     `json:"refunded"`
	ItemCount  int64     `json:"item_count"`
	Units      int64     `json:"units"`
	CreatedAt  time.Time `json:"created_at"`
	Items      []struct {
		TransactionID int64  `json:"transaction_id"`
		ListingID     int64  `json:"listing_id"`
		VariantKey    string `json:"variant_key"`
		SKU           string `json:"sku"`
		Quantity      int64  `json:"quantity"`
		UnitPrice     money  `json:"unit_price"`
	} `json:"items"`
}

// readSales lists the shop's sales; withItems reads each one's lines too.
func readSales(ctx context.Context, a *apiClient, shopID int64, withItems bool) (map[int64]saleView, error) {
	list, err := pages[apiSale](ctx, a, fmt.Sprintf("/v1/sales?shop_id=%d&limit=100", shopID))
	if err != nil {
		return nil, err
	}
	out := map[int64]saleView{}
	for _, s := range list {
		if v, ok := out[s.ReceiptID]; ok {
			v.Listed++
			out[s.ReceiptID] = v
			continue
		}
		v := saleView{Listed: 1, Status: s.Status, Currency: s.Currency, Subtotal: s.Subtotal, Shipping: s.Shipping, Tax: s.Tax,
			Discount: s.Discount, GrandTotal: s.GrandTotal, Refunded: s.Refunded, ItemCount: s.ItemCount, Units: s.Units, CreatedAt: s.CreatedAt}
		if withItems {
			var d apiSale
			if err := a.get(ctx, fmt.Sprintf("/v1/sales/%d", s.ReceiptID), &d); err != nil {
				return nil, err
			}
			for _, it := range d.Items {
				v.Items = append(v.Items, itemView{TransactionID: it.TransactionID, ListingID: it.ListingID, VariantKey: it.VariantKey,
					SKU: it.SKU, Quantity: it.Quantity, UnitPrice: it.UnitPrice})
			}
		}
		out[s.ReceiptID] = v
	}
	return out, nil
}

// Alerts.

// apiAlert is the API's alert, decoded into the server's own wire type.
type apiAlert httpapi.Alert

// alertView is an alert without its id and deliveries: what the stock
// history alone determines.
type alertView struct {
	ListingID       int64
	VariantKey      string
	Status          string
	Threshold       int64
	Quantity        int64
	Muted           bool
	RaisedAt        time.Time
	ClearedAt       *time.Time
	ClearedQuantity *int64
	ClearReason     string
}

func compareAlertViews(a, b alertView) int {
	return cmp.Or(
		cmp.Compare(a.ListingID, b.ListingID),
		strings.Compare(a.VariantKey, b.VariantKey),
		a.RaisedAt.Compare(b.RaisedAt),
		cmp.Compare(a.Quantity, b.Quantity),
		compareTimePtr(a.ClearedAt, b.ClearedAt),
		cmp.Compare(derefOr(a.ClearedQuantity, -1<<62), derefOr(b.ClearedQuantity, -1<<62)),
		strings.Compare(a.Status, b.Status),
	)
}

func compareTimePtr(a, b *time.Time) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return 1
	case b == nil:
		return -1
	}
	return a.Compare(*b)
}

func derefOr(p *int64, def int64) int64 {
	if p == nil {
		return def
	}
	return *p
}

func alertViews(as []apiAlert) []alertView {
	out := make([]alertView, 0, len(as))
	for _, a := range as {
		out = append(out, alertView{ListingID: a.ListingID, VariantKey: a.VariantKey, Status: a.Status, Threshold: a.Threshold,
			Quantity: a.Quantity, Muted: a.Muted, RaisedAt: a.RaisedAt, ClearedAt: a.ClearedAt, ClearedQuantity: a.ClearedQuantity,
			ClearReason: a.ClearReason})
	}
	slices.SortFunc(out, compareAlertViews)
	return out
}

type apiMovement struct {
	Seq        int64     `json:"seq"`
	OccurredAt time.Time `json:"occurred_at"`
	Delta      int64     `json:"delta"`
	Balance    int64     `json:"balance"`
	Reason     string    `json:"reason"`
}

// expectedAlerts derives, independently of the alerter, the alerts the
// documented rule gives for each variant's stock history as the API shows
// it: walking the movements in the ledger's order, an alert is raised when
// the balance is at or below the variant's threshold and none is open, and
// cleared (stock_above_threshold) when the balance rises above it. With a
// cooldown of zero no raise is muted. Thresholds are never changed in this
// test, so the one the product reports held all along.
// It also counts the movements by reason.
func expectedAlerts(ctx context.Context, a *apiClient, shopID int64) ([]alertView, map[string]int, error) {
	list, err := pages[apiProduct](ctx, a, fmt.Sprintf("/v1/products?shop_id=%d&limit=100", shopID))
	if err != nil {
		return nil, nil, err
	}
	out := []alertView{}
	reasons := map[string]int{}
	for _, p := range list {
		var d apiProduct
		if err := a.get(ctx, fmt.Sprintf("/v1/products/%d", p.ListingID), &d); err != nil {
			return nil, nil, err
		}
		for _, v := range d.Variants {
			hist, err := pages[apiMovement](ctx, a, historyPath(d.ListingID, v.VariantKey))
			if err != nil {
				return nil, nil, err
			}
			var open *alertView
			for i, m := range hist {
				reasons[m.Reason]++
				if m.Seq != int64(i+1) {
					return nil, nil, fmt.Errorf("history of %d %s: movement %d has seq %d", d.ListingID, v.VariantKey, i+1, m.Seq)
				}
				low := m.Balance <= v.LowStockThreshold
				switch {
				case low && open == nil:
					open = &alertView{ListingID: d.ListingID, VariantKey: v.VariantKey, Status: "open", Threshold: v.LowStockThreshold,
						Quantity: m.Balance, RaisedAt: m.OccurredAt}
				case !low && open != nil:
					at, q := m.OccurredAt, m.Balance
					open.Status, open.ClearedAt, open.ClearedQuantity, open.ClearReason = "cleared", &at, &q, "stock_above_threshold"
					out = append(out, *open)
					open = nil
				}
			}
			if open != nil {
				out = append(out, *open)
			}
		}
	}
	slices.SortFunc(out, compareAlertViews)
	return out, reasons, nil
}

func historyPath(listingID int64, key string) string {
	return fmt.Sprintf("/v1/products/%d/variants/%s/history?limit=100", listingID, url.PathEscape(key))
}

// alertPayload is what an alert webhook says about the alert.
type alertPayload struct {
	ShopID     int64     `json:"shop_id"`
	ListingID  int64     `json:"listing_id"`
	VariantKey string    `json:"variant_key"`
	Quantity   int64     `json:"quantity"`
	Threshold  int64     `json:"threshold"`
	RaisedAt   time.Time `json:"raised_at"`
}

func (a apiAlert) payload() alertPayload {
	return alertPayload{ShopID: a.ShopID, ListingID: a.ListingID, VariantKey: a.VariantKey, Quantity: a.Quantity,
		Threshold: a.Threshold, RaisedAt: a.RaisedAt}
}

// deliveryView is what became of one alert: how often the receiver got
// it, what the last one said, and the deliveries the API reports.
type deliveryView struct {
	Received int
	Payload  alertPayload
	Delivery []string // kind:status
}

// alertReceiver is the seller's endpoint for alert webhooks. It keeps every
// request; signatures are checked against the shop's secret.
type alertReceiver struct {
	mu       sync.Mutex
	secret   string
	got      map[string]int          // webhook-id -> requests
	payloads map[string]alertPayload // webhook-id -> last payload
	badSig   []string
}

func (r *alertReceiver) setSecret(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.secret = s
}

func (r *alertReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	id := req.Header.Get(stdwebhooks.HeaderID)
	var p struct {
		Type string       `json:"type"`
		Data alertPayload `json:"data"`
	}
	_ = json.Unmarshal(body, &p)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.got == nil {
		r.got, r.payloads = map[string]int{}, map[string]alertPayload{}
	}
	if err := stdwebhooks.Verify(req.Header, body, []string{r.secret}, time.Now()); err != nil {
		r.badSig = append(r.badSig, fmt.Sprintf("%s: %v", id, err))
	}
	if p.Type != "alert.low_stock_raised" {
		r.badSig = append(r.badSig, fmt.Sprintf("%s: type %q", id, p.Type))
	}
	r.got[id]++
	r.payloads[id] = p.Data
	w.WriteHeader(http.StatusNoContent)
}

func (r *alertReceiver) view(id string) deliveryView {
	r.mu.Lock()
	defer r.mu.Unlock()
	return deliveryView{Received: r.got[id], Payload: r.payloads[id]}
}

// unknown returns the ids received that are none of the alerts.
func (r *alertReceiver) unknown(as []apiAlert) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for id := range r.got {
		if !slices.ContainsFunc(as, func(a apiAlert) bool { return a.AlertID == id }) {
			out = append(out, id)
		}
	}
	return out
}

func (r *alertReceiver) verifyErrors() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.badSig)
}

// snapshot reads what a seller sees of the shop: products, each product,
// every variant's history, sales, each sale, the daily series, top
// products, stock at a fixed instant and alerts, each answer decoded
// generically so that every field counts.
func snapshot(t *testing.T, ctx context.Context, a *apiClient, shopID int64, tr etsysim.Truth) map[string]any {
	t.Helper()
	out := map[string]any{}
	get := func(path string) any {
		t.Helper()
		var v any
		if err := a.get(ctx, path, &v); err != nil {
			t.Fatal(err)
		}
		out[path] = v
		return v
	}
	all := func(path string) []map[string]any {
		t.Helper()
		items, err := pages[map[string]any](ctx, a, path)
		if err != nil {
			t.Fatal(err)
		}
		out[path] = items
		return items
	}
	get("/v1/shops")
	for _, p := range all(fmt.Sprintf("/v1/products?shop_id=%d&limit=100", shopID)) {
		d := get(fmt.Sprintf("/v1/products/%s", p["listing_id"])).(map[string]any)
		vs, _ := d["variants"].([]any)
		for _, v := range vs {
			all(historyPath(mustInt(t, p["listing_id"]), v.(map[string]any)["variant_key"].(string)))
		}
	}
	for _, s := range all(fmt.Sprintf("/v1/sales?shop_id=%d&limit=100", shopID)) {
		get(fmt.Sprintf("/v1/sales/%s", s["receipt_id"]))
	}
	from, to := tr.Receipts[0].CreatedAt, tr.Receipts[0].CreatedAt
	for _, r := range tr.Receipts {
		if r.CreatedAt.Before(from) {
			from = r.CreatedAt
		}
		if r.CreatedAt.After(to) {
			to = r.CreatedAt
		}
	}
	days := fmt.Sprintf("from=%s&to=%s", from.UTC().Format(time.DateOnly), to.UTC().AddDate(0, 0, 1).Format(time.DateOnly))
	get(fmt.Sprintf("/v1/shops/%d/sales/daily?%s", shopID, days))
	get(fmt.Sprintf("/v1/shops/%d/top-products?by=units&%s", shopID, days))
	get(fmt.Sprintf("/v1/shops/%d/top-products?by=revenue&%s", shopID, days))
	asOf := to.UTC().Add(time.Hour).Format(time.RFC3339)
	all(fmt.Sprintf("/v1/shops/%d/stock?as_of=%s&limit=100", shopID, asOf))
	all(fmt.Sprintf("/v1/alerts?shop_id=%d&limit=100", shopID))
	return out
}

func mustInt(t *testing.T, v any) int64 {
	t.Helper()
	n, ok := v.(json.Number)
	if !ok {
		t.Fatalf("%v is not a number", v)
	}
	i, err := n.Int64()
	if err != nil {
		t.Fatal(err)
	}
	return i
}

func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	return hex.EncodeToString(randomBytes(t, n))
}
