package alerts

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopledger/shopledger/internal/defaults"
	"github.com/shopledger/shopledger/telemetry"
)

// Sender delivers one alert to one channel. A nil error means the channel
// accepted it. Errors are retried with backoff unless wrapped by
// Permanent. Error texts are stored and shown to sellers, so a sender
// keeps secrets (a Slack URL, a password) out of them.
type Sender interface {
	Send(ctx context.Context, o Outgoing) error
}

// Outgoing is one attempt at one delivery.
type Outgoing struct {
	DeliveryID uuid.UUID
	Attempt    int // 1 for the first try
	Kind       string
	// Target is the address or URL to deliver to.
	Target  string
	Message Message
}

// permanentError marks a failure that retrying cannot fix.
type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

// Permanent marks err as not worth retrying (an invalid address, a
// receiver that answered 410 Gone): the delivery fails at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err was marked by Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// DispatcherConfig tunes the outbox worker.
type DispatcherConfig struct {
	// Senders by channel kind (KindEmail, KindWebhook, KindSlack). A
	// delivery of a kind without a sender (SMTP not configured, say) is
	// never claimed: it stays pending, counted in the oldest-undelivered
	// gauge and shown as pending with no attempt, until a process with
	// that sender picks it up. Nothing fails for good unseen.
	Senders map[string]Sender
	// InitialBackoff is the wait after the first failure; each further
	// failure doubles it up to MaxBackoff.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// GiveUpAfter is the retry horizon, counted from the first attempt
	// (which follows enqueueing at once unless the kind had no sender): a
	// retry
	// that would start later fails the delivery for good.
	GiveUpAfter time.Duration
	// Lease is how long a claimed delivery is hidden from other workers;
	// longer than any send may take, so a crashed worker's claims come
	// back and are retried.
	Lease       time.Duration
	BatchSize   int
	Concurrency int
	// Now is the wall clock of backoff and leases (injected in tests).
	Now func() time.Time
}

func (c *DispatcherConfig) defaults() {
	defaults.Positive(&c.InitialBackoff, 30*time.Second)
	defaults.Positive(&c.MaxBackoff, time.Hour)
	defaults.Positive(&c.GiveUpAfter, 24*time.Hour)
	defaults.Positive(&c.Lease, 5*time.Minute)
	defaults.Positive(&c.BatchSize, 50)
	defaults.Positive(&c.Concurrency, 4)
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Backoff returns the wait after the attempts-th consecutive failure.
func (c DispatcherConfig) Backoff(attempts int) time.Duration {
	c.defaults()
	d := c.InitialBackoff
	for i := 1; i < attempts && d < c.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, c.MaxBackoff)
}

// Dispatcher works the outbox: it claims due deliveries, sends them and
// records each attempt and the delivery's state.
type Dispatcher struct {
	db     *sql.DB
	cfg    DispatcherConfig
	logger *slog.Logger

	results *prometheus.CounterVec
	oldest  prometheus.Gauge
}

// NewDispatcher returns a dispatcher over db. Metrics are registered on reg
// when it is not nil.
func NewDispatcher(db *sql.DB, cfg DispatcherConfig, logger *slog.Logger, reg prometheus.Registerer) (*Dispatcher, error) {
	cfg.defaults()
	d := &Dispatcher{
		db:     db,
		cfg:    cfg,
		logger: logger,
		results: telemetry.CounterVec("shopledger_alert_deliveries_total",
			"Alert delivery attempts by channel kind and result (delivered, retry, failed).", "channel", "result"),
		oldest: telemetry.Gauge("shopledger_alert_oldest_undelivered_seconds",
			"Age of the oldest alert delivery still pending (0 when none)."),
	}
	if err := telemetry.Register(reg, d.results, d.oldest); err != nil {
		return nil, fmt.Errorf("new dispatcher: %w", err)
	}
	return d, nil
}

