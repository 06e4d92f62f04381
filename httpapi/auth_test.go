package httpapi_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopledger/shopledger/domain"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/httpapi"
	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/projections"
	"github.com/shopledger/shopledger/service/servicetest"
	"github.com/shopledger/shopledger/stockedits"
	"github.com/shopledger/shopledger/tokens"
)

// fixedShops gives each organisation the shops listed, for tests that
// need no read model; tokens are still authenticated by the token store.
type fixedShops map[int64][]int64

type fixedShopsAuth struct {
	tokens *tokens.Store
	shops  fixedShops
}

func (f fixedShopsAuth) ResolvePrincipal(ctx context.Context, secret string) (httpapi.Principal, error) {
	p, err := f.tokens.ResolvePrincipal(ctx, secret)
	if err != nil {
		return p, err
	}
	p.Shops = f.shops[p.OrgID]
	return p, nil
}

// fixedClock is a clock that only moves when told: rate limits then
// refill only when the test says so.
type fixedClock struct{ t time.Time }

func (c *fixedClock) Now() time.Time { return c.t }

type apiOpts struct {
	shops fixedShops
	mod   func(*httpapi.Config)
}

// newAPI builds the handler over a fresh database.
func newAPI(t testing.TB, db *pgtest.Database, o apiOpts) (http.Handler, *prometheus.Registry) {
	t.Helper()
	store := projections.NewReader(db.DB, projections.ReaderConfig{DefaultThreshold: domain.DefaultLowStockThreshold})
	reg := prometheus.NewRegistry()
	cfg := httpapi.Config{
		Registerer: reg,
		Tokens:     tokens.NewStore(db.DB),
		Data: httpapi.Readers{
			Shops: store, Products: store, Stock: store, Sales: store, Events: store, Alerts: httpapi.NewAlertStore(db.DB),
			Thresholds: eventstore.New(db.DB),
			StockEdits: stockedits.NewService(db.DB, eventstore.New(db.DB), nil),
		},
		QueryTimeout: 10 * time.Second,
	}
	if o.shops != nil {
		cfg.Tokens = fixedShopsAuth{tokens: tokens.NewStore(db.DB), shops: o.shops}
	}
	if o.mod != nil {
		o.mod(&cfg)
	}
	h, err := httpapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h, reg
}

func createToken(t testing.TB, db *pgtest.Database, nt tokens.NewToken) (string, tokens.Token) {
	t.Helper()
	if nt.Role == "" {
		nt.Role = tokens.RoleSeller
	}
	secret, tok, err := tokens.NewStore(db.DB).Create(context.Background(), nt)
	if err != nil {
		t.Fatal(err)
	}
	return secret, tok
}

type call struct {
	method, path, token, body string
	header                    map[string]string
	remote                    string
}

func do(t testing.TB, h http.Handler, c call) *httptest.ResponseRecorder {
	t.Helper()
	if c.method == "" {
		c.method = http.MethodGet
	}
	var body *strings.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	var req *http.Request
	if body != nil {
		req = httptest.NewRequest(c.method, c.path, body)
		req.Header.Set("Content-Type", "application/json")
	} else {
		req = httptest.NewRequest(c.method, c.path, nil)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	if c.remote != "" {
		req.RemoteAddr = c.remote
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func problemOf(t *testing.T, w *httptest.ResponseRecorder) httpapi.Problem {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q, want application/problem+json; body %s", ct, w.Body)
	}
	var p httpapi.Problem
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatalf("problem body %q: %v", w.Body, err)
	}
	if p.Status != w.Code {
		t.Errorf("problem status %d, response status %d", p.Status, w.Code)
	}
	return p
}

// badBody is a write body the API refuses with 400 naming param.
type badBody struct{ name, body, param string }

// wantBadBodies sends each body to method path and checks the refusal.
func wantBadBodies(t *testing.T, h http.Handler, method, path, token string, bad []badBody) {
	t.Helper()
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			got := do(t, h, call{method: method, path: path, token: token, body: tc.body})
			if got.Code != http.StatusBadRequest {
				t.Fatalf("%s %s = %d, want 400; body %s", method, tc.body, got.Code, got.Body)
			}
			if p := problemOf(t, got); p.Param != tc.param {
				t.Errorf("problem names param %q, want %q (%+v)", p.Param, tc.param, p)
			}
		})
	}
}

