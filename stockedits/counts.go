package stockedits

import (
	"context"
	"sync"
	"time"

	"github.com/shopledger/shopledger/etsy"
)

// countFreshFor is how long a shop's transaction count read by one push
// serves another as the count before its inventory read. An older one
// would more likely miss a sale and cost a second inventory read.
const countFreshFor = 5 * time.Second

// countReadTimeout bounds one shared read of a transaction count.
const countReadTimeout = time.Minute

// shopCounts shares reads of shops' transaction counts between the pushes
// one Pusher runs at once, so that a stocktake's pushes spend Etsy's
// request budget on inventory reads and writes rather than on counts.
//
// A push needs two kinds of count (see stableRead). Before its inventory
// read, any count read earlier will do: if a sale came after it, the count
// after the inventory read differs and the push reads again. After its
// inventory read, and after its write, it needs a count that Etsy reads
// after that moment: it joins a read that has not been sent yet (one
// waiting for the rate budget), or starts one. A read already sent may have
// been answered from before the moment, so nobody joins it.
type shopCounts struct {
	api EtsyAPI

	mu    sync.Mutex
	shops map[int64]*shopCount
}

type shopCount struct {
	last     int64
	lastSent time.Time  // when the read that gave last was sent; zero: none yet
	lastAt   time.Time  // when it was answered
	waiting  *countRead // not sent yet: newcomers join it
}

// countRead is one getShopTransactions call and everyone waiting for it.
type countRead struct {
	done   chan struct{}
	sentAt time.Time
	n      int64
	err    error
}

func newShopCounts(api EtsyAPI) *shopCounts {
	return &shopCounts{api: api, shops: map[int64]*shopCount{}}
}

func (c *shopCounts) shopLocked(shopID int64) *shopCount {
	sc := c.shops[shopID]
	if sc == nil {
		sc = &shopCount{}
		c.shops[shopID] = sc
	}
	return sc
}

// before returns a count read before now: the last one, if recent, else a
// fresh one.
func (c *shopCounts) before(ctx context.Context, ts etsy.TokenSource, shopID int64) (int64, error) {
	c.mu.Lock()
	sc := c.shopLocked(shopID)
	if !sc.lastAt.IsZero() && time.Since(sc.lastAt) < countFreshFor {
		n := sc.last
		c.mu.Unlock()
		return n, nil
	}
	c.mu.Unlock()
	return c.after(ctx, ts, shopID)
}

// after returns a count from a read sent after the call: everything Etsy
// had done when the caller's previous request was answered is in it.
func (c *shopCounts) after(ctx context.Context, ts etsy.TokenSource, shopID int64) (int64, error) {
	c.mu.Lock()
	sc := c.shopLocked(shopID)
	r := sc.waiting
	if r == nil {
		r = &countRead{done: make(chan struct{})}
		sc.waiting = r
		// The read outlives the caller's context: others may share it.
		go c.run(context.WithoutCancel(ctx), ts, shopID, sc, r)
	}
	c.mu.Unlock()
	select {
	case <-r.done:
		return r.n, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (c *shopCounts) run(ctx context.Context, ts etsy.TokenSource, shopID int64, sc *shopCount, r *countRead) {
	sent := func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if sc.waiting == r {
			sc.waiting, r.sentAt = nil, time.Now()
		}
	}
	ctx, cancel := context.WithTimeout(etsy.WithSending(ctx, sent), countReadTimeout)
	page, err := c.api.GetShopTransactions(ctx, ts, shopID, 1, 0)
	cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	if sc.waiting == r {
		// Never sent (the budget refused it): nobody may join it now.
		sc.waiting = nil
	}
	r.n, r.err = int64(page.Count), err
	if err == nil && !r.sentAt.Before(sc.lastSent) {
		sc.last, sc.lastSent, sc.lastAt = r.n, r.sentAt, time.Now()
	}
	close(r.done)
}
