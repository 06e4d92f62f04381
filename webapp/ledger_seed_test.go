package webapp_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/shopledger/shopledger/alerts"
	"github.com/shopledger/shopledger/domain"
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/projections"
)

// ledgerSeed is what seedShop wrote for one shop: the ids the pages name.
type ledgerSeed struct {
	shop      int64
	listing   int64
	key       string
	receipts  []int64
	canceled  int64
	alertID   string
	saleEvent string
}

// seedShop writes a shop's history the way data gets in: events appended
// to the log, folded by the projector's read models, the alerter and the
// alerts read model with their own Apply. It gives org the shop, with a
// listing of one variant (SKU "MUG/BLUE 1", which needs escaping in a
// path), ten in stock, three sales (the last one at 23:30 UTC, another
// day in Paris), one of them canceled, the stock they sold (which raises
// a low-stock alert) and a reconciliation run.
func (s *site) seedShop(org, shop int64, name string, base time.Time) ledgerSeed {
	s.t.Helper()
	if _, err := s.db.DB.Exec(`INSERT INTO organisation_shops (shop_id, org_id) VALUES ($1, $2)`, shop, org); err != nil {
		s.t.Fatal(err)
	}
	es := eventstore.New(s.db.DB)
	ctx := context.Background()
	add := func(stream string, ev events.Event) string {
		s.t.Helper()
		res, err := es.Append(ctx, stream, eventstore.Any, ev)
		if err != nil {
			s.t.Fatalf("append %s: %v", stream, err)
		}
		return res.Events[0].EventID.String()
	}
	sd := ledgerSeed{shop: shop, listing: shop * 10, key: "MUG/BLUE 1"}
	ss := events.ShopStream(shop)
	add(ss, events.New(ss, shop, base, events.ShopConnected{ShopID: shop, ShopName: name, UserID: shop + 7000, Currency: "EUR"}))
	ls := events.ListingStream(sd.listing)
	add(ls, events.New(ls, shop, base.Add(time.Minute), events.ListingImported{ListingID: sd.listing, ShopID: shop, Title: name + " mug", State: "active",
		URL: "https://etsy.example/listing/1", Price: events.Money{Amount: 1500, Currency: "EUR"}, EtsyUpdatedAt: base,
		Variants: []events.Variant{{Key: sd.key, SKU: sd.key, Price: events.Money{Amount: 1500, Currency: "EUR"}, Enabled: true}}}))
	add(ls, events.New(ls, shop, base.Add(2*time.Minute), events.StockAdjusted{ListingID: sd.listing, VariantKey: sd.key, Delta: 10, Reason: events.ReasonInitialImport, Cause: "reconciliation"}))
	eur := func(n int64) events.Money { return events.Money{Amount: n, Currency: "EUR"} }
	for i, at := range []time.Time{base.Add(time.Hour), base.Add(2 * time.Hour), time.Date(base.Year(), base.Month(), base.Day(), 23, 30, 0, 0, time.UTC)} {
		receipt := shop*100 + int64(i)
		sd.receipts = append(sd.receipts, receipt)
		qty := int64(2 + i)
		rs := events.ReceiptStream(receipt)
		id := add(rs, events.New(rs, shop, at, events.SaleRecorded{ReceiptID: receipt, ShopID: shop, Status: "paid",
			Items:    []events.SaleItem{{TransactionID: receipt * 10, ListingID: sd.listing, VariantKey: sd.key, SKU: sd.key, Title: name + " mug", Quantity: qty, UnitPrice: eur(1500)}},
			Subtotal: eur(qty * 1500), Shipping: eur(495), Tax: eur(0), Discount: eur(0), GrandTotal: eur(qty*1500 + 495), CreatedAt: at, EtsyUpdatedAt: at}))
		if i == 0 {
			sd.saleEvent = id
		}
		add(ls, events.New(ls, shop, at.Add(time.Second), events.StockSold{ListingID: sd.listing, VariantKey: sd.key, Quantity: qty, ReceiptID: receipt, TransactionID: receipt * 10}).
			WithMetadata(events.Metadata{CausationID: id, CorrelationID: id, Source: "test"}))
		if i == 1 {
			sd.canceled = receipt
			add(rs, events.New(rs, shop, at.Add(time.Hour), events.SaleCanceled{ReceiptID: receipt, Reason: "buyer asked"}))
		}
	}
	add(ss, events.New(ss, shop, time.Now(), events.ReconciliationCompleted{ShopID: shop, StartedAt: time.Now().Add(-time.Minute), FinishedAt: time.Now(),
		Watermark: base, ReceiptsSeen: 3, ListingsSeen: 1, EventsAppended: 0, DriftFound: 2, APICalls: 4, DurationMillis: 1234}))
	s.project(es)
	if err := s.db.DB.QueryRow(`SELECT alert_id::text FROM alerts WHERE shop_id = $1 ORDER BY raised_at LIMIT 1`, shop).Scan(&sd.alertID); err != nil {
		s.t.Fatalf("no alert raised in shop %d: %v", shop, err)
	}
	return sd
}

