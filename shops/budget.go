package shops

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/internal/defaults"
)

// Budget is an Etsy app key's request budget kept in PostgreSQL
// (migration 00520), so that every ingest instance calling Etsy with the
// key draws on one budget: Etsy counts requests per key, and instances
// with only a local limiter each would together exceed it. It implements
// etsy.SharedBudget.
type Budget struct {
	db       *sql.DB
	key      string
	qps, qpd int
	// lease bounds how long a claimed slot stays busy when its instance
	// dies before releasing it; longer than any request may take.
	lease time.Duration
	// poll caps each wait for a slot, so a claim sees a slot freed
	// early by a release.
	poll time.Duration
}

// BudgetConfig configures a Budget.
type BudgetConfig struct {
	// AppKey names the key (Etsy's keystring); every instance using the
	// key must name it the same.
	AppKey string
	// QPS and QPD are the key's limits; defaults etsy.DefaultQPS and
	// etsy.DefaultQPD.
	QPS, QPD int
	// Lease is how long a claimed slot stays busy if it is never released
	// (default 2 minutes: beyond any request's timeout).
	Lease time.Duration
}

// NewBudget returns the shared budget of cfg.AppKey over db.
func NewBudget(db *sql.DB, cfg BudgetConfig) (*Budget, error) {
	if cfg.AppKey == "" {
		return nil, errors.New("etsy budget: no app key")
	}
	if cfg.QPS < 0 || cfg.QPD < 0 {
		return nil, fmt.Errorf("etsy budget: negative limit (qps %d, qpd %d)", cfg.QPS, cfg.QPD)
	}
	if cfg.QPS == 0 {
		cfg.QPS = etsy.DefaultQPS
	}
	if cfg.QPD == 0 {
		cfg.QPD = etsy.DefaultQPD
	}
	defaults.Positive(&cfg.Lease, 2*time.Minute)
	return &Budget{db: db, key: cfg.AppKey, qps: cfg.QPS, qpd: cfg.QPD, lease: cfg.Lease, poll: 100 * time.Millisecond}, nil
}

// Take implements etsy.SharedBudget.
func (b *Budget) Take(ctx context.Context) (func(), error) {
	for {
		var slot, waitMS sql.NullInt32
		var leaseUntil, dayFrees sql.NullTime
		err := b.db.QueryRowContext(ctx, `SELECT slot, lease_until, wait_ms, day_frees_at
			FROM etsy_rate_take($1, $2, $3, make_interval(secs => $4))`,
			b.key, b.qps, b.qpd, b.lease.Seconds()).Scan(&slot, &leaseUntil, &waitMS, &dayFrees)
		if err != nil {
			return nil, fmt.Errorf("etsy budget: take: %w", err)
		}
		switch {
		case slot.Valid:
			return func() { b.release(int(slot.Int32), leaseUntil.Time) }, nil
		case dayFrees.Valid:
			return nil, &etsy.RateLimitError{Window: "day", RetryAt: dayFrees.Time}
		}
		wait := min(time.Duration(waitMS.Int32)*time.Millisecond, b.poll)
		t := time.NewTimer(max(wait, time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("etsy budget: wait for a slot: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// release gives a slot back: it cools down for a second in the database.
// A release that cannot reach the database leaves the slot busy until its
// lease ends, which errs on the side of sending less.
func (b *Budget) release(slot int, leaseUntil time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = b.db.ExecContext(ctx, `SELECT etsy_rate_release($1, $2, $3)`, b.key, slot, leaseUntil)
}

// NewKeyLimiter returns the limiter of the app key keyString: this
// process's own accounting over the budget that every process with the
// key shares in db, so that instances together stay within the key's QPS
// and QPD. Metrics go to reg (nil: none).
func NewKeyLimiter(db *sql.DB, keyString string, qps, qpd int, reg prometheus.Registerer) (*etsy.Limiter, error) {
	// The table names the key by a digest, not by the keystring itself.
	sum := sha256.Sum256([]byte(keyString))
	budget, err := NewBudget(db, BudgetConfig{AppKey: hex.EncodeToString(sum[:8]), QPS: qps, QPD: qpd})
	if err != nil {
		return nil, err
	}
	return etsy.NewLimiter(etsy.LimiterConfig{QPS: qps, QPD: qpd, Shared: budget}, reg)
}
