package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/shopledger/shopledger/events"
)

// writeBody is a valid body for a write route, so that route-walking
// tests reach the tenancy check: writes take a seller's token.
func writeBody(method, pattern string) (string, bool) {
	switch {
	case method == http.MethodPost && strings.HasSuffix(pattern, "/adjustments"):
		return `{"kind": "received", "quantity": 2}`, true
	case method == http.MethodPost && strings.HasSuffix(pattern, "/stocktake"):
		return `{"mode": "preview", "csv": "sku,counted\n"}`, true
	case method == http.MethodPut && strings.HasSuffix(pattern, "/price"):
		return `{"amount": 2250}`, true
	case method == http.MethodPut:
		return `{"threshold": 4}`, true
	}
	return "", false
}

// Stock commands: sellers only, other organisations' variants are 404,
// bodies are checked field by field, a request id records once, and the
// command is in the log with its actor.
func TestAdjustmentsAuthoriseValidateAndRecordOnce(t *testing.T) {
	t.Parallel()
	w, h := newWorldAPI(t, 46, nil)
	v := w.variantOf(11)
	path := variantPath(v) + "/adjustments"
	seller := w.tokens[1].seller

	if got := do(t, h, call{method: http.MethodPost, path: path, token: w.tokens[1].auditor, body: `{"kind": "received", "quantity": 2}`}); got.Code != http.StatusForbidden {
		t.Errorf("auditor POST = %d, want 403; body %s", got.Code, got.Body)
	}
	if got := do(t, h, call{method: http.MethodPost, path: path, token: w.tokens[2].seller, body: `{"kind": "received", "quantity": 2}`}); got.Code != http.StatusNotFound {
		t.Errorf("other organisation's seller POST = %d, want 404; body %s", got.Code, got.Body)
	}
	bad := []badBody{
		{"no kind", `{"quantity": 2}`, "kind"},
		{"unknown kind", `{"kind": "sold", "quantity": 2}`, "kind"},
		{"no quantity", `{"kind": "count"}`, "quantity"},
		{"fraction", `{"kind": "count", "quantity": 2.5}`, "quantity"},
		{"text", `{"kind": "count", "quantity": "2"}`, "quantity"},
		{"negative count", `{"kind": "count", "quantity": -1}`, "quantity"},
		{"received zero", `{"kind": "received", "quantity": 0}`, "quantity"},
		{"correction without reason", `{"kind": "correction", "quantity": -1}`, "reason"},
		{"correction wrong sign", `{"kind": "correction", "quantity": 2, "reason": "damaged"}`, "quantity"},
		{"shop injected", `{"kind": "received", "quantity": 2, "shop_id": 22}`, "shop_id"},
		{"actor injected", `{"kind": "received", "quantity": 2, "actor": "x"}`, "actor"},
		{"supplier on a count", `{"kind": "count", "quantity": 2, "supplier_ref": "PO"}`, "supplier_ref"},
	}
	wantBadBodies(t, h, http.MethodPost, path, seller, bad)
	count := func() int {
		var n int
		if err := w.db.DB.QueryRow(`SELECT count(*) FROM events WHERE type = $1`, events.TypeStockEditRequested).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(); n != 0 {
		t.Fatalf("refused requests recorded %d commands", n)
	}
	body := `{"kind": "received", "quantity": 6, "supplier_ref": "PO-1"}`
	first := do(t, h, call{method: http.MethodPost, path: path, token: seller, body: body, header: map[string]string{"Idempotency-Key": "k-1"}})
	again := do(t, h, call{method: http.MethodPost, path: path, token: seller, body: body, header: map[string]string{"Idempotency-Key": "k-1"}})
	if first.Code != http.StatusAccepted || again.Code != http.StatusAccepted {
		t.Fatalf("POST = %d then %d, want 202 twice; %s", first.Code, again.Code, again.Body)
	}
	var a, b map[string]any
	if err := json.Unmarshal(first.Body.Bytes(), &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(again.Body.Bytes(), &b); err != nil {
		t.Fatal(err)
	}
	if a["command_id"] != b["command_id"] || b["duplicate"] != true || a["delta"] != float64(6) || a["state"] != "queued" {
		t.Errorf("first %v, repeat %v: want one command, the repeat marked duplicate", a, b)
	}
	if n := count(); n != 1 {
		t.Errorf("%d commands recorded for one idempotency key, want 1", n)
	}
	var actor string
	if err := w.db.DB.QueryRow(`SELECT metadata->>'actor' FROM events WHERE type = $1`, events.TypeStockEditRequested).Scan(&actor); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(actor, "token:") {
		t.Errorf("actor = %q, want the token", actor)
	}
	// The history lists it, for the seller and for an auditor.
	for _, tok := range []string{seller, w.tokens[1].auditor} {
		got := do(t, h, call{method: http.MethodGet, path: path, token: tok})
		if got.Code != http.StatusOK || !strings.Contains(got.Body.String(), fmt.Sprint(a["command_id"])) {
			t.Errorf("GET %s = %d %s, want the command", path, got.Code, got.Body)
		}
	}
	// Price bounds.
	got := do(t, h, call{method: http.MethodPut, path: variantPath(v) + "/price", token: seller, body: `{"amount": 5}`})
	if got.Code != http.StatusBadRequest || problemOf(t, got).Param != "price" {
		t.Errorf("price 0.05 = %d %s, want 400 on price", got.Code, got.Body)
	}
}

// A stocktake applied with refused lines answers 400 with every line and
// its reason; an auditor may not send one; another organisation's shop
// is 404.
func TestStocktakeRefusedLineByLine(t *testing.T) {
	t.Parallel()
	w, h := newWorldAPI(t, 47, nil)
	shop := w.shops[1][0]
	path := fmt.Sprintf("/v1/shops/%d/stocktake", shop)
	body := `{"mode": "apply", "request_id": "st-1", "csv": "sku,counted\nNOPE-1,3\nNOPE-1,4\nX,-2\nY,1.5\n"}`
	got := do(t, h, call{method: http.MethodPost, path: path, token: w.tokens[1].seller, body: body})
	if got.Code != http.StatusBadRequest {
		t.Fatalf("POST = %d, want 400; body %s", got.Code, got.Body)
	}
	var res struct {
		Type  string `json:"type"`
		Lines []struct {
			Line  int    `json:"line"`
			Error string `json:"error"`
		} `json:"lines"`
	}
	if err := json.Unmarshal(got.Body.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Lines) != 4 || !strings.HasSuffix(res.Type, "stocktake-refused") {
		t.Fatalf("answer %s: want 4 lines in a stocktake-refused problem", got.Body)
	}
	for _, l := range res.Lines {
		if l.Error == "" {
			t.Errorf("line %d has no reason", l.Line)
		}
	}
	if got := do(t, h, call{method: http.MethodPost, path: path, token: w.tokens[1].auditor, body: body}); got.Code != http.StatusForbidden {
		t.Errorf("auditor = %d, want 403", got.Code)
	}
	if got := do(t, h, call{method: http.MethodPost, path: path, token: w.tokens[2].seller, body: body}); got.Code != http.StatusNotFound {
		t.Errorf("other organisation = %d, want 404", got.Code)
	}
}
