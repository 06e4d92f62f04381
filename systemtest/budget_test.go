package systemtest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/shopledger/shopledger/etsy/etsysim"
)

// TestTwoIngestsShareTheEtsyBudget: two ingest instances reconcile 20
// shops with one app key whose limit is 5 requests a second. Each
// instance alone may send 5 a second; together they must too, because
// Etsy counts per key. The simulator measures the most requests that
// arrived within any one second and refuses any beyond the limit.
func TestTwoIngestsShareTheEtsyBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two ingest instances reconciling 20 shops")
	}
	const qps, shopCount = 5, 20
	bin := buildBinaries(t, "etsysim", "ingest", "ledger")
	d := newDeployment(t, bin, deploymentConfig{shops: shopCount, qps: qps})
	d.reconcileEnabled = true
	limits := map[string]string{"SHOPLEDGER_ETSY_QPS": strconv.Itoa(qps)}
	for _, shop := range d.shopIDs {
		d.ledgerEnv(limits, "shops", "connect", "--sim-shop", strconv.FormatInt(shop, 10))
	}
	before := simKeyStats(t, d)

	fast := merge(limits, map[string]string{
		"SHOPLEDGER_RECONCILE_TICK":        "200ms",
		"SHOPLEDGER_RECONCILE_CONCURRENCY": "4",
	})
	d.startIngest("ingest-1", fast)
	d.startIngest("ingest-2", fast)

	// Every shop's first reconciliation, by whichever instance took it.
	converge(t, "20 shops reconciled by two instances", 3*time.Minute, func(ctx context.Context) (string, error) {
		var done int
		err := d.db.DB.QueryRowContext(ctx, `SELECT count(*) FROM reconcile_state WHERE last_success_at IS NOT NULL`).Scan(&done)
		if err != nil {
			return "", err
		}
		if done < shopCount {
			return strconv.Itoa(done) + " of 20 reconciled", nil
		}
		return "", nil
	})
	after := simKeyStats(t, d)
	sent := after.Served + after.RateLimited - before.Served - before.RateLimited
	t.Logf("requests sent by the two instances: %d; most in one second: %d (limit %d); refused: %d",
		sent, after.MaxQPS, qps, after.RateLimited)
	if sent < 3*qps {
		t.Fatalf("only %d requests sent: too few to show anything about the limit", sent)
	}
	if after.MaxQPS > qps {
		t.Errorf("%d requests reached Etsy within one second; the key allows %d", after.MaxQPS, qps)
	}
	if after.RateLimited > 0 {
		t.Errorf("Etsy refused %d requests with 429", after.RateLimited)
	}
}

// simKeyStats reads the simulator's counters for the deployment's key.
func simKeyStats(t *testing.T, d *deployment) etsysim.KeyStats {
	t.Helper()
	resp, err := http.Get(d.simURL + "/_sim/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st etsysim.Stats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st.Keys[d.keyString]
}
