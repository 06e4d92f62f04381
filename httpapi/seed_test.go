package httpapi_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"testing"
	"time"

	"github.com/shopledger/shopledger/alerts"
	"github.com/shopledger/shopledger/domain"
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/httpapi"
	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/projections"
	"github.com/shopledger/shopledger/projections/engine"
	"github.com/shopledger/shopledger/tokens"
)

// world is test data written the only way data gets in: events appended
// to the log, then folded into the read models by the projections
// package's own Apply. Expected answers are computed from the log, never
// written down by hand.
type world struct {
	t      testing.TB
	db     *pgtest.Database
	es     *eventstore.Store
	cursor eventstore.Cursor
	projs  []engine.Projection
	rng    *rand.Rand
	base   time.Time
	clock  int // minutes after base of the next fact

	owner    map[int64]int64   // shop → seller
	shops    map[int64][]int64 // seller → shops
	listings map[int64]int64   // listing → shop
	variants []variantRef
	receipts map[int64]int64 // receipt → shop
	events   map[string]int64
	tokens   map[int64]tenantTokens // seller → tokens
}

type variantRef struct {
	shop, listing int64
	key, sku      string
}

type tenantTokens struct {
	seller, auditor string
}

// Variant keys with characters that need escaping in a path.
var skuShapes = []string{"MUG-%d-%d", "TEE/%d %d", "%d:%d+ä", "%d%%off%d", ""}

func newWorld(t testing.TB, db *pgtest.Database, seed uint64) *world {
	es := eventstore.New(db.DB)
	alerter, err := alerts.NewAlerter(es, alerts.AlerterConfig{DefaultThreshold: domain.DefaultLowStockThreshold}, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	// The projector's read models, then the alerter (which appends alert
	// events) and the alerts read model that folds them.
	projs := append(projections.Default(), alerter, alerts.NewReadModel())
	return &world{
		t: t, db: db, es: es, projs: projs,
		rng:   rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		base:  time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC),
		owner: map[int64]int64{}, shops: map[int64][]int64{}, listings: map[int64]int64{},
		receipts: map[int64]int64{}, events: map[string]int64{}, tokens: map[int64]tenantTokens{},
	}
}

// at returns the business time of the next fact. It mostly moves forward
// but now and then steps back, as late webhooks and polls do, so that
// log order and business time disagree.
func (w *world) at() time.Time {
	w.clock += 10 + w.rng.IntN(50)
	m := w.clock
	if w.rng.IntN(6) == 0 {
		m -= w.rng.IntN(180)
	}
	return w.base.Add(time.Duration(m) * time.Minute)
}

func (w *world) append(stream string, evs ...events.Event) eventstore.Result {
	w.t.Helper()
	res, err := w.es.Append(context.Background(), stream, eventstore.Any, evs...)
	if err != nil {
		w.t.Fatalf("append %s: %v", stream, err)
	}
	for i, a := range res.Events {
		w.events[a.EventID.String()] = evs[i].ShopID
	}
	return res
}

// seller connects a seller's shops, gives them listings, stock and sales,
// and creates a seller and an auditor token.
func (w *world) seller(sellerID int64, shopIDs ...int64) {
	w.t.Helper()
	for _, shop := range shopIDs {
		w.owner[shop] = sellerID
		w.shops[sellerID] = append(w.shops[sellerID], shop)
		w.append(events.ShopStream(shop), events.New(events.ShopStream(shop), shop, w.at(),
			events.ShopConnected{ShopID: shop, ShopName: fmt.Sprintf("Shop %d", shop), UserID: sellerID, Currency: "EUR"}))
		for l := range 2 + w.rng.IntN(3) {
			w.listing(shop, shop*100+int64(l))
		}
		for range 4 + w.rng.IntN(6) {
			w.sale(shop)
		}
		for range 4 + w.rng.IntN(6) {
			w.adjust(w.variantOf(shop), int64(w.rng.IntN(7)-2), events.ReasonCorrection)
		}
		// One variant of each shop runs low, so each shop has an alert.
		w.adjust(w.variantOf(shop), -40, events.ReasonCorrection)
	}
	seller, _ := createToken(w.t, w.db, tokens.NewToken{SellerID: sellerID, Role: tokens.RoleSeller})
	auditor, _ := createToken(w.t, w.db, tokens.NewToken{SellerID: sellerID, Role: tokens.RoleAuditor})
	w.tokens[sellerID] = tenantTokens{seller: seller, auditor: auditor}
}

