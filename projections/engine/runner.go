package engine

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v3/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/internal/defaults"
	"github.com/shopledger/shopledger/telemetry"
)

// RunnerConfig tunes the projector's consumers.
type RunnerConfig struct {
	// BatchSize is how many events one consumer transaction reads.
	BatchSize int
	// PollInterval is the pause between reads of an idle log.
	PollInterval time.Duration
	// AckDeadline bounds one event's processing. Apply gets half of it so
	// that a stuck Apply fails (and stops its projection) before the
	// subscriber gives up on the event.
	AckDeadline time.Duration
	// RetryInterval is how long a stopped projection waits before it tries
	// its failing event again.
	RetryInterval time.Duration
	// LagInterval is how often lag gauges are refreshed; zero disables.
	LagInterval time.Duration
}

func (c *RunnerConfig) defaults() {
	defaults.Positive(&c.BatchSize, 2000)
	defaults.Positive(&c.PollInterval, 100*time.Millisecond)
	defaults.Positive(&c.AckDeadline, time.Minute)
	defaults.Positive(&c.RetryInterval, 30*time.Second)
}

// Runner runs projections over the log: a watermill router with one
// consumer group per projection. Each event a projection handles is
// applied through the group's transaction inside a savepoint, together
// with the projection's checkpoint, so read model, checkpoint and offset
// commit together. A failing Apply rolls its savepoint back and stops that
// projection alone; it retries the same event every RetryInterval and
// never skips it.
type Runner struct {
	db      *sql.DB
	cfg     RunnerConfig
	logger  *slog.Logger
	wlogger watermill.LoggerAdapter
	metrics *runnerMetrics
	states  []*projectionState
}

// NewRunner returns a runner for projs. Metrics are registered on reg.
func NewRunner(db *sql.DB, projs []Projection, cfg RunnerConfig, logger *slog.Logger, reg prometheus.Registerer) (*Runner, error) {
	cfg.defaults()
	seen := map[string]bool{}
	r := &Runner{db: db, cfg: cfg, logger: logger, wlogger: newLevelLogger(logger)}
	for _, p := range projs {
		name := p.Name()
		if name == "" || seen[name] {
			return nil, fmt.Errorf("new runner: projection name %q is empty or repeated", name)
		}
		seen[name] = true
		r.states = append(r.states, &projectionState{p: p, name: name, adapter: eventstore.NewWindowAdapter(handledTypes(p), cfg.BatchSize)})
	}
	m, err := newRunnerMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("new runner: %w", err)
	}
	r.metrics = m
	for _, st := range r.states {
		m.stopped.WithLabelValues(st.name).Set(0)
		m.applied.WithLabelValues(st.name).Add(0)
		m.failures.WithLabelValues(st.name).Add(0)
	}
	return r, nil
}

// Run consumes the log until ctx ends, then closes every consumer so that
// what was applied commits with its offset.
func (r *Runner) Run(ctx context.Context) error {
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 30 * time.Second}, r.wlogger)
	if err != nil {
		return fmt.Errorf("run projections: %w", err)
	}
	for _, st := range r.states {
		sub := &restartingSubscriber{runner: r, st: st, closing: make(chan struct{})}
		router.AddConsumerHandler(st.name, eventstore.Topic, sub, r.handler(st))
	}
	// The router runs on a context that outlives ctx: cancelling a
	// subscriber's context rolls its transaction back, closing it commits
	// what was applied. Close first, then let the context go.
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- router.Run(runCtx) }()
	var lagDone chan struct{}
	if r.cfg.LagInterval > 0 {
		lagDone = make(chan struct{})
		go func() {
			defer close(lagDone)
			r.watchLag(runCtx)
		}()
	}
	select {
	case <-ctx.Done():
		err = router.Close()
		<-done
	case err = <-done:
	}
	cancel()
	if lagDone != nil {
		<-lagDone
	}
	if err != nil {
		return fmt.Errorf("run projections: %w", err)
	}
	return nil
}

// Status is a projection's health.
type Status struct {
	Name    string
	Stopped bool
	// Err is why it stopped.
	Err      string
	Position int64 // position of the event it is stuck at
	Since    time.Time
}

