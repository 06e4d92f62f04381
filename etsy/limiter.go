package etsy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Etsy's historic defaults for a new app key; the portal shows the real
// values per app.
const (
	DefaultQPS = 10
	DefaultQPD = 10000
)

const (
	dayWindow      = 24 * time.Hour
	dayBucket      = 5 * time.Minute
	secondHoldTime = time.Second
)

// LimiterConfig configures a Limiter.
type LimiterConfig struct {
	// Name tells limiters apart in metrics (label "limiter"); default
	// "etsy".
	Name string
	// QPS is the most requests in any one-second window. Default 10.
	QPS int
	// QPD is the most requests in a rolling 24 hours. Default 10,000.
	QPD int
	// Now is the clock of the daily window; default time.Now. The
	// per-second window always runs on real time.
	Now func() time.Time
	// Shared, when set, is the key's budget as every process calling Etsy
	// with the key sees it: each request claims its slot there too, on
	// top of this limiter's own accounting, so that several instances
	// together stay within the key's limits.
	Shared SharedBudget
}

// SharedBudget is an app key's request budget kept outside the process
// (shops.Budget keeps it in PostgreSQL).
type SharedBudget interface {
	// Take claims one request: a per-second slot, held until release is
	// called and a second beyond, and one request of the rolling day. It
	// waits for a free slot until ctx ends; a spent day is a
	// *RateLimitError.
	Take(ctx context.Context) (release func(), err error)
}

// Limiter is the one rate limiter shared by every caller of an app key.
//
// The per-second limit holds each request's slot from the moment it is
// sent until one second after its response (or error) arrived. Etsy
// receives a request somewhere inside that interval, so no one-second
// window on Etsy's side — aligned or sliding — can see more than QPS
// requests, whatever the network jitter. The daily budget is a rolling
// 24-hour window of 5-minute buckets, as Etsy describes its own.
//
// Both limits shrink to what Etsy reports in x-limit-* and x-remaining-*
// headers, and a 429's retry-after pauses all callers.
type Limiter struct {
	name   string
	now    func() time.Time
	shared SharedBudget

	mu            sync.Mutex
	configuredQPS int
	configuredQPD int
	qps           int
	qpd           int
	held          int       // slots in flight or cooling down
	pausedUntil   time.Time // real time; set by 429 and x-remaining-this-second: 0
	buckets       []dayCount
	changed       chan struct{} // closed and replaced whenever waiters should look again

	waitSeconds prometheus.Counter
	refusals    *prometheus.CounterVec
}

type dayCount struct {
	start time.Time
	n     int
}

// NewLimiter returns a limiter and registers its metrics on reg (nil: not
// registered): etsy_ratelimit_remaining{limiter,window},
// etsy_ratelimit_wait_seconds_total{limiter} and
// etsy_ratelimit_refusals_total{limiter,window}.
func NewLimiter(cfg LimiterConfig, reg prometheus.Registerer) (*Limiter, error) {
	if cfg.QPS < 0 || cfg.QPD < 0 {
		return nil, fmt.Errorf("new limiter: negative limit (qps %d, qpd %d)", cfg.QPS, cfg.QPD)
	}
	if cfg.QPS == 0 {
		cfg.QPS = DefaultQPS
	}
	if cfg.QPD == 0 {
		cfg.QPD = DefaultQPD
	}
	if cfg.Name == "" {
		cfg.Name = "etsy"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	l := &Limiter{
		name: cfg.Name, now: cfg.Now, shared: cfg.Shared,
		configuredQPS: cfg.QPS, configuredQPD: cfg.QPD, qps: cfg.QPS, qpd: cfg.QPD,
		changed: make(chan struct{}),
	}
	labels := prometheus.Labels{"limiter": cfg.Name}
	l.waitSeconds = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "etsy_ratelimit_wait_seconds_total", ConstLabels: labels,
		Help: "Time callers spent waiting for Etsy rate budget.",
	})
	l.refusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "etsy_ratelimit_refusals_total", ConstLabels: labels,
		Help: "Requests refused locally because a budget was spent.",
	}, []string{"window"})
	remaining := func(window string, f func() int) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "etsy_ratelimit_remaining", Help: "Etsy rate budget left in the window.",
			ConstLabels: prometheus.Labels{"limiter": cfg.Name, "window": window},
		}, func() float64 { return float64(f()) })
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{
			l.waitSeconds, l.refusals,
			remaining("second", func() int { s, _ := l.Remaining(); return s }),
			remaining("day", func() int { _, d := l.Remaining(); return d }),
		} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("new limiter %q: register metrics: %w", cfg.Name, err)
			}
		}
	}
	return l, nil
}

// Remaining reports the budget left now: slots free this second and
// requests left in the rolling day.
func (l *Limiter) Remaining() (second, day int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return max(l.qps-l.held, 0), max(l.qpd-l.usedLocked(l.now()), 0)
}

// Limits reports the limits in force: the configured ones, lowered by what
// Etsy reported.
func (l *Limiter) Limits() (qps, qpd int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.qps, l.qpd
}

