package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/shopledger/shopledger/pgtest"
)

// BenchmarkIngestWebhooks sends N signed webhooks (SHOPLEDGER_BENCH_WEBHOOKS,
// default 20,000) over HTTP from 32 concurrent senders to a running ingest
// on loopback, and prints throughput and p99 latency for scripts/bench.
// The measured work runs once per invocation (-benchtime 1x). The fetcher
// is off: this is the webhook path alone, a signature check and a durable
// group-committed insert per delivery.
func BenchmarkIngestWebhooks(b *testing.B) {
	const senders = 32
	n := 20000
	if v, err := strconv.Atoi(os.Getenv("SHOPLEDGER_BENCH_WEBHOOKS")); err == nil && v > 0 {
		n = v
	}
	db := pgtest.New(b)
	env := baseEnv(db.URL)
	env["SHOPLEDGER_LOG_LEVEL"] = "error"
	// The group-commit knobs can be varied from outside to tune defaults.
	for _, k := range []string{"SHOPLEDGER_WEBHOOK_COMMITTERS", "SHOPLEDGER_WEBHOOK_MAX_BATCH"} {
		if v := os.Getenv(k); v != "" {
			env[k] = v
		}
	}
	base, stop := startInProcess(b, env)
	defer stop()

	s := newSender(testSecret, senders)
	// Warm the connections and the server before measuring.
	for i := range senders {
		s.send(context.Background(), base, fmt.Sprintf("msg_warm_%d", i))
	}

	b.ResetTimer()
	latencies := make([]time.Duration, n)
	var failures int
	var mu sync.Mutex
	work := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				o, d := s.send(context.Background(), base, fmt.Sprintf("msg_bench_%d", i))
				latencies[i] = d
				if o != outcomeOK {
					mu.Lock()
					failures++
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()

	if failures > 0 {
		b.Fatalf("%d of %d deliveries were not answered 2xx", failures, n)
	}
	slices.Sort(latencies)
	p99 := latencies[(len(latencies)*99+99)/100-1]
	var rows int
	if err := db.DB.QueryRow(`SELECT count(*) FROM events WHERE dedupe_key LIKE 'etsy-webhook:msg_bench_%'`).Scan(&rows); err != nil {
		b.Fatal(err)
	}
	if rows != n {
		b.Fatalf("%d deliveries stored, want %d", rows, n)
	}
	var txs int
	if err := db.DB.QueryRow(`SELECT count(DISTINCT transaction_id) FROM events WHERE dedupe_key LIKE 'etsy-webhook:msg_bench_%'`).Scan(&txs); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(n)/elapsed.Seconds(), "webhooks/s")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
	fmt.Printf("BENCH ingest_webhooks_per_s %.0f webhooks/s\n", float64(n)/elapsed.Seconds())
	fmt.Printf("BENCH ingest_p99_ms %.2f ms\n", float64(p99.Microseconds())/1000)
	fmt.Fprintf(os.Stderr, "ingest bench: %d webhooks in %v over %d transactions (%.1f per commit)\n", n, elapsed.Round(time.Millisecond), txs, float64(n)/float64(txs))
}
