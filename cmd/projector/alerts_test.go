package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/inbox"
	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/service"
	"github.com/shopledger/shopledger/service/servicetest"
)

func TestProjectorRaisesAndMailsLowStock(t *testing.T) {
	db := pgtest.New(t)
	box := inbox.New(0, nil)
	smtpAddr, err := box.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer box.Close()

	const shop, listing = 31, 3100
	store := eventstore.New(db.DB)
	at := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	for _, e := range []events.Event{
		events.New(events.ShopStream(shop), shop, at, events.ShopSettingsChanged{ShopID: shop, AlertChannels: []events.AlertChannel{{Kind: "email", Target: "sam@seller.test"}}}),
		events.New(events.ListingStream(listing), shop, at, events.StockAdjusted{ListingID: listing, VariantKey: "S", Delta: 7, Reason: events.ReasonInitialImport}),
		events.New(events.ListingStream(listing), shop, at.Add(time.Minute), events.StockSold{ListingID: listing, VariantKey: "S", Quantity: 3}),
	} {
		if _, err := store.Append(context.Background(), e.StreamID, eventstore.Any, e); err != nil {
			t.Fatal(err)
		}
	}

	p := servicetest.Start(t, run, map[string]string{
		"SHOPLEDGER_DATABASE_URL":                db.RoleURL(pgtest.ProjectorRole),
		"SHOPLEDGER_PROJECTOR_ADDR":              "127.0.0.1:0",
		"SHOPLEDGER_PROJECTOR_POLL_INTERVAL":     "20ms",
		"SHOPLEDGER_SMTP_ADDR":                   smtpAddr.String(),
		"SHOPLEDGER_SMTP_STARTTLS":               "false",
		"SHOPLEDGER_ALERT_DISPATCH_INTERVAL":     "50ms",
		"SHOPLEDGER_ALERT_LINK_BASE":             "https://ledger.test",
		"SHOPLEDGER_DEFAULT_LOW_STOCK_THRESHOLD": "4",
	}, false)
	base := p.Base

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := box.WaitFor(ctx, func(inbox.Message) bool { return true }); err != nil {
		t.Fatalf("no alert mail: %v", err)
	}
	mails := box.Messages()
	if len(mails) != 1 || !strings.Contains(string(mails[0].Raw), "https://ledger.test/alerts/") {
		t.Fatalf("mails: %+v", mails)
	}
	// The mail server sees the message before the dispatcher counts the
	// delivery: read the metrics until they settle.
	wants := []string{
		`shopledger_alerts_raised_total{muted="false"} 1`,
		`shopledger_alert_deliveries_total{channel="email",result="delivered"} 1`,
		`shopledger_alert_oldest_undelivered_seconds 0`,
	}
	var missing []string
	for deadline := time.Now().Add(10 * time.Second); ; {
		metrics := servicetest.Scrape(t, base)
		missing = missing[:0]
		for _, want := range wants {
			if !strings.Contains(metrics, want) {
				missing = append(missing, want)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, want := range missing {
		t.Errorf("/metrics lacks %q", want)
	}
	p.Stop()
}

func TestAlertsConfigErrorsAreReported(t *testing.T) {
	err := run(context.Background(), nil, service.MapEnv(map[string]string{
		"SHOPLEDGER_DATABASE_URL":                pgtest.New(t).RoleURL(pgtest.ProjectorRole),
		"SHOPLEDGER_PROJECTOR_ADDR":              "127.0.0.1:0",
		"SHOPLEDGER_DEFAULT_LOW_STOCK_THRESHOLD": "-1",
		"SHOPLEDGER_ALERT_COOLDOWN":              "soon",
		"SHOPLEDGER_SMTP_PASSWORD":               "hunter2",
	}), io.Discard)
	if err == nil {
		t.Fatal("run accepted a negative threshold, a bad cooldown and a password without user")
	}
	for _, want := range []string{"SHOPLEDGER_DEFAULT_LOW_STOCK_THRESHOLD", "SHOPLEDGER_ALERT_COOLDOWN", "SHOPLEDGER_SMTP_USERNAME"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error shows the SMTP password: %v", err)
	}
}
