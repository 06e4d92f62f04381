package reconcile

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/internal/defaults"
)

// ShopLister names the shops whose connection is usable; shops.Store is
// one. Shops waiting for reauthorization are not among them, so they are
// not polled.
type ShopLister interface {
	Connected(ctx context.Context) ([]int64, error)
}

// ScheduleConfig configures RunScheduler.
type ScheduleConfig struct {
	Shops ShopLister
	// Interval is a shop's polling interval unless its settings
	// (shop.settings_changed) say otherwise. Default 15 minutes.
	Interval time.Duration
	// Tick is how often the scheduler looks for due shops. Default 30 s.
	Tick time.Duration
	// Concurrency bounds simultaneous runs. They all draw on the one
	// Etsy limiter, so this only bounds database and memory use.
	// Default 4.
	Concurrency int
	// DailyReserve is the part of Etsy's daily budget runs leave to the
	// webhook fetcher: no run starts when fewer requests remain.
	// Default a tenth of the limiter's daily limit.
	DailyReserve int
}

// ShopSchedule is one shop's place in the schedule.
type ShopSchedule struct {
	ShopID      int64
	SyncEnabled bool
	Interval    time.Duration
	LastSuccess time.Time // zero: never
	LastStarted time.Time // zero: never
	LastResult  string
	LastError   string
	Failures    int
	Watermark   time.Time
	// SyncRequested is a "sync now" newer than the last run's start: the
	// shop is due now, even with polling off.
	SyncRequested bool
	// Due is when the next run should start.
	Due time.Time
	// Staleness is how long ago the shop was last reconciled
	// successfully (or first seen, if never).
	Staleness time.Duration
}