// Statuses reports every projection, in registration order.
func (r *Runner) Statuses() []Status {
	out := make([]Status, len(r.states))
	for i, st := range r.states {
		st.statusMu.Lock()
		out[i] = st.status
		out[i].Name = st.name
		st.statusMu.Unlock()
	}
	return out
}

// Ready fails while any projection is stopped, naming each and why; it is
// meant for /readyz.
func (r *Runner) Ready(context.Context) error {
	var bad []string
	for _, s := range r.Statuses() {
		if s.Stopped {
			bad = append(bad, fmt.Sprintf("%s stopped at position %d since %s: %s", s.Name, s.Position, s.Since.UTC().Format(time.RFC3339), s.Err))
		}
	}
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "; "))
	}
	return nil
}

// projectionState is one projection's consumer. mu is held while an event
// is applied, so that closing the consumer never lands between the
// statements of one Apply.
type projectionState struct {
	p       Projection
	name    string
	adapter *eventstore.WindowAdapter

	mu      sync.Mutex
	closing bool
	// tx is the consumer transaction the savepoint and checkpoint below
	// belong to; a new transaction reloads them.
	tx         *sql.Tx
	checkpoint eventstore.Cursor
	savepoint  bool
	prepared   map[string]bool // statements prepared on tx's connection
	warm       bool            // checkpoint holds what this runner last applied or read
	// pending are a planner's acknowledged events of tx, written by flush
	// with the group's offset.
	pending []pendingEvent
	// stopped says that an event of tx's window failed; flush then stores
	// the group's offset at stopAfter, the last event handled before it,
	// or stores none when that is not in the window.
	stopped   bool
	stopAfter eventstore.Cursor

	stop chan struct{} // signals the subscriber to close and retry later

	statusMu sync.Mutex
	status   Status
}

// errClosing refuses events while the consumer closes; it wraps
// context.Canceled so that the router does not log it as a failure.
var errClosing = fmt.Errorf("projection consumer is closing: %w", context.Canceled)

func (r *Runner) handler(st *projectionState) message.NoPublishHandlerFunc {
	return func(msg *message.Message) error {
		// The window's end names it in errors about the whole window.
		last, endErr := eventstore.WindowEnd(msg)
		end := events.Record{Position: last.Position, TransactionID: last.TransactionID}
		from, err := eventstore.WindowStart(msg)
		if err = errors.Join(endErr, err); err != nil {
			return r.fail(st, end, err)
		}
		tx, ok := wsql.TxFromContext(msg.Context())
		if !ok {
			return r.fail(st, end, errors.New("message carries no consumer transaction"))
		}
		st.mu.Lock()
		defer st.mu.Unlock()
		if st.closing {
			return errClosing
		}
		ctx := msg.Context()
		window, err := st.adapter.Read(ctx, tx, msg)
		if err != nil {
			return r.fail(st, end, err)
		}
		recs := make([]events.Record, 0, len(window))
		for _, d := range window {
			if d.Err == nil {
				recs = append(recs, d.Record)
			}
		}
		if err := st.begin(ctx, tx, recs); err != nil {
			return r.fail(st, end, err)
		}
		// A window's events are applied in order until one fails. The
		// window is then acknowledged only up to the event before it
		// (see flush): those commit with the group's offset, the failing
		// one stops the projection, which retries it and never skips it.
		st.stopped = false
		for _, d := range window {
			if err := r.handleEvent(ctx, st, tx, d); err != nil {
				st.stopped, st.stopAfter = true, eventstore.Cursor{}
				if st.checkpoint.After(from) {
					st.stopAfter = st.checkpoint
				}
				return nil
			}
		}
		return nil
	}
}