// permit is one request's claim on the budget.
type permit struct {
	l      *Limiter
	once   sync.Once
	shared func() // gives the shared budget's slot back; nil without one
}

// acquire waits for a per-second slot and takes one request from the daily
// budget. A spent daily budget is an immediate *RateLimitError: nobody
// should block for hours inside a request.
func (l *Limiter) acquire(ctx context.Context) (*permit, error) {
	start := time.Now()
	defer func() {
		if d := time.Since(start); d > time.Millisecond {
			l.waitSeconds.Add(d.Seconds())
		}
	}()
	for {
		l.mu.Lock()
		now := l.now()
		if used := l.usedLocked(now); used >= l.qpd {
			retry := l.dayFreesLocked(now)
			l.mu.Unlock()
			l.refusals.WithLabelValues("day").Inc()
			return nil, &RateLimitError{Window: "day", RetryAt: retry}
		}
		var wait time.Duration
		if d := time.Until(l.pausedUntil); d > 0 {
			wait = d
		}
		if wait == 0 && l.held < l.qps {
			l.held++
			l.countLocked(now)
			l.mu.Unlock()
			p := &permit{l: l}
			if l.shared != nil {
				release, err := l.shared.Take(ctx)
				if err != nil {
					p.release(nil)
					var rl *RateLimitError
					if errors.As(err, &rl) {
						l.refusals.WithLabelValues(rl.Window).Inc()
						return nil, err
					}
					return nil, fmt.Errorf("claim shared etsy rate budget: %w", err)
				}
				p.shared = release
			}
			return p, nil
		}
		changed := l.changed
		l.mu.Unlock()

		var timer *time.Timer
		var fire <-chan time.Time
		if wait > 0 {
			timer = time.NewTimer(wait)
			fire = timer.C
		}
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return nil, fmt.Errorf("wait for etsy rate budget: %w", ctx.Err())
		case <-changed:
		case <-fire:
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// release ends a request: its slot cools down for a second, then frees.
// Headers (nil after a network error) adjust the limits.
func (p *permit) release(h http.Header) {
	p.once.Do(func() {
		l := p.l
		if p.shared != nil {
			p.shared()
		}
		if h != nil {
			l.observe(h)
		}
		time.AfterFunc(secondHoldTime, func() {
			l.mu.Lock()
			l.held--
			l.notifyLocked()
			l.mu.Unlock()
		})
	})
}

// pause holds every caller back for d, as a 429's retry-after asks.
func (l *Limiter) pause(d time.Duration) {
	if d <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if until := time.Now().Add(d); until.After(l.pausedUntil) {
		l.pausedUntil = until
		l.notifyLocked()
	}
}

// observe adopts what Etsy says about the key's budget. Limits only ever
// shrink below the configured ones: configuration is the ceiling.
func (l *Limiter) observe(h http.Header) {
	perSecond, okPS := headerInt(h, "x-limit-per-second")
	remSecond, okRS := headerInt(h, "x-remaining-this-second")
	perDay, okPD := headerInt(h, "x-limit-per-day")
	remDay, okRD := headerInt(h, "x-remaining-today")
	l.mu.Lock()
	defer l.mu.Unlock()
	if okPS && perSecond > 0 {
		l.qps = min(l.configuredQPS, perSecond)
	}
	if okPD && perDay > 0 {
		l.qpd = min(l.configuredQPD, perDay)
	}
	if okRS && remSecond <= 0 {
		// Someone else (another process with the same key) used this
		// second up; stay off for a second.
		if until := time.Now().Add(secondHoldTime); until.After(l.pausedUntil) {
			l.pausedUntil = until
		}
	}
	if okRD {
		now := l.now()
		local := l.qpd - l.usedLocked(now)
		if remDay < local {
			// Etsy counts more than we did (a restart, other
			// processes): book the difference now.
			l.addLocked(now, local-remDay)
		}
	}
	l.notifyLocked()
}

func headerInt(h http.Header, name string) (int, bool) {
	v := h.Get(name)
	if v == "" {
		return 0, false
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, false
	}
	return n, true
}

func (l *Limiter) notifyLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *Limiter) countLocked(now time.Time) { l.addLocked(now, 1) }

func (l *Limiter) addLocked(now time.Time, n int) {
	start := now.Truncate(dayBucket)
	if k := len(l.buckets); k > 0 && l.buckets[k-1].start.Equal(start) {
		l.buckets[k-1].n += n
		return
	}
	l.buckets = append(l.buckets, dayCount{start: start, n: n})
}

func (l *Limiter) usedLocked(now time.Time) int {
	cut := now.Add(-dayWindow)
	drop := 0
	for drop < len(l.buckets) && !l.buckets[drop].start.Add(dayBucket).After(cut) {
		drop++
	}
	l.buckets = l.buckets[drop:]
	used := 0
	for _, b := range l.buckets {
		used += b.n
	}
	return used
}

// dayFreesLocked is when the oldest bucket leaves the window.
func (l *Limiter) dayFreesLocked(now time.Time) time.Time {
	if len(l.buckets) == 0 {
		return now
	}
	return l.buckets[0].start.Add(dayBucket + dayWindow)
}