// Run dispatches every interval until ctx ends. A failing pass is logged
// and retried on the next tick: deliveries wait in the outbox meanwhile.
func (d *Dispatcher) Run(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := d.DispatchDue(ctx)
		if err != nil && ctx.Err() == nil {
			d.logger.Error("dispatch alerts", "err", err)
		}
		if err == nil && n == d.cfg.BatchSize {
			continue // more are due: do not wait for the tick
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// claimed is a delivery this worker leased.
type claimed struct {
	id         uuid.UUID
	alertID    uuid.UUID
	shopID     int64
	kind       string
	target     string
	channelID  uuid.NullUUID
	message    []byte
	attempts   int
	enqueuedAt time.Time
	// firstAttempt is when the first attempt started, if there was one.
	firstAttempt sql.NullTime
}

// DispatchDue makes one pass: it claims up to BatchSize due deliveries,
// sends them and records the outcome. It returns how many it attempted.
func (d *Dispatcher) DispatchDue(ctx context.Context) (int, error) {
	now := d.cfg.Now().UTC()
	kinds := make([]string, 0, len(d.cfg.Senders))
	for k := range d.cfg.Senders {
		kinds = append(kinds, k)
	}
	rows, err := d.db.QueryContext(ctx, `UPDATE alert_deliveries d SET lease_until = $2
		FROM (SELECT delivery_id FROM alert_deliveries
		      WHERE status = 'pending'
		        AND kind = ANY($4)
		        AND (next_attempt_at IS NULL OR next_attempt_at <= $1)
		        AND (lease_until IS NULL OR lease_until <= $1)
		      ORDER BY next_attempt_at NULLS FIRST, enqueued_at
		      LIMIT $3 FOR UPDATE SKIP LOCKED) due
		WHERE d.delivery_id = due.delivery_id
		RETURNING d.delivery_id, d.alert_id, d.shop_id, d.kind, d.target, d.channel_id, d.message, d.attempts, d.enqueued_at,
			(SELECT min(a.started_at) FROM alert_delivery_attempts a WHERE a.delivery_id = d.delivery_id)`,
		now, now.Add(d.cfg.Lease), d.cfg.BatchSize, kinds)
	if err != nil {
		return 0, fmt.Errorf("dispatch alerts: claim: %w", err)
	}
	batch, err := scanAll(rows, func(c *claimed) error {
		return rows.Scan(&c.id, &c.alertID, &c.shopID, &c.kind, &c.target, &c.channelID, &c.message, &c.attempts, &c.enqueuedAt, &c.firstAttempt)
	})
	if err != nil {
		return 0, fmt.Errorf("dispatch alerts: claim: %w", err)
	}

	var wg sync.WaitGroup
	errs := make([]error, len(batch))
	sem := make(chan struct{}, d.cfg.Concurrency)
	for i, c := range batch {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = d.deliver(ctx, c)
		}()
	}
	wg.Wait()
	if err := d.updateOldest(ctx); err != nil {
		errs = append(errs, err)
	}
	return len(batch), errors.Join(errs...)
}

// deliver sends one claimed delivery and records the attempt.
func (d *Dispatcher) deliver(ctx context.Context, c claimed) error {
	attempt := c.attempts + 1
	started := d.cfg.Now().UTC()
	sendErr := d.send(ctx, c, attempt)
	finished := d.cfg.Now().UTC()
	if ctx.Err() != nil && sendErr != nil {
		// Shutting down: the lease expires and another pass retries; an
		// interrupted send is not the channel's failure.
		return nil
	}

	status, result := DeliveryDelivered, "delivered"
	var next, done sql.NullTime
	errText := ""
	if sendErr != nil {
		errText = sendErr.Error()
		retryAt := finished.Add(d.cfg.Backoff(attempt))
		// The horizon runs from the first attempt: a delivery that waited
		// for its sender to be configured gets its full share of retries.
		first := started
		if c.firstAttempt.Valid {
			first = c.firstAttempt.Time
		}
		switch {
		case IsPermanent(sendErr), retryAt.After(first.Add(d.cfg.GiveUpAfter)):
			status, result = DeliveryFailed, "failed"
			done = sql.NullTime{Time: finished, Valid: true}
		default:
			status, result = DeliveryPending, "retry"
			next = sql.NullTime{Time: retryAt, Valid: true}
		}
	} else {
		done = sql.NullTime{Time: finished, Valid: true}
	}

	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("record delivery %s: %w", c.id, err)
	}
	defer tx.Rollback() //nolint:errcheck // after commit this is a no-op
	if _, err := tx.ExecContext(ctx, `INSERT INTO alert_delivery_attempts (delivery_id, attempt, shop_id, started_at, finished_at, error)
		VALUES ($1, $2, $3, $4, $5, $6)`, c.id, attempt, c.shopID, started, finished, errText); err != nil {
		return fmt.Errorf("record delivery %s: attempt: %w", c.id, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE alert_deliveries SET attempts = $2, status = $3, next_attempt_at = $4, lease_until = NULL,
			last_attempt_at = $5, last_error = $6, finished_at = $7
		WHERE delivery_id = $1`, c.id, attempt, status, next, started, errText, done); err != nil {
		return fmt.Errorf("record delivery %s: %w", c.id, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("record delivery %s: commit: %w", c.id, err)
	}
	d.results.WithLabelValues(c.kind, result).Inc()
	log := d.logger.With("delivery_id", c.id, "alert_id", c.alertID, "shop_id", c.shopID, "channel", c.kind, "attempt", attempt)
	switch status {
	case DeliveryDelivered:
		log.Info("alert delivered")
	case DeliveryFailed:
		log.Warn("alert delivery failed for good", "err", errText)
	default:
		log.Info("alert delivery will be retried", "err", errText, "next_attempt_at", next.Time)
	}
	return nil
}

func (d *Dispatcher) send(ctx context.Context, c claimed, attempt int) error {
	var m Message
	if err := json.Unmarshal(c.message, &m); err != nil {
		return Permanent(fmt.Errorf("decode message: %w", err))
	}
	target := c.target
	if c.channelID.Valid && target == "" {
		err := d.db.QueryRowContext(ctx, `SELECT target FROM alert_channels WHERE channel_id = $1 AND shop_id = $2`, c.channelID.UUID, c.shopID).Scan(&target)
		if errors.Is(err, sql.ErrNoRows) {
			return Permanent(fmt.Errorf("%s channel %s was removed", c.kind, c.channelID.UUID))
		}
		if err != nil {
			return fmt.Errorf("read channel %s: %w", c.channelID.UUID, err)
		}
	}
	s, ok := d.cfg.Senders[c.kind]
	if !ok {
		return Permanent(fmt.Errorf("no %s sender is configured", c.kind))
	}
	return s.Send(ctx, Outgoing{DeliveryID: c.id, Attempt: attempt, Kind: c.kind, Target: target, Message: m})
}

func (d *Dispatcher) updateOldest(ctx context.Context) error {
	var oldest sql.NullTime
	if err := d.db.QueryRowContext(ctx, `SELECT min(enqueued_at) FROM alert_deliveries WHERE status = 'pending'`).Scan(&oldest); err != nil {
		return fmt.Errorf("oldest undelivered alert: %w", err)
	}
	age := 0.0
	if oldest.Valid {
		age = max(d.cfg.Now().Sub(oldest.Time).Seconds(), 0)
	}
	d.oldest.Set(age)
	return nil
}
