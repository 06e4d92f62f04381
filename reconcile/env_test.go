package reconcile_test

import (
	"context"
	"encoding/base64"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopledger/shopledger/domain"
	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/etsy/etsysim"
	"github.com/shopledger/shopledger/etsymap"
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/reconcile"
	"github.com/shopledger/shopledger/service/servicetest"
	"github.com/shopledger/shopledger/shops"
)

var simStart = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// env is one test's world: a database, a simulated Etsy over loopback HTTP
// (optionally behind a fault-injecting front), the real credential store
// and translator, and a reconciler. Logs are checked for tokens at the
// end.
type env struct {
	t      *testing.T
	db     *pgtest.Database
	sim    *etsysim.Sim
	front  *front
	srv    *httptest.Server
	client *etsy.Client
	es     *eventstore.Store
	store  *shops.Store
	tr     *etsymap.Translator
	rec    *reconcile.Reconciler
	reg    *prometheus.Registry
	logs   *servicetest.Output
	key    shops.Key

	mu      sync.Mutex
	secrets []string
}

type envOptions struct {
	sim             etsysim.Options
	clientQPS       int
	defaultInterval time.Duration
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	e := &env{t: t, db: pgtest.New(t), logs: &servicetest.Output{}, reg: prometheus.NewRegistry()}
	o.sim.Seed = 11
	if o.sim.Start.IsZero() {
		o.sim.Start = simStart
	}
	o.sim.FreezeClock = true
	e.front = &front{}
	e.srv = httptest.NewServer(e.front)
	t.Cleanup(e.srv.Close)
	// Webhooks' resource_url values point back through the front.
	o.sim.PublicURL = e.srv.URL
	sim, err := etsysim.New(o.sim)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	e.sim = sim
	e.front.next = sim
	limiter, err := etsy.NewLimiter(etsy.LimiterConfig{QPS: o.clientQPS, QPD: 100000, Now: sim.Now}, e.reg)
	if err != nil {
		t.Fatal(err)
	}
	e.client, err = etsy.NewClient(etsy.Config{
		BaseURL: e.srv.URL, KeyString: etsysim.DefaultKeyString, SharedSecret: etsysim.DefaultSharedSecret,
		Limiter: limiter, Logger: e.logger(), MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
	}, e.reg)
	if err != nil {
		t.Fatal(err)
	}
	e.key, err = shops.GenerateKey("k1")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := shops.NewKeyring(e.key)
	if err != nil {
		t.Fatal(err)
	}
	e.es = eventstore.New(e.db.DB)
	e.store, err = shops.NewStore(shops.Config{
		DB: e.db.DB, Events: e.es, Keys: keys, Logger: e.logger(), Now: sim.Now,
		OAuth: etsy.OAuthConfig{ClientID: etsysim.DefaultKeyString, TokenURL: e.srv.URL + "/v3/public/oauth/token", Now: sim.Now},
	}, e.reg)
	if err != nil {
		t.Fatal(err)
	}
	e.tr, err = etsymap.NewTranslator(e.es, sim.Now, e.reg)
	if err != nil {
		t.Fatal(err)
	}
	e.rec, err = reconcile.New(reconcile.Config{
		DB: e.db.DB, Events: e.es, Client: e.client, Tokens: e.store, Translator: e.tr,
		Logger: e.logger(), Now: sim.Now, DefaultInterval: o.defaultInterval,
	}, e.reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.checkLogs)
	return e
}

func (e *env) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// checkLogs fails the test if a token or key reached a log.
func (e *env) checkLogs() {
	logs := e.logs.String()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range append(e.secrets, base64.StdEncoding.EncodeToString(e.key.Secret)) {
		_, opaque, _ := strings.Cut(s, ".")
		if opaque == "" {
			opaque = s
		}
		if strings.Contains(logs, opaque) {
			e.t.Errorf("a secret value appears in the logs")
		}
	}
	if strings.Contains(logs, "whsec_") {
		e.t.Errorf("a webhook secret appears in the logs")
	}
}