// Schedule reports every connected shop's schedule, most stale first.
func (r *Reconciler) Schedule(ctx context.Context, shops ShopLister, defaultInterval time.Duration) ([]ShopSchedule, error) {
	defaults.Positive(&defaultInterval, 15*time.Minute)
	ids, err := shops.Connected(ctx)
	if err != nil {
		return nil, fmt.Errorf("schedule: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	settings, err := r.syncSettings(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("schedule: %w", err)
	}
	now := r.now().UTC()
	out := make([]ShopSchedule, 0, len(ids))
	states, err := r.runStates(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("schedule: %w", err)
	}
	requests, err := syncRequests(ctx, r.db, ids)
	if err != nil {
		return nil, fmt.Errorf("schedule: %w", err)
	}
	for _, id := range ids {
		s := ShopSchedule{ShopID: id, SyncEnabled: true, Interval: defaultInterval}
		if set, ok := settings[id]; ok {
			if set.enabled != nil {
				s.SyncEnabled = *set.enabled
			}
			if set.interval > 0 {
				s.Interval = set.interval
			}
		}
		st, seen := states[id]
		if seen {
			s.LastSuccess, s.LastStarted, s.LastResult, s.LastError, s.Failures, s.Watermark =
				st.lastSuccess, st.lastStarted, st.lastResult, st.lastError, st.failures, st.watermark
		}
		switch {
		case s.LastStarted.IsZero():
			s.Due = now
		case s.Failures > 0:
			// Failed runs retry sooner than the interval, backing off.
			s.Due = s.LastStarted.Add(min(s.Interval, time.Minute<<min(s.Failures-1, 10)))
		default:
			s.Due = s.LastStarted.Add(s.Interval)
		}
		if at, ok := requests[id]; ok && at.After(s.LastStarted) {
			s.SyncRequested, s.Due = true, now
		}
		since := now
		switch {
		case !s.LastSuccess.IsZero():
			since = s.LastSuccess
		case seen:
			since = st.firstSeen
		}
		s.Staleness = max(now.Sub(since), 0)
		out = append(out, s)
	}
	// Most stale first: shops never reconciled lead, then the oldest
	// success.
	slices.SortStableFunc(out, func(a, b ShopSchedule) int {
		if c := cmp.Compare(boolInt(a.LastSuccess.IsZero()), boolInt(b.LastSuccess.IsZero())); c != 0 {
			return -c
		}
		if c := a.LastSuccess.Compare(b.LastSuccess); c != 0 {
			return c
		}
		return cmp.Compare(b.Staleness, a.Staleness)
	})
	return out, nil
}

type syncSetting struct {
	enabled  *bool
	interval time.Duration
}

// syncSettings folds the shops' shop.settings_changed events: sync on or
// off and the interval live in the log, wherever they were changed.
func (r *Reconciler) syncSettings(ctx context.Context, ids []int64) (map[int64]syncSetting, error) {
	streams := make([]string, len(ids))
	for i, id := range ids {
		streams[i] = events.ShopStream(id)
	}
	recs, err := r.es.ReadStreamsOfType(ctx, streams, events.TypeShopSettingsChanged)
	if err != nil {
		return nil, fmt.Errorf("sync settings: %w", err)
	}
	out := map[int64]syncSetting{}
	for _, rec := range recs {
		d, ok := rec.Data.(events.ShopSettingsChanged)
		if !ok {
			continue
		}
		s := out[d.ShopID]
		if d.SyncEnabled != nil {
			v := *d.SyncEnabled
			s.enabled = &v
		}
		if d.SyncIntervalSeconds != nil && *d.SyncIntervalSeconds > 0 {
			s.interval = time.Duration(*d.SyncIntervalSeconds) * time.Second
		}
		out[d.ShopID] = s
	}
	return out, nil
}

type runState struct {
	firstSeen, lastSuccess, lastStarted, watermark time.Time
	lastResult, lastError                          string
	failures                                       int
}

func (r *Reconciler) runStates(ctx context.Context, ids []int64) (map[int64]runState, error) {
	infos, err := lastRuns(ctx, r.db, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[int64]runState, len(infos))
	for id, i := range infos {
		out[id] = runState{
			firstSeen: i.FirstSeen, lastSuccess: i.LastSuccess, lastStarted: i.LastStarted, watermark: i.Watermark,
			lastResult: i.LastResult, lastError: i.LastError, failures: i.Failures,
		}
	}
	return out, nil
}

// RunInfo is a shop's reconciliation bookkeeping, for operators.
type RunInfo struct {
	ShopID      int64
	FirstSeen   time.Time
	Watermark   time.Time // zero: sales never reconciled
	LastStarted time.Time
	LastSuccess time.Time
	LastResult  string // ok, failed, reauth_required, not_connected
	LastError   string
	Failures    int // consecutive
}

// LastRuns returns every shop's reconciliation bookkeeping by shop id.
func LastRuns(ctx context.Context, db *sql.DB) (map[int64]RunInfo, error) {
	return lastRuns(ctx, db, nil)
}

func lastRuns(ctx context.Context, db *sql.DB, ids []int64) (map[int64]RunInfo, error) {
	q := `SELECT shop_id, first_seen_at, last_success_at, last_started_at, receipts_watermark, last_result, last_error, consecutive_failures
FROM reconcile_state`
	var args []any
	if ids != nil {
		q += ` WHERE shop_id = ANY($1)`
		args = append(args, ids)
	}
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("reconcile state: %w", err)
	}
	defer rows.Close()
	out := map[int64]RunInfo{}
	for rows.Next() {
		var i RunInfo
		var success, started, wm sql.NullTime
		if err := rows.Scan(&i.ShopID, &i.FirstSeen, &success, &started, &wm, &i.LastResult, &i.LastError, &i.Failures); err != nil {
			return nil, fmt.Errorf("reconcile state: %w", err)
		}
		i.FirstSeen = i.FirstSeen.UTC()
		i.LastSuccess, i.LastStarted, i.Watermark = nullTime(success), nullTime(started), nullTime(wm)
		out[i.ShopID] = i
	}
	return out, rows.Err()
}

func nullTime(t sql.NullTime) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return t.Time.UTC()
}

