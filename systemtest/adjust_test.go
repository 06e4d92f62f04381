package systemtest_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shopledger/shopledger/etsy/etsysim"
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/pgtest"
)

// TestStockEditReachesEtsy runs the simulator, ingest and query as
// binaries: a seller's count and goods receipt go through the API, ingest
// pushes them to the simulator, a sale made meanwhile at Etsy is kept,
// the variant's history shows Etsy's answer, our own write's webhooks add
// no movement, and an auditor may not adjust.
func TestStockEditReachesEtsy(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the etsysim, ingest, query and ledger binaries")
	}
	bin := buildBinaries(t, "etsysim", "ingest", "query", "ledger")
	db := pgtest.New(t)
	ctx := context.Background()

	app := newEtsyApp(t, "sysedit", 8)
	sim := start(t, "etsysim", bin+"/etsysim", app.simArgs(7, 1,
		"--webhook-retry-scale", "0.01", "--qps", "200", "--qpd", "1000000",
	), environ(nil))
	simURL, simShopList := simShops(t, sim, 1)
	shopID, sellerID := simShopList[0].ShopID, simShopList[0].UserID
	ctl := &etsysim.Control{BaseURL: simURL}

	env := app.ingestEnv(t, db, simURL)
	ledgerEnv := environ(merge(env, map[string]string{"SHOPLEDGER_DATABASE_URL": db.URL}))
	ingest := start(t, "ingest", bin+"/ingest", nil, environ(env))
	waitHealthy(t, ingest.ops(t), "/readyz", ingest)
	ledger := ledgerRunner(t, bin, ledgerEnv)
	shop := strconv.FormatInt(shopID, 10)
	if out := ledger("shops", "connect", "--sim-shop", shop); !strings.Contains(out, "connected shop "+shop) {
		t.Fatalf("ledger shops connect:\n%s", out)
	}
	_, queryURL := startQuery(t, bin, "127.0.0.1:0", map[string]string{
		"SHOPLEDGER_DATABASE_URL": db.RoleURL(pgtest.QueryRole),
		"SHOPLEDGER_LOG_LEVEL":    "info",
	})
	token := func(args ...string) string {
		t.Helper()
		return createToken(t, ledger, sellerID, args...)
	}
	seller, auditor := token("--label", "edit seller"), token("--role", "auditor", "--label", "edit auditor")

	l, err := ctl.CreateListing(ctx, shopID, etsysim.ListingSpec{Title: "Mug", Price: 1500, Products: []etsysim.ProductSpec{
		{SKU: "SYS-S", Price: 1500, Quantity: 5, PropertyValues: []etsysim.PropertyValueSpec{{PropertyName: "Size", Value: "S"}}},
		{SKU: "SYS-M", Price: 1500, Quantity: 8, PropertyValues: []etsysim.PropertyValueSpec{{PropertyName: "Size", Value: "M"}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	path := fmt.Sprintf("/v1/products/%d/variants/%s/adjustments", l.ListingID, url.PathEscape("sku:SYS-S"))
	post := func(tok, key, body string) (int, string) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, queryURL+path, bytes.NewReader([]byte(body)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := post(auditor, "a-1", `{"kind": "received", "quantity": 1}`); code != http.StatusForbidden {
		t.Errorf("auditor POST = %d %s, want 403", code, body)
	}
	// The listing reaches the ledger through its webhook; the command is
	// idempotent, so it is simply sent until the ledger knows the variant.
	converge(t, "count recorded", time.Minute, func(context.Context) (string, error) {
		if code, body := post(seller, "count-1", `{"kind": "count", "quantity": 12}`); code != http.StatusAccepted {
			return fmt.Sprintf("POST = %d %s", code, body), nil
		}
		return "", nil
	})
	// A sale at Etsy before the push is kept: 12 counted, 1 sold since.
	if _, err := ctl.CreateOrder(ctx, shopID, etsysim.OrderSpec{Items: []etsysim.OrderItem{{ListingID: l.ListingID, SKU: "SYS-S", Quantity: 1}}}); err != nil {
		t.Fatal(err)
	}
	if code, body := post(seller, "recv-1", `{"kind": "received", "quantity": 3, "supplier_ref": "PO-9"}`); code != http.StatusAccepted {
		t.Fatalf("received POST = %d %s", code, body)
	}
	want := 12 - 1 + 3
	converge(t, "Etsy follows the edits", time.Minute, func(ctx context.Context) (string, error) {
		got, err := ctl.Listing(ctx, l.ListingID)
		if err != nil {
			return "", err
		}
		for _, v := range got.Variants {
			if v.SKU == "SYS-S" && v.Quantity != want {
				return fmt.Sprintf("Etsy holds %d, want %d", v.Quantity, want), nil
			}
			if v.SKU == "SYS-M" && v.Quantity != 8 {
				return fmt.Sprintf("the other variant changed to %d", v.Quantity), nil
			}
		}
		return "", nil
	})
	var hist struct {
		Items []struct {
			Kind         string `json:"kind"`
			State        string `json:"state"`
			Actor        string `json:"actor"`
			EtsyQuantity *int64 `json:"etsy_quantity"`
		} `json:"items"`
	}
	converge(t, "history shows both pushed", time.Minute, func(ctx context.Context) (string, error) {
		if err := (&apiClient{base: queryURL, token: auditor}).get(ctx, path, &hist); err != nil {
			return "", err
		}
		if len(hist.Items) != 2 || hist.Items[0].State != "pushed" || hist.Items[1].State != "pushed" || hist.Items[0].EtsyQuantity == nil {
			return fmt.Sprintf("history %+v", hist.Items), nil
		}
		return "", nil
	})
	// Our writes' own webhooks come back and are followed: nothing but the
	// two edits' movements and the sale may move the variant.
	if err := ctl.WaitDeliveries(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	converge(t, "ledger balance", time.Minute, func(ctx context.Context) (string, error) {
		var bal int64
		var drift int
		err := db.DB.QueryRowContext(ctx, `SELECT
  coalesce(sum(CASE WHEN type = $2 THEN (data->>'delta')::bigint WHEN type = $3 THEN -(data->>'quantity')::bigint ELSE 0 END), 0),
  count(*) FILTER (WHERE type = $4)
FROM events WHERE stream_id = $1 AND data->>'variant_key' = 'sku:SYS-S'`,
			fmt.Sprintf("listing-%d", l.ListingID), events.TypeStockAdjusted, events.TypeStockSold, events.TypeStockDriftDetected).Scan(&bal, &drift)
		if err != nil {
			return "", err
		}
		if bal != int64(want) || drift != 0 {
			return fmt.Sprintf("balance %d drift %d, want %d and 0", bal, drift, want), nil
		}
		return "", nil
	})
	var etsyChanges int
	if err := db.DB.QueryRowContext(ctx, `SELECT count(*) FROM events WHERE stream_id = $1 AND type = $2
AND data->>'variant_key' = 'sku:SYS-S' AND data->>'reason' = 'etsy_change'`,
		fmt.Sprintf("listing-%d", l.ListingID), events.TypeStockAdjusted).Scan(&etsyChanges); err != nil {
		t.Fatal(err)
	}
	if etsyChanges > 1 {
		// One is allowed: the sale's inventory webhook may be followed
		// before its receipt is.
		t.Errorf("%d etsy_change movements on the edited variant: our own writes were counted again", etsyChanges)
	}
}