func TestTokensAreStoredOnlyAsHashes(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	secret, tok := createToken(t, db, tokens.NewToken{SellerID: 7, Label: "laptop"})
	var hash []byte
	var row string
	if err := db.DB.QueryRow(`SELECT token_hash, row_to_json(t)::text FROM api_tokens t WHERE id = $1`, tok.ID).Scan(&hash, &row); err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256([]byte(secret))
	if diff := cmp.Diff(want[:], hash); diff != "" {
		t.Errorf("token_hash (-want +got):\n%s", diff)
	}
	// The random part of the secret appears nowhere in the row; only the
	// short shown prefix does.
	if strings.Contains(row, secret[len(tok.Prefix):]) {
		t.Errorf("stored row holds the secret: %s", row)
	}
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	store := tokens.NewStore(db.DB)
	ctx := context.Background()
	valid, _ := createToken(t, db, tokens.NewToken{SellerID: 1})
	revoked, revokedTok := createToken(t, db, tokens.NewToken{SellerID: 1})
	if err := store.Revoke(ctx, revokedTok.ID); err != nil {
		t.Fatal(err)
	}
	expired, expiredTok := createToken(t, db, tokens.NewToken{SellerID: 1, TTL: time.Hour})
	if _, err := db.DB.Exec(`UPDATE api_tokens SET expires_at = now() - interval '1 minute' WHERE id = $1`, expiredTok.ID); err != nil {
		t.Fatal(err)
	}
	unknown := "slt_" + strings.Repeat("A", 43)
	// A JWT signed with alg=none carrying the valid token as a claim: not
	// a shopledger token, so it is refused whatever it claims.
	jwtNone := "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiIxIiwidG9rZW4iOiIi" + "fQ."
	h, reg := newAPI(t, db, apiOpts{shops: fixedShops{1: {10}}})

	cases := []struct {
		name   string
		path   string
		header map[string]string
		want   int
	}{
		{"bearer header", "/v1/shops", map[string]string{"Authorization": "Bearer " + valid}, 200},
		{"scheme is case-insensitive", "/v1/shops", map[string]string{"Authorization": "bearer " + valid}, 200},
		{"no token", "/v1/shops", nil, 401},
		{"token in access_token query", "/v1/shops?access_token=" + valid, nil, 401},
		{"token in token query", "/v1/shops?token=" + valid, nil, 401},
		{"query token beside a bad header", "/v1/shops?access_token=" + valid, map[string]string{"Authorization": "Bearer " + unknown}, 401},
		{"basic scheme", "/v1/shops", map[string]string{"Authorization": "Basic " + valid}, 401},
		{"bare token", "/v1/shops", map[string]string{"Authorization": valid}, 401},
		{"unknown token", "/v1/shops", map[string]string{"Authorization": "Bearer " + unknown}, 401},
		{"revoked token", "/v1/shops", map[string]string{"Authorization": "Bearer " + revoked}, 401},
		{"expired token", "/v1/shops", map[string]string{"Authorization": "Bearer " + expired}, 401},
		{"jwt alg none", "/v1/shops", map[string]string{"Authorization": "Bearer " + jwtNone}, 401},
		{"token with one character changed", "/v1/shops", map[string]string{"Authorization": "Bearer " + flipLast(valid)}, 401},
		{"openapi needs no token", "/openapi.json", nil, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := do(t, h, call{path: tc.path, header: tc.header})
			if w.Code != tc.want {
				t.Fatalf("GET %s = %d, want %d; body %s", tc.path, w.Code, tc.want, w.Body)
			}
			if tc.want == 401 {
				p := problemOf(t, w)
				if w.Header().Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
				if strings.Contains(w.Body.String(), valid) {
					t.Error("problem echoes the token")
				}
				if p.Type == "" || p.Title == "" {
					t.Errorf("problem %+v lacks type or title", p)
				}
			}
		})
	}
	if got := counterValue(t, reg, "shopledger_query_auth_failures_total", nil); got < 10 {
		t.Errorf("auth failures counted %v, want at least 10", got)
	}
	// Durations are labelled by route pattern and status, never raw path.
	for _, status := range []string{"200", "401"} {
		if n := servicetest.Metric(t, reg, "shopledger_query_http_request_duration_seconds", map[string]string{"route": "/v1/*", "status": status}) +
			servicetest.Metric(t, reg, "shopledger_query_http_request_duration_seconds", map[string]string{"route": "/v1/shops", "status": status}); n == 0 {
			t.Errorf("no request duration observed for /v1/shops with status %s", status)
		}
	}
}

