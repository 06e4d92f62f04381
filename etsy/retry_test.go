package etsy_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/etsy/etsysim"
)

// flaky fronts the simulator and spoils the first n requests: a 5xx
// answer after the simulator processed them, or a dropped connection.
type flaky struct {
	next   http.Handler
	n      atomic.Int32
	mode   string // "500-after", "reset-after"
	served atomic.Int32
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.n.Add(-1) < 0 {
		f.next.ServeHTTP(w, r)
		return
	}
	// The request reaches Etsy and is processed; only the answer is lost.
	rec := httptest.NewRecorder()
	f.next.ServeHTTP(rec, r)
	f.served.Add(1)
	switch f.mode {
	case "500-after":
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error":"Server Error"}`))
	case "reset-after":
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	}
}

func flakyEnv(t *testing.T, mode string, failures int32) (*env, *flaky) {
	t.Helper()
	e := newEnv(t, envOptions{sim: etsysim.Options{FreezeClock: true}, client: etsy.Config{MaxRetries: 3}})
	f := &flaky{next: e.sim, mode: mode}
	f.n.Store(failures)
	front := httptest.NewServer(f)
	t.Cleanup(front.Close)
	app := e.sim.Apps()[0]
	c, err := etsy.NewClient(etsy.Config{
		BaseURL: front.URL, KeyString: app.KeyString, SharedSecret: app.SharedSecret,
		Limiter: e.client.Limiter(), MaxRetries: 3, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.client = c
	return e, f
}

func TestReadsRetryServerAndNetworkErrors(t *testing.T) {
	for _, mode := range []string{"500-after", "reset-after"} {
		t.Run(mode, func(t *testing.T) {
			e, f := flakyEnv(t, mode, 2)
			if _, err := e.client.GetMe(ctxT(t), e.ts); err != nil {
				t.Fatalf("GetMe after 2 failures with 3 retries: %v", err)
			}
			if got := f.served.Load(); got != 2 {
				t.Errorf("%d spoiled attempts, want 2", got)
			}
		})
	}
	t.Run("gives up after MaxRetries", func(t *testing.T) {
		e, _ := flakyEnv(t, "500-after", 10)
		_, err := e.client.GetMe(ctxT(t), e.ts)
		var apiErr *etsy.APIError
		if !errors.As(err, &apiErr) || apiErr.Status != http.StatusServiceUnavailable {
			t.Fatalf("GetMe = %v, want the 503", err)
		}
		if got := e.sim.Stats().RequestsServed; got != 4 {
			t.Errorf("%d attempts, want 1 + 3 retries", got)
		}
	})
}

func TestWritesAreNotBlindlyRetried(t *testing.T) {
	for _, mode := range []string{"500-after", "reset-after"} {
		t.Run(mode, func(t *testing.T) {
			e, f := flakyEnv(t, mode, 1)
			ctx := ctxT(t)
			l, err := e.sim.CreateListing(e.shop.ShopID, etsysim.ListingSpec{Title: "Cup", Quantity: 4})
			if err != nil {
				t.Fatal(err)
			}
			f.n.Store(0)
			inv, err := e.client.GetListingInventory(ctx, e.ts, l.ListingID)
			if err != nil {
				t.Fatal(err)
			}
			u := inv.Update()
			u.Products[0].Offerings[0].Quantity = 10
			f.n.Store(1)
			if _, err := e.client.UpdateListingInventory(ctx, e.ts, l.ListingID, u); err == nil {
				t.Fatal("the write's failure was hidden")
			}
			if got := f.served.Load(); got != 1 {
				t.Errorf("the write reached Etsy %d times, want exactly once", got)
			}
			// It did happen on Etsy's side: the caller must re-read.
			after, _ := e.sim.Listing(l.ListingID)
			if after.Quantity != 10 {
				t.Errorf("quantity %d, want 10", after.Quantity)
			}
		})
	}
	t.Run("a refused connection is retried", func(t *testing.T) {
		e := newEnv(t, envOptions{sim: etsysim.Options{FreezeClock: true}})
		dead := httptest.NewServer(http.NotFoundHandler())
		url := dead.URL
		dead.Close()
		var attempts atomic.Int32
		app := e.sim.Apps()[0]
		c, err := etsy.NewClient(etsy.Config{
			BaseURL: url, KeyString: app.KeyString, SharedSecret: app.SharedSecret, MaxRetries: 2, MinBackoff: time.Millisecond,
			HTTPClient: &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
				attempts.Add(1)
				return http.DefaultTransport.RoundTrip(r)
			})},
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err = c.UpdateListingInventory(ctxT(t), e.ts, 1, etsy.InventoryUpdate{}); err == nil {
			t.Fatal("no error from a dead server")
		}
		// Refused means never sent: even a write may go again.
		if got := attempts.Load(); got != 3 {
			t.Errorf("%d attempts, want 1 + 2 retries", got)
		}
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestUnauthorizedOtherThanInvalidTokenIsNotRefreshed(t *testing.T) {
	e := newEnv(t, envOptions{sim: etsysim.Options{FreezeClock: true}})
	_, err := e.client.GetMe(ctxT(t), etsy.StaticTokenSource(""))
	var apiErr *etsy.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnauthorized || errors.Is(err, etsy.ErrInvalidToken) {
		t.Fatalf("GetMe without token = %v, want a plain 401", err)
	}
	_, err = e.client.GetMe(ctxT(t), etsy.StaticTokenSource("1.forged"))
	if !errors.Is(err, etsy.ErrInvalidToken) {
		t.Fatalf("GetMe with a forged static token = %v, want ErrInvalidToken after the failed refresh", err)
	}
	if got := e.sim.Stats().RefreshCalls; got != 0 {
		t.Errorf("refresh calls = %d, want 0", got)
	}
}

func TestAPIKeyIsChecked(t *testing.T) {
	e := newEnv(t, envOptions{sim: etsysim.Options{FreezeClock: true}})
	c, err := etsy.NewClient(etsy.Config{BaseURL: e.srv.URL, KeyString: etsysim.DefaultKeyString, SharedSecret: "wrong"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Ping(ctxT(t)); !errors.Is(err, etsy.ErrForbidden) {
		t.Errorf("Ping with a wrong shared secret = %v, want ErrForbidden", err)
	}
	if _, err := etsy.NewClient(etsy.Config{KeyString: "k"}, nil); err == nil {
		t.Error("NewClient without shared secret succeeded")
	}
}
