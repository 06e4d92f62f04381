// Package reconcile polls Etsy for what webhooks may have missed. A run
// walks a shop's receipts modified since a watermark (less an overlap) and
// the inventory of all its listings, and appends only what the ledger
// lacks, through the same translator as the webhook fetcher, so a fact
// seen by both paths is recorded once. A scheduler runs every connected
// shop on its interval, most stale first, within the app's shared Etsy
// rate budget.
package reconcile

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopledger/shopledger/domain"
	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/etsymap"
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/internal/defaults"
	"github.com/shopledger/shopledger/telemetry"
)

// Scope says what a run looks at.
type Scope string

// Scopes of a run.
const (
	ScopeAll      Scope = "all"
	ScopeProducts Scope = "products"
	ScopeSales    Scope = "sales"
)

func (s Scope) sales() bool    { return s == ScopeAll || s == ScopeSales }
func (s Scope) products() bool { return s == ScopeAll || s == ScopeProducts }

// ErrBusy means another run (in this or another process) holds the shop.
var ErrBusy = errors.New("shop is being reconciled by another run")

// Defaults.
const (
	DefaultOverlap  = 30 * time.Minute
	DefaultLookback = 90 * 24 * time.Hour
	DefaultLease    = time.Hour
)

// DefaultListingStates are the states a run walks: every state
// getListingsByShop accepts, so a listing that sold out, was deactivated
// or expired still has its stock checked.
func DefaultListingStates() []string {
	return []string{etsy.ListingActive, etsy.ListingSoldOut, etsy.ListingInactive, etsy.ListingDraft, etsy.ListingExpired}
}

// Stream is where a shop's reconciliation.completed events go. They have
// a stream of their own so that the shop's stream stays short.
func Stream(shopID int64) string { return fmt.Sprintf("reconciliation-shop-%d", shopID) }

// TokenSources gives a shop's token source; shops.Store is one.
type TokenSources interface {
	ForShop(ctx context.Context, shopID int64) (etsy.TokenSource, error)
}

// Config configures a Reconciler.
type Config struct {
	DB         *sql.DB
	Events     *eventstore.Store
	Client     *etsy.Client
	Tokens     TokenSources
	Translator *etsymap.Translator
	Logger     *slog.Logger
	// Now is the clock watermarks are taken from; default time.Now.
	Now func() time.Time
	// Overlap is subtracted from the watermark, so receipts modified
	// around the previous run, or seen late by Etsy's index, are read
	// again. Default 30 minutes.
	Overlap time.Duration
	// Lookback is how far back the first run reads receipts. Default 90
	// days.
	Lookback time.Duration
	// ListingStates are walked each run; default DefaultListingStates.
	ListingStates []string
	// Lease bounds how long a crashed run keeps others off the shop.
	// Default 1 hour.
	Lease time.Duration
	// DefaultInterval is the scheduler's interval for shops without one
	// of their own; each completed run records the interval in force, so
	// that what the shop reports is what polls it. Zero records none.
	DefaultInterval time.Duration
}

// Reconciler runs reconciliation passes.
type Reconciler struct {
	db       *sql.DB
	es       *eventstore.Store
	client   *etsy.Client
	tokens   TokenSources
	tr       *etsymap.Translator
	log      *slog.Logger
	now      func() time.Time
	overlap  time.Duration
	lookback time.Duration
	states   []string
	lease    time.Duration
	interval time.Duration
	m        metrics
}

type metrics struct {
	runs     *prometheus.CounterVec
	drift    prometheus.Counter
	apiCalls prometheus.Counter
	appended prometheus.Counter
	duration prometheus.Histogram
	oldest   prometheus.Gauge
}

