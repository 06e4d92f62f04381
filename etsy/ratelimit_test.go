package etsy_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/etsy/etsysim"
)

// hammer runs workers goroutines calling GetMe until each made perWorker
// calls, and returns the errors.
func hammer(ctx context.Context, e *env, workers, perWorker int) []error {
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range perWorker {
				if _, err := e.client.GetMe(ctx, e.ts); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return errs
}

func TestClientUnderLoadStaysWithinQPS(t *testing.T) {
	const qps = 20
	e := newEnv(t, envOptions{
		sim:     etsysim.Options{FreezeClock: true, QPS: qps},
		limiter: etsy.LimiterConfig{QPS: qps},
	})
	ctx := ctxT(t)
	errs := hammer(ctx, e, 16, 4)
	if len(errs) > 0 {
		t.Fatalf("%d calls failed, first: %v", len(errs), errs[0])
	}
	st := e.sim.Stats()
	k := st.Keys[etsysim.DefaultKeyString]
	t.Logf("served %d, rate limited %d, max requests in any one second %d (limit %d)", k.Served, k.RateLimited, k.MaxQPS, qps)
	if k.MaxQPS > qps {
		t.Errorf("the simulator saw %d requests within one second, limit %d", k.MaxQPS, qps)
	}
	if k.RateLimited != 0 {
		t.Errorf("%d requests were refused with 429", k.RateLimited)
	}
	if k.Served != 64 {
		t.Errorf("served %d, want 64", k.Served)
	}
}

// secondClient is another process using the same app key: its own
// limiter, the same simulator.
func secondClient(t *testing.T, e *env, lc etsy.LimiterConfig) *env {
	t.Helper()
	lim, err := etsy.NewLimiter(lc, nil)
	if err != nil {
		t.Fatal(err)
	}
	app := e.sim.Apps()[0]
	c, err := etsy.NewClient(etsy.Config{
		BaseURL: e.srv.URL, KeyString: app.KeyString, SharedSecret: app.SharedSecret, Limiter: lim,
		MaxRetries: 10, MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	other := *e
	other.client = c
	return &other
}

func TestClientRecoversFrom429(t *testing.T) {
	// Two processes share a key, each allowed the key's whole 10 a second:
	// together they overrun it. The 429s' retry-after and the
	// x-remaining-this-second headers must slow both down until every
	// call succeeds.
	const qps = 10
	e := newEnv(t, envOptions{
		sim:     etsysim.Options{FreezeClock: true, QPS: qps},
		limiter: etsy.LimiterConfig{QPS: qps},
		client:  etsy.Config{MaxRetries: 10},
	})
	other := secondClient(t, e, etsy.LimiterConfig{QPS: qps})
	ctx := ctxT(t)
	// A third user of the key has just spent this second's budget, so the
	// first calls below meet a 429 for certain.
	for range qps {
		req := httptest.NewRequest(http.MethodGet, "/v3/application/openapi-ping", nil)
		req.Header.Set("x-api-key", etsysim.DefaultKeyString+":"+etsysim.DefaultSharedSecret)
		e.sim.ServeHTTP(httptest.NewRecorder(), req)
	}
	var wg sync.WaitGroup
	var errs1, errs2 []error
	wg.Go(func() { errs1 = hammer(ctx, e, 4, 4) })
	wg.Go(func() { errs2 = hammer(ctx, other, 4, 4) })
	wg.Wait()
	if errs := append(errs1, errs2...); len(errs) > 0 {
		t.Fatalf("%d calls failed, first: %v", len(errs), errs[0])
	}
	k := e.sim.Stats().Keys[etsysim.DefaultKeyString]
	t.Logf("served %d, rate limited %d, max in one second %d (limit %d)", k.Served, k.RateLimited, k.MaxQPS, qps)
	if k.Served != 32+qps {
		t.Errorf("served %d, want %d", k.Served, 32+qps)
	}
	if k.RateLimited == 0 {
		t.Errorf("no 429 happened; the test did not test recovery")
	}
}

func TestLimiterAdoptsEtsyLimit(t *testing.T) {
	e := newEnv(t, envOptions{
		sim:     etsysim.Options{FreezeClock: true, QPS: 5, QPD: 500},
		limiter: etsy.LimiterConfig{QPS: 50, QPD: 100000},
	})
	if _, err := e.client.GetMe(ctxT(t), e.ts); err != nil {
		t.Fatal(err)
	}
	qps, qpd := e.client.Limiter().Limits()
	if qps != 5 || qpd != 500 {
		t.Errorf("limits after Etsy's headers = %d/s %d/day, want 5 and 500", qps, qpd)
	}
	if _, day := e.client.Limiter().Remaining(); day != 499 {
		t.Errorf("remaining today = %d, want 499", day)
	}
}

func TestDailyBudget(t *testing.T) {
	t.Run("local budget refuses without calling", func(t *testing.T) {
		now := testStart
		var mu sync.Mutex
		clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		e := newEnv(t, envOptions{sim: etsysim.Options{FreezeClock: true}, limiter: etsy.LimiterConfig{QPD: 3, Now: clock}})
		ctx := ctxT(t)
		for range 3 {
			if _, err := e.client.GetMe(ctx, e.ts); err != nil {
				t.Fatal(err)
			}
		}
		served := e.sim.Stats().RequestsServed
		_, err := e.client.GetMe(ctx, e.ts)
		var rl *etsy.RateLimitError
		if !errors.As(err, &rl) || !errors.Is(err, etsy.ErrRateLimited) || rl.Window != "day" {
			t.Fatalf("fourth call = %v, want a daily RateLimitError", err)
		}
		if got := e.sim.Stats().RequestsServed; got != served {
			t.Errorf("the refused call reached the simulator")
		}
		if want := testStart.Truncate(5 * time.Minute).Add(24*time.Hour + 5*time.Minute); !rl.RetryAt.Equal(want) {
			t.Errorf("RetryAt %v, want %v", rl.RetryAt, want)
		}
		mu.Lock()
		now = now.Add(24*time.Hour + 5*time.Minute)
		mu.Unlock()
		if _, err := e.client.GetMe(ctx, e.ts); err != nil {
			t.Errorf("after the window slid: %v", err)
		}
	})
	t.Run("etsy's daily 429 is returned, not waited out", func(t *testing.T) {
		e := newEnv(t, envOptions{sim: etsysim.Options{FreezeClock: true, QPD: 2}})
		ctx := ctxT(t)
		// Another process spends the key's day.
		other := secondClient(t, e, etsy.LimiterConfig{})
		for range 2 {
			if _, err := other.client.GetMe(ctx, e.ts); err != nil {
				t.Fatal(err)
			}
		}
		start := time.Now()
		_, err := e.client.GetMe(ctx, e.ts)
		var apiErr *etsy.APIError
		if !errors.As(err, &apiErr) || !errors.Is(err, etsy.ErrRateLimited) || apiErr.RetryAfter < time.Hour {
			t.Fatalf("call = %v, want a 429 with a long retry-after", err)
		}
		if time.Since(start) > 10*time.Second {
			t.Errorf("the client waited for a day-long retry-after")
		}
		// The 429's x-remaining-today: 0 is adopted: no more calls go out.
		served := e.sim.Stats().RequestsServed
		limited := e.sim.Stats().RateLimited
		_, err = e.client.GetMe(ctx, e.ts)
		var rl *etsy.RateLimitError
		if !errors.As(err, &rl) || rl.Window != "day" {
			t.Errorf("next call = %v, want a local daily RateLimitError", err)
		}
		if st := e.sim.Stats(); st.RequestsServed != served || st.RateLimited != limited {
			t.Errorf("the locally refused call reached the simulator")
		}
	})
}

// countingBudget is a SharedBudget in memory: it counts claims and slots
// held, and refuses with a spent day once refuse is set.
type countingBudget struct {
	mu                sync.Mutex
	taken, held, most int
	refuse            bool
}

func (b *countingBudget) Take(context.Context) (func(), error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.refuse {
		return nil, &etsy.RateLimitError{Window: "day", RetryAt: testStart.Add(24 * time.Hour)}
	}
	b.taken++
	b.held++
	b.most = max(b.most, b.held)
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			b.held--
			b.mu.Unlock()
		})
	}, nil
}

