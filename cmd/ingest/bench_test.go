package main

import (
	"bufio"
	"bytes"
	"database/sql"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/ingest"
	"github.com/shopledger/shopledger/pgtest"
)

// BenchmarkIngestWebhooks sends N signed webhooks (SHOPLEDGER_BENCH_WEBHOOKS,
// default 20,000) over HTTP from 32 concurrent senders to a running ingest
// on loopback, and prints throughput and p99 latency for scripts/bench.
// The measured work runs once per invocation (-benchtime 1x). The fetcher
// is off: this is the webhook path alone, a signature check and a durable
// group-committed insert per delivery. Each sender is a benchConn: real
// HTTP/1.1 over a keep-alive TCP connection, every request freshly signed.
// On stderr it adds the batch size reached and the CPU spent per webhook
// by this process and by PostgreSQL's backends.
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

	// One keep-alive connection per sender; the first request on each
	// warms it and the server.
	conns := make([]*benchConn, senders)
	for i := range conns {
		conns[i] = &benchConn{addr: strings.TrimPrefix(base, "http://"), secret: testSecret}
		if o, _ := conns[i].send(fmt.Sprintf("msg_warm_%d", i)); o != outcomeOK {
			b.Fatalf("warm-up delivery %d was not answered 2xx", i)
		}
	}
	defer func() {
		for _, c := range conns {
			c.close()
		}
	}()

	cpu0 := measureCPU(db.DB)
	b.ResetTimer()
	latencies := make([]time.Duration, n)
	var failures int
	var mu sync.Mutex
	work := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				o, d := c.send(fmt.Sprintf("msg_bench_%d", i))
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
	cpu1 := measureCPU(db.DB)

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
	perHook := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(n) }
	fmt.Fprintf(os.Stderr, "ingest bench: CPU per webhook: %.0f µs in this process (senders and ingest), %.0f µs in its PostgreSQL backends%s\n",
		perHook(cpu1.process-cpu0.process), perHook(cpu1.backends-cpu0.backends), cpu1.note)
}

// cpuUse is CPU time consumed so far by this process and by the
// PostgreSQL backends serving its database, so the benchmark can say
// where the time per webhook goes on a machine the two share.
type cpuUse struct {
	process, backends time.Duration
	note              string // why backends is unknown
}

func measureCPU(db *sql.DB) cpuUse {
	var u cpuUse
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		u.process = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	// Backends are only visible on a local server, through /proc.
	rows, err := db.Query(`SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend'`)
	if err != nil {
		u.note = " (backends unknown: " + err.Error() + ")"
		return u
	}
	defer rows.Close()
	tick := 10 * time.Millisecond // USER_HZ is 100 on Linux
	for rows.Next() {
		var pid int
		if rows.Scan(&pid) != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			u.note = " (backends unknown: server not local)"
			return u
		}
		// Fields after the command name: utime and stime are the 12th
		// and 13th.
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(f) < 13 {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		u.backends += time.Duration(ut+st) * tick
	}
	return u
}

// benchConn is the benchmark's sender: one keep-alive HTTP/1.1 connection
// over TCP loopback that posts signed webhooks one at a time, as Etsy's
// sender would. It writes each request itself and reads the answer with
// http.ReadResponse instead of going through http.Client, whose transport
// spends two goroutines and their hand-offs per request: the load
// generator shares the machine with ingest and PostgreSQL, so its own CPU
// would count against them.
type benchConn struct {
	addr, secret string
	conn         net.Conn
	r            *bufio.Reader
	buf          []byte
}

func (c *benchConn) send(id string) (outcome, time.Duration) {
	body := soakBody(id)
	now := time.Now()
	sig, err := etsy.Sign(c.secret, id, now, body)
	if err != nil {
		panic(err)
	}
	start := time.Now()
	if c.conn == nil {
		conn, err := net.Dial("tcp", c.addr)
		if err != nil {
			return outcomeUnknown, time.Since(start)
		}
		c.conn, c.r = conn, bufio.NewReader(conn)
	}
	b := c.buf[:0]
	b = append(b, "POST "+ingest.WebhookPath+" HTTP/1.1\r\nHost: "...)
	b = append(b, c.addr...)
	b = append(b, "\r\nUser-Agent: shopledger-bench\r\nContent-Type: application/json\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\nWebhook-Id: "...)
	b = append(b, id...)
	b = append(b, "\r\nWebhook-Timestamp: "...)
	b = strconv.AppendInt(b, now.Unix(), 10)
	b = append(b, "\r\nWebhook-Signature: "...)
	b = append(b, sig...)
	b = append(b, "\r\n\r\n"...)
	b = append(b, body...)
	c.buf = b
	if _, err := c.conn.Write(b); err != nil {
		c.close()
		return outcomeUnknown, time.Since(start)
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		c.close()
		return outcomeUnknown, time.Since(start)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	elapsed := time.Since(start)
	if err != nil || resp.Close {
		c.close()
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return outcomeOK, elapsed
	}
	return outcomeFailed, elapsed
}

func (c *benchConn) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}
