package stockedits_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/shopledger/shopledger/domain"
	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/etsy/etsysim"
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/stockedits"
)

// A count pushed after a sale the seller had not seen keeps the sale, and
// every other variant comes back from Etsy unchanged, field by field.
func TestCountKeepsSaleAndOtherVariants(t *testing.T) {
	e := newEnv(t)
	l := e.listing(5, 7, 9)
	keyS, keyM, keyL := "sku:MUG-S", "sku:MUG-M", "sku:MUG-L"
	before := e.truth(l.ListingID)

	e.order(l.ListingID, keyS, 1) // at Etsy, not yet in the ledger
	rec := e.submit(l.ListingID, domain.EditCommand{Kind: events.EditCount, VariantKey: keyS, Quantity: 10}, "req-1")
	if rec.Command.Delta != 5 || rec.Command.BalanceAtCommand != 5 {
		t.Fatalf("count recorded delta %d against balance %d, want 5 against 5", rec.Command.Delta, rec.Command.BalanceAtCommand)
	}
	e.drain()

	if got := e.variant(l.ListingID, keyS).Quantity; got != 9 {
		t.Errorf("Etsy's quantity after count 10 with one sale since = %d, want 9", got)
	}
	after := e.truth(l.ListingID)
	ignoreIDs := cmpopts.IgnoreFields(etsysim.VariantTruth{}, "ProductID", "OfferingID")
	for i, v := range after.Variants {
		if v.VariantKey == keyS {
			continue
		}
		if diff := cmp.Diff(before.Variants[i], v, ignoreIDs); diff != "" {
			t.Errorf("variant %s changed (-before +after):\n%s", v.VariantKey, diff)
		}
		if v.ProductID == before.Variants[i].ProductID {
			t.Errorf("variant %s kept product id %d; Etsy regenerates them on a write", v.VariantKey, v.ProductID)
		}
	}
	_ = keyM
	_ = keyL

	// The pushed event carries Etsy's new product ids.
	var pushed events.StockEditPushed
	for _, r := range e.stream(l.ListingID) {
		if p, ok := r.Data.(events.StockEditPushed); ok {
			pushed = p
		}
	}
	if pushed.ProductIDs[keyS] != e.variant(l.ListingID, keyS).ProductID || pushed.Quantities[keyS] != 9 {
		t.Errorf("pushed = %+v, want Etsy's product id %d and quantity 9", pushed, e.variant(l.ListingID, keyS).ProductID)
	}

	// The echo: reconciliation records the sale and finds no drift and no
	// second movement for our write.
	sum := e.reconcile()
	if sum.DriftFound != 0 {
		t.Errorf("reconciliation after our own write found %d drift", sum.DriftFound)
	}
	if got := e.balance(l.ListingID, keyS); got != 9 {
		t.Errorf("ledger balance = %d, want 9", got)
	}
	var edits, etsyChanges int
	for _, r := range e.stream(l.ListingID) {
		if a, ok := r.Data.(events.StockAdjusted); ok && a.VariantKey == keyS {
			switch {
			case a.Reason == events.EditCount:
				edits++
			case a.Reason == events.ReasonEtsyChange:
				etsyChanges++
			}
		}
	}
	if edits != 1 || etsyChanges != 0 {
		t.Errorf("movements of %s: %d count, %d etsy_change; want 1 and 0", keyS, edits, etsyChanges)
	}

	// A genuine edit at Etsy afterwards is drift.
	if _, err := e.sim.RestockListing(l.ListingID, etsysim.Restock{VariantKey: keyM, Delta: 2}); err != nil {
		t.Fatal(err)
	}
	if sum := e.reconcile(); sum.DriftFound != 1 {
		t.Errorf("an edit made at Etsy gave %d drift, want 1", sum.DriftFound)
	}
}

// answerLost applies the first inventory write at Etsy, then reports a
// broken connection and fails every read while down is set, so the push
// stays open with its outcome unknown.
type answerLost struct {
	stockedits.EtsyAPI
	mu   sync.Mutex
	done bool
	down bool
}

func (a *answerLost) UpdateListingInventory(ctx context.Context, ts etsy.TokenSource, listingID int64, u etsy.InventoryUpdate) (etsy.Inventory, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.done {
		return a.EtsyAPI.UpdateListingInventory(ctx, ts, listingID, u)
	}
	a.done, a.down = true, true
	if _, err := a.EtsyAPI.UpdateListingInventory(ctx, ts, listingID, u); err != nil {
		return etsy.Inventory{}, err
	}
	return etsy.Inventory{}, errors.New("read tcp: connection reset by peer")
}