// shop creates a shop with a catalogue at the simulator and connects it.
func (e *env) shop(name string, listings int) etsysim.ShopInfo {
	e.t.Helper()
	info, err := e.sim.CreateShop(etsysim.ShopSpec{Name: name, Currency: "EUR"})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.sim.GenerateCatalogue(info.ShopID, listings); err != nil {
		e.t.Fatal(err)
	}
	tok, err := e.sim.IssueToken(info.ShopID, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	e.mu.Lock()
	e.secrets = append(e.secrets, tok.AccessToken, tok.RefreshToken)
	e.mu.Unlock()
	if _, err := e.store.Connect(context.Background(), shops.Grant{
		Shop:  etsy.Shop{ShopID: info.ShopID, UserID: info.UserID, ShopName: info.Name, CurrencyCode: info.Currency},
		Token: tok, Scopes: shops.DefaultScopes(),
	}, events.Metadata{Actor: "test"}); err != nil {
		e.t.Fatal(err)
	}
	return info
}

// steps drives the simulated shops: n scenario steps of the given kinds in
// turn, the clock moving gap between them.
func (e *env) steps(n int, gap time.Duration, kinds ...string) {
	e.t.Helper()
	for i := range n {
		kind := kinds[i%len(kinds)]
		if _, err := e.sim.ScenarioStep(kind, etsysim.Scenario{LowStock: 5}); err != nil && !strings.Contains(err.Error(), "nothing to do") {
			e.t.Fatalf("scenario step %s: %v", kind, err)
		}
		e.sim.Advance(gap)
	}
}

func (e *env) run(shopID int64, scope reconcile.Scope) reconcile.Summary {
	e.t.Helper()
	sum, err := e.rec.Run(context.Background(), shopID, scope)
	if err != nil {
		e.t.Fatalf("reconcile shop %d: %v", shopID, err)
	}
	return sum
}

func (e *env) eventCount() int {
	e.t.Helper()
	var n int
	if err := e.db.DB.QueryRow(`SELECT count(*) FROM events`).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// ledger is what the event log says about a shop, folded the way the
// domain folds it.
type ledger struct {
	Stock    map[string]int64 // "<listing id>/<variant key>" → balance
	Deleted  []int64
	Receipts map[int64]receipt
}

// receipt holds the facts the ledger and the simulator must agree on.
type receipt struct {
	Paid, Shipped, Delivered, Canceled bool
	Subtotal, Shipping, Tax, Discount  int64
	GrandTotal, Refunded               int64
	Currency                           string
	Items                              []item
}

type item struct {
	TransactionID, ListingID int64
	VariantKey               string
	Quantity, UnitPrice      int64
}

func stockKey(listingID int64, variant string) string {
	return strconv.FormatInt(listingID, 10) + "/" + variant
}

func (e *env) ledger(shopID int64) ledger {
	e.t.Helper()
	rows, err := e.db.DB.Query(`SELECT `+eventstore.RecordColumns+` FROM events WHERE shop_id = $1 ORDER BY position`, shopID)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	byListing := map[int64][]events.Record{}
	l := ledger{Stock: map[string]int64{}, Receipts: map[int64]receipt{}}
	updateReceipt := func(id int64, update func(*receipt)) {
		r := l.Receipts[id]
		update(&r)
		l.Receipts[id] = r
	}
	for rows.Next() {
		rec, err := eventstore.ScanRecord(rows)
		if err != nil {
			e.t.Fatal(err)
		}
		toListing := func(id int64) { byListing[id] = append(byListing[id], rec) }
		switch d := rec.Data.(type) {
		case events.ListingImported:
			toListing(d.ListingID)
		case events.ListingUpdated:
			toListing(d.ListingID)
		case events.ListingStateChanged:
			toListing(d.ListingID)
		case events.ListingDeleted:
			toListing(d.ListingID)
		case events.StockSold:
			toListing(d.ListingID)
		case events.StockAdjusted:
			toListing(d.ListingID)
		case events.SaleRecorded:
			updateReceipt(d.ReceiptID, func(r *receipt) {
				r.Subtotal, r.Shipping, r.Tax, r.Discount, r.GrandTotal = d.Subtotal.Amount, d.Shipping.Amount, d.Tax.Amount, d.Discount.Amount, d.GrandTotal.Amount
				r.Currency = d.GrandTotal.Currency
				for _, it := range d.Items {
					r.Items = append(r.Items, item{it.TransactionID, it.ListingID, it.VariantKey, it.Quantity, it.UnitPrice.Amount})
				}
			})
		case events.SalePaid:
			updateReceipt(d.ReceiptID, func(r *receipt) { r.Paid = true })
		case events.SaleShipped:
			updateReceipt(d.ReceiptID, func(r *receipt) { r.Shipped = true })
		case events.SaleDelivered:
			updateReceipt(d.ReceiptID, func(r *receipt) { r.Delivered = true })
		case events.SaleCanceled:
			updateReceipt(d.ReceiptID, func(r *receipt) { r.Canceled = true })
		case events.SaleRefunded:
			updateReceipt(d.ReceiptID, func(r *receipt) { r.Refunded += d.Amount.Amount })
		}
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	for id, recs := range byListing {
		dl := domain.ReplayListing(id, recs)
		if dl.Deleted() {
			l.Deleted = append(l.Deleted, id)
			continue
		}
		for key, bal := range dl.Balances() {
			if bal != 0 {
				l.Stock[stockKey(id, key)] = bal
			}
		}
	}
	slices.Sort(l.Deleted)
	for id, r := range l.Receipts {
		slices.SortFunc(r.Items, func(a, b item) int { return int(a.TransactionID - b.TransactionID) })
		l.Receipts[id] = r
	}
	return l
}

// truth is the same picture from the simulator.
func (e *env) truth(shopID int64) ledger {
	t := e.sim.Truth(shopID)
	l := ledger{Stock: map[string]int64{}, Receipts: map[int64]receipt{}}
	for _, lt := range t.Listings {
		if lt.Deleted {
			l.Deleted = append(l.Deleted, lt.ListingID)
			continue
		}
		for _, v := range lt.Variants {
			if v.Enabled && v.Quantity != 0 {
				l.Stock[stockKey(lt.ListingID, v.VariantKey)] += int64(v.Quantity)
			}
		}
	}
	slices.Sort(l.Deleted)
	for _, rt := range t.Receipts {
		r := receipt{
			Paid: rt.IsPaid, Shipped: rt.IsShipped, Delivered: rt.IsDelivered, Canceled: rt.IsCanceled,
			Subtotal: rt.Subtotal, Shipping: rt.ShippingCost, Tax: rt.TaxCost, Discount: rt.Discount,
			GrandTotal: rt.GrandTotal, Refunded: rt.Refunded, Currency: rt.Currency,
		}
		for _, it := range rt.Items {
			r.Items = append(r.Items, item{it.TransactionID, it.ListingID, it.VariantKey, int64(it.Quantity), it.Price})
		}
		slices.SortFunc(r.Items, func(a, b item) int { return int(a.TransactionID - b.TransactionID) })
		l.Receipts[rt.ReceiptID] = r
	}
	return l
}

// assertLedgerEqualsTruth compares stock per variant, deleted listings
// and receipts (status facts, totals, lines).
func (e *env) assertLedgerEqualsTruth(shopID int64) {
	e.t.Helper()
	want, got := e.truth(shopID), e.ledger(shopID)
	if len(want.Stock) == 0 || len(want.Receipts) == 0 {
		e.t.Fatalf("the simulator's shop %d has %d stocked variants and %d receipts: the comparison would prove little", shopID, len(want.Stock), len(want.Receipts))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		e.t.Errorf("ledger of shop %d differs from the simulator (-want +got):\n%s", shopID, diff)
	}
}

// front sits between the client and the simulator, counting requests and
// answering some with faults.
type front struct {
	next http.Handler

	mu       sync.Mutex
	requests int
	// fault, when set, may answer a request instead of the simulator.
	fault func(n int, r *http.Request) (status int, header http.Header, body string, ok bool)
	// arrivals records when each request arrived (monotonic clock).
	arrivals []time.Time
	faulted  []int // request numbers answered with a fault
}

func (f *front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests++
	n := f.requests
	f.arrivals = append(f.arrivals, time.Now())
	fault := f.fault
	f.mu.Unlock()
	if fault != nil && strings.HasPrefix(r.URL.Path, "/v3/application/") {
		if status, h, body, ok := fault(n, r); ok {
			f.mu.Lock()
			f.faulted = append(f.faulted, n)
			f.mu.Unlock()
			for k, vs := range h {
				w.Header()[k] = vs
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = w.Write([]byte(body))
			return
		}
	}
	f.next.ServeHTTP(w, r)
}
