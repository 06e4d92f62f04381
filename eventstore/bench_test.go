package eventstore_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/pgtest"
)

// benchEvent is about the size of pgbench's 300-byte row once encoded.
func benchEvent(stream string, listing int64, i int) events.Event {
	return events.New(stream, 42, t0, events.StockAdjusted{
		ListingID: listing, VariantKey: fmt.Sprintf("sku:BENCH-%06d-variant-with-a-realistic-length", i%1000),
		Delta: 1, Reason: events.ReasonRestock, Cause: "actor:benchmark-operator-with-a-long-enough-name-to-reach-300-bytes",
	}).WithDedupe(fmt.Sprintf("bench:%d:%d", listing, i))
}

// BenchmarkAppendSingle measures one event per transaction from 8
// goroutines for a fixed time, like pgbench's single-row inserts.
func BenchmarkAppendSingle(b *testing.B) {
	db := pgtest.New(b)
	s := eventstore.New(db.DB)
	ctx := context.Background()
	const window = 10 * time.Second
	appendRate(b, "append_single_c8", func(n, w int) int64 {
		var count int64
		for i, deadline := 0, time.Now().Add(window); time.Now().Before(deadline); i++ {
			// One stream per worker and round, so workers never contend
			// on a stream and measure the log itself.
			stream := fmt.Sprintf("bench-%d-%d-%d", n, w, i)
			if _, err := s.Append(ctx, stream, eventstore.Any, benchEvent(stream, int64(w), n*10_000_000+w*1_000_000+i)); err != nil {
				b.Error(err)
				break
			}
			count++
		}
		return count
	})
}

// BenchmarkAppendBatch100 measures 100 events per transaction, from 8
// goroutines like the single-event benchmark.
func BenchmarkAppendBatch100(b *testing.B) {
	db := pgtest.New(b)
	s := eventstore.New(db.DB)
	ctx := context.Background()
	const batchesPerWorker = 50
	appendRate(b, "append_batch100", func(n, w int) int64 {
		for j := 0; j < batchesPerWorker; j++ {
			stream := fmt.Sprintf("bench-batch-%d-%d-%d", n, w, j)
			evs := make([]events.Event, 100)
			for i := range evs {
				evs[i] = benchEvent(stream, int64(j), n*10_000_000+w*1_000_000+j*100+i)
			}
			if _, err := s.Append(ctx, stream, eventstore.Any, evs...); err != nil {
				b.Error(err)
				return int64(j * 100)
			}
		}
		return batchesPerWorker * 100
	})
}

// appendRate runs appendWork on 8 goroutines in each round n and reports
// the events they appended per second; the last round's rate is also
// printed as the BENCH line called name. appendWork returns how many events
// worker w appended.
func appendRate(b *testing.B, name string, appendWork func(n, w int) int64) {
	b.Helper()
	const workers = 8
	for n := 0; n < b.N; n++ {
		var count atomic.Int64
		start := time.Now()
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				count.Add(appendWork(n, w))
			}(w)
		}
		wg.Wait()
		if b.Failed() {
			return
		}
		rate := float64(count.Load()) / time.Since(start).Seconds()
		b.ReportMetric(rate, "events/s")
		if n == b.N-1 {
			fmt.Printf("BENCH %s %.0f events/s\n", name, rate)
		}
	}
}