func (a *answerLost) GetShopTransactions(ctx context.Context, ts etsy.TokenSource, shopID int64, limit, offset int) (etsy.TransactionsPage, error) {
	a.mu.Lock()
	down := a.down
	a.mu.Unlock()
	if down {
		return etsy.TransactionsPage{}, errors.New("dial tcp: connection refused")
	}
	return a.EtsyAPI.GetShopTransactions(ctx, ts, shopID, limit, offset)
}

// While a push is open (written, outcome unknown) observations leave its
// variant alone: the inventory webhook's fetch and a reconciliation add
// no movement and no drift; the push, once resolved, moves the stock
// once.
func TestEchoDuringOpenPushAddsNoMovement(t *testing.T) {
	e := newEnv(t)
	l := e.listing(5, 7)
	key := "sku:MUG-S"
	api := &answerLost{EtsyAPI: e.client}
	p, err := stockedits.NewPusher(stockedits.PusherConfig{DB: e.db.DB, Events: e.es, Etsy: api, Tokens: e.store,
		MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	e.submit(l.ListingID, domain.EditCommand{Kind: events.EditReceived, VariantKey: key, Quantity: 4, SupplierRef: "PO-7"}, "r1")
	if _, err := p.PushOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if e.count(l.ListingID, events.TypeStockEditPushStarted) != 1 || e.count(l.ListingID, events.TypeStockEditPushed) != 0 {
		t.Fatal("want one open push")
	}
	// Etsy's inventory.updated webhook: the fetcher applies the listing.
	listing, err := e.client.GetListing(context.Background(), mustTokens(t, e), l.ListingID, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.tr.ApplyListing(context.Background(), e.shop.ShopID, listing, webhookCause()); err != nil {
		t.Fatal(err)
	}
	e.wantNoDrift(t, "during the open push")
	if got := e.balance(l.ListingID, key); got != 5 {
		t.Errorf("balance while the push is open = %d, want 5 (unchanged)", got)
	}
	api.mu.Lock()
	api.down = false
	api.mu.Unlock()
	time.Sleep(5 * time.Millisecond) // the retry's backoff
	if _, err := p.PushOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := e.variant(l.ListingID, key).Quantity; got != 9 {
		t.Errorf("Etsy's quantity = %d, want 9 (5 + 4 once)", got)
	}
	if got := e.balance(l.ListingID, key); got != 9 {
		t.Errorf("balance after the push = %d, want 9", got)
	}
	if n := e.count(l.ListingID, events.TypeStockObserved); n != 2 {
		t.Errorf("%d stock.observed, want the import's 2 only", n)
	}
	e.wantNoDrift(t, "after the push")
}

// A push whose answer is lost is recognised on the next look and never
// applied twice.
func TestLostAnswerNotAppliedTwice(t *testing.T) {
	e := newEnv(t)
	l := e.listing(5, 7)
	key := "sku:MUG-M"
	e.submit(l.ListingID, domain.EditCommand{Kind: events.EditCorrection, Reason: events.CorrectionFound, VariantKey: key, Quantity: 3}, "r1")
	if err := e.sim.SetAPIFaults(etsysim.APIFaults{DropInventoryWrites: 1}); err != nil {
		t.Fatal(err)
	}
	e.drain()
	e.drain()
	if got := e.variant(l.ListingID, key).Quantity; got != 10 {
		t.Errorf("Etsy's quantity = %d, want 10 (7 + 3 once)", got)
	}
	if n := e.count(l.ListingID, events.TypeStockEditPushed); n != 1 {
		t.Errorf("%d stock.edit_pushed, want 1", n)
	}
	for _, r := range e.stream(l.ListingID) {
		if p, ok := r.Data.(events.StockEditPushed); ok && !p.Recovered {
			t.Errorf("pushed %+v: want it marked recovered (answer lost)", p)
		}
	}
	if got := e.balance(l.ListingID, key); got != 10 {
		t.Errorf("ledger balance = %d, want 10", got)
	}
	e.wantNoDrift(t, "after a recovered push")
}

// Etsy refuses a write that leaves no stock: the push is recorded failed
// with Etsy's message, final, and Etsy is unchanged.
func TestRefusedPushRecordedFailed(t *testing.T) {
	e := newEnv(t)
	l := e.listing(1, 1)
	e.order(l.ListingID, "sku:MUG-M", 1) // Etsy: M sold out; the ledger does not know yet
	before := e.truth(l.ListingID)
	e.submit(l.ListingID, domain.EditCommand{Kind: events.EditCorrection, Reason: events.CorrectionDamaged, VariantKey: "sku:MUG-S", Quantity: -1}, "r1")
	e.drain()
	var failed []events.StockEditFailed
	for _, r := range e.stream(l.ListingID) {
		if f, ok := r.Data.(events.StockEditFailed); ok {
			failed = append(failed, f)
		}
	}
	if len(failed) != 1 || failed[0].Retryable || !strings.Contains(failed[0].Message, "One offering must have quantity greater than 0") {
		t.Fatalf("failed = %+v, want one final failure with Etsy's message", failed)
	}
	if diff := cmp.Diff(before, e.truth(l.ListingID)); diff != "" {
		t.Errorf("Etsy changed after a refused push (-before +after):\n%s", diff)
	}
	var state string
	if err := e.db.DB.QueryRow(`SELECT state FROM stock_edit_outbox`).Scan(&state); err != nil || state != stockedits.StateFailed {
		t.Errorf("outbox state = %q (%v), want failed", state, err)
	}
	if e.count(l.ListingID, events.TypeStockEditPushed) != 0 {
		t.Error("a refused push was recorded as pushed")
	}
}

// Commands are refused before anything is recorded; the zero-stock rule
// holds at command time; a request id is used once; other organisations
// see nothing and roles without write access may not edit.
func TestSubmitRules(t *testing.T) {
	e := newEnv(t)
	l := e.listing(2, 0)
	ctx := context.Background()
	cases := []struct {
		name string
		a    stockedits.Actor
		c    domain.EditCommand
		want error
	}{
		{"auditor", stockedits.Actor{Name: "token:x", Shops: []int64{e.shop.ShopID}}, domain.EditCommand{Kind: events.EditReceived, VariantKey: "sku:MUG-S", Quantity: 1}, stockedits.ErrForbidden},
		{"other organisation", stockedits.Actor{Name: "token:y", Shops: []int64{999}, CanEdit: true}, domain.EditCommand{Kind: events.EditReceived, VariantKey: "sku:MUG-S", Quantity: 1}, stockedits.ErrNotFound},
		{"unknown variant", e.actor(), domain.EditCommand{Kind: events.EditReceived, VariantKey: "sku:NOPE", Quantity: 1}, stockedits.ErrNotFound},
		{"zero stock", e.actor(), domain.EditCommand{Kind: events.EditCount, VariantKey: "sku:MUG-S", Quantity: 0}, domain.ErrZeroStock},
		{"negative balance", e.actor(), domain.EditCommand{Kind: events.EditCorrection, Reason: "lost", VariantKey: "sku:MUG-S", Quantity: -3}, domain.ErrInvalidEdit},
		{"wrong sign", e.actor(), domain.EditCommand{Kind: events.EditCorrection, Reason: "found", VariantKey: "sku:MUG-S", Quantity: -1}, domain.ErrInvalidEdit},
		{"bad reason", e.actor(), domain.EditCommand{Kind: events.EditCorrection, Reason: "stolen", VariantKey: "sku:MUG-S", Quantity: -1}, domain.ErrInvalidEdit},
		{"price bounds", e.actor(), domain.EditCommand{Kind: events.EditPrice, VariantKey: "sku:MUG-S", Price: &events.Money{Amount: 10}}, domain.ErrInvalidEdit},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := e.svc.Submit(ctx, c.a, l.ListingID, c.c, "req-"+c.name); !errors.Is(err, c.want) {
				t.Errorf("err = %v, want %v", err, c.want)
			}
		})
	}
	if n := e.count(l.ListingID, events.TypeStockEditRequested); n != 0 {
		t.Fatalf("%d commands recorded by refused requests", n)
	}
	first := e.submit(l.ListingID, domain.EditCommand{Kind: events.EditReceived, VariantKey: "sku:MUG-M", Quantity: 3}, "same")
	again := e.submit(l.ListingID, domain.EditCommand{Kind: events.EditReceived, VariantKey: "sku:MUG-M", Quantity: 3}, "same")
	if !again.Duplicate || again.Command.CommandID != first.Command.CommandID {
		t.Errorf("repeat = %+v, want the first command", again)
	}
	if _, err := e.svc.Submit(ctx, e.actor(), l.ListingID, domain.EditCommand{Kind: events.EditCount, VariantKey: "sku:MUG-S", Quantity: 3}, "same"); !errors.Is(err, stockedits.ErrRequestReused) {
		t.Errorf("request id reused for another command: err = %v", err)
	}
	// Price and disable push, and show at Etsy.
	e.submit(l.ListingID, domain.EditCommand{Kind: events.EditPrice, VariantKey: "sku:MUG-S", Price: &events.Money{Amount: 2250}}, "p1")
	e.drain()
	if v := e.variant(l.ListingID, "sku:MUG-S"); v.Price != 2250 {
		t.Errorf("price at Etsy = %d, want 2250", v.Price)
	}
	if v := e.variant(l.ListingID, "sku:MUG-M"); v.Quantity != 3 {
		t.Errorf("M at Etsy = %d, want 3", v.Quantity)
	}
	e.submit(l.ListingID, domain.EditCommand{Kind: events.EditDisable, VariantKey: "sku:MUG-M"}, "d1")
	e.drain()
	if v := e.variant(l.ListingID, "sku:MUG-M"); v.Enabled {
		t.Error("M still enabled at Etsy")
	}
	if got := e.balance(l.ListingID, "sku:MUG-M"); got != 0 {
		t.Errorf("balance of a disabled variant = %d, want 0", got)
	}
	e.wantNoDrift(t, "after price and disable pushes")
}

// 200 orders land at Etsy while 200 commands on the same variants are
// pushed:
// afterwards Etsy's quantity, the ledger's balance and initial +
// adjustments − sales agree for every variant.
func TestRacesNeverLoseASale(t *testing.T) {
	e := newEnv(t)
	l := e.listing(500, 500)
	keys := []string{"sku:MUG-S", "sku:MUG-M"}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = e.pusher.Run(ctx)
	}()
	sold := map[string]int64{}
	var orders sync.WaitGroup
	orders.Add(1)
	go func() {
		defer orders.Done()
		for i := range 200 {
			k := keys[i%2]
			e.order(l.ListingID, k, 1)
			sold[k]++
			// Spread over the pushes' time, so that orders fall
			// between their reads and writes.
			time.Sleep(2 * time.Millisecond)
		}
	}()
	kinds := []domain.EditCommand{
		{Kind: events.EditReceived, Quantity: 2},
		{Kind: events.EditCorrection, Reason: events.CorrectionDamaged, Quantity: -1},
		{Kind: events.EditCorrection, Reason: events.CorrectionFound, Quantity: 1},
		{Kind: events.EditCount, Quantity: 400},
	}
	for i := range 200 {
		c := kinds[i%len(kinds)]
		c.VariantKey = keys[(i/2)%2]
		e.submit(l.ListingID, c, "race-"+string(rune('a'+i%26))+"-"+itoa(i))
		time.Sleep(2 * time.Millisecond)
	}
	orders.Wait()
	waitDrained(t, e)
	cancel()
	wg.Wait()
	e.reconcile()

	adjust, applied := map[string]int64{}, map[string]int64{}
	for _, r := range e.stream(l.ListingID) {
		if c, ok := r.Data.(events.StockEditRequested); ok {
			adjust[c.VariantKey] += c.Delta
		}
		if a, ok := r.Data.(events.StockAdjusted); ok && strings.HasPrefix(a.Cause, "edit:") {
			applied[a.VariantKey] += a.Delta
		}
	}
	restored := 0
	for _, r := range e.stream(l.ListingID) {
		if p, ok := r.Data.(events.StockEditPushed); ok {
			for _, n := range p.LostSalesRestored {
				restored += int(n)
			}
		}
	}
	t.Logf("sales overwritten by a push and taken off again: %d", restored)
	if diff := cmp.Diff(adjust, applied); diff != "" {
		t.Errorf("requested vs applied adjustments (-requested +applied):\n%s", diff)
	}
	for _, k := range keys {
		want := 500 + adjust[k] - sold[k]
		if got := int64(e.variant(l.ListingID, k).Quantity); got != want {
			t.Errorf("%s: Etsy holds %d, want 500 + %d − %d = %d", k, got, adjust[k], sold[k], want)
		}
		if got := e.balance(l.ListingID, k); got != want {
			t.Errorf("%s: ledger balance %d, want %d", k, got, want)
		}
	}
}

