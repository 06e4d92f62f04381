package systemtest_test

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopledger/shopledger/service/servicetest"
)

// TestTwoOfEachSurviveAKill runs two ingest, two query and two projector
// instances behind Caddy, sends signed webhooks through it the way Etsy
// does (every non-2xx retried) while sellers read the API, and kills one
// instance of each with SIGKILL a third of the way through: every
// webhook must be stored exactly once, no instance of the other half may
// die, and the surviving projector must bring every projection up to the
// log (its lag, polled). How long that took after the kill (the target
// is 10 s) and the API's p99 during the soak are reported, not asserted:
// tests never assert timings.
func TestTwoOfEachSurviveAKill(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two of every service behind Caddy")
	}
	caddy := servicetest.NeedTool(t, "caddy", "apt-get install caddy, or as root SHOPLEDGER_PODMAN_INSTALL=1 scripts/proxy-ensure")
	bin := buildBinaries(t, "etsysim", "ingest", "query", "projector", "ledger")
	d := newDeployment(t, bin, deploymentConfig{})
	ctx := context.Background()
	shop := d.shopIDs[0]
	d.ledger("shops", "connect", "--sim-shop", strconv.FormatInt(shop, 10))

	fastQuery := map[string]string{"SHOPLEDGER_QUERY_TOKEN_RATE": "0", "SHOPLEDGER_QUERY_ADDRESS_RATE": "0"}
	ingests := []*instance{d.startIngest("ingest-1", nil), d.startIngest("ingest-2", nil)}
	queries := []*instance{d.startQuery("query-1", fastQuery), d.startQuery("query-2", fastQuery)}
	projectors := []*instance{d.startProjector("projector-1", nil), d.startProjector("projector-2", nil)}
	px := d.startProxy(caddy, []string{ingests[0].addr, ingests[1].addr}, []string{queries[0].addr, queries[1].addr})
	base := "https://" + d.publicHost
	token := d.token(d.sellerIDs[0])

	// The soak: webhooks at a steady rate, far above what Etsy sends
	// for the shops of one installation and below what two cores with
	// every service on them can take, so that the API's latency shows
	// the kill rather than a machine run flat out.
	const hooks, senders, rate = 900, 6, 75 // webhooks, concurrent senders, webhooks a second
	ids := make([]string, hooks)
	for i := range ids {
		ids[i] = fmt.Sprintf("msg_two_%d_%s", i, randomHex(t, 4))
	}

	// Sellers read the API all along.
	soakCtx, stopReaders := context.WithCancel(ctx)
	var latMu sync.Mutex
	var latencies []timedAnswer
	var apiFailures atomic.Int64
	var readers sync.WaitGroup
	for r := range 2 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			c := d.client(px, "127.0.0.1"+strconv.Itoa(r+1)) // 127.0.0.11, 127.0.0.12
			for soakCtx.Err() == nil {
				req, _ := http.NewRequestWithContext(soakCtx, http.MethodGet, base+"/v1/shops", nil)
				req.Header.Set("Authorization", "Bearer "+token)
				start := time.Now()
				resp, err := c.Do(req)
				if err == nil {
					// Read to the end, so that the connection is kept
					// for the next request, as a seller's client does.
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if soakCtx.Err() != nil {
					return
				}
				if err != nil || resp.StatusCode != http.StatusOK {
					apiFailures.Add(1)
					continue
				}
				latMu.Lock()
				latencies = append(latencies, timedAnswer{at: start, took: time.Since(start)})
				latMu.Unlock()
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}

	// Etsy: every webhook until it gets a 2xx, a short pause between tries.
	var sent, retried atomic.Int64
	work := make(chan int)
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := d.client(px, "127.0.0."+strconv.Itoa(20+s))
			for i := range work {
				deadline := time.Now().Add(time.Minute)
				for {
					status, err := d.postWebhook(ctx, c, base, ids[i], d.webhookBody(shop, i))
					if err == nil && status/100 == 2 {
						sent.Add(1)
						break
					}
					retried.Add(1)
					if time.Now().After(deadline) {
						t.Errorf("webhook %s: no 2xx within a minute (last %d, %v)", ids[i], status, err)
						break
					}
					time.Sleep(200 * time.Millisecond)
				}
			}
		}()
	}
	var killedAt time.Time
	soakStart := time.Now()
	for i := range ids {
		time.Sleep(time.Until(soakStart.Add(time.Duration(i) * time.Second / rate)))
		if i == hooks/3 {
			killedAt = time.Now()
			for _, in := range []*instance{ingests[0], queries[0], projectors[0]} {
				if err := in.cmd.Process.Kill(); err != nil {
					t.Fatalf("kill %s: %v", in.name, err)
				}
			}
		}
		work <- i
	}
	close(work)
	wg.Wait()
	lastSent := time.Now()
	stopReaders()
	readers.Wait()

	stored, err := d.storedWebhooks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var lost, duplicated int
	for _, id := range ids {
		switch n := stored[id]; {
		case n == 0:
			lost++
		case n > 1:
			duplicated++
		}
	}
	if lost > 0 || duplicated > 0 {
		t.Errorf("of %d webhooks, %d lost and %d stored more than once", hooks, lost, duplicated)
	}

	// The surviving projector takes every projection up to the log.
	survivor := projectors[1]
	var caughtUp time.Time
	converge(t, "every projection caught up by the surviving projector", time.Minute, func(ctx context.Context) (string, error) {
		lag, err := metricSum(ctx, survivor.ops, "shopledger_projection_lag_events", nil)
		if err != nil {
			return "", err
		}
		if lag > 0 {
			return fmt.Sprintf("%v events behind", lag), nil
		}
		caughtUp = time.Now()
		return "", nil
	})
	for _, in := range []*instance{ingests[1], queries[1], projectors[1]} {
		in.running(t)
	}

	t.Logf("%d webhooks stored once each (%d retried attempts after non-2xx answers), %d a second for %s; killed ingest-1, query-1 and projector-1 at %d/%d",
		sent.Load(), retried.Load(), rate, lastSent.Sub(soakStart).Round(100*time.Millisecond), hooks/3, hooks)
	t.Logf("API during the soak: %s, %d failed", summarise(latencies, killedAt), apiFailures.Load())
	if !caughtUp.IsZero() {
		t.Logf("projections caught up %s after the kill (target 10 s), %s after the last webhook",
			caughtUp.Sub(killedAt).Round(10*time.Millisecond), caughtUp.Sub(lastSent).Round(10*time.Millisecond))
	}
}