// handleEvent applies or plans one event of a window; it returns the
// error fail reported.
func (r *Runner) handleEvent(ctx context.Context, st *projectionState, tx *sql.Tx, d eventstore.WindowEvent) error {
	rec := d.Record
	if d.Err != nil {
		return r.fail(st, rec, fmt.Errorf("decode: %w", d.Err))
	}
	c := eventstore.CursorOf(rec)
	if !c.After(st.checkpoint) {
		// Applied before; its offset did not commit with it.
		return nil
	}
	start := time.Now()
	if rec.Metadata.TraceParent != "" {
		// The trace of the request that led to the event goes on here.
		var span trace.Span
		ctx, span = telemetry.Tracer().Start(telemetry.FromTraceParent(ctx, rec.Metadata.TraceParent), "project "+st.name,
			trace.WithAttributes(attribute.String("event.type", rec.Type()), attribute.String("event.stream", rec.StreamID)))
		defer span.End()
	}
	if pl, ok := st.p.(Planner); ok {
		return r.planEvent(ctx, st, pl, tx, rec, c, start)
	}
	// Checkpoint, release, and the savepoint for the next event go in
	// one round trip after the event's writes.
	err := apply(ctx, st.p, tx, rec, r.cfg.AckDeadline/2)
	if err == nil {
		if _, err = tx.ExecContext(ctx, checkpointSQL(st.name, c)+`;
			RELEASE SAVEPOINT projection_event; SAVEPOINT projection_event`); err != nil {
			err = fmt.Errorf("write: %w", err)
		}
	}
	if err != nil {
		if _, rbErr := tx.ExecContext(ctx, `ROLLBACK TO SAVEPOINT projection_event`); rbErr != nil {
			st.tx = nil
			err = errors.Join(err, fmt.Errorf("rollback to savepoint: %w", rbErr))
		}
		return r.fail(st, rec, err)
	}
	st.checkpoint = c
	r.metrics.applied.WithLabelValues(st.name).Inc()
	r.metrics.latency.WithLabelValues(st.name).Observe(time.Since(start).Seconds())
	r.recovered(st)
	return nil
}

// checkpointSQL records c as the last event the projection applied.
// Checkpoint values are integers formatted here, not user input.
func checkpointSQL(name string, c eventstore.Cursor) string {
	return `INSERT INTO projection_checkpoints (projection, transaction_id, position)
		VALUES (` + quoteLiteral(name) + `, '` + strconv.FormatUint(c.TransactionID, 10) + `', ` + strconv.FormatInt(c.Position, 10) + `)`
}

// pendingEvent is an acknowledged event of a planner whose writes wait for
// the end of the consumer transaction.
type pendingEvent struct {
	rec     events.Record
	cursor  eventstore.Cursor
	stmts   []Stmt
	planned time.Duration
}

// planEvent plans a planner's writes for rec and keeps them for flush,
// which sends the whole batch's writes with the checkpoint in one round
// trip right before the group's offset is stored. The event is
// acknowledged now: nothing commits unless flush wrote it, and an event
// flush could not write is never acknowledged to the log (see flush).
func (r *Runner) planEvent(ctx context.Context, st *projectionState, pl Planner, tx *sql.Tx, rec events.Record, c eventstore.Cursor, start time.Time) error {
	stmts, err := plan(ctx, pl, tx, rec)
	if err == nil {
		err = st.prepare(ctx, tx, stmts)
	}
	if err != nil {
		// Nothing was written since the batch savepoint, only read and
		// prepared; rolling back to it leaves the transaction usable for
		// the planned writes of the events before this one.
		pl.Forget()
		if _, rbErr := tx.ExecContext(ctx, `ROLLBACK TO SAVEPOINT projection_batch`); rbErr != nil {
			err = errors.Join(err, fmt.Errorf("rollback to savepoint: %w", rbErr))
		}
		return r.fail(st, rec, err)
	}
	st.pending = append(st.pending, pendingEvent{rec: rec, cursor: c, stmts: stmts, planned: time.Since(start)})
	st.checkpoint = c
	return nil
}

