// Package projtest holds what the projections' and the engine's tests
// share: a runner started for a test, waiting until consumer groups caught
// up, a generated log that exercises every read model, and comparing live
// tables with rebuilt ones.
package projtest

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/projections"
	"github.com/shopledger/shopledger/projections/engine"
)

// T0 is when generated logs start.
var T0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// Logger logs warnings and errors to the test's log.
func Logger(t testing.TB) *slog.Logger {
	t.Helper()
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// FastConfig polls often so that tests converge quickly.
func FastConfig() engine.RunnerConfig {
	return engine.RunnerConfig{
		BatchSize:     200,
		PollInterval:  20 * time.Millisecond,
		AckDeadline:   30 * time.Second,
		RetryInterval: 200 * time.Millisecond,
	}
}

// StartRunner runs projs until the test ends (or stop is called) and
// returns the runner and its stop function.
func StartRunner(t *testing.T, db *sql.DB, projs []engine.Projection, cfg engine.RunnerConfig, reg prometheus.Registerer) (*engine.Runner, func()) {
	t.Helper()
	r, err := engine.NewRunner(db, projs, cfg, Logger(t), reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("runner: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Error("runner did not stop")
		}
	}
	t.Cleanup(stop)
	return r, stop
}

// WaitCaughtUp waits until every group committed an offset at the log's
// last event.
func WaitCaughtUp(t *testing.T, db *sql.DB, groups []string, within time.Duration) {
	t.Helper()
	WaitCaughtUpOr(t, db, groups, within, func() string { return "" })
}

// WaitCaughtUpOr is WaitCaughtUp that adds more(), such as a child's logs,
// to the failure.
func WaitCaughtUpOr(t *testing.T, db *sql.DB, groups []string, within time.Duration, more func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		lags, err := engine.GroupLag(context.Background(), db, groups, projections.NewSeal())
		if err != nil {
			t.Fatal(err)
		}
		behind := []string{}
		for _, l := range lags {
			if l.Events > 0 {
				behind = append(behind, fmt.Sprintf("%s: %d", l.Group, l.Events))
			}
		}
		if len(behind) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("projections still behind after %s: %s\n%s", within, strings.Join(behind, ", "), more())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Names lists the projections' names, their consumer groups.
func Names(projs []engine.Projection) []string {
	out := make([]string, len(projs))
	for i, p := range projs {
		out[i] = p.Name()
	}
	return out
}

// AppendAll appends each batch in one append.
func AppendAll(t testing.TB, s *eventstore.Store, batches []Batch) {
	t.Helper()
	for _, b := range batches {
		if _, err := s.Append(context.Background(), b.Stream, eventstore.Any, b.Events...); err != nil {
			t.Fatalf("append %s: %v", b.Stream, err)
		}
	}
}

// Batch is events appended together to one stream.
type Batch struct {
	Stream string
	Events []events.Event
}

// World generates a realistic, deterministic mix of shop, listing, stock
// and receipt facts, including the awkward ones: variants removed from a
// listing, stale descriptions, refunds, cancellations, thresholds at every
// scope and evidence events the read models ignore.
type World struct {
	rng      *rand.Rand
	at       time.Time
	shops    []int64
	listings []*genListing
	receipts []*genReceipt
	nextID   int64
	seq      int
}

type genListing struct {
	id, shop int64
	variants []string
	updated  time.Time
}

type genReceipt struct {
	id, shop int64
	items    []events.SaleItem
	total    int64
	state    int // 0 recorded, 1 paid, 2 shipped, 3 delivered, 4 canceled
}

// NewWorld starts a generated world of shops, seeded for repeatable
// logs.
func NewWorld(seed uint64, shops int) *World {
	w := &World{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), at: T0, nextID: 1000}
	for i := range shops {
		w.shops = append(w.shops, int64(100+i))
	}
	return w
}

func (w *World) id() int64 { w.nextID++; return w.nextID }

func (w *World) tick() time.Time {
	w.at = w.at.Add(time.Duration(1+w.rng.IntN(90)) * time.Second)
	return w.at
}

func (w *World) ev(stream string, shop int64, p events.Payload) events.Event {
	w.seq++
	return events.New(stream, shop, w.tick(), p).WithMetadata(events.Metadata{Source: "test", CorrelationID: fmt.Sprint(w.seq)})
}

// NewLog creates a fresh ledger database and a store on it, and appends
// the start of a world seeded with seed: shops shops connected, each with
// listingsPerShop listings imported.
func NewLog(t *testing.T, seed uint64, shops, listingsPerShop int) (*pgtest.Database, *eventstore.Store, *World) {
	t.Helper()
	db := pgtest.New(t)
	s := eventstore.New(db.DB)
	w := NewWorld(seed, shops)
	AppendAll(t, s, w.Start(listingsPerShop))
	return db, s, w
}

// Start connects the shops and imports listingsPerShop listings each.
func (w *World) Start(listingsPerShop int) []Batch {
	var out []Batch
	for _, s := range w.shops {
		out = append(out, Batch{events.ShopStream(s), []events.Event{w.ev(events.ShopStream(s), s, events.ShopConnected{ShopID: s, ShopName: fmt.Sprintf("shop %d", s), UserID: s * 10, Currency: "EUR", Scopes: []string{"listings_r", "transactions_r"}})}})
		for range listingsPerShop {
			out = append(out, w.importListing(s))
		}
	}
	return out
}

func (w *World) importListing(shop int64) Batch {
	l := &genListing{id: w.id(), shop: shop}
	n := 1 + w.rng.IntN(3)
	var vs []events.Variant
	for i := range n {
		key := fmt.Sprintf("sku:L%d-%d", l.id, i)
		l.variants = append(l.variants, key)
		vs = append(vs, events.Variant{Key: key, SKU: key[4:], ProductID: w.id(), Properties: fmt.Sprintf("Size: %d", i), Price: events.Money{Amount: 1000 + int64(i)*100, Currency: "EUR"}, Enabled: true})
	}
	w.listings = append(w.listings, l)
	stream := events.ListingStream(l.id)
	at := w.tick()
	l.updated = at
	evs := []events.Event{events.New(stream, shop, at, events.ListingImported{ListingID: l.id, ShopID: shop, Title: fmt.Sprintf("Listing %d", l.id), State: "active", URL: fmt.Sprintf("https://etsy.example/listing/%d", l.id), Price: events.Money{Amount: 1000, Currency: "EUR"}, Variants: vs, EtsyUpdatedAt: at})}
	for _, key := range l.variants {
		evs = append(evs, w.ev(stream, shop, events.StockAdjusted{ListingID: l.id, VariantKey: key, Delta: int64(5 + w.rng.IntN(20)), Reason: events.ReasonInitialImport, Cause: "reconciliation"}))
	}
	return Batch{stream, evs}
}

// step returns the next few facts.
func (w *World) step() []Batch {
	l := w.listings[w.rng.IntN(len(w.listings))]
	stream := events.ListingStream(l.id)
	key := l.variants[w.rng.IntN(len(l.variants))]
	switch k := w.rng.IntN(100); {
	case k < 35:
		return w.sale()
	case k < 50 && len(w.receipts) > 0:
		return w.advanceReceipt()
	case k < 58:
		return []Batch{{stream, []events.Event{w.ev(stream, l.shop, events.StockAdjusted{ListingID: l.id, VariantKey: key, Delta: int64(1 + w.rng.IntN(10)), Reason: events.ReasonRestock, Cause: "actor:token:abc"})}}}
	case k < 62:
		q := map[string]int64{}
		for _, v := range l.variants {
			q[v] = int64(w.rng.IntN(30))
		}
		return []Batch{{stream, []events.Event{w.ev(stream, l.shop, events.StockEditPushed{CommandIDs: []string{fmt.Sprint("c", w.seq)}, Attempt: 1, ListingID: l.id, Quantities: q})}}}
	case k < 64:
		return []Batch{{stream, []events.Event{w.ev(stream, l.shop, events.StockObserved{ListingID: l.id, VariantKey: key, Quantity: int64(w.rng.IntN(30)), ObservedAt: w.at, Source: "reconciliation"})}}}
	case k < 67:
		return []Batch{{stream, []events.Event{
			w.ev(stream, l.shop, events.StockDriftDetected{ListingID: l.id, VariantKey: key, Expected: 4, Observed: 3}),
			w.ev(stream, l.shop, events.StockAdjusted{ListingID: l.id, VariantKey: key, Delta: -1, Reason: events.ReasonEtsyChange, Cause: "webhook:msg_" + fmt.Sprint(w.seq)}),
		}}}
	case k < 71:
		scope := []string{events.ScopeVariant, events.ScopeListing, events.ScopeShop}[w.rng.IntN(3)]
		p := events.StockThresholdSet{Scope: scope, ShopID: l.shop, Threshold: int64(w.rng.IntN(8)), Actor: "token:t1"}
		if scope != events.ScopeShop {
			p.ListingID = l.id
		}
		if scope == events.ScopeVariant {
			p.VariantKey = key
		}
		return []Batch{{stream, []events.Event{w.ev(stream, l.shop, p)}}}
	case k < 75:
		return []Batch{w.updateListing(l)}
	case k < 77:
		to := []string{"active", "sold_out", "inactive"}[w.rng.IntN(3)]
		return []Batch{{stream, []events.Event{w.ev(stream, l.shop, events.ListingStateChanged{ListingID: l.id, From: "active", To: to})}}}
	case k < 78:
		return []Batch{w.importListing(l.shop)}
	case k < 79:
		s := l.shop
		th := int64(w.rng.IntN(6))
		on := w.rng.IntN(2) == 0
		return []Batch{{events.ShopStream(s), []events.Event{w.ev(events.ShopStream(s), s, events.ShopSettingsChanged{ShopID: s, SyncEnabled: &on, DefaultLowStockThreshold: &th, AlertChannels: []events.AlertChannel{{Kind: "email", Target: "a@example.com"}}})}}}
	case k < 81:
		s := l.shop
		return []Batch{{events.ShopStream(s), []events.Event{w.ev(events.ShopStream(s), s, events.ReconciliationCompleted{ShopID: s, StartedAt: w.at, FinishedAt: w.at.Add(time.Second), Watermark: w.at, ReceiptsSeen: w.rng.IntN(9), ListingsSeen: 3, APICalls: 4, DurationMillis: 1000, Scope: "all"})}}}
	default:
		id := fmt.Sprintf("msg_%d_%d", w.seq, w.rng.Uint32())
		return []Batch{{events.WebhookStream(id), []events.Event{w.ev(events.WebhookStream(id), l.shop, events.WebhookReceived{WebhookID: id, Timestamp: w.at.Unix(), EtsyEventType: "order.paid", ResourceURL: "https://openapi.etsy.com/v3/application/shops/1/receipts/2", ShopID: l.shop, Headers: map[string]string{"webhook-id": id}, RawBody: []byte(`{"event_type":"order.paid"}`), ReceivedAt: w.at})}}}
	}
}

func (w *World) updateListing(l *genListing) Batch {
	stream := events.ListingStream(l.id)
	if w.rng.IntN(3) == 0 && len(l.variants) > 1 {
		l.variants = l.variants[:len(l.variants)-1] // a variant goes away
	} else if w.rng.IntN(3) == 0 {
		l.variants = append(l.variants, fmt.Sprintf("listing:%d:%d", l.id, w.id()))
	}
	var vs []events.Variant
	for i, key := range l.variants {
		vs = append(vs, events.Variant{Key: key, ProductID: w.id(), Properties: fmt.Sprintf("Size: %d", i), Price: events.Money{Amount: 1100, Currency: "EUR"}, Enabled: w.rng.IntN(5) > 0})
	}
	at := w.tick()
	etsyAt := at
	if w.rng.IntN(6) == 0 {
		etsyAt = l.updated.Add(-time.Minute) // a stale poll answer
	} else {
		l.updated = at
	}
	return Batch{stream, []events.Event{events.New(stream, l.shop, at, events.ListingUpdated{ListingID: l.id, ShopID: l.shop, Title: fmt.Sprintf("Listing %d v%d", l.id, w.seq), State: "active", Price: events.Money{Amount: 1100, Currency: "EUR"}, Variants: vs, EtsyUpdatedAt: etsyAt})}}
}

func (w *World) sale() []Batch {
	shop := w.shops[w.rng.IntN(len(w.shops))]
	r := &genReceipt{id: w.id(), shop: shop}
	var out []Batch
	for range 1 + w.rng.IntN(3) {
		l := w.listings[w.rng.IntN(len(w.listings))]
		if l.shop != shop {
			continue
		}
		key := l.variants[w.rng.IntN(len(l.variants))]
		it := events.SaleItem{TransactionID: w.id(), ListingID: l.id, VariantKey: key, SKU: key, Title: "item", Quantity: int64(1 + w.rng.IntN(3)), UnitPrice: events.Money{Amount: 1250, Currency: "EUR"}}
		r.items = append(r.items, it)
		r.total += it.Quantity * it.UnitPrice.Amount
		ls := events.ListingStream(l.id)
		out = append(out, Batch{ls, []events.Event{w.ev(ls, shop, events.StockSold{ListingID: l.id, VariantKey: key, Quantity: it.Quantity, ReceiptID: r.id, TransactionID: it.TransactionID}).WithDedupe(fmt.Sprintf("etsy-txn:%d:sold", it.TransactionID))}})
	}
	if len(r.items) == 0 {
		return nil
	}
	w.receipts = append(w.receipts, r)
	rs := events.ReceiptStream(r.id)
	eur := func(n int64) events.Money { return events.Money{Amount: n, Currency: "EUR"} }
	rec := w.ev(rs, shop, events.SaleRecorded{ReceiptID: r.id, ShopID: shop, Status: "open", Items: r.items, Subtotal: eur(r.total), Shipping: eur(400), Tax: eur(0), Discount: eur(0), GrandTotal: eur(r.total + 400), CreatedAt: w.at, EtsyUpdatedAt: w.at})
	return append([]Batch{{rs, []events.Event{rec}}}, out...)
}

func (w *World) advanceReceipt() []Batch {
	r := w.receipts[w.rng.IntN(len(w.receipts))]
	rs := events.ReceiptStream(r.id)
	var p events.Payload
	switch {
	case r.state == 4:
		return nil
	case w.rng.IntN(12) == 0:
		r.state = 4
		var out []Batch
		out = append(out, Batch{rs, []events.Event{w.ev(rs, r.shop, events.SaleCanceled{ReceiptID: r.id, Reason: "buyer"})}})
		for _, it := range r.items {
			ls := events.ListingStream(it.ListingID)
			out = append(out, Batch{ls, []events.Event{w.ev(ls, r.shop, events.StockAdjusted{ListingID: it.ListingID, VariantKey: it.VariantKey, Delta: it.Quantity, Reason: events.ReasonCancellation, Cause: fmt.Sprintf("receipt:%d", r.id)})}})
		}
		return out
	case w.rng.IntN(10) == 0:
		p = events.SaleRefunded{ReceiptID: r.id, Amount: events.Money{Amount: r.total / 2, Currency: "EUR"}, Reason: "broken", RefundKey: fmt.Sprint(w.seq)}
	case r.state == 0:
		r.state, p = 1, events.SalePaid{ReceiptID: r.id}
	case r.state == 1:
		r.state, p = 2, events.SaleShipped{ReceiptID: r.id, Carrier: "dhl", TrackingCode: fmt.Sprintf("T%d", r.id)}
	case r.state == 2:
		r.state, p = 3, events.SaleDelivered{ReceiptID: r.id}
	default:
		return nil
	}
	return []Batch{{rs, []events.Event{w.ev(rs, r.shop, p)}}}
}

// Generate returns about n events' worth of batches after the start.
func (w *World) Generate(n int) []Batch {
	var out []Batch
	count := 0
	for count < n {
		for _, b := range w.step() {
			out = append(out, b)
			count += len(b.Events)
		}
	}
	return out
}

// Coalesce merges the batches of each window by stream, keeping each
// stream's order, so that a test can append many events quickly.
func Coalesce(bs []Batch, window int) []Batch {
	var out []Batch
	for start := 0; start < len(bs); start += window {
		end := min(start+window, len(bs))
		index := map[string]int{}
		for _, b := range bs[start:end] {
			i, ok := index[b.Stream]
			if !ok {
				i = len(out)
				index[b.Stream] = i
				out = append(out, Batch{Stream: b.Stream})
			}
			out[i].Events = append(out[i].Events, b.Events...)
		}
	}
	return out
}

// Rebuildable returns the default read models that can be rebuilt, and
// their tables.
func Rebuildable(t *testing.T) ([]engine.Rebuildable, []string) {
	t.Helper()
	var out []engine.Rebuildable
	var tables []string
	for _, p := range projections.Default() {
		if rb, ok := p.(engine.Rebuildable); ok {
			out = append(out, rb)
			tables = append(tables, rb.Tables()...)
		}
	}
	return out, tables
}

// RebuildShadow rebuilds targets into their shadow tables (NoSwap) once
// the rebuild has read every event of their types the log holds.
// log_horizon() may stop one short for a moment: a transaction of any
// database on the cluster that ends between the function's snapshot and
// its look at the lock table counts as a possible appender (passing it
// could skip its events), and a rebuild stops at the horizon. So a
// rebuild that read fewer is run again, up to five times.
func RebuildShadow(t testing.TB, pool *pgxpool.Pool, db *sql.DB, targets []engine.Rebuildable) engine.RebuildReport {
	t.Helper()
	ctx := context.Background()
	var types []string
	for _, typ := range events.Types() {
		if slices.ContainsFunc(targets, func(p engine.Rebuildable) bool { return p.Handles(typ) }) {
			types = append(types, typ)
		}
	}
	want, err := eventstore.CountOfTypes(ctx, db, types)
	if err != nil {
		t.Fatal(err)
	}
	for attempt := 1; ; attempt++ {
		rep, err := engine.Rebuild(ctx, pool, targets, engine.RebuildOptions{NoSwap: true}, Logger(t))
		if err != nil {
			t.Fatal(err)
		}
		if rep.Events == want || attempt == 5 {
			return rep
		}
		t.Logf("rebuild %d read %d of %d events: the horizon was held back for a moment; again", attempt, rep.Events, want)
	}
}

// ExceptBothWays returns how many rows of a are not in b and of b not in a
// (as multisets), with a sample row of each side.
func ExceptBothWays(t *testing.T, db *sql.DB, a, b string) (onlyA, onlyB int, sample string) {
	t.Helper()
	for _, dir := range [][2]string{{a, b}, {b, a}} {
		var n int
		var row sql.NullString
		err := db.QueryRow(fmt.Sprintf(`SELECT count(*), min(x::text) FROM (SELECT * FROM %s EXCEPT ALL SELECT * FROM %s) x`, dir[0], dir[1])).Scan(&n, &row)
		if err != nil {
			t.Fatal(err)
		}
		if dir[0] == a {
			onlyA = n
		} else {
			onlyB = n
		}
		if row.Valid {
			sample += fmt.Sprintf("\n  only in %s: %s", dir[0], row.String)
		}
	}
	return onlyA, onlyB, sample
}

// RequireSameTables fails t unless each of tables holds the same rows as
// its copy with suffix (a rebuild's shadow), and is not empty.
func RequireSameTables(t *testing.T, db *sql.DB, tables []string, suffix string) {
	t.Helper()
	for _, table := range tables {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		onlyLive, onlyRebuilt, sample := ExceptBothWays(t, db, table, table+suffix)
		if onlyLive != 0 || onlyRebuilt != 0 {
			t.Errorf("%s: %d rows only live, %d only rebuilt (of %d)%s", table, onlyLive, onlyRebuilt, n, sample)
		}
		if n == 0 && table != "sale_items" {
			t.Errorf("%s is empty: the test proves nothing about it", table)
		}
	}
}