func (w *world) listing(shop, listingID int64) {
	w.listings[listingID] = shop
	var vs []events.Variant
	for v := range 1 + w.rng.IntN(3) {
		shape := skuShapes[w.rng.IntN(len(skuShapes))]
		sku := ""
		if shape != "" {
			sku = fmt.Sprintf(shape, listingID, v)
		}
		key := sku
		if key == "" {
			key = fmt.Sprintf("%d:%d", listingID, 500+v)
		}
		vs = append(vs, events.Variant{Key: key, SKU: sku, Properties: fmt.Sprintf("Size: %d", v), Price: events.Money{Amount: 1500 + int64(v)*250, Currency: "EUR"}, Enabled: true})
		w.variants = append(w.variants, variantRef{shop: shop, listing: listingID, key: key, sku: sku})
	}
	at := w.at()
	stream := events.ListingStream(listingID)
	w.append(stream, events.New(stream, shop, at, events.ListingImported{
		ListingID: listingID, ShopID: shop, Title: fmt.Sprintf("Listing %d %s", listingID, []string{"mug", "tee", "=cap"}[w.rng.IntN(3)]),
		State: []string{"active", "active", "inactive"}[w.rng.IntN(3)], URL: fmt.Sprintf("https://etsy.example/listing/%d", listingID),
		Price: events.Money{Amount: 1500, Currency: "EUR"}, Variants: vs, EtsyUpdatedAt: at,
	}))
	for _, v := range vs {
		w.adjust(variantRef{shop: shop, listing: listingID, key: v.Key}, int64(3+w.rng.IntN(20)), events.ReasonInitialImport)
	}
}

func (w *world) variantOf(shop int64) variantRef {
	var mine []variantRef
	for _, v := range w.variants {
		if v.shop == shop {
			mine = append(mine, v)
		}
	}
	return mine[w.rng.IntN(len(mine))]
}

func (w *world) adjust(v variantRef, delta int64, reason string) {
	if delta == 0 {
		delta = 1
	}
	stream := events.ListingStream(v.listing)
	cause := "reconciliation"
	if w.rng.IntN(2) == 0 {
		cause = fmt.Sprintf("webhook:wh_%d", w.rng.IntN(1_000_000))
	}
	w.append(stream, events.New(stream, v.shop, w.at(), events.StockAdjusted{ListingID: v.listing, VariantKey: v.key, Delta: delta, Reason: reason, Cause: cause}))
}

// sale records a receipt, then the stock it sold, caused by the receipt.
func (w *world) sale(shop int64) {
	receipt := shop*1000 + int64(len(w.receipts))
	w.receipts[receipt] = shop
	at := w.at()
	var items []events.SaleItem
	total := int64(0)
	for line := range 1 + w.rng.IntN(2) {
		v := w.variantOf(shop)
		qty := int64(1 + w.rng.IntN(3))
		items = append(items, events.SaleItem{TransactionID: receipt*10 + int64(line), ListingID: v.listing, VariantKey: v.key, SKU: v.sku,
			Title: fmt.Sprintf("Listing %d", v.listing), Quantity: qty, UnitPrice: events.Money{Amount: 1500, Currency: "EUR"}})
		total += qty * 1500
	}
	eur := func(n int64) events.Money { return events.Money{Amount: n, Currency: "EUR"} }
	rs := events.ReceiptStream(receipt)
	rec := w.append(rs, events.New(rs, shop, at, events.SaleRecorded{ReceiptID: receipt, ShopID: shop, Status: "paid", Items: items,
		Subtotal: eur(total), Shipping: eur(495), Tax: eur(0), Discount: eur(0), GrandTotal: eur(total + 495), CreatedAt: at, EtsyUpdatedAt: at}))
	cause := rec.Events[0].EventID.String()
	for _, it := range items {
		stream := events.ListingStream(it.ListingID)
		w.append(stream, events.New(stream, shop, at.Add(time.Second), events.StockSold{ListingID: it.ListingID, VariantKey: it.VariantKey,
			Quantity: it.Quantity, ReceiptID: receipt, TransactionID: it.TransactionID}).
			WithMetadata(events.Metadata{CausationID: cause, CorrelationID: cause, Source: "test"}))
	}
	if w.rng.IntN(5) == 0 {
		w.append(rs, events.New(rs, shop, at.Add(time.Hour), events.SaleCanceled{ReceiptID: receipt, Reason: "buyer asked"}))
	}
}