// flush writes the planned changes of the events up to and including ack,
// the last event the subscriber saw acknowledged, with the projection's
// checkpoint, in one round trip on the consumer transaction. It returns
// the row whose offset the subscriber should store, and false when no
// offset may be stored at all.
//
// When the batch's writes fail, it rolls them back and writes the events
// again one savepoint each, in order: the events before the failing one
// commit with their offset, the failing one leaves nothing behind and
// stops the projection, which retries it later and never skips it.
func (r *Runner) flush(st *projectionState, ack wsql.Row) (wsql.Row, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	stopped := st.stopped
	if stopped {
		st.stopped = false
		if st.stopAfter == (eventstore.Cursor{}) {
			// The window's first event failed: nothing to store.
			st.pending = nil
			return wsql.Row{}, false
		}
		ack = eventstore.OffsetRow(st.stopAfter)
	}
	pending := st.pending
	st.pending = nil
	if len(pending) == 0 {
		return ack, true
	}
	pl := st.p.(Planner)
	upTo, err := eventstore.CursorOfRow(ack)
	if err != nil {
		// Never store an offset the runner cannot account for.
		pl.Forget()
		st.warm = false
		_ = r.fail(st, pending[0].rec, err)
		return wsql.Row{}, false
	}
	n := 0
	for n < len(pending) && !pending[n].cursor.After(upTo) {
		n++
	}
	if n < len(pending) {
		// Applied after the subscriber stopped waiting: never written, so
		// the cached rows those plans changed are not true.
		pl.Forget()
		st.warm = false
	}
	pending = pending[:n]
	if len(pending) == 0 {
		return ack, true
	}
	tx := st.tx
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.AckDeadline)
	defer cancel()
	start := time.Now()
	var all []Stmt
	for _, p := range pending {
		all = append(all, p.stmts...)
	}
	last := pending[len(pending)-1]
	if c, ok := st.p.(Compacter); ok {
		all, err = c.Compact(all)
	} else {
		all, err = CompactWrites(all)
	}
	if err == nil {
		err = st.prepare(ctx, tx, all)
	}
	st.checkpoint = last.cursor
	if err == nil {
		err = execStmts(ctx, tx, "", all, checkpointSQL(st.name, last.cursor))
	}
	if err == nil {
		share := time.Since(start) / time.Duration(len(pending))
		r.metrics.applied.WithLabelValues(st.name).Add(float64(len(pending)))
		for _, p := range pending {
			r.metrics.latency.WithLabelValues(st.name).Observe((p.planned + share).Seconds())
		}
		if !stopped {
			r.recovered(st)
		}
		return ack, true
	}
	r.logger.Warn("writing a projection batch failed; writing its events one by one",
		"projection", st.name, "events", len(pending), "err", err)
	pl.Forget()
	st.warm = false
	if _, err := tx.ExecContext(ctx, `ROLLBACK TO SAVEPOINT projection_batch`); err != nil {
		st.tx = nil
		_ = r.fail(st, pending[0].rec, fmt.Errorf("rollback to savepoint: %w", err))
		return wsql.Row{}, false
	}
	good := -1
	for i, p := range pending {
		err := execStmts(ctx, tx, `SAVEPOINT projection_event;`, p.stmts,
			checkpointSQL(st.name, p.cursor)+`; RELEASE SAVEPOINT projection_event`)
		if err != nil {
			if _, rbErr := tx.ExecContext(ctx, `ROLLBACK TO SAVEPOINT projection_event`); rbErr != nil {
				st.tx = nil
				err = errors.Join(err, fmt.Errorf("rollback to savepoint: %w", rbErr))
				good = -1 // the transaction is lost: store nothing
			}
			_ = r.fail(st, p.rec, fmt.Errorf("write: %w", err))
			break
		}
		good = i
		r.metrics.applied.WithLabelValues(st.name).Inc()
		r.metrics.latency.WithLabelValues(st.name).Observe(p.planned.Seconds())
	}
	if good < 0 {
		return wsql.Row{}, false
	}
	st.checkpoint = pending[good].cursor
	if good == len(pending)-1 {
		if !stopped {
			r.recovered(st)
		}
		return ack, true
	}
	return eventstore.OffsetRow(pending[good].cursor), true
}

// handledTypes lists the registered types p handles, or none for a
// payloadless projection, which reads every event without its payload.
func handledTypes(p Projection) []string {
	if _, ok := p.(Payloadless); ok {
		return nil
	}
	return typesWhere(p.Handles)
}

// typesWhere lists the registered event types handles accepts.
func typesWhere(handles func(typ string) bool) []string {
	var out []string
	for _, typ := range events.Types() {
		if handles(typ) {
			out = append(out, typ)
		}
	}
	return out
}

// execStmts runs head, the prepared statements and tail in one
// simple-protocol round trip.
func execStmts(ctx context.Context, tx *sql.Tx, head string, stmts []Stmt, tail string) error {
	sqlText, err := joinStmts(stmts, tail)
	if err != nil {
		return err
	}
	// No arguments: the driver sends the text as it is.
	_, err = tx.ExecContext(ctx, head+sqlText)
	return err
}