// New checks cfg and registers the metrics on reg (nil: not registered):
// shopledger_reconcile_runs_total{result},
// shopledger_reconcile_drift_total, shopledger_reconcile_api_calls_total,
// shopledger_reconcile_events_appended_total,
// shopledger_reconcile_duration_seconds and
// shopledger_reconcile_oldest_staleness_seconds. The remaining Etsy budget
// is the shared limiter's etsy_ratelimit_remaining.
func New(cfg Config, reg prometheus.Registerer) (*Reconciler, error) {
	if cfg.DB == nil || cfg.Events == nil || cfg.Client == nil || cfg.Tokens == nil || cfg.Translator == nil {
		return nil, errors.New("new reconciler: database, event store, etsy client, token sources and translator are required")
	}
	r := &Reconciler{
		db: cfg.DB, es: cfg.Events, client: cfg.Client, tokens: cfg.Tokens, tr: cfg.Translator,
		log: cfg.Logger, now: cfg.Now, overlap: cfg.Overlap, lookback: cfg.Lookback,
		states: cfg.ListingStates, lease: cfg.Lease, interval: cfg.DefaultInterval,
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.now == nil {
		r.now = time.Now
	}
	defaults.Positive(&r.overlap, DefaultOverlap)
	defaults.Positive(&r.lookback, DefaultLookback)
	if len(r.states) == 0 {
		r.states = DefaultListingStates()
	}
	defaults.Positive(&r.lease, DefaultLease)
	r.m = metrics{
		runs: telemetry.CounterVec("shopledger_reconcile_runs_total",
			"Reconciliation runs by result (ok, failed, reauth_required, not_connected, busy).", "result"),
		drift: telemetry.Counter("shopledger_reconcile_drift_total",
			"Variants whose Etsy stock differed from the ledger's balance when reconciliation looked."),
		apiCalls: telemetry.Counter("shopledger_reconcile_api_calls_total",
			"Etsy API requests made by reconciliation, retries included."),
		appended: telemetry.Counter("shopledger_reconcile_events_appended_total",
			"Events reconciliation appended: what the webhook path had missed."),
		duration: telemetry.Histogram("shopledger_reconcile_duration_seconds",
			"Duration of reconciliation runs.", prometheus.ExponentialBuckets(0.1, 2, 14)),
		oldest: telemetry.Gauge("shopledger_reconcile_oldest_staleness_seconds",
			"Time since the most stale sync-enabled connected shop was last reconciled successfully."),
	}
	for _, res := range []string{"ok", "failed", "reauth_required", "not_connected", "busy"} {
		r.m.runs.WithLabelValues(res) // so alerts see 0, not nothing
	}
	if err := telemetry.Register(reg, r.m.runs, r.m.drift, r.m.apiCalls, r.m.appended, r.m.duration, r.m.oldest); err != nil {
		return nil, fmt.Errorf("new reconciler: %w", err)
	}
	return r, nil
}

// Summary reports one run.
type Summary struct {
	RunID        uuid.UUID
	ShopID       int64
	Scope        Scope
	StartedAt    time.Time
	FinishedAt   time.Time
	ReceiptsFrom time.Time // zero when sales were not looked at
	Watermark    time.Time // the watermark after the run
	ReceiptsSeen int
	ListingsSeen int
	// ListingsDeleted counts listings the ledger knew that Etsy no longer
	// has.
	ListingsDeleted int
	// Appended counts new events, the closing reconciliation.completed
	// excluded; Duplicates counts facts the log already held.
	Appended   int
	Duplicates int
	DriftFound int
	APICalls   int
}

// String is the one-line summary the one-shot command prints.
func (s Summary) String() string {
	b := fmt.Sprintf("shop %d (%s): %d receipts, %d listings seen; %d events appended, %d already known; %d drift; %d API calls; %s",
		s.ShopID, s.Scope, s.ReceiptsSeen, s.ListingsSeen, s.Appended, s.Duplicates, s.DriftFound, s.APICalls,
		s.FinishedAt.Sub(s.StartedAt).Round(time.Millisecond))
	if s.ListingsDeleted > 0 {
		b += fmt.Sprintf("; %d listings deleted at Etsy", s.ListingsDeleted)
	}
	return b
}

// Run reconciles one shop. On success it appends reconciliation.completed
// and moves the watermark in one transaction; on failure nothing moves, and
// whatever was appended before the failure is a true fact the next run
// will not append again.
func (r *Reconciler) Run(ctx context.Context, shopID int64, scope Scope) (Summary, error) {
	if scope == "" {
		scope = ScopeAll
	}
	if !scope.sales() && !scope.products() {
		return Summary{}, fmt.Errorf("reconcile shop %d: unknown scope %q", shopID, scope)
	}
	runID, err := uuid.NewV7()
	if err != nil {
		return Summary{}, fmt.Errorf("reconcile shop %d: %w", shopID, err)
	}
	sum := Summary{RunID: runID, ShopID: shopID, Scope: scope, StartedAt: r.now().UTC()}
	wm, err := r.acquire(ctx, shopID, runID, sum.StartedAt)
	if err != nil {
		if errors.Is(err, ErrBusy) {
			r.m.runs.WithLabelValues("busy").Inc()
		}
		return sum, fmt.Errorf("reconcile shop %d: %w", shopID, err)
	}
	sum.Watermark = wm
	err = r.run(ctx, &sum)
	sum.FinishedAt = r.now().UTC()
	r.m.apiCalls.Add(float64(sum.APICalls))
	r.m.drift.Add(float64(sum.DriftFound))
	r.m.appended.Add(float64(sum.Appended))
	if err == nil {
		err = r.complete(ctx, &sum)
	}
	if err != nil {
		result := resultOf(err)
		r.m.runs.WithLabelValues(result).Inc()
		if ferr := r.fail(context.WithoutCancel(ctx), shopID, runID, sum.FinishedAt, result, err); ferr != nil {
			r.log.WarnContext(ctx, "recording a failed reconciliation", "shop_id", shopID, "err", ferr)
		}
		return sum, fmt.Errorf("reconcile shop %d: %w", shopID, err)
	}
	r.m.runs.WithLabelValues("ok").Inc()
	r.m.duration.Observe(sum.FinishedAt.Sub(sum.StartedAt).Seconds())
	r.log.InfoContext(ctx, "shop reconciled", "shop_id", shopID, "scope", string(scope), "receipts", sum.ReceiptsSeen,
		"listings", sum.ListingsSeen, "appended", sum.Appended, "drift", sum.DriftFound, "api_calls", sum.APICalls)
	return sum, nil
}

func resultOf(err error) string {
	switch {
	case errors.Is(err, etsy.ErrInvalidGrant):
		return "reauth_required"
	case errors.Is(err, errNoTokens):
		return "not_connected"
	}
	return "failed"
}

var errNoTokens = errors.New("no token source")

// countingTokens counts requests: the client asks for the token once per
// request it sends, retries included.
type countingTokens struct {
	inner etsy.TokenSource
	n     atomic.Int64
}

func (c *countingTokens) Token(ctx context.Context) (string, error) {
	c.n.Add(1)
	return c.inner.Token(ctx)
}

func (c *countingTokens) Refresh(ctx context.Context, stale string) (string, error) {
	return c.inner.Refresh(ctx, stale)
}

func (r *Reconciler) run(ctx context.Context, sum *Summary) error {
	inner, err := r.tokens.ForShop(ctx, sum.ShopID)
	if err != nil {
		return fmt.Errorf("%w: %w", errNoTokens, err)
	}
	ts := &countingTokens{inner: inner}
	defer func() { sum.APICalls = int(ts.n.Load()) }()
	cause := etsymap.Cause{
		EventID: sum.RunID, CorrelationID: sum.RunID.String(),
		Source: etsymap.SourceReconciliation, Ref: "reconciliation:" + sum.RunID.String(),
	}
	// Sales first: a sale the webhooks missed then explains the stock
	// Etsy shows, instead of surfacing as drift.
	if sum.Scope.sales() {
		if err := r.receipts(ctx, ts, sum, cause); err != nil {
			return err
		}
	}
	if sum.Scope.products() {
		if err := r.listings(ctx, ts, sum, cause); err != nil {
			return err
		}
	}
	return nil
}

func (r *Reconciler) receipts(ctx context.Context, ts etsy.TokenSource, sum *Summary, cause etsymap.Cause) error {
	from := sum.StartedAt.Add(-r.lookback)
	if !sum.Watermark.IsZero() {
		from = sum.Watermark.Add(-r.overlap)
	}
	sum.ReceiptsFrom = from
	// Etsy's receipt has no delivered flag; was_delivered splits the walk
	// so that delivered receipts are recorded as such.
	for _, delivered := range []bool{false, true} {
		c := cause
		if delivered {
			c.EtsyEvent = etsy.EventOrderDelivered
		}
		q := etsy.ReceiptsQuery{MinLastModified: from, WasDelivered: &delivered}
		for rec, err := range r.client.AllShopReceipts(ctx, ts, sum.ShopID, q) {
			if err != nil {
				return err
			}
			sum.ReceiptsSeen++
			if err := sum.count(r.tr.ApplyReceipt(ctx, sum.ShopID, rec, c)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *Reconciler) listings(ctx context.Context, ts etsy.TokenSource, sum *Summary, cause etsymap.Cause) error {
	seen := make(map[int64]bool)
	for _, state := range r.states {
		for l, err := range r.client.AllListingsByShop(ctx, ts, sum.ShopID, state, true) {
			if err != nil {
				return err
			}
			// A listing that changed state during the walk can show up
			// twice; once is enough.
			if seen[l.ListingID] {
				continue
			}
			seen[l.ListingID] = true
			sum.ListingsSeen++
			if err := r.applyListing(ctx, sum, l, cause); err != nil {
				return err
			}
		}
	}
	known, err := r.knownListings(ctx, sum.ShopID)
	if err != nil {
		return err
	}
	for _, id := range known {
		if seen[id] {
			continue
		}
		// Not in any state's list: deleted, or it moved between states
		// behind the walk. Only Etsy can tell.
		l, err := r.client.GetListing(ctx, ts, id, true)
		switch {
		case errors.Is(err, etsy.ErrNotFound) || (err == nil && l.ShopID != sum.ShopID):
			if err := sum.count(r.tr.ApplyListingDeleted(ctx, sum.ShopID, id, cause)); err != nil {
				return err
			}
			sum.ListingsDeleted++
		case err != nil:
			return err
		default:
			sum.ListingsSeen++
			if err := r.applyListing(ctx, sum, l, cause); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *Reconciler) applyListing(ctx context.Context, sum *Summary, l etsy.Listing, cause etsymap.Cause) error {
	n, err := r.recordDrift(ctx, sum.ShopID, l, cause)
	if err != nil {
		return err
	}
	sum.DriftFound += n
	sum.Appended += n
	return sum.count(r.tr.ApplyListing(ctx, sum.ShopID, l, cause))
}

// count adds what one translator call appended, unless it failed.
func (s *Summary) count(a etsymap.Applied, err error) error {
	if err != nil {
		return err
	}
	s.Appended += a.Appended
	s.Duplicates += a.Duplicates
	return nil
}

// recordDrift appends stock.drift_detected for each variant of a listing
// the ledger already holds whose Etsy quantity differs from the ledger's
// balance once the receipts are in (domain.Listing.Drift decides). The
// translator then appends the stock.observed and stock.adjusted that
// settle it.
func (r *Reconciler) recordDrift(ctx context.Context, shopID int64, l etsy.Listing, cause etsymap.Cause) (int, error) {
	if l.Inventory == nil {
		return 0, nil
	}
	stream := events.ListingStream(l.ListingID)
	view := etsymap.ListingView(l)
	meta := events.Metadata{CorrelationID: cause.CorrelationID, CausationID: cause.EventID.String(), Source: cause.Source}
	for range 5 {
		past, err := r.es.ReadStream(ctx, stream, 0)
		if err != nil {
			return 0, fmt.Errorf("drift of listing %d: %w", l.ListingID, err)
		}
		now := r.now().UTC()
		var drift []events.Event
		for _, d := range domain.ReplayListing(l.ListingID, past).Drift(view, domain.Observation{At: now, Source: cause.Source, Cause: cause.Ref}) {
			drift = append(drift, events.New(stream, shopID, now, d).WithMetadata(meta))
		}
		if len(drift) == 0 {
			return 0, nil
		}
		_, err = r.es.Append(ctx, stream, eventstore.Exact(past[len(past)-1].StreamVersion), drift...)
		if errors.Is(err, eventstore.ErrConcurrency) {
			continue // the listing moved meanwhile: look again
		}
		if err != nil {
			return 0, fmt.Errorf("drift of listing %d: %w", l.ListingID, err)
		}
		for _, ev := range drift {
			d := ev.Data.(events.StockDriftDetected)
			r.log.InfoContext(ctx, "stock drift", "shop_id", shopID, "listing_id", d.ListingID, "variant", d.VariantKey,
				"expected", d.Expected, "observed", d.Observed)
		}
		return len(drift), nil
	}
	return 0, fmt.Errorf("drift of listing %d: stream kept moving: %w", l.ListingID, eventstore.ErrConcurrency)
}

// knownListings are the shop's listings whose last description event is
// not a deletion.
func (r *Reconciler) knownListings(ctx context.Context, shopID int64) ([]int64, error) {
	last, err := r.es.LastOfType(ctx, shopID, events.TypeListingImported, events.TypeListingUpdated, events.TypeListingDeleted)
	if err != nil {
		return nil, fmt.Errorf("known listings of shop %d: %w", shopID, err)
	}
	var ids []int64
	for _, rec := range last {
		switch d := rec.Data.(type) {
		case events.ListingImported:
			ids = append(ids, d.ListingID)
		case events.ListingUpdated:
			ids = append(ids, d.ListingID)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// acquire takes the shop's lease and returns its receipts watermark.
func (r *Reconciler) acquire(ctx context.Context, shopID int64, runID uuid.UUID, started time.Time) (time.Time, error) {
	if _, err := r.db.ExecContext(ctx, `INSERT INTO reconcile_state (shop_id, first_seen_at) VALUES ($1, $2) ON CONFLICT (shop_id) DO NOTHING`, shopID, started); err != nil {
		return time.Time{}, fmt.Errorf("reconcile state: %w", err)
	}
	var wm sql.NullTime
	err := r.db.QueryRowContext(ctx, `
UPDATE reconcile_state SET lease_owner = $2, lease_until = now() + make_interval(secs => $3), last_started_at = $4
WHERE shop_id = $1 AND (lease_until IS NULL OR lease_until < now())
RETURNING receipts_watermark`, shopID, runID, r.lease.Seconds(), started).Scan(&wm)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, ErrBusy
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("reconcile state: %w", err)
	}
	if wm.Valid {
		return wm.Time.UTC(), nil
	}
	return time.Time{}, nil
}

// complete appends reconciliation.completed and moves the watermark to the
// run's start in one transaction, releasing the lease.
func (r *Reconciler) complete(ctx context.Context, sum *Summary) error {
	if sum.Scope.sales() {
		sum.Watermark = sum.StartedAt
	}
	var interval time.Duration
	if r.interval > 0 {
		sets, err := r.syncSettings(ctx, []int64{sum.ShopID})
		if err != nil {
			return fmt.Errorf("complete: %w", err)
		}
		interval = r.interval
		if own := sets[sum.ShopID].interval; own > 0 {
			interval = own
		}
	}
	ev := events.New(Stream(sum.ShopID), sum.ShopID, sum.FinishedAt, events.ReconciliationCompleted{
		ShopID: sum.ShopID, StartedAt: sum.StartedAt, FinishedAt: sum.FinishedAt, Watermark: sum.Watermark,
		ReceiptsSeen: sum.ReceiptsSeen, ListingsSeen: sum.ListingsSeen, EventsAppended: sum.Appended,
		DriftFound: sum.DriftFound, APICalls: sum.APICalls,
		DurationMillis: sum.FinishedAt.Sub(sum.StartedAt).Milliseconds(), Scope: string(sum.Scope),
		IntervalSeconds: int64(interval / time.Second),
	}).WithMetadata(events.Metadata{CorrelationID: sum.RunID.String(), Source: etsymap.SourceReconciliation})
	// The run's id is the completed event's id: every event the run
	// appended names it as its cause.
	ev.ID = sum.RunID
	tx, err := eventstore.BeginAppend(ctx, r.db)
	if err != nil {
		return fmt.Errorf("complete: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	res, err := tx.ExecContext(ctx, `
UPDATE reconcile_state SET
    receipts_watermark = CASE WHEN $3 THEN $4 ELSE receipts_watermark END,
    catalogue_synced_at = CASE WHEN $5 THEN $4 ELSE catalogue_synced_at END,
    last_finished_at = $6, last_success_at = $6, last_result = 'ok', last_error = '',
    consecutive_failures = 0, lease_owner = NULL, lease_until = NULL
WHERE shop_id = $1 AND lease_owner = $2`,
		sum.ShopID, sum.RunID, sum.Scope.sales(), sum.StartedAt, sum.Scope.products(), sum.FinishedAt)
	if err != nil {
		return fmt.Errorf("complete: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("complete: the lease ran out and another run took the shop: %w", ErrBusy)
	}
	if _, err := r.es.AppendIn(ctx, tx, Stream(sum.ShopID), eventstore.Any, ev); err != nil {
		return fmt.Errorf("complete: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("complete: commit: %w", err)
	}
	return nil
}

// fail records a failed run and releases the lease; the watermark stays.
func (r *Reconciler) fail(ctx context.Context, shopID int64, runID uuid.UUID, at time.Time, result string, cause error) error {
	msg := cause.Error()
	if len(msg) > 500 {
		msg = msg[:500]
	}
	_, err := r.db.ExecContext(ctx, `
UPDATE reconcile_state SET last_finished_at = $3, last_result = $4, last_error = $5,
    consecutive_failures = consecutive_failures + 1, lease_owner = NULL, lease_until = NULL
WHERE shop_id = $1 AND lease_owner = $2`, shopID, runID, at, result, strings.ToValidUTF8(msg, "?"))
	return err
}
