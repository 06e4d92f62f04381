package alerts_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopledger/shopledger/alerts"
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/projections"
	"github.com/shopledger/shopledger/projections/engine"
	"github.com/shopledger/shopledger/service/servicetest"
)

const linkBase = "https://ledger.test"

// rig is a database with the alerter and the read model running, a fake
// wall clock and a dispatcher with real senders.
type rig struct {
	t        *testing.T
	db       *pgtest.Database
	store    *eventstore.Store
	clock    *clock
	channels *alerts.Channels
	reg      *prometheus.Registry
	alerter  *alerts.Alerter
	stop     []func()
	logs     *servicetest.Output
}

func newRig(t *testing.T, cooldown time.Duration) *rig {
	t.Helper()
	db := pgtest.New(t)
	r := &rig{t: t, db: db, store: eventstore.New(db.DB), clock: newClock(), channels: alerts.NewChannels(db.DB), reg: prometheus.NewRegistry(), logs: &servicetest.Output{}}
	a, err := alerts.NewAlerter(r.store, alerts.AlerterConfig{DefaultThreshold: 5, Cooldown: cooldown, Now: r.clock.Now}, r.logger(), r.reg)
	if err != nil {
		t.Fatal(err)
	}
	r.alerter = a
	r.start()
	return r
}

func (r *rig) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (r *rig) start() {
	r.stop = []func(){run(r.t, r.db.DB, r.alerter), run(r.t, r.db.DB, alerts.NewReadModel())}
}

func (r *rig) halt() {
	for _, s := range r.stop {
		s()
	}
}

func (r *rig) feed(evs ...events.Event) {
	r.t.Helper()
	appendAll(r.t, r.store, evs...)
	catchUp(r.t, r.db.DB, alerts.AlerterName, alerts.ReadModelName)
}

func (r *rig) emailSender(addr string, roots *x509.CertPool) *alerts.EmailSender {
	r.t.Helper()
	s, err := alerts.NewEmailSender(alerts.SMTPConfig{
		Addr: addr, Username: smtpUser, Password: smtpPass, From: "Shopledger <alerts@shopledger.test>",
		StartTLS: true, TLSConfig: &tls.Config{RootCAs: roots}, Timeout: 5 * time.Second,
	}, alerts.Links{Base: linkBase}, r.clock.Now)
	if err != nil {
		r.t.Fatal(err)
	}
	return s
}

func (r *rig) dispatcher(senders map[string]alerts.Sender, cfg alerts.DispatcherConfig) *alerts.Dispatcher {
	r.t.Helper()
	cfg.Senders = senders
	cfg.Now = r.clock.Now
	d, err := alerts.NewDispatcher(r.db.DB, cfg, r.logger(), r.reg)
	if err != nil {
		r.t.Fatal(err)
	}
	return d
}

func (r *rig) dispatch(d *alerts.Dispatcher) int {
	r.t.Helper()
	n, err := d.DispatchDue(context.Background())
	if err != nil {
		r.t.Fatalf("DispatchDue: %v", err)
	}
	return n
}

func (r *rig) openAlerts(shop int64) []alerts.Alert {
	r.t.Helper()
	as, err := alerts.List(context.Background(), r.db.DB, []int64{shop}, alerts.Filter{Status: alerts.StatusOpen})
	if err != nil {
		r.t.Fatal(err)
	}
	return as
}

// mailPart is one decoded alternative of an alert email.
type mailPart struct {
	ContentType string
	Body        string
}

func parseMail(t *testing.T, raw []byte) (*mail.Message, []mailPart) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("content type %q: %v", m.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	var parts []mailPart
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(p) // NextPart decodes quoted-printable
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, mailPart{ContentType: p.Header.Get("Content-Type"), Body: string(b)})
	}
	return m, parts
}

