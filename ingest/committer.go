package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/internal/defaults"
	"github.com/shopledger/shopledger/telemetry"
)

// ErrCommitterClosed means the committer stopped before taking the event.
var ErrCommitterClosed = errors.New("group committer closed")

// ErrUnstorable means PostgreSQL refused the event's content itself (a
// data exception, such as a NUL character, which jsonb cannot hold):
// sending it again cannot help.
var ErrUnstorable = errors.New("event content cannot be stored")

// isDataException reports whether err is PostgreSQL refusing a value
// (SQLSTATE class 22), not the database being unavailable.
func isDataException(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "22")
}

// CommitterConfig tunes a Committer.
type CommitterConfig struct {
	// MaxBatch is the most events one transaction carries. Default 256.
	MaxBatch int
	// Workers is how many transactions may be in flight at once. With
	// one, the next batch gathers while the previous one waits for its
	// commit; more split the same load into smaller batches. Default 1.
	Workers int
	// CommitTimeout bounds one transaction, so a stuck database answers
	// senders well inside Etsy's 15 s. Default 10 s.
	CommitTimeout time.Duration
	Logger        *slog.Logger
}

// Committer coalesces appends from concurrent requests (group commit): one
// INSERT statement, committed as one transaction, for all events gathered
// while the previous one was busy. Each caller learns its own outcome only
// after that shared commit returned.
type Committer struct {
	store   *eventstore.Store
	cfg     CommitterConfig
	log     *slog.Logger
	reqs    chan *pendingAppend
	quit    chan struct{}
	wg      sync.WaitGroup
	closeMu sync.Once

	// Fault hooks for tests (set through export_test.go): beforeCommit
	// fails a batch before anything is committed; afterCommit runs once
	// the commit succeeded and replaces every caller's outcome with its
	// error, as if the process died before answering.
	beforeCommit func() error
	afterCommit  func() error

	latency   prometheus.Histogram
	batchSize prometheus.Histogram
	failures  prometheus.Counter
}

type pendingAppend struct {
	ev   events.Event
	done chan appendOutcome
}

type appendOutcome struct {
	duplicate bool
	err       error
}

// NewCommitter starts the committer's workers and registers its metrics on
// reg: ingest_append_duration_seconds, ingest_group_commit_size and
// ingest_group_commit_failures_total. Close stops it.
func NewCommitter(store *eventstore.Store, cfg CommitterConfig, reg prometheus.Registerer) (*Committer, error) {
	defaults.Positive(&cfg.MaxBatch, 256)
	defaults.Positive(&cfg.Workers, 1)
	defaults.Positive(&cfg.CommitTimeout, 10*time.Second)
	c := &Committer{
		store: store,
		cfg:   cfg,
		log:   cfg.Logger,
		reqs:  make(chan *pendingAppend, cfg.MaxBatch*cfg.Workers),
		quit:  make(chan struct{}),
		latency: telemetry.Histogram("ingest_append_duration_seconds",
			"Time from handing evidence to the group committer until its transaction committed (or failed).", []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}),
		batchSize: telemetry.Histogram("ingest_group_commit_size",
			"Events per group-commit transaction.", []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512}),
		failures: telemetry.Counter("ingest_group_commit_failures_total",
			"Group-commit transactions that failed: every request in them was answered 503, or, when an event's content was refused, retried one by one."),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if err := telemetry.Register(reg, c.latency, c.batchSize, c.failures); err != nil {
		return nil, fmt.Errorf("new committer: %w", err)
	}
	for range cfg.Workers {
		c.wg.Add(1)
		go c.work()
	}
	return c, nil
}