// RunScheduler reconciles every connected, sync-enabled shop on its
// interval until ctx ends, then waits for running passes to stop.
func (r *Reconciler) RunScheduler(ctx context.Context, cfg ScheduleConfig) error {
	if cfg.Shops == nil {
		return errors.New("reconcile scheduler: a shop lister is required")
	}
	defaults.Positive(&cfg.Interval, 15*time.Minute)
	defaults.Positive(&cfg.Tick, 30*time.Second)
	defaults.Positive(&cfg.Concurrency, 4)
	if cfg.DailyReserve <= 0 {
		_, qpd := r.client.Limiter().Limits()
		cfg.DailyReserve = qpd / 10
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	var mu sync.Mutex
	running := map[int64]bool{}
	slots := make(chan struct{}, cfg.Concurrency)
	t := time.NewTicker(cfg.Tick)
	defer t.Stop()
	for {
		sched, err := r.Schedule(ctx, cfg.Shops, cfg.Interval)
		if err != nil && ctx.Err() == nil {
			r.log.ErrorContext(ctx, "reconcile scheduler", "err", err)
		}
		var oldest time.Duration
		for _, s := range sched {
			if s.SyncEnabled {
				oldest = max(oldest, s.Staleness)
			}
		}
		r.m.oldest.Set(oldest.Seconds())
		now := r.now()
	shops:
		for _, s := range sched {
			if (!s.SyncEnabled && !s.SyncRequested) || now.Before(s.Due) {
				continue
			}
			if _, day := r.client.Limiter().Remaining(); day < cfg.DailyReserve {
				r.log.WarnContext(ctx, "etsy daily budget low; reconciliation waits", "remaining", day, "reserve", cfg.DailyReserve)
				break
			}
			mu.Lock()
			busy := running[s.ShopID]
			mu.Unlock()
			if busy {
				continue
			}
			select {
			case slots <- struct{}{}:
			default:
				break shops // all workers busy: the rest wait for the next tick
			}
			mu.Lock()
			running[s.ShopID] = true
			mu.Unlock()
			wg.Add(1)
			go func(id int64) {
				defer wg.Done()
				defer func() {
					mu.Lock()
					delete(running, id)
					mu.Unlock()
					<-slots
				}()
				if _, err := r.Run(ctx, id, ScopeAll); err != nil && ctx.Err() == nil && !errors.Is(err, ErrBusy) {
					r.log.WarnContext(ctx, "reconciliation failed", "shop_id", id, "err", err)
				}
			}(s.ShopID)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// syncRequests returns the shops' latest "sync now" requests.
func syncRequests(ctx context.Context, db *sql.DB, ids []int64) (map[int64]time.Time, error) {
	rows, err := db.QueryContext(ctx, `SELECT shop_id, requested_at FROM shop_sync_requests WHERE shop_id = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("sync requests: %w", err)
	}
	defer rows.Close()
	out := map[int64]time.Time{}
	for rows.Next() {
		var id int64
		var at time.Time
		if err := rows.Scan(&id, &at); err != nil {
			return nil, fmt.Errorf("sync requests: %w", err)
		}
		out[id] = at.UTC()
	}
	return out, rows.Err()
}

// SyncRequests records owners' "sync now" requests for the scheduler.
type SyncRequests struct {
	DB *sql.DB
}

// RequestSync asks for a run of the shop as soon as the scheduler's next
// tick. Asking again before that run starts changes nothing.
func (q SyncRequests) RequestSync(ctx context.Context, shopID int64, at time.Time) error {
	if _, err := q.DB.ExecContext(ctx, `INSERT INTO shop_sync_requests (shop_id, requested_at) VALUES ($1, $2)
		ON CONFLICT (shop_id) DO UPDATE SET requested_at = excluded.requested_at`, shopID, at.UTC()); err != nil {
		return fmt.Errorf("request sync of shop %d: %w", shopID, err)
	}
	return nil
}

// SyncRequested returns the shop's latest request (zero: none).
func (q SyncRequests) SyncRequested(ctx context.Context, shopID int64) (time.Time, error) {
	var at time.Time
	err := q.DB.QueryRowContext(ctx, `SELECT requested_at FROM shop_sync_requests WHERE shop_id = $1`, shopID).Scan(&at)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("sync request of shop %d: %w", shopID, err)
	}
	return at.UTC(), nil
}