// With a shared budget every request claims a slot there and gives it
// back with its answer; a shared budget's spent day refuses the request
// before it is sent.
func TestLimiterClaimsTheSharedBudget(t *testing.T) {
	budget := &countingBudget{}
	e := newEnv(t, envOptions{sim: etsysim.Options{FreezeClock: true}, limiter: etsy.LimiterConfig{Shared: budget}})
	ctx := ctxT(t)
	if errs := hammer(ctx, e, 4, 3); len(errs) > 0 {
		t.Fatalf("%d calls failed, first: %v", len(errs), errs[0])
	}
	budget.mu.Lock()
	taken, held := budget.taken, budget.held
	budget.refuse = true
	budget.mu.Unlock()
	if served := e.sim.Stats().RequestsServed; int64(taken) != served {
		t.Errorf("%d claims on the shared budget for %d requests served", taken, served)
	}
	if held != 0 {
		t.Errorf("%d shared slots still held after every answer", held)
	}
	served := e.sim.Stats().RequestsServed
	_, err := e.client.GetMe(ctx, e.ts)
	var rl *etsy.RateLimitError
	if !errors.As(err, &rl) || rl.Window != "day" {
		t.Fatalf("call with the shared day spent = %v, want a daily RateLimitError", err)
	}
	if e.sim.Stats().RequestsServed != served {
		t.Error("the refused call reached the simulator")
	}
}