// project folds every event not yet folded, one transaction per event as
// the projector does, until a pass appends nothing (the alerter appends).
func (s *site) project(es *eventstore.Store) {
	s.t.Helper()
	ctx := context.Background()
	alerter, err := alerts.NewAlerter(es, alerts.AlerterConfig{DefaultThreshold: domain.DefaultLowStockThreshold}, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		s.t.Fatal(err)
	}
	projs := append(projections.Default(), alerter, alerts.NewReadModel())
	for idle := 0; idle < 300; {
		recs, err := es.ReadAll(ctx, s.cursor, 500)
		if err != nil {
			s.t.Fatal(err)
		}
		if len(recs) == 0 {
			var pending int
			if err := s.db.DB.QueryRow(`SELECT count(*) FROM events WHERE (transaction_id, position) > ($1::text::xid8, $2)`,
				fmt.Sprint(s.cursor.TransactionID), s.cursor.Position).Scan(&pending); err != nil {
				s.t.Fatal(err)
			}
			if pending == 0 {
				return
			}
			idle++
			time.Sleep(10 * time.Millisecond)
			continue
		}
		for _, rec := range recs {
			tx, err := eventstore.BeginAppend(ctx, s.db.DB)
			if err != nil {
				s.t.Fatal(err)
			}
			for _, p := range projs {
				if p.Handles(rec.Type()) {
					if err := p.Apply(ctx, tx, rec); err != nil {
						_ = tx.Rollback()
						s.t.Fatalf("apply %s to %s: %v", rec.Type(), p.Name(), err)
					}
				}
			}
			if err := tx.Commit(); err != nil {
				s.t.Fatal(err)
			}
			s.cursor = eventstore.CursorOf(rec)
		}
	}
	s.t.Fatal("the log never became readable to its end")
}

// team is an organisation with an owner, a staff member and an auditor,
// each logged in.
type team struct {
	org                   int64
	owner, staff, auditor *browser
}

// newTeamSite is a site with a team (see team) whose organisation holds
// a shop seeded as seedShop does from ledgerBase.
func newTeamSite(t *testing.T, prefix string, shopID int64, shopName string) (*site, team, ledgerSeed) {
	t.Helper()
	s := newSite(t)
	tm := s.team(prefix)
	return s, tm, s.seedShop(tm.org, shopID, shopName, ledgerBase)
}

func (s *site) team(prefix string) team {
	s.t.Helper()
	var tm team
	tm.owner, tm.org = s.signUpOwner(prefix + "-owner@example.com")
	for _, m := range []struct {
		b    **browser
		role string
	}{{&tm.staff, "staff"}, {&tm.auditor, "auditor"}} {
		email := prefix + "-" + m.role + "@example.com"
		*m.b = s.signUp(email)
		s.must(tm.owner.post("/members/invite", url.Values{"email": {email}, "role": {m.role}}), http.StatusSeeOther, "invite "+m.role)
		link := s.link(email, "invited")
		token, _ := url.QueryUnescape(link[strings.Index(link, "token=")+len("token="):])
		s.must((*m.b).post("/invitations/accept", url.Values{"token": {token}}), http.StatusSeeOther, m.role+" accepts")
	}
	return tm
}

// apiToken creates a token of role through the tokens page and returns it.
func (s *site) apiToken(b *browser, role string) string {
	s.t.Helper()
	tok := tokenRE.FindString(s.must(b.post("/tokens", url.Values{"role": {role}, "label": {role}}), http.StatusOK, "create a token").body)
	if tok == "" {
		s.t.Fatal("no token shown")
	}
	return tok
}

// api asks /v1 with a bearer token.
func (s *site) api(token, path string) answer {
	s.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := s.srv.Client().Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return answer{status: res.StatusCode, header: res.Header, body: string(raw)}
}

func eventstoreOf(s *site) *eventstore.Store { return eventstore.New(s.db.DB) }

// channel configures an alert channel for a shop directly, as another
// organisation's owner would have, and returns its id.
func (s *site) channel(shop int64, kind, target string) string {
	s.t.Helper()
	ch, err := alerts.NewChannels(s.db.DB).Add(context.Background(), shop, kind, target)
	if err != nil {
		s.t.Fatal(err)
	}
	return ch.ChannelID.String()
}
