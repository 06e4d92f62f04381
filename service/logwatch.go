package service

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/internal/defaults"
)

// DefaultHiddenGrace is how long events may stay hidden behind the
// visibility horizon before /readyz says so.
const DefaultHiddenGrace = 30 * time.Second

// WatchLog adds a "log" readiness check and the horizon metrics to a
// binary. Readiness fails when the log holds ids this cluster cannot order
// (a restore not adopted) and when committed events have been hidden from
// consumers for longer than grace, naming the transaction holding them.
// The metrics are read at scrape time, so a stuck transaction shows in
// the first scrape after it starts holding events back.
func WatchLog(reg prometheus.Registerer, ready *Readiness, db *sql.DB, grace time.Duration) {
	defaults.Positive(&grace, DefaultHiddenGrace)
	ready.Add("log", func(ctx context.Context) error {
		if err := eventstore.CheckOrder(ctx, db); err != nil {
			if errors.Is(err, eventstore.ErrLogOutOfOrder) {
				return ReadyDetail{Detail: err.Error()}
			}
			return err
		}
		h, err := eventstore.ReadHorizon(ctx, db)
		if err != nil {
			return err
		}
		if h.Hidden > 0 && time.Since(h.OldestHidden) > grace {
			return ReadyDetail{Detail: fmt.Sprintf("%d committed events hidden from consumers for %s behind the oldest open appending transaction (%s)",
				h.Hidden, time.Since(h.OldestHidden).Round(time.Second), h.Holder)}
		}
		return nil
	})
	reg.MustRegister(&horizonCollector{db: db})
}

var (
	hiddenDesc = prometheus.NewDesc("shopledger_log_hidden_events",
		"Committed events above the visibility horizon, not yet visible to any consumer (capped at 100000).", nil, nil)
	hiddenAgeDesc = prometheus.NewDesc("shopledger_log_hidden_oldest_seconds",
		"Age of the oldest committed event hidden behind the visibility horizon; 0 when none.", nil, nil)
	holderDesc = prometheus.NewDesc("shopledger_log_horizon_holder_seconds",
		"How long the oldest running appender (which holds the visibility horizon) has been open.",
		[]string{"application_name"}, nil)
)

type horizonCollector struct{ db *sql.DB }

func (c *horizonCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- hiddenDesc
	ch <- hiddenAgeDesc
	ch <- holderDesc
}

func (c *horizonCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	h, err := eventstore.ReadHorizon(ctx, c.db)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(hiddenDesc, err)
		return
	}
	age := 0.0
	if h.Hidden > 0 {
		age = time.Since(h.OldestHidden).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(hiddenDesc, prometheus.GaugeValue, float64(h.Hidden))
	ch <- prometheus.MustNewConstMetric(hiddenAgeDesc, prometheus.GaugeValue, age)
	if h.Holder.PID != 0 {
		ch <- prometheus.MustNewConstMetric(holderDesc, prometheus.GaugeValue, h.Holder.Age.Seconds(), h.Holder.Application)
	}
}

// DBReadiness is the readiness of a service on db: the database answers,
// and the log's horizon is watched as WatchLog does, its metrics on reg.
func DBReadiness(reg prometheus.Registerer, db *sql.DB, logger *slog.Logger) *Readiness {
	ready := &Readiness{Logger: logger}
	ready.Add("database", db.PingContext)
	WatchLog(reg, ready, db, DefaultHiddenGrace)
	return ready
}
