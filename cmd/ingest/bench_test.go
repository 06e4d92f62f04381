package main

import (
	"bufio"
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shopledger/shopledger/ingest"
	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/stdwebhooks"
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
		conns[i] = newBenchConn(strings.TrimPrefix(base, "http://"), testSecret)
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
			var id []byte
			for i := range work {
				id = strconv.AppendInt(append(id[:0], "msg_bench_"...), int64(i), 10)
				o, d := c.send(string(id))
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
// sender would. It writes each request itself and reads the answer with a
// minimal HTTP/1.1 response reader instead of going through http.Client
// (whose transport spends two goroutines and their hand-offs per request)
// or http.ReadResponse (a Response, a header map and their strings per
// answer): the load generator shares the machine with ingest and
// PostgreSQL, so its own CPU would count against them. Every request is
// still built and signed afresh (HMAC over id, timestamp and body).
type benchConn struct {
	addr   string
	signer *stdwebhooks.Signer
	conn   net.Conn
	r      *bufio.Reader
	// head is the request line and the headers every request shares, up
	// to Content-Length's value; buf and body are reused per request.
	head, buf, body []byte
}

func newBenchConn(addr, secret string) *benchConn {
	s, err := stdwebhooks.NewSigner(secret)
	if err != nil {
		panic(err)
	}
	head := []byte("POST " + ingest.WebhookPath + " HTTP/1.1\r\nHost: " + addr +
		"\r\nUser-Agent: shopledger-bench\r\nContent-Type: application/json\r\nContent-Length: ")
	return &benchConn{addr: addr, signer: s, head: head}
}

func (c *benchConn) send(id string) (outcome, time.Duration) {
	c.body = appendSoakBody(c.body[:0], id)
	now := time.Now()
	b := append(c.buf[:0], c.head...)
	b = strconv.AppendInt(b, int64(len(c.body)), 10)
	b = append(b, "\r\nWebhook-Id: "...)
	b = append(b, id...)
	b = append(b, "\r\nWebhook-Timestamp: "...)
	b = strconv.AppendInt(b, now.Unix(), 10)
	b = append(b, "\r\nWebhook-Signature: "...)
	b = c.signer.AppendSign(b, id, now, c.body)
	b = append(b, "\r\n\r\n"...)
	b = append(b, c.body...)
	c.buf = b
	start := time.Now()
	if c.conn == nil {
		conn, err := net.Dial("tcp", c.addr)
		if err != nil {
			return outcomeUnknown, time.Since(start)
		}
		c.conn, c.r = conn, bufio.NewReader(conn)
	}
	if _, err := c.conn.Write(b); err != nil {
		c.close()
		return outcomeUnknown, time.Since(start)
	}
	status, closeConn, err := c.readResponse()
	elapsed := time.Since(start)
	if err != nil {
		c.close()
		return outcomeUnknown, elapsed
	}
	if closeConn {
		c.close()
	}
	if status >= 200 && status < 300 {
		return outcomeOK, elapsed
	}
	return outcomeFailed, elapsed
}

// readResponse reads one HTTP/1.1 response: the status line, the header
// fields up to the empty line, and a body of Content-Length bytes (which
// ingest's short answers always have; anything else is an error, and the
// connection is dropped).
func (c *benchConn) readResponse() (status int, closeConn bool, err error) {
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, false, fmt.Errorf("bad status line %q", line)
	}
	if status, err = strconv.Atoi(string(line[9:12])); err != nil {
		return 0, false, fmt.Errorf("bad status line %q", line)
	}
	length := -1
	for {
		line, err := c.r.ReadSlice('\n')
		if err != nil {
			return 0, false, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return 0, false, fmt.Errorf("bad header line %q", line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil || length < 0 {
				return 0, false, fmt.Errorf("bad Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return 0, false, fmt.Errorf("unexpected Transfer-Encoding %q", value)
		case bytes.EqualFold(name, []byte("Connection")):
			closeConn = closeConn || bytes.Contains(bytes.ToLower(value), []byte("close"))
		}
	}
	if length < 0 {
		return 0, false, errors.New("answer without Content-Length")
	}
	if _, err := c.r.Discard(length); err != nil {
		return 0, false, err
	}
	return status, closeConn, nil
}

func (c *benchConn) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}