func waitDrained(t *testing.T, e *env) {
	t.Helper()
	for range 12000 {
		var n int
		if err := e.db.DB.QueryRow(`SELECT count(*) FROM stock_edit_outbox WHERE state = 'queued'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		sleepShort()
	}
	t.Fatal("outbox never drained")
}

// saleInWindow places an order at Etsy just before the first inventory
// write goes out: the sale falls between the push's read and its write.
type saleInWindow struct {
	stockedits.EtsyAPI
	once sync.Once
	sale func()
}

func (s *saleInWindow) UpdateListingInventory(ctx context.Context, ts etsy.TokenSource, listingID int64, u etsy.InventoryUpdate) (etsy.Inventory, error) {
	s.once.Do(s.sale)
	return s.EtsyAPI.UpdateListingInventory(ctx, ts, listingID, u)
}

// A sale Etsy takes between the push's read and its write is overwritten
// by the write; the pusher finds it from the shop's transaction count and
// takes it off again, so no sale is lost.
func TestSaleBetweenReadAndWriteIsKept(t *testing.T) {
	e := newEnv(t)
	l := e.listing(10, 10)
	key := "sku:MUG-S"
	api := &saleInWindow{EtsyAPI: e.client, sale: func() { e.order(l.ListingID, key, 2) }}
	p, err := stockedits.NewPusher(stockedits.PusherConfig{DB: e.db.DB, Events: e.es, Etsy: api, Tokens: e.store})
	if err != nil {
		t.Fatal(err)
	}
	e.submit(l.ListingID, domain.EditCommand{Kind: events.EditReceived, VariantKey: key, Quantity: 5}, "r1")
	if worked, err := p.PushOnce(context.Background()); err != nil || !worked {
		t.Fatalf("push: worked %v, err %v", worked, err)
	}
	if got := e.variant(l.ListingID, key).Quantity; got != 13 {
		t.Errorf("Etsy's quantity = %d, want 10 − 2 sold + 5 received = 13", got)
	}
	var pushed events.StockEditPushed
	for _, r := range e.stream(l.ListingID) {
		if p, ok := r.Data.(events.StockEditPushed); ok {
			pushed = p
		}
	}
	if pushed.LostSalesRestored[key] != 2 || pushed.Quantities[key] != 13 {
		t.Errorf("pushed = %+v, want 2 overwritten sales taken off again and quantity 13", pushed)
	}
	e.wantNoDrift(t, "after the push")
	if got := e.balance(l.ListingID, key); got != 13 {
		t.Errorf("ledger balance = %d, want 13", got)
	}
}

// A shop that must be connected again keeps its edits queued and says so
// once; once connected, they are pushed on top of Etsy's stock then.
func TestReauthKeepsEditsQueued(t *testing.T) {
	e := newEnv(t)
	l := e.listing(5, 7)
	key := "sku:MUG-S"
	e.submit(l.ListingID, domain.EditCommand{Kind: events.EditReceived, VariantKey: key, Quantity: 3}, "r1")
	setStatus := func(status string) {
		t.Helper()
		if _, err := e.db.DB.Exec(`UPDATE shop_connections SET status = $1 WHERE shop_id = $2`, status, e.shop.ShopID); err != nil {
			t.Fatal(err)
		}
	}
	due := func() {
		t.Helper()
		if _, err := e.db.DB.Exec(`UPDATE stock_edit_outbox SET next_attempt_at = now() - interval '1 second'`); err != nil {
			t.Fatal(err)
		}
	}
	setStatus("reauth_required")
	for range 3 {
		e.drain()
		due()
	}
	var state, lastErr string
	if err := e.db.DB.QueryRow(`SELECT state, last_error FROM stock_edit_outbox`).Scan(&state, &lastErr); err != nil {
		t.Fatal(err)
	}
	if state != stockedits.StateQueued || !strings.HasPrefix(lastErr, "reauth_required") {
		t.Errorf("outbox %q %q, want queued and saying reauth_required", state, lastErr)
	}
	var failed []events.StockEditFailed
	for _, r := range e.stream(l.ListingID) {
		if f, ok := r.Data.(events.StockEditFailed); ok {
			failed = append(failed, f)
		}
	}
	if len(failed) != 1 || !failed[0].Retryable || failed[0].Code != "reauth_required" {
		t.Errorf("failed = %+v, want one retryable reauth_required", failed)
	}
	if q := e.variant(l.ListingID, key).Quantity; q != 5 {
		t.Errorf("Etsy changed while the shop needed connecting: %d", q)
	}
	e.order(l.ListingID, key, 1)
	setStatus("connected")
	due()
	e.drain()
	if q := e.variant(l.ListingID, key).Quantity; q != 7 {
		t.Errorf("Etsy = %d, want 5 − 1 sold + 3 = 7", q)
	}
	hist, err := e.svc.History(context.Background(), []int64{e.shop.ShopID}, l.ListingID, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 1 || hist[0].State != stockedits.StatePushed || hist[0].Actor != "user:alice" || hist[0].EtsyQuantity == nil || *hist[0].EtsyQuantity != 7 || hist[0].Moved != 3 {
		t.Errorf("history = %+v, want one pushed entry by user:alice, moved 3, Etsy at 7", hist)
	}
	if _, err := e.svc.History(context.Background(), []int64{999}, l.ListingID, key); !errors.Is(err, stockedits.ErrNotFound) {
		t.Errorf("another organisation's history: err = %v", err)
	}
}