// timedAnswer is one API answer: when its request started and how long
// the answer took.
type timedAnswer struct {
	at   time.Time
	took time.Duration
}

// summarise gives the API's p50 and p99 over the whole soak and in three
// phases around the kill (before it, the 10 s after it, later), and the
// slowest answers with their start relative to the kill, so that a slow
// tail shows whether the failover or the load caused it.
func summarise(answers []timedAnswer, kill time.Time) string {
	pct := func(ds []time.Duration, p int) time.Duration {
		if len(ds) == 0 {
			return 0
		}
		slices.Sort(ds)
		return ds[(len(ds)-1)*p/100]
	}
	var all, before, after, later []time.Duration
	for _, a := range answers {
		all = append(all, a.took)
		switch since := a.at.Sub(kill); {
		case since < 0:
			before = append(before, a.took)
		case since < 10*time.Second:
			after = append(after, a.took)
		default:
			later = append(later, a.took)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d answers, p50 %s, p99 %s", len(all), pct(all, 50).Round(100*time.Microsecond), pct(all, 99).Round(100*time.Microsecond))
	for _, ph := range []struct {
		name string
		ds   []time.Duration
	}{{"before the kill", before}, {"10 s after it", after}, {"later", later}} {
		fmt.Fprintf(&b, "; %s %d answers, p99 %s", ph.name, len(ph.ds), pct(ph.ds, 99).Round(100*time.Microsecond))
	}
	slowest := slices.Clone(answers)
	slices.SortFunc(slowest, func(x, y timedAnswer) int { return cmp.Compare(y.took, x.took) })
	b.WriteString("; slowest")
	for _, a := range slowest[:min(5, len(slowest))] {
		fmt.Fprintf(&b, " %s at kill%+.2fs", a.took.Round(100*time.Microsecond), a.at.Sub(kill).Seconds())
	}
	return b.String()
}
