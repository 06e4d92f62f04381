package shops_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/shops"
)

// span is one request as a caller of the budget saw it: claimed at from,
// answered at to.
type span struct{ from, to time.Time }

// maxBusy is the most requests whose slot was held at one instant, a slot
// being held from its claim until a second after the answer: at most the
// key's QPS means no one-second window at Etsy's end saw more.
func maxBusy(spans []span) int {
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	for _, s := range spans {
		edges = append(edges, edge{s.from, 1}, edge{s.to.Add(time.Second), -1})
	}
	slices.SortFunc(edges, func(a, b edge) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return a.delta - b.delta // ends before starts at the same instant
	})
	n, most := 0, 0
	for _, e := range edges {
		n += e.delta
		most = max(most, n)
	}
	return most
}

// Two instances, each with its own connection pool and its own limiter,
// share one key's budget in the database: together they never hold more
// than the key's QPS slots, and they do use all of it.
func TestBudgetSharedByTwoInstances(t *testing.T) {
	db := pgtest.New(t)
	const qps, perInstance, workers = 4, 24, 6
	var (
		mu    sync.Mutex
		spans []span
		wg    sync.WaitGroup
	)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for instance := range 2 {
		conn := pgtest.Open(t, db.RoleURL(pgtest.IngestRole), 4)
		budget, err := shops.NewBudget(conn, shops.BudgetConfig{AppKey: "key-a", QPS: qps, QPD: 1000})
		if err != nil {
			t.Fatal(err)
		}
		jobs := make(chan int, perInstance)
		for i := range perInstance {
			jobs <- i
		}
		close(jobs)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(instance), uint64(w)))
				for range jobs {
					release, err := budget.Take(ctx)
					if err != nil {
						t.Error(err)
						return
					}
					from := time.Now()
					time.Sleep(time.Duration(rng.IntN(80)) * time.Millisecond)
					to := time.Now()
					release()
					mu.Lock()
					spans = append(spans, span{from, to})
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	if len(spans) != 2*perInstance {
		t.Fatalf("%d requests done, want %d", len(spans), 2*perInstance)
	}
	if got := maxBusy(spans); got > qps {
		t.Errorf("%d slots held at once across both instances, the key allows %d", got, qps)
	} else if got < qps {
		t.Errorf("at most %d slots held at once: the budget was not used to its %d", got, qps)
	}
}

// The rolling day is shared too, and a spent day is refused at once with
// when it frees, not waited out.
func TestBudgetDayIsShared(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	var budgets []*shops.Budget
	for range 2 {
		b, err := shops.NewBudget(pgtest.Open(t, db.RoleURL(pgtest.IngestRole), 2), shops.BudgetConfig{AppKey: "key-b", QPS: 10, QPD: 5})
		if err != nil {
			t.Fatal(err)
		}
		budgets = append(budgets, b)
	}
	for i := range 5 {
		release, err := budgets[i%2].Take(ctx)
		if err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
		release()
	}
	_, err := budgets[1].Take(ctx)
	var rl *etsy.RateLimitError
	if !errors.As(err, &rl) || rl.Window != "day" {
		t.Fatalf("sixth request: %v, want the day's budget spent", err)
	}
	if wait := time.Until(rl.RetryAt); wait < 23*time.Hour || wait > 25*time.Hour {
		t.Errorf("day frees in %s, want about 24h", wait)
	}
	// Another key has a budget of its own.
	other, err := shops.NewBudget(db.DB, shops.BudgetConfig{AppKey: "key-c", QPS: 1, QPD: 1})
	if err != nil {
		t.Fatal(err)
	}
	release, err := other.Take(ctx)
	if err != nil {
		t.Fatalf("another key: %v", err)
	}
	release()
}

// A slot whose instance died mid-request frees when its lease ends.
func TestBudgetLeaseFreesAbandonedSlot(t *testing.T) {
	db := pgtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := shops.NewBudget(db.DB, shops.BudgetConfig{AppKey: "key-d", QPS: 1, QPD: 100, Lease: 1500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Take(ctx); err != nil { // never released
		t.Fatal(err)
	}
	start := time.Now()
	release, err := b.Take(ctx)
	if err != nil {
		t.Fatal(err)
	}
	release()
	if waited := time.Since(start); waited < time.Second {
		t.Errorf("second claim got the abandoned slot after %s, before its lease ended", waited)
	}
}
