package etsysim_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/etsy/etsysim"
	"github.com/shopledger/shopledger/stdwebhooks"
)

// receiver is a webhook endpoint that records what it gets and answers
// with the statuses queued in respond (then 200).
type receiver struct {
	srv     *httptest.Server
	mu      sync.Mutex
	got     []received
	respond []int
}

type received struct {
	header http.Header
	body   []byte
}

func newReceiver(t *testing.T, respond ...int) *receiver {
	t.Helper()
	r := &receiver{respond: respond}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, received{req.Header.Clone(), b})
		status := http.StatusOK
		if len(r.respond) > 0 {
			status, r.respond = r.respond[0], r.respond[1:]
		}
		r.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) all() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func (r *receiver) events() []string {
	var out []string
	for _, g := range r.all() {
		p, err := etsy.ParseWebhookPayload(g.body)
		if err != nil {
			out = append(out, "unparsable: "+string(g.body))
			continue
		}
		out = append(out, p.EventType)
	}
	return out
}

func TestWebhookDeliveryIsSignedAndFlat(t *testing.T) {
	w := newWorld(t, etsysim.Options{PublicURL: "http://sim.test"})
	hook := newReceiver(t)
	ep, err := w.sim.AddWebhook(etsysim.WebhookSpec{URL: hook.srv.URL, EventTypes: []string{etsy.EventOrderPaid}})
	if err != nil {
		t.Fatal(err)
	}
	l, _ := w.sim.CreateListing(w.shop.ShopID, etsysim.ListingSpec{Quantity: 5})
	r, err := w.sim.CreateOrder(w.shop.ShopID, etsysim.OrderSpec{Items: []etsysim.OrderItem{{ListingID: l.ListingID, Quantity: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.sim.WaitDeliveries(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	got := hook.all()
	if len(got) != 1 {
		t.Fatalf("%d deliveries, want 1 (order.paid only)", len(got))
	}
	g := got[0]
	if err := stdwebhooks.Verify(g.header, g.body, []string{ep.Secret}, w.sim.Now()); err != nil {
		t.Fatalf("signature does not verify: %v", err)
	}
	wantBody := `{"event_type":"order.paid","resource_url":"http://sim.test/v3/application/shops/` + strconv.FormatInt(w.shop.ShopID, 10) +
		`/receipts/` + strconv.FormatInt(r.ReceiptID, 10) + `","shop_id":` + strconv.FormatInt(w.shop.ShopID, 10) + `}`
	if string(g.body) != wantBody {
		t.Errorf("body\n got %s\nwant %s", g.body, wantBody)
	}
	if id := g.header.Get("webhook-id"); len(id) != 31 || id[:4] != "msg_" {
		t.Errorf("webhook-id %q", id)
	}
	if ts := g.header.Get("webhook-timestamp"); ts != strconv.FormatInt(start.Unix(), 10) {
		t.Errorf("webhook-timestamp %q, want %d", ts, start.Unix())
	}
	if ct := g.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("content type %q", ct)
	}
}

func TestWebhookRetrySchedule(t *testing.T) {
	w := newWorld(t, etsysim.Options{})
	// Fail every attempt of Etsy's schedule.
	hook := newReceiver(t, 500, 500, 500, 500, 500, 500, 500, 500, 500)
	ep, _ := w.sim.AddWebhook(etsysim.WebhookSpec{URL: hook.srv.URL})
	if _, err := w.sim.CreateListing(w.shop.ShopID, etsysim.ListingSpec{Quantity: 1}); err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	for _, wait := range etsysim.RetrySchedule[1:] {
		if err := w.sim.WaitDeliveries(ctx); err != nil {
			t.Fatal(err)
		}
		w.sim.Advance(wait)
	}
	if err := w.sim.WaitDeliveries(ctx); err != nil {
		t.Fatal(err)
	}
	ds := w.sim.Deliveries(etsysim.DeliveryFilter{EndpointID: ep.ID})
	if len(ds) != 1 {
		t.Fatalf("%d deliveries", len(ds))
	}
	d := ds[0]
	if d.State != etsysim.DeliveryFailed || len(d.Attempts) != 8 {
		t.Fatalf("state %s after %d attempts, want failed after 8", d.State, len(d.Attempts))
	}
	// Each attempt is the schedule's delay after the previous failure,
	// signed afresh with its own timestamp, under the same webhook-id.
	var gotGaps, wantGaps []time.Duration
	for i := 1; i < len(d.Attempts); i++ {
		gotGaps = append(gotGaps, d.Attempts[i].At.Sub(d.Attempts[i-1].At))
		wantGaps = append(wantGaps, etsysim.RetrySchedule[i])
	}
	if diff := cmp.Diff(wantGaps, gotGaps); diff != "" {
		t.Errorf("gaps between attempts (-want +got):\n%s", diff)
	}
	got := hook.all()
	if len(got) != 8 {
		t.Fatalf("receiver saw %d attempts", len(got))
	}
	for i, g := range got {
		if g.header.Get("webhook-id") != d.MessageID {
			t.Errorf("attempt %d webhook-id %q, want %q", i, g.header.Get("webhook-id"), d.MessageID)
		}
		if want := strconv.FormatInt(d.Attempts[i].At.Unix(), 10); g.header.Get("webhook-timestamp") != want {
			t.Errorf("attempt %d timestamp %q, want %s", i, g.header.Get("webhook-timestamp"), want)
		}
		if err := stdwebhooks.Verify(g.header, g.body, []string{ep.Secret}, d.Attempts[i].At); err != nil {
			t.Errorf("attempt %d: %v", i, err)
		}
	}
	if span := d.Attempts[7].At.Sub(d.Attempts[0].At); span != 27*time.Hour+35*time.Minute+5*time.Second {
		t.Errorf("schedule spans %v, want 27h35m5s", span)
	}
	// Recovering the message starts over.
	hook.mu.Lock()
	hook.respond = nil
	hook.mu.Unlock()
	if err := w.sim.Redeliver(d.MessageID); err != nil {
		t.Fatal(err)
	}
	if err := w.sim.WaitDeliveries(ctx); err != nil {
		t.Fatal(err)
	}
	if d := w.sim.Deliveries(etsysim.DeliveryFilter{EndpointID: ep.ID})[0]; d.State != etsysim.DeliverySucceeded {
		t.Errorf("after redelivery: %s", d.State)
	}
}

func TestWebhookRetryScale(t *testing.T) {
	// Etsy's "35 minutes and 5 seconds" example, compressed 10,000×: three
	// failures then success, in about 0.2 s of real time.
	sim := newSim(t, etsysim.Options{WebhookRetryScale: 1e-4})
	shop, _ := sim.CreateShop(etsysim.ShopSpec{})
	hook := newReceiver(t, 503, 503, 503)
	if _, err := sim.AddWebhook(etsysim.WebhookSpec{URL: hook.srv.URL}); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.CreateListing(shop.ShopID, etsysim.ListingSpec{Quantity: 1}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(sim.Deliveries(etsysim.DeliveryFilter{State: etsysim.DeliverySucceeded})) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	d := sim.Deliveries(etsysim.DeliveryFilter{})[0]
	if d.State != etsysim.DeliverySucceeded || len(d.Attempts) != 4 {
		t.Fatalf("state %s after %d attempts", d.State, len(d.Attempts))
	}
	st := sim.Stats()
	if st.WebhookAttempts != 4 || st.WebhookSucceeded != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestWebhookFaults(t *testing.T) {
	emit := func(t *testing.T, w world, n int) {
		t.Helper()
		for range n {
			if _, err := w.sim.CreateListing(w.shop.ShopID, etsysim.ListingSpec{Quantity: 1}); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.sim.WaitDeliveries(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(rs []received) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.header.Get("webhook-id"))
		}
		return out
	}
	t.Run("drop", func(t *testing.T) {
		w := newWorld(t, etsysim.Options{Faults: etsysim.Faults{Drop: 1}})
		hook := newReceiver(t)
		w.sim.AddWebhook(etsysim.WebhookSpec{URL: hook.srv.URL})
		emit(t, w, 3)
		if n := len(hook.all()); n != 0 {
			t.Errorf("%d deliveries despite drop=1", n)
		}
		if n := len(w.sim.Deliveries(etsysim.DeliveryFilter{State: etsysim.DeliveryDropped})); n != 3 {
			t.Errorf("%d dropped, want 3", n)
		}
	})
	t.Run("duplicate", func(t *testing.T) {
		w := newWorld(t, etsysim.Options{Faults: etsysim.Faults{Duplicate: 1}})
		hook := newReceiver(t)
		w.sim.AddWebhook(etsysim.WebhookSpec{URL: hook.srv.URL})
		emit(t, w, 1)
		w.sim.Advance(5 * time.Second)
		if err := w.sim.WaitDeliveries(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		got := ids(hook.all())
		if len(got) != 2 || got[0] != got[1] {
			t.Errorf("webhook-ids %v, want the same id twice", got)
		}
	})
	t.Run("reorder", func(t *testing.T) {
		w := newWorld(t, etsysim.Options{})
		hook := newReceiver(t)
		w.sim.AddWebhook(etsysim.WebhookSpec{URL: hook.srv.URL})
		w.sim.SetFaults(etsysim.Faults{Reorder: 1})
		emit(t, w, 1)
		w.sim.SetFaults(etsysim.Faults{})
		emit(t, w, 1)
		if err := w.sim.WaitDeliveries(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		ds := w.sim.Deliveries(etsysim.DeliveryFilter{})
		got := ids(hook.all())
		if diff := cmp.Diff([]string{ds[1].MessageID, ds[0].MessageID}, got); diff != "" {
			t.Errorf("arrival order (-want +got):\n%s", diff)
		}
	})
	t.Run("delay", func(t *testing.T) {
		w := newWorld(t, etsysim.Options{Faults: etsysim.Faults{Delay: 1, MaxDelay: time.Minute}})
		hook := newReceiver(t)
		w.sim.AddWebhook(etsysim.WebhookSpec{URL: hook.srv.URL})
		emit(t, w, 2)
		// The clock is frozen: delayed messages wait for it.
		if n := len(hook.all()); n != 0 {
			t.Errorf("%d delivered before their delay", n)
		}
		w.sim.Advance(time.Minute)
		if err := w.sim.WaitDeliveries(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		if n := len(hook.all()); n != 2 {
			t.Errorf("%d delivered after the delay, want 2", n)
		}
	})
	t.Run("410 disables the endpoint", func(t *testing.T) {
		w := newWorld(t, etsysim.Options{})
		hook := newReceiver(t, http.StatusGone)
		w.sim.AddWebhook(etsysim.WebhookSpec{URL: hook.srv.URL})
		emit(t, w, 2)
		if n := len(hook.all()); n != 1 {
			t.Errorf("%d attempts, want 1 then none", n)
		}
		if !w.sim.Webhooks()[0].Disabled {
			t.Error("endpoint still enabled after 410")
		}
	})
	t.Run("a redirect is a failure", func(t *testing.T) {
		w := newWorld(t, etsysim.Options{})
		hook := newReceiver(t, http.StatusTemporaryRedirect)
		w.sim.AddWebhook(etsysim.WebhookSpec{URL: hook.srv.URL})
		emit(t, w, 1)
		d := w.sim.Deliveries(etsysim.DeliveryFilter{})[0]
		if d.State != etsysim.DeliveryPending || len(d.Attempts) != 1 || d.Attempts[0].Status != http.StatusTemporaryRedirect {
			t.Errorf("delivery after a 307: %+v", d)
		}
	})
}

func TestWebhookSpecValidation(t *testing.T) {
	sim := newSim(t, etsysim.Options{FreezeClock: true})
	for _, spec := range []etsysim.WebhookSpec{
		{},
		{URL: "http://x", EventTypes: []string{"receipt.created"}},
		{URL: "http://x", Secret: "whsec_***"},
	} {
		if _, err := sim.AddWebhook(spec); err == nil {
			t.Errorf("AddWebhook(%+v) accepted", spec)
		}
	}
	ep, err := sim.AddWebhook(etsysim.WebhookSpec{URL: "http://x"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stdwebhooks.ParseSecret(ep.Secret); err != nil || ep.Secret[:6] != "whsec_" {
		t.Errorf("generated secret %q: %v", ep.Secret, err)
	}
	b, _ := json.Marshal(etsysim.Faults{Drop: 0.1, MaxDelay: 2 * time.Second})
	var f etsysim.Faults
	if err := json.Unmarshal(b, &f); err != nil || f.MaxDelay != 2*time.Second || f.Drop != 0.1 {
		t.Errorf("faults round trip %s → %+v, %v", b, f, err)
	}
	if err := sim.SetFaults(etsysim.Faults{Drop: 1.5}); err == nil {
		t.Error("drop fraction 1.5 accepted")
	}
}

func TestWebhookSecretRotation(t *testing.T) {
	w := newWorld(t, etsysim.Options{})
	hook := newReceiver(t)
	ep, _ := w.sim.AddWebhook(etsysim.WebhookSpec{URL: hook.srv.URL})
	old := ep.Secret
	rotated, err := w.sim.RotateWebhookSecret(ep.ID, "", true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.sim.CreateListing(w.shop.ShopID, etsysim.ListingSpec{Quantity: 1}); err != nil {
		t.Fatal(err)
	}
	if err := w.sim.WaitDeliveries(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	g := hook.all()[0]
	// During rotation both a receiver with only the old secret and one
	// with only the new one accept the delivery.
	for _, secrets := range [][]string{{old}, {rotated.Secret}} {
		if err := stdwebhooks.Verify(g.header, g.body, secrets, w.sim.Now()); err != nil {
			t.Errorf("verify with %d secret(s): %v (header %q)", len(secrets), err, g.header.Get("webhook-signature"))
		}
	}
	if _, err := w.sim.RotateWebhookSecret(ep.ID, "", false); err != nil {
		t.Fatal(err)
	}
	if _, err := w.sim.CreateListing(w.shop.ShopID, etsysim.ListingSpec{Quantity: 1}); err != nil {
		t.Fatal(err)
	}
	if err := w.sim.WaitDeliveries(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	g = hook.all()[1]
	if err := stdwebhooks.Verify(g.header, g.body, []string{old, rotated.Secret}, w.sim.Now()); err == nil {
		t.Error("a secret rotated away still verifies")
	}
}

// A simulator restarted with the same seed rebuilds the same shops,
// listings and orders, so it raises the same events; their webhook ids
// must still be new, or a receiver that already holds them drops every
// one as a retry. A fixed nonce gives the same ids again.
func TestRestartWithSameSeedSendsNewWebhookIDs(t *testing.T) {
	run := func(nonce string) (ids, bodies []string) {
		w := newWorld(t, etsysim.Options{Seed: 7, WebhookIDNonce: nonce})
		hook := newReceiver(t)
		if _, err := w.sim.AddWebhook(etsysim.WebhookSpec{URL: hook.srv.URL}); err != nil {
			t.Fatal(err)
		}
		l, err := w.sim.CreateListing(w.shop.ShopID, etsysim.ListingSpec{Quantity: 5})
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if _, err := w.sim.CreateOrder(w.shop.ShopID, etsysim.OrderSpec{Items: []etsysim.OrderItem{{ListingID: l.ListingID, Quantity: 1}}}); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.sim.WaitDeliveries(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		for _, g := range hook.all() {
			ids = append(ids, g.header.Get("webhook-id"))
			bodies = append(bodies, string(g.body))
		}
		return ids, bodies
	}
	firstIDs, firstBodies := run("")
	secondIDs, secondBodies := run("")
	if len(firstIDs) != 4 {
		t.Fatalf("%d deliveries, want 4 (listing.created and 3 order.paid)", len(firstIDs))
	}
	if diff := cmp.Diff(firstBodies, secondBodies); diff != "" {
		t.Errorf("the same seed raised different events (-first +second):\n%s", diff)
	}
	for _, id := range secondIDs {
		if slices.Contains(firstIDs, id) {
			t.Errorf("webhook id %s sent by both starts", id)
		}
		if len(id) != 31 || id[:4] != "msg_" {
			t.Errorf("webhook id %q is not msg_ and 27 characters", id)
		}
	}
	fixedA, _ := run("Run1")
	fixedB, _ := run("Run1")
	if diff := cmp.Diff(fixedA, fixedB); diff != "" {
		t.Errorf("the same seed and nonce gave different ids (-first +second):\n%s", diff)
	}
	if _, err := etsysim.New(etsysim.Options{WebhookIDNonce: "not-base62"}); !errors.Is(err, etsysim.ErrInvalid) {
		t.Errorf("nonce with a dash: err = %v, want ErrInvalid", err)
	}
}

// TestWebhooksOnlyForAuthorisedShops: with WebhooksAuthorisedOnly, a shop
// whose owner granted no app access raises no webhook until a grant, and
// none after the grant is revoked.
func TestWebhooksOnlyForAuthorisedShops(t *testing.T) {
	w := newWorld(t, etsysim.Options{WebhooksAuthorisedOnly: true})
	hook := newReceiver(t)
	if _, err := w.sim.AddWebhook(etsysim.WebhookSpec{URL: hook.srv.URL, EventTypes: []string{etsy.EventOrderPaid}}); err != nil {
		t.Fatal(err)
	}
	other, err := w.sim.CreateShop(etsysim.ShopSpec{})
	if err != nil {
		t.Fatal(err)
	}
	order := func(shopID int64) {
		t.Helper()
		l, err := w.sim.CreateListing(shopID, etsysim.ListingSpec{Quantity: 5})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.sim.CreateOrder(shopID, etsysim.OrderSpec{Items: []etsysim.OrderItem{{ListingID: l.ListingID, Quantity: 1}}}); err != nil {
			t.Fatal(err)
		}
		if err := w.sim.WaitDeliveries(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
	heard := func() []string {
		var shops []string
		for _, d := range hook.all() {
			var b struct {
				ShopID int64 `json:"shop_id"`
			}
			if err := json.Unmarshal(d.body, &b); err != nil {
				t.Fatal(err)
			}
			shops = append(shops, strconv.FormatInt(b.ShopID, 10))
		}
		return shops
	}
	mine, theirs := strconv.FormatInt(w.shop.ShopID, 10), strconv.FormatInt(other.ShopID, 10)
	order(w.shop.ShopID) // granted by newWorld
	order(other.ShopID)  // no grant yet
	if got := heard(); !slices.Equal(got, []string{mine}) {
		t.Fatalf("webhooks for shops %v, want only the authorised %s", got, mine)
	}
	if _, err := w.sim.IssueToken(other.ShopID, nil); err != nil {
		t.Fatal(err)
	}
	order(other.ShopID)
	if got := heard(); !slices.Equal(got, []string{mine, theirs}) {
		t.Fatalf("after the grant: webhooks for shops %v, want %s then %s", got, mine, theirs)
	}
	if err := w.sim.RevokeTokens(other.UserID); err != nil {
		t.Fatal(err)
	}
	order(other.ShopID)
	if got := heard(); !slices.Equal(got, []string{mine, theirs}) {
		t.Fatalf("after revoking: webhooks for shops %v, want no more for %s", got, theirs)
	}
}