func flipLast(s string) string {
	last := s[len(s)-1]
	repl := byte('A')
	if last == 'A' {
		repl = 'B'
	}
	return s[:len(s)-1] + string(repl)
}

func TestRolesGuardAuditorAndWriteEndpoints(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	seller, _ := createToken(t, db, tokens.NewToken{SellerID: 1, Role: tokens.RoleSeller})
	auditor, _ := createToken(t, db, tokens.NewToken{SellerID: 1, Role: tokens.RoleAuditor})
	h, _ := newAPI(t, db, apiOpts{shops: fixedShops{1: {10}}})
	cases := []struct {
		name  string
		c     call
		want  int
		token string
	}{
		{"seller reads the log", call{path: "/v1/events"}, 403, seller},
		{"seller reads the chain", call{path: "/v1/chain"}, 403, seller},
		{"seller exports", call{path: "/v1/events/export"}, 403, seller},
		{"auditor reads the log", call{path: "/v1/events"}, 200, auditor},
		{"auditor reads shops", call{path: "/v1/shops"}, 200, auditor},
		{"auditor sets a threshold", call{method: "PUT", path: "/v1/shops/10/threshold", body: `{"threshold":3}`}, 403, auditor},
		{"seller sets a threshold", call{method: "PUT", path: "/v1/shops/10/threshold", body: `{"threshold":3}`}, 202, seller},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.c.token = tc.token
			w := do(t, h, tc.c)
			if w.Code != tc.want {
				t.Fatalf("%s %s = %d, want %d; body %s", tc.c.method, tc.c.path, w.Code, tc.want, w.Body)
			}
		})
	}
}

func TestRateLimitPerTokenAndPerAddress(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	a, _ := createToken(t, db, tokens.NewToken{SellerID: 1})
	b, _ := createToken(t, db, tokens.NewToken{SellerID: 1})
	clock := &fixedClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	const burst = 4
	h, reg := newAPI(t, db, apiOpts{shops: fixedShops{1: {10}}, mod: func(c *httpapi.Config) {
		c.TokenRate, c.TokenBurst = 0.5, burst
		c.AddressRate, c.AddressBurst = 0, 0
		c.Now = clock.Now
	}})
	for i := range burst {
		if w := do(t, h, call{path: "/v1/shops", token: a}); w.Code != 200 {
			t.Fatalf("request %d of the burst = %d, want 200", i+1, w.Code)
		}
	}
	w := do(t, h, call{path: "/v1/shops", token: a})
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("request past the burst = %d, want 429", w.Code)
	}
	problemOf(t, w)
	if ra := w.Header().Get("Retry-After"); ra != "2" {
		t.Errorf("Retry-After = %q, want 2 (one request every 2 s)", ra)
	}
	// Another token of the same seller has its own bucket.
	if w := do(t, h, call{path: "/v1/shops", token: b}); w.Code != 200 {
		t.Errorf("other token = %d, want 200", w.Code)
	}
	// Refused requests do not drain the bucket: after the refill time one
	// more request passes.
	clock.t = clock.t.Add(2 * time.Second)
	if w := do(t, h, call{path: "/v1/shops", token: a}); w.Code != 200 {
		t.Errorf("after refill = %d, want 200", w.Code)
	}
	if got := counterValue(t, reg, "shopledger_query_rate_limited_total", map[string]string{"limiter": "token"}); got != 1 {
		t.Errorf("rate_limited_total{limiter=token} = %v, want 1", got)
	}

	// Per address: authenticated requests draw on the address bucket.
	h, _ = newAPI(t, db, apiOpts{shops: fixedShops{1: {10}}, mod: func(c *httpapi.Config) {
		c.TokenRate = 0
		c.AddressRate, c.AddressBurst = 1, 3
		c.Now = clock.Now
	}})
	codes := []int{}
	for range 4 {
		codes = append(codes, do(t, h, call{path: "/v1/shops", token: a, remote: "198.51.100.7:4000"}).Code)
	}
	if diff := cmp.Diff([]int{200, 200, 200, 429}, codes); diff != "" {
		t.Errorf("codes from one address (-want +got):\n%s", diff)
	}
	if w := do(t, h, call{path: "/v1/shops", token: a, remote: "198.51.100.8:4000"}); w.Code != 200 {
		t.Errorf("another address = %d, want 200", w.Code)
	}
}

// counterValue reads the query API's counter name summed over the series
// that carry labels.
func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	return servicetest.Metric(t, reg, name, labels)
}