// apply runs p.Apply with a deadline, turning a panic into an error so
// that the savepoint is rolled back like for any failure.
func apply(ctx context.Context, p Projection, tx *sql.Tx, rec events.Record, limit time.Duration) (err error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("apply panicked: %v", v)
		}
	}()
	return p.Apply(ctx, tx, rec)
}

// plan runs p.Plan, turning a panic into an error. It needs no deadline
// of its own: a plan only reads, under the message's context, which the
// subscriber ends at the ack deadline.
func plan(ctx context.Context, p Planner, tx *sql.Tx, rec events.Record) (stmts []Stmt, err error) {
	defer func() {
		if v := recover(); v != nil {
			p.Forget()
			err = fmt.Errorf("apply panicked: %v", v)
		}
	}()
	return p.Plan(ctx, tx, rec)
}

// stmtNames memoises stmtName: the same few statements are written for
// every event.
var stmtNames sync.Map

// stmtName names the prepared statement of a planned write.
func stmtName(sqlText string) string {
	if n, ok := stmtNames.Load(sqlText); ok {
		return n.(string)
	}
	sum := sha256.Sum256([]byte(sqlText))
	n := "projection_" + hex.EncodeToString(sum[:10])
	stmtNames.Store(sqlText, n)
	return n
}

// prepare makes sure the connection under tx has every statement
// prepared: writes then go as EXECUTE in one simple-protocol round trip
// without being planned again for every event.
func (st *projectionState) prepare(ctx context.Context, tx *sql.Tx, stmts []Stmt) error {
	for _, s := range stmts {
		if s.Raw {
			continue
		}
		name := stmtName(s.SQL)
		if st.prepared[name] {
			continue
		}
		if _, err := tx.ExecContext(ctx, `PREPARE `+name+` AS `+s.SQL); err != nil {
			return fmt.Errorf("prepare %s: %w", name, err)
		}
		st.prepared[name] = true
	}
	return nil
}

// joinStmts puts EXECUTEs of the statements, with their arguments as
// literals, and tail into one text for the simple protocol, which takes
// several statements.
func joinStmts(stmts []Stmt, tail string) (string, error) {
	var b strings.Builder
	for _, s := range stmts {
		if s.Raw {
			b.WriteString(s.SQL + ";\n")
			continue
		}
		b.WriteString("EXECUTE " + stmtName(s.SQL))
		if len(s.Args) > 0 {
			b.WriteString("(")
			for i, a := range s.Args {
				if i > 0 {
					b.WriteString(", ")
				}
				if err := AppendLiteral(&b, a); err != nil {
					return "", fmt.Errorf("argument %d of %s: %w", i+1, stmtName(s.SQL), err)
				}
			}
			b.WriteString(")")
		}
		b.WriteString(";\n")
	}
	b.WriteString(tail)
	return b.String(), nil
}

// begin prepares st for an event of tx: on a new transaction it reads the
// checkpoint and opens the savepoint that the first event uses.
func (st *projectionState) begin(ctx context.Context, tx *sql.Tx, recs []events.Record) error {
	if st.tx == tx && st.savepoint {
		return nil
	}
	st.tx, st.savepoint = nil, false
	if len(st.pending) > 0 {
		// Planned in a transaction that ended without writing them.
		st.pending = nil
		st.warm = false
	}
	var txid string
	var pos int64
	// The checkpoint is the greatest row; older rows go once per batch.
	err := tx.QueryRowContext(ctx, `WITH last AS (
			SELECT transaction_id, position FROM projection_checkpoints WHERE projection = $1
			ORDER BY transaction_id DESC, position DESC LIMIT 1
		), gone AS (
			DELETE FROM projection_checkpoints p USING last
			WHERE p.projection = $1 AND (p.transaction_id, p.position) < (last.transaction_id, last.position)
		)
		SELECT transaction_id::text, position FROM last`, st.name).Scan(&txid, &pos)
	var stored eventstore.Cursor
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return fmt.Errorf("read checkpoint: %w", err)
	default:
		n, err := strconv.ParseUint(txid, 10, 64)
		if err != nil {
			return fmt.Errorf("read checkpoint: %w", err)
		}
		stored = eventstore.Cursor{TransactionID: n, Position: pos}
	}
	// Rows cached by the previous transaction are still true only if it
	// committed everything this runner applied and nothing was applied
	// by anyone else since: the stored checkpoint is exactly ours.
	if pl, ok := st.p.(Planner); ok {
		if st.warm && stored == st.checkpoint {
			pl.Adopt(tx)
		} else {
			pl.Forget()
		}
	}
	st.checkpoint, st.warm = stored, true
	if pf, ok := st.p.(Prefetcher); ok {
		if err := pf.Prefetch(ctx, tx, recs); err != nil {
			st.p.(Planner).Forget()
			st.warm = false
			return err
		}
	}
	// Prepared statements belong to the connection, which may differ from
	// the previous batch's.
	st.prepared = map[string]bool{}
	rows, err := tx.QueryContext(ctx, `SELECT name FROM pg_prepared_statements WHERE name LIKE 'projection\_%'`)
	if err != nil {
		return fmt.Errorf("prepared statements: %w", err)
	}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return fmt.Errorf("prepared statements: %w", err)
		}
		st.prepared[name] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("prepared statements: %w", err)
	}
	// A planner's events are written together at the end of the batch,
	// under one savepoint; other projections write as they go, one
	// savepoint per event.
	savepoint := `SAVEPOINT projection_event`
	if _, ok := st.p.(Planner); ok {
		savepoint = `SAVEPOINT projection_batch`
	}
	if _, err := tx.ExecContext(ctx, savepoint); err != nil {
		return fmt.Errorf("savepoint: %w", err)
	}
	st.tx, st.savepoint = tx, true
	return nil
}