func TestAlertIsDeliveredByEmailWebhookAndSlack(t *testing.T) {
	const shop, listing = 21, 2100
	r := newRig(t, 0)
	ctx := context.Background()
	cert, pool := testCert(t)
	mails, smtpAddr := startMailServer(t, "127.0.0.1:0", cert)
	secret, err := r.channels.WebhookSecret(ctx, shop)
	if err != nil {
		t.Fatal(err)
	}
	hooks := startHookReceiver(t, func() string { return secret })
	slack := startSlackReceiver(t)
	if _, err := r.channels.Add(ctx, shop, alerts.KindSlack, slack.srv.URL+"/services/T0/B0/secret-token"); err != nil {
		t.Fatal(err)
	}

	r.feed(
		events.New(events.ShopStream(shop), shop, at(0), events.ShopConnected{ShopID: shop, ShopName: "Knots & Bolts"}),
		settings(shop, nil, []events.AlertChannel{{Kind: "email", Target: "Sam Seller <sam@seller.test>"}, {Kind: "webhook", Target: hooks.srv.URL + "/alerts"}}, 0),
		imported(shop, listing, "Blue Mug", "S"),
		adjusted(shop, listing, "S", 6, 1),
		sold(shop, listing, "S", 2, 2),
	)
	open := r.openAlerts(shop)
	if len(open) != 1 {
		t.Fatalf("open alerts: %+v", open)
	}
	alertID := open[0].AlertID.String()

	client := alerts.NewHTTPClient(5*time.Second, true)
	d := r.dispatcher(map[string]alerts.Sender{
		alerts.KindEmail:   r.emailSender(smtpAddr, pool),
		alerts.KindWebhook: alerts.NewWebhookSender(client, r.channels, alerts.Links{Base: linkBase}, time.Now),
		alerts.KindSlack:   alerts.NewSlackSender(client, alerts.Links{Base: linkBase}),
	}, alerts.DispatcherConfig{})
	if got := r.dispatch(d); got != 3 {
		t.Fatalf("first pass attempted %d deliveries, want 3", got)
	}
	if got := r.dispatch(d); got != 0 {
		t.Errorf("second pass attempted %d deliveries, want 0", got)
	}

	// Email: one message over TLS, both parts name everything.
	got := mails.received()
	if len(got) != 1 || mails.plainMails != 0 {
		t.Fatalf("mails: %d (%d without TLS), want 1 over TLS", len(got), mails.plainMails)
	}
	msg, parts := parseMail(t, got[0])
	if h := msg.Header.Get(alerts.HeaderAlertID); h != alertID {
		t.Errorf("%s = %q, want %q", alerts.HeaderAlertID, h, alertID)
	}
	if to := msg.Header.Get("To"); !strings.Contains(to, "sam@seller.test") {
		t.Errorf("To = %q", to)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil || !strings.Contains(subject, "Blue Mug") || !strings.Contains(subject, "4 left") {
		t.Errorf("Subject = %q (%v)", subject, err)
	}
	if len(parts) != 2 || !strings.HasPrefix(parts[0].ContentType, "text/plain") || !strings.HasPrefix(parts[1].ContentType, "text/html") {
		t.Fatalf("parts: %+v", parts)
	}
	link := linkBase + "/alerts/" + alertID
	for i, want := range [][]string{
		{"Knots & Bolts", "Blue Mug", "Size: S", "Quantity: 4", "threshold 5", link},
		{"Knots &amp; Bolts", "Blue Mug", "Size: S", "<td>4</td>", "<td>5</td>", `href="` + link + `"`},
	} {
		for _, w := range want {
			if !strings.Contains(parts[i].Body, w) {
				t.Errorf("%s part lacks %q:\n%s", parts[i].ContentType, w, parts[i].Body)
			}
		}
	}

	// Webhook: verified with the shop's secret, webhook-id is the alert.
	hooks.mu.Lock()
	if len(hooks.refused) != 0 || hooks.byID[alertID] != 1 || len(hooks.bodies) != 1 {
		t.Errorf("webhook: refused %v, by id %v", hooks.refused, hooks.byID)
	} else {
		want := alerts.WebhookData{Message: alerts.Message{
			AlertID: alertID, ShopID: shop, ShopName: "Knots & Bolts", ListingID: listing, ListingTitle: "Blue Mug",
			ListingURL: "https://www.etsy.com/listing/1", VariantKey: "S", VariantLabel: "Size: S", Quantity: 4, Threshold: 5, RaisedAt: at(2),
		}, Link: link}
		if diff := cmp.Diff(want, hooks.bodies[0].Data); diff != "" {
			t.Errorf("webhook data (-want +got):\n%s", diff)
		}
		if hooks.bodies[0].Type != events.TypeAlertLowStockRaised {
			t.Errorf("webhook type %q", hooks.bodies[0].Type)
		}
	}
	hooks.mu.Unlock()

	// Slack: one message naming the alert.
	slack.mu.Lock()
	if len(slack.msgs) != 1 || !strings.Contains(slack.msgs[0].Text, "Blue Mug") || !strings.Contains(slack.msgs[0].Text, alertID) ||
		!strings.Contains(slack.msgs[0].Text, "Knots &amp; Bolts") {
		t.Errorf("slack: %+v", slack.msgs)
	}
	slack.mu.Unlock()

	// The read model shows each delivery with its one attempt, and never
	// the Slack URL.
	a, err := alerts.Get(ctx, r.db.DB, []int64{shop}, open[0].AlertID)
	if err != nil {
		t.Fatal(err)
	}
	var summary []string
	for _, dl := range a.Deliveries {
		if dl.Status != alerts.DeliveryDelivered || dl.Attempts != 1 || len(dl.History) != 1 || dl.History[0].Error != "" || dl.FinishedAt == nil {
			t.Errorf("delivery %+v", dl)
		}
		if strings.Contains(dl.Target, "secret-token") {
			t.Errorf("delivery shows the Slack URL: %q", dl.Target)
		}
		summary = append(summary, dl.Kind)
	}
	sort.Strings(summary)
	if diff := cmp.Diff([]string{"email", "slack", "webhook"}, summary); diff != "" {
		t.Errorf("deliveries (-want +got):\n%s", diff)
	}
	// No secret reaches the logs, the log of events or a delivery's row.
	var stored string
	if err := r.db.DB.QueryRow(`SELECT coalesce(string_agg(data::text || metadata::text, ' '), '') FROM events`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	var rows string
	if err := r.db.DB.QueryRow(`SELECT string_agg(d::text, ' ') FROM alert_deliveries d`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{smtpPass, "secret-token", secret} {
		for where, text := range map[string]string{"logs": r.logs.String(), "events": stored, "deliveries": rows} {
			if strings.Contains(text, secret) {
				t.Errorf("%s contain the secret %q", where, secret)
			}
		}
	}
	if !strings.Contains(r.logs.String(), "alert delivered") {
		t.Error("the dispatcher logged no delivery: the secret check above saw no logs")
	}

	for _, c := range []string{"email", "webhook", "slack"} {
		if n := servicetest.Metric(t, r.reg, "shopledger_alert_deliveries_total", map[string]string{"channel": c, "result": "delivered"}); n != 1 {
			t.Errorf("deliveries_total{%s,delivered} = %v, want 1", c, n)
		}
	}
}

// downAddr is a loopback address with nothing listening.
func downAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestSMTPDownThenUpDeliversEachAlertOnce(t *testing.T) {
	const shop, listing = 22, 2200
	r := newRig(t, 0)
	cert, pool := testCert(t)
	addr := downAddr(t) // the mail server is down

	r.feed(
		settings(shop, nil, []events.AlertChannel{{Kind: "email", Target: "sam@seller.test"}}, 0),
		adjusted(shop, listing, "S", 3, 1),
		adjusted(shop, listing, "M", 4, 1),
		adjusted(shop, listing, "L", 2, 1),
	)
	if n := len(r.openAlerts(shop)); n != 3 {
		t.Fatalf("%d open alerts, want 3", n)
	}
	d := r.dispatcher(map[string]alerts.Sender{alerts.KindEmail: r.emailSender(addr, pool)},
		alerts.DispatcherConfig{InitialBackoff: time.Minute, MaxBackoff: 10 * time.Minute})

	if n := r.dispatch(d); n != 3 {
		t.Fatalf("pass 1 attempted %d, want 3", n)
	}
	if n := r.dispatch(d); n != 0 {
		t.Fatalf("pass before the backoff attempted %d, want 0", n)
	}
	r.clock.Advance(time.Minute)
	if n := r.dispatch(d); n != 3 {
		t.Fatalf("pass 2 attempted %d, want 3", n)
	}
	if got := servicetest.Metric(t, r.reg, "shopledger_alert_oldest_undelivered_seconds", nil); got != 60 {
		t.Errorf("oldest undelivered = %vs, want 60s", got)
	}
	r.clock.Advance(time.Minute) // the second backoff is 2 minutes
	if n := r.dispatch(d); n != 0 {
		t.Fatalf("pass inside the second backoff attempted %d, want 0", n)
	}

	mails, _ := startMailServer(t, addr, cert)
	r.clock.Advance(time.Minute)
	if n := r.dispatch(d); n != 3 {
		t.Fatalf("pass 3 attempted %d, want 3", n)
	}
	r.clock.Advance(48 * time.Hour)
	if n := r.dispatch(d); n != 0 {
		t.Fatalf("pass after delivery attempted %d, want 0", n)
	}

	perAlert := map[string]int{}
	for _, raw := range mails.received() {
		m, _ := parseMail(t, raw)
		perAlert[m.Header.Get(alerts.HeaderAlertID)]++
	}
	want := map[string]int{}
	for _, a := range r.openAlerts(shop) {
		want[a.AlertID.String()] = 1
		full, err := alerts.Get(context.Background(), r.db.DB, []int64{shop}, a.AlertID)
		if err != nil {
			t.Fatal(err)
		}
		dl := full.Deliveries[0]
		var errs []bool
		for _, h := range dl.History {
			errs = append(errs, h.Error != "")
		}
		if dl.Status != alerts.DeliveryDelivered || dl.Attempts != 3 || !cmp.Equal(errs, []bool{true, true, false}) {
			t.Errorf("delivery of %s: status %s, %d attempts, failed attempts %v", a.AlertID, dl.Status, dl.Attempts, errs)
		}
	}
	if diff := cmp.Diff(want, perAlert); diff != "" {
		t.Errorf("mails per alert (-want +got):\n%s", diff)
	}
	if got := servicetest.Metric(t, r.reg, "shopledger_alert_oldest_undelivered_seconds", nil); got != 0 {
		t.Errorf("oldest undelivered = %vs after delivery, want 0", got)
	}
	for result, want := range map[string]float64{"retry": 6, "delivered": 3, "failed": 0} {
		if got := servicetest.Metric(t, r.reg, "shopledger_alert_deliveries_total", map[string]string{"channel": "email", "result": result}); got != want {
			t.Errorf("deliveries_total{email,%s} = %v, want %v", result, got, want)
		}
	}
}

// Without an e-mail sender (SMTP not configured) e-mail deliveries are not
// attempted, so never fail: they stay pending, visible as such and in the
// oldest-undelivered gauge, and go out, with their full retry horizon,
// once a dispatcher with a sender runs, days later if need be.
func TestEmailWithoutSMTPWaitsPendingUntilASenderExists(t *testing.T) {
	const shop, listing = 25, 2500
	r := newRig(t, 0)
	cert, pool := testCert(t)
	secret, err := r.channels.WebhookSecret(context.Background(), shop)
	if err != nil {
		t.Fatal(err)
	}
	hooks := startHookReceiver(t, func() string { return secret })
	r.feed(settings(shop, nil, []events.AlertChannel{{Kind: "email", Target: "sam@seller.test"}, {Kind: "webhook", Target: hooks.srv.URL}}, 0),
		adjusted(shop, listing, "S", 1, 1))
	webhookOnly := r.dispatcher(map[string]alerts.Sender{
		alerts.KindWebhook: alerts.NewWebhookSender(alerts.NewHTTPClient(5*time.Second, true), r.channels, alerts.Links{}, r.clock.Now),
	}, alerts.DispatcherConfig{GiveUpAfter: 24 * time.Hour})
	if n := r.dispatch(webhookOnly); n != 1 {
		t.Fatalf("first pass attempted %d deliveries, want the webhook's alone", n)
	}
	for range 3 {
		r.clock.Advance(24 * time.Hour)
		if n := r.dispatch(webhookOnly); n != 0 {
			t.Fatalf("a pass without an e-mail sender attempted %d", n)
		}
	}
	status := func() map[string]string {
		t.Helper()
		a := r.openAlerts(shop)[0]
		full, err := alerts.Get(context.Background(), r.db.DB, []int64{shop}, a.AlertID)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, dl := range full.Deliveries {
			out[dl.Kind] = fmt.Sprintf("%s after %d attempts", dl.Status, dl.Attempts)
		}
		return out
	}
	want := map[string]string{"email": "pending after 0 attempts", "webhook": "delivered after 1 attempts"}
	if diff := cmp.Diff(want, status()); diff != "" {
		t.Errorf("deliveries without SMTP (-want +got):\n%s", diff)
	}
	if got := servicetest.Metric(t, r.reg, "shopledger_alert_oldest_undelivered_seconds", nil); got < 72*3600 {
		t.Errorf("oldest undelivered = %vs, want the e-mail's three days", got)
	}

	mails, addr := startMailServer(t, "127.0.0.1:0", cert)
	// The projector restarted with SHOPLEDGER_SMTP_ADDR set.
	withSMTP, err := alerts.NewDispatcher(r.db.DB, alerts.DispatcherConfig{
		Senders: map[string]alerts.Sender{alerts.KindEmail: r.emailSender(addr, pool)}, GiveUpAfter: 24 * time.Hour, Now: r.clock.Now,
	}, r.logger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := r.dispatch(withSMTP); n != 1 {
		t.Fatalf("the pass with an e-mail sender attempted %d, want 1", n)
	}
	want["email"] = "delivered after 1 attempts"
	if diff := cmp.Diff(want, status()); diff != "" {
		t.Errorf("deliveries once SMTP is configured (-want +got):\n%s", diff)
	}
	if n := len(mails.received()); n != 1 {
		t.Errorf("%d mails received, want 1", n)
	}
}

func TestDeliveryGivesUpAfterTheRetryHorizon(t *testing.T) {
	const shop, listing = 23, 2300
	r := newRig(t, 0)
	_, pool := testCert(t)
	addr := downAddr(t)
	r.feed(settings(shop, nil, []events.AlertChannel{{Kind: "email", Target: "sam@seller.test"}}, 0), adjusted(shop, listing, "S", 1, 1))
	d := r.dispatcher(map[string]alerts.Sender{alerts.KindEmail: r.emailSender(addr, pool)},
		alerts.DispatcherConfig{InitialBackoff: time.Hour, MaxBackoff: 4 * time.Hour, GiveUpAfter: 24 * time.Hour})
	// Attempts at 0, 4, 8, 12, 16, 20 and 24 h; after the one at 24 h the
	// next retry would start past the horizon.
	for i := 0; i < 10; i++ {
		r.dispatch(d)
		r.clock.Advance(4 * time.Hour)
	}
	a := r.openAlerts(shop)[0]
	dl := a.Deliveries[0]
	if dl.Status != alerts.DeliveryFailed || dl.Attempts != 7 || dl.FinishedAt == nil || dl.NextAttemptAt != nil || dl.LastError == "" {
		t.Errorf("delivery after the horizon: %+v", dl)
	}
}

func TestBackoffDoublesUpToTheCap(t *testing.T) {
	cfg := alerts.DispatcherConfig{InitialBackoff: 30 * time.Second, MaxBackoff: 5 * time.Minute}
	var got []time.Duration
	for i := 1; i <= 6; i++ {
		got = append(got, cfg.Backoff(i))
	}
	want := []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 5 * time.Minute, 5 * time.Minute}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("backoff (-want +got):\n%s", diff)
	}
}

func TestWebhooksToPrivateAddressesFailForGood(t *testing.T) {
	hooks := startHookReceiver(t, func() string { return "" })
	db := pgtest.New(t)
	s := alerts.NewWebhookSender(alerts.NewHTTPClient(time.Second, false), alerts.NewChannels(db.DB), alerts.Links{}, time.Now)
	err := s.Send(context.Background(), alerts.Outgoing{Kind: alerts.KindWebhook, Target: hooks.srv.URL, Message: alerts.Message{AlertID: uuid.NewString(), ShopID: 1}})
	if !errors.Is(err, alerts.ErrForbiddenAddress) || !alerts.IsPermanent(err) {
		t.Errorf("Send to %s = %v, want a permanent ErrForbiddenAddress", hooks.srv.URL, err)
	}
	if strings.Contains(err.Error(), hooks.srv.URL) {
		t.Errorf("error shows the URL: %v", err)
	}
}

func TestReplayAndRebuildDeliverNothing(t *testing.T) {
	const shop, listing = 24, 2400
	r := newRig(t, time.Hour)
	ctx := context.Background()
	cert, pool := testCert(t)
	mails, smtpAddr := startMailServer(t, "127.0.0.1:0", cert)
	r.feed(
		settings(shop, nil, []events.AlertChannel{{Kind: "email", Target: "sam@seller.test"}}, 0),
		adjusted(shop, listing, "S", 6, 1),
		sold(shop, listing, "S", 1, 2),      // raise, delivered
		adjusted(shop, listing, "S", 5, 3),  // clear
		sold(shop, listing, "S", 5, 4),      // raise inside the cooldown: muted
		adjusted(shop, listing, "M", 2, 90), // raise, delivered
	)
	d := r.dispatcher(map[string]alerts.Sender{alerts.KindEmail: r.emailSender(smtpAddr, pool)}, alerts.DispatcherConfig{})
	if n := r.dispatch(d); n != 2 {
		t.Fatalf("delivered %d, want 2 (the muted raise is not delivered)", n)
	}
	before := snapshot(t, r)

	// Replay the alerter from the start of the log.
	r.halt()
	if err := alerts.Reset(ctx, r.db.DB); err != nil {
		t.Fatal(err)
	}
	// Rebuild the read model while nothing runs, then again while the
	// consumers run.
	if _, err := alerts.RebuildReadModel(ctx, r.db.DB); err != nil {
		t.Fatal(err)
	}
	r.start()
	catchUp(t, r.db.DB, alerts.AlerterName, alerts.ReadModelName)
	if _, err := alerts.RebuildReadModel(ctx, r.db.DB); err != nil {
		t.Fatal(err)
	}
	// And the projector's rebuild of every other read model, while the
	// alerter runs.
	var rebuildable []engine.Rebuildable
	for _, p := range projections.Default() {
		if rb, ok := p.(engine.Rebuildable); ok {
			rebuildable = append(rebuildable, rb)
		}
	}
	if _, err := engine.Rebuild(ctx, r.db.Pool, rebuildable, engine.RebuildOptions{}, discard()); err != nil {
		t.Fatal(err)
	}
	catchUp(t, r.db.DB, alerts.AlerterName, alerts.ReadModelName)
	r.clock.Advance(time.Hour)
	if n := r.dispatch(d); n != 0 {
		t.Errorf("after replay and rebuild %d deliveries were attempted, want 0", n)
	}
	if diff := cmp.Diff(before, snapshot(t, r)); diff != "" {
		t.Errorf("replay and rebuild changed (-want +got):\n%s", diff)
	}
	if n := len(mails.received()); n != 2 {
		t.Errorf("%d mails, want the 2 sent before the replay", n)
	}

	// The replayed state goes on from where it was: S's open alert clears.
	r.feed(adjusted(shop, listing, "S", 10, 100))
	recs := alertEvents(t, r.db.DB)
	last := recs[len(recs)-1].Data.(events.LowStockCleared)
	if last.VariantKey != "S" || last.Quantity != 15 || last.AlertID != before.Open["S"] {
		t.Errorf("after replay: %+v, want S's open alert %s cleared", last, before.Open["S"])
	}
}

// state is what a replay or rebuild must leave untouched.
type state struct {
	AlertEvents []string
	Alerts      []alerts.Alert
	Deliveries  int
	Open        map[string]string
}

func snapshot(t *testing.T, r *rig) state {
	t.Helper()
	var s state
	for _, rec := range alertEvents(t, r.db.DB) {
		s.AlertEvents = append(s.AlertEvents, rec.ID.String())
	}
	as, err := alerts.List(context.Background(), r.db.DB, []int64{24}, alerts.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	s.Alerts = as
	s.Open = map[string]string{}
	for _, a := range as {
		if a.Status == alerts.StatusOpen {
			s.Open[a.VariantKey] = a.AlertID.String()
		}
	}
	if err := r.db.DB.QueryRow(`SELECT count(*) FROM alert_deliveries`).Scan(&s.Deliveries); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRefusedSMTPCredentialsAreRetriedWithoutShowingThePassword(t *testing.T) {
	cert, pool := testCert(t)
	_, addr := startMailServer(t, "127.0.0.1:0", cert)
	s, err := alerts.NewEmailSender(alerts.SMTPConfig{
		Addr: addr, Username: smtpUser, Password: "wrong-" + smtpPass, From: "alerts@shopledger.test",
		StartTLS: true, TLSConfig: &tls.Config{RootCAs: pool}, Timeout: 5 * time.Second,
	}, alerts.Links{}, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Send(context.Background(), alerts.Outgoing{Kind: alerts.KindEmail, Target: "sam@seller.test", Message: alerts.Message{AlertID: uuid.NewString(), ShopID: 1}})
	if err == nil || alerts.IsPermanent(err) {
		t.Fatalf("Send with a refused password = %v, want an error worth retrying", err)
	}
	if strings.Contains(err.Error(), smtpPass) {
		t.Errorf("error shows the password: %v", err)
	}
}

func TestConcurrentDispatchersSendEachDeliveryOnce(t *testing.T) {
	const shop, listing = 25, 2500
	r := newRig(t, 0)
	ctx := context.Background()
	secret, err := r.channels.WebhookSecret(ctx, shop)
	if err != nil {
		t.Fatal(err)
	}
	hooks := startHookReceiver(t, func() string { return secret })
	var history []events.Event
	history = append(history, settings(shop, nil, []events.AlertChannel{{Kind: "webhook", Target: hooks.srv.URL}}, 0))
	for i := range 8 {
		history = append(history, adjusted(shop, listing, fmt.Sprintf("V%d", i), 1, 1))
	}
	r.feed(history...)
	client := alerts.NewHTTPClient(5*time.Second, true)
	senders := map[string]alerts.Sender{alerts.KindWebhook: alerts.NewWebhookSender(client, r.channels, alerts.Links{}, time.Now)}
	var wg sync.WaitGroup
	attempted := make([]int, 3)
	for i := range attempted {
		// Separate processes: each with its own metrics.
		d, err := alerts.NewDispatcher(r.db.DB, alerts.DispatcherConfig{Senders: senders, BatchSize: 3, Concurrency: 2, Now: r.clock.Now}, r.logger(), nil)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n, err := d.DispatchDue(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				if n == 0 {
					return
				}
				attempted[i] += n
			}
		}()
	}
	wg.Wait()
	hooks.mu.Lock()
	defer hooks.mu.Unlock()
	if len(hooks.refused) != 0 || len(hooks.byID) != 8 {
		t.Fatalf("receiver: %d alerts, refused %v", len(hooks.byID), hooks.refused)
	}
	for id, n := range hooks.byID {
		if n != 1 {
			t.Errorf("alert %s received %d times", id, n)
		}
	}
	if total := attempted[0] + attempted[1] + attempted[2]; total != 8 {
		t.Errorf("dispatchers attempted %v, want 8 in all", attempted)
	}
}