// Append stores ev durably, sharing a transaction with whatever else is
// waiting. It returns once that transaction committed (duplicate reports
// that the log already held ev's dedupe key) or failed. If ctx ends first
// the event may still be stored.
func (c *Committer) Append(ctx context.Context, ev events.Event) (duplicate bool, err error) {
	start := time.Now()
	defer func() { c.latency.Observe(time.Since(start).Seconds()) }()
	p := &pendingAppend{ev: ev, done: make(chan appendOutcome, 1)}
	select {
	case c.reqs <- p:
	case <-c.quit:
		return false, ErrCommitterClosed
	case <-ctx.Done():
		return false, ctx.Err()
	}
	select {
	case o := <-p.done:
		return o.duplicate, o.err
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// Close stops taking events, finishes the batches already taken and waits
// for the workers. Stop the HTTP server first so no request is left
// waiting.
func (c *Committer) Close() {
	c.closeMu.Do(func() { close(c.quit) })
	c.wg.Wait()
	// Requests queued but never taken get a definite failure.
	for {
		select {
		case p := <-c.reqs:
			p.done <- appendOutcome{err: ErrCommitterClosed}
		default:
			return
		}
	}
}

func (c *Committer) work() {
	defer c.wg.Done()
	batch := make([]*pendingAppend, 0, c.cfg.MaxBatch)
	for {
		batch = batch[:0]
		select {
		case p := <-c.reqs:
			batch = append(batch, p)
		case <-c.quit:
			return
		}
		// Everything that queued while the previous commit was busy
		// shares this one.
	gather:
		for len(batch) < c.cfg.MaxBatch {
			select {
			case p := <-c.reqs:
				batch = append(batch, p)
			default:
				break gather
			}
		}
		c.commit(batch)
	}
}

func (c *Committer) commit(batch []*pendingAppend) {
	c.batchSize.Observe(float64(len(batch)))
	// Detached from any one request: a sender that hung up must not
	// abort the others' transaction.
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.CommitTimeout)
	defer cancel()
	evs := make([]events.Event, len(batch))
	for i, p := range batch {
		evs[i] = p.ev
	}
	res, err := c.commitEvents(ctx, evs)
	if err != nil && len(batch) > 1 && isDataException(err) {
		// One event's content failed the shared statement: commit each
		// alone, so that only the events PostgreSQL refuses fail.
		c.failures.Inc()
		c.log.Warn("group commit refused an event's content; committing its events one by one", "events", len(batch), "err", err)
		for _, p := range batch {
			res, err := c.commitEvents(ctx, []events.Event{p.ev})
			if err != nil {
				c.log.Error("event not stored", "event_id", p.ev.ID, "err", err)
				p.done <- appendOutcome{err: err}
				continue
			}
			p.done <- appendOutcome{duplicate: res[0].Duplicate}
		}
		return
	}
	if err != nil {
		c.failures.Inc()
		c.log.Error("group commit failed", "events", len(batch), "err", err)
		for _, p := range batch {
			p.done <- appendOutcome{err: err}
		}
		return
	}
	for i, p := range batch {
		p.done <- appendOutcome{duplicate: res[i].Duplicate}
	}
}

func (c *Committer) commitEvents(ctx context.Context, evs []events.Event) ([]eventstore.Appended, error) {
	if c.beforeCommit != nil {
		if err := c.beforeCommit(); err != nil {
			return nil, fmt.Errorf("group commit: %w", err)
		}
	}
	// One INSERT in a transaction of its own, sent with its BEGIN and
	// COMMIT in one round trip: a successful return means every event is
	// durable (synchronous_commit on). Each webhook's evidence stands
	// alone, so nothing needs a wider transaction.
	res, err := c.store.AppendEachCommitted(ctx, evs)
	if err != nil && len(evs) == 1 && isDataException(err) {
		return nil, fmt.Errorf("group commit: %w: %w", ErrUnstorable, err)
	}
	if err != nil {
		return nil, fmt.Errorf("group commit: %w", err)
	}
	if c.afterCommit != nil {
		if err := c.afterCommit(); err != nil {
			return nil, fmt.Errorf("group commit: after commit: %w", err)
		}
	}
	return res, nil
}
