package engine

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/shopledger/shopledger/eventstore"
)

// Lag is how far a consumer group is behind the log.
type Lag struct {
	Group  string
	Events int64
	// Oldest is the recorded time of the oldest event not yet committed by
	// the group; zero when caught up.
	Oldest time.Time
	Age    time.Duration
}

// GroupLag measures how far each consumer group is behind. A group named
// after one of exact counts at least what that LagCounter reports.
func GroupLag(ctx context.Context, q eventstore.Queryer, groups []string, exact ...LagCounter) ([]Lag, error) {
	out := make([]Lag, 0, len(groups))
	for _, g := range groups {
		l := Lag{Group: g}
		b, err := eventstore.GroupBehind(ctx, q, g)
		if err != nil {
			return nil, fmt.Errorf("lag of %s: %w", g, err)
		}
		l.Events, l.Oldest, l.Age = b.Events, b.Oldest, b.Age
		for _, c := range exact {
			if c.Name() != g {
				continue
			}
			n, err := c.CountLag(ctx, q)
			if err != nil {
				return nil, fmt.Errorf("lag of %s: %w", g, err)
			}
			l.Events = max(l.Events, n)
		}
		out = append(out, l)
	}
	return out, nil
}

func (r *Runner) watchLag(ctx context.Context) {
	groups := make([]string, len(r.states))
	for i, st := range r.states {
		groups[i] = st.name
	}
	sort.Strings(groups)
	var exact []LagCounter
	for _, st := range r.states {
		if c, ok := st.p.(LagCounter); ok {
			exact = append(exact, c)
		}
	}
	t := time.NewTicker(r.cfg.LagInterval)
	defer t.Stop()
	for {
		lags, err := GroupLag(ctx, r.db, groups, exact...)
		if err != nil && ctx.Err() == nil {
			r.logger.Warn("measure projection lag", "err", err)
		}
		for _, l := range lags {
			r.metrics.lagCount.WithLabelValues(l.Group).Set(float64(l.Events))
			r.metrics.lagAge.WithLabelValues(l.Group).Set(l.Age.Seconds())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