// fail records why st stopped and asks its consumer to close (committing
// the events before this one) and to retry later. The event is not
// acknowledged.
func (r *Runner) fail(st *projectionState, rec events.Record, err error) error {
	err = fmt.Errorf("apply %s at position %d (%s): %w", st.name, rec.Position, rec.ID, err)
	st.statusMu.Lock()
	first := !st.status.Stopped
	if first {
		st.status.Since = time.Now()
	}
	st.status.Stopped, st.status.Err, st.status.Position = true, err.Error(), rec.Position
	st.statusMu.Unlock()
	if first {
		r.logger.Error("projection stopped; it retries the same event and never skips it",
			"projection", st.name, "position", rec.Position, "event_id", rec.ID.String(), "err", err)
	}
	r.metrics.stopped.WithLabelValues(st.name).Set(1)
	r.metrics.failures.WithLabelValues(st.name).Inc()
	select {
	case st.stop <- struct{}{}:
	default:
	}
	return err
}

func (r *Runner) recovered(st *projectionState) {
	st.statusMu.Lock()
	was := st.status.Stopped
	st.status = Status{}
	st.statusMu.Unlock()
	if was {
		r.logger.Info("projection resumed", "projection", st.name)
		r.metrics.stopped.WithLabelValues(st.name).Set(0)
	}
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

type runnerMetrics struct {
	applied  *prometheus.CounterVec
	failures *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	stopped  *prometheus.GaugeVec
	lagCount *prometheus.GaugeVec
	lagAge   *prometheus.GaugeVec
}

func newRunnerMetrics(reg prometheus.Registerer) (*runnerMetrics, error) {
	counter := func(name, help string) *prometheus.CounterVec { return telemetry.CounterVec(name, help, "projection") }
	gauge := func(name, help string) *prometheus.GaugeVec { return telemetry.GaugeVec(name, help, "projection") }
	m := &runnerMetrics{
		applied: counter("shopledger_projection_events_applied_total",
			"Events applied by each projection (events it does not handle are not counted)."),
		failures: counter("shopledger_projection_failures_total",
			"Failed attempts to apply an event, per projection."),
		latency: telemetry.HistogramVec("shopledger_projection_apply_seconds",
			"Time to apply one event, per projection.", prometheus.ExponentialBuckets(0.0001, 2.5, 12), "projection"),
		stopped: gauge("shopledger_projection_stopped",
			"1 while a projection is stopped at an event it cannot apply."),
		lagCount: gauge("shopledger_projection_lag_events",
			"Events in the log after the projection's committed offset (capped at 10 million)."),
		lagAge: gauge("shopledger_projection_lag_seconds",
			"Age of the oldest event the projection has not committed yet; 0 when caught up."),
	}
	if err := telemetry.Register(reg, m.applied, m.failures, m.latency, m.stopped, m.lagCount, m.lagAge); err != nil {
		return nil, err
	}
	return m, nil
}