// project folds every new event of the log into the read models with the
// projections' own Apply, one transaction per event as the projector does.
func (w *world) project() {
	w.t.Helper()
	ctx := context.Background()
	// ReadAll holds back events while any older transaction of the whole
	// server is running (other tests' too), so an empty read does not mean
	// the end: go on until the newest appended event is projected.
	var last int64
	if err := w.db.DB.QueryRow(`SELECT coalesce(max(position), 0) FROM events`).Scan(&last); err != nil {
		w.t.Fatal(err)
	}
	for waited := 0; ; {
		recs, err := w.es.ReadAll(ctx, w.cursor, 500)
		if err != nil {
			w.t.Fatal(err)
		}
		if len(recs) == 0 {
			if seenAll(w, last) {
				// Projections may append (the alerter does): go on
				// until a pass appends nothing new.
				var now int64
				if err := w.db.DB.QueryRow(`SELECT coalesce(max(position), 0) FROM events`).Scan(&now); err != nil {
					w.t.Fatal(err)
				}
				if now == last {
					return
				}
				last = now
				continue
			}
			if waited++; waited > 3000 {
				w.t.Fatalf("events up to position %d never became readable", last)
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		for _, rec := range recs {
			tx, err := eventstore.BeginAppend(ctx, w.db.DB)
			if err != nil {
				w.t.Fatal(err)
			}
			for _, p := range w.projs {
				if !p.Handles(rec.Type()) {
					continue
				}
				if err := p.Apply(ctx, tx, rec); err != nil {
					tx.Rollback()
					w.t.Fatalf("apply %s (position %d) to %s: %v", rec.Type(), rec.Position, p.Name(), err)
				}
			}
			if err := tx.Commit(); err != nil {
				w.t.Fatal(err)
			}
			w.cursor = eventstore.CursorOf(rec)
		}
	}
}

// seenAll reports whether every event up to position last is projected
// (positions of rolled-back appends are never used, so count instead).
func seenAll(w *world, last int64) bool {
	var pending int
	if err := w.db.DB.QueryRow(`SELECT count(*) FROM events WHERE position <= $1 AND (transaction_id, position) > ($2::text::xid8, $3)`,
		last, fmt.Sprint(w.cursor.TransactionID), w.cursor.Position).Scan(&pending); err != nil {
		w.t.Fatal(err)
	}
	return pending == 0
}

// log returns every event in commit order. All the test's appends are
// committed, so a plain SELECT sees them all.
func (w *world) log() []events.Record {
	w.t.Helper()
	rows, err := w.db.DB.Query(`SELECT ` + eventstore.RecordColumns + ` FROM events ORDER BY events.transaction_id, events.position`)
	if err != nil {
		w.t.Fatal(err)
	}
	defer rows.Close()
	var out []events.Record
	for rows.Next() {
		r, err := eventstore.ScanRecord(rows)
		if err != nil {
			w.t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		w.t.Fatal(err)
	}
	return out
}

// replayStock folds the log's movements that occurred at or before at.
func replayStock(log []events.Record, at time.Time) map[[2]string]int64 {
	out := map[[2]string]int64{}
	for _, r := range log {
		if r.OccurredAt.After(at) {
			continue
		}
		switch d := r.Data.(type) {
		case events.StockSold:
			out[[2]string{fmt.Sprint(d.ListingID), d.VariantKey}] -= d.Quantity
		case events.StockAdjusted:
			out[[2]string{fmt.Sprint(d.ListingID), d.VariantKey}] += d.Delta
		}
	}
	return out
}

func (w *world) sellerIDs() []int64 {
	var ids []int64
	for id := range w.shops {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// alertOf returns an alert of the shop, from the alerts read model.
func (w *world) alertOf(shop int64) string {
	w.t.Helper()
	var id string
	if err := w.db.DB.QueryRow(`SELECT alert_id FROM alerts WHERE shop_id = $1 ORDER BY alert_id LIMIT 1`, shop).Scan(&id); err != nil {
		w.t.Fatalf("no alert in shop %d: %v", shop, err)
	}
	return id
}

func (w *world) firstOf(seller int64) (shop, listing int64, v variantRef, receipt int64, eventID string) {
	shop = w.shops[seller][0]
	v = w.variantOf(shop)
	listing = v.listing
	for r, s := range w.receipts {
		if s == shop && (receipt == 0 || r < receipt) {
			receipt = r
		}
	}
	for id, s := range w.events {
		if s == shop && (eventID == "" || id < eventID) {
			eventID = id
		}
	}
	return
}

func variantPath(v variantRef) string {
	return fmt.Sprintf("/v1/products/%d/variants/%s", v.listing, url.PathEscape(v.key))
}

// newWorldAPI seeds two sellers (1 has shops 11 and 12, 2 has shop 21),
// projects the log and returns the API over it.
func newWorldAPI(t testing.TB, seed uint64, mod func(*httpapi.Config)) (*world, http.Handler) {
	t.Helper()
	db := pgtest.New(t)
	w := newWorld(t, db, seed)
	w.seller(1, 11, 12)
	w.seller(2, 21)
	w.project()
	h, _ := newAPI(t, db, apiOpts{mod: mod})
	return w, h
}
