package httpapi_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/httpapi"
	"github.com/shopledger/shopledger/projections"
)

// rawRequest is a request as a client puts it on the wire: the path and
// query exactly as written, percent-escapes and all.
type rawRequest struct {
	method, target, contentType, body string
	token                             string
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// send makes a real HTTP request to base.
func send(t *testing.T, base string, rq rawRequest) response {
	t.Helper()
	var body io.Reader
	if rq.body != "" {
		body = strings.NewReader(rq.body)
	}
	req, err := http.NewRequest(cmpOr(rq.method, http.MethodGet), base+rq.target, body)
	if err != nil {
		t.Fatalf("request %q: %v", rq.target, err)
	}
	if rq.contentType != "" {
		req.Header.Set("Content-Type", rq.contentType)
	}
	if rq.token != "" {
		req.Header.Set("Authorization", "Bearer "+rq.token)
	}
	client := &http.Client{
		Timeout:       15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, rq.target, err)
	}
	return responseOf(t, resp)
}

// newWorldServer is newWorldAPI behind a real HTTP server.
func newWorldServer(t *testing.T, seed uint64) (*world, http.Handler, *httptest.Server) {
	t.Helper()
	w, h := newWorldAPI(t, seed, nil)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return w, h, srv
}

// responseOf reads and closes resp.
func responseOf(t *testing.T, resp *http.Response) response {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// wantProblem checks that got, the answer to what, is a problem of status
// naming param.
func wantProblem(t *testing.T, what string, got response, status int, param string) {
	t.Helper()
	if got.status != status {
		t.Fatalf("%s = %d, want %d: %s", what, got.status, status, got.body)
	}
	if p := problemIn(t, got); p.Param != param {
		t.Errorf("problem names %q, want %q: %+v", p.Param, param, p)
	}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// problemIn checks that r is a problem document of its own status and
// returns it.
func problemIn(t *testing.T, r response) httpapi.Problem {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json; body %s", ct, r.body)
	}
	var p httpapi.Problem
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("problem %q: %v", r.body, err)
	}
	if p.Status != r.status {
		t.Errorf("problem status %d, response %d", p.Status, r.status)
	}
	return p
}

func firstVariantOf(w *world, shop int64) variantRef {
	for _, v := range w.variants {
		if v.shop == shop {
			return v
		}
	}
	w.t.Fatalf("shop %d has no variant", shop)
	return variantRef{}
}

// Every route answers malformed input with the status that fits and a
// problem naming the culprit, over a real connection: never a 500, a
// redirect or an HTML page.
func TestMalformedInputAnswersProblems(t *testing.T) {
	t.Parallel()
	w, _, srv := newWorldServer(t, 91)
	seller, auditor := w.tokens[1].seller, w.tokens[1].auditor
	v := firstVariantOf(w, 11)
	vp := variantPath(v)
	cases := []struct {
		name   string
		rq     rawRequest
		status int
		param  string
	}{
		{"invalid UTF-8 in q", rawRequest{target: "/v1/products?q=%FF%FE"}, 400, "q"},
		{"NUL in q", rawRequest{target: "/v1/products?q=a%00b"}, 400, "q"},
		{"invalid UTF-8 in state", rawRequest{target: "/v1/products?state=%FF%FE"}, 400, "state"},
		{"NUL in state", rawRequest{target: "/v1/products?state=active%00"}, 400, "state"},
		{"unknown state", rawRequest{target: "/v1/products?state=bogus"}, 400, "state"},
		{"invalid UTF-8 in sales status", rawRequest{target: "/v1/sales?status=%FF%FE"}, 400, "status"},
		{"NUL in sales status", rawRequest{target: "/v1/sales?status=a%00b"}, 400, "status"},
		{"unknown sales status", rawRequest{target: "/v1/sales?status=bogus"}, 400, "status"},
		{"unknown alert status", rawRequest{target: "/v1/alerts?status=bogus"}, 400, "status"},
		{"invalid UTF-8 in alert status", rawRequest{target: "/v1/alerts?status=%FF"}, 400, "status"},
		{"invalid UTF-8 in type", rawRequest{target: "/v1/events?type=%FF%FE", token: auditor}, 400, "type"},
		{"NUL in type", rawRequest{target: "/v1/events?type=a%00b", token: auditor}, 400, "type"},
		{"unknown type", rawRequest{target: "/v1/events?type=bogus", token: auditor}, 400, "type"},
		{"unknown type in export", rawRequest{target: "/v1/events/export?type=bogus", token: auditor}, 400, "type"},
		{"invalid UTF-8 in stream", rawRequest{target: "/v1/events?stream=%FF%FE", token: auditor}, 400, "stream"},
		{"NUL in stream", rawRequest{target: "/v1/events/export?stream=a%00b", token: auditor}, 400, "stream"},
		{"invalid UTF-8 in a parameter name", rawRequest{target: "/v1/products?%FF=1"}, 400, "\uFFFD"},
		{"bad percent-encoding", rawRequest{target: "/v1/products?q=%ZZ"}, 400, "q"},
		{"semicolon separator", rawRequest{target: "/v1/products?q=a;state=active"}, 400, "q"},
		{"invalid UTF-8 in a variant key", rawRequest{target: fmt.Sprintf("/v1/products/%d/variants/%%FF%%FE/history", v.listing)}, 400, "variantKey"},
		{"NUL in a variant key", rawRequest{target: fmt.Sprintf("/v1/products/%d/variants/a%%00b/stock", v.listing)}, 400, "variantKey"},
		{"invalid UTF-8 beside an escaped slash", rawRequest{target: fmt.Sprintf("/v1/products/%d/variants/a%%2F%%FF/history", v.listing)}, 400, "variantKey"},
		{"NUL in a variant key of a write", rawRequest{method: "PUT", target: fmt.Sprintf("/v1/products/%d/variants/a%%00/threshold", v.listing),
			body: `{"threshold": 1}`, contentType: "application/json"}, 400, "variantKey"},
		{"NUL in a shop id", rawRequest{target: "/v1/shops/11%00"}, 400, "shopID"},
		{"invalid UTF-8 in an event id", rawRequest{target: "/v1/events/%FF", token: auditor}, 400, "eventID"},
		{"unknown variant key", rawRequest{target: fmt.Sprintf("/v1/products/%d/variants/NOPE-%d/stock", v.listing, v.listing)}, 404, ""},
		{"dot-dot segment", rawRequest{target: "/v1/shops/../shops"}, 400, "path"},
		{"encoded dot-dot segment", rawRequest{target: "/v1/shops/%2e%2e/shops"}, 400, "path"},
		{"empty segment", rawRequest{target: "/v1//shops"}, 400, "path"},
		{"dot segment", rawRequest{target: "/v1/./shops"}, 400, "path"},
		{"wrong content type", rawRequest{method: "PUT", target: "/v1/shops/11/threshold", body: `{"threshold": 1}`, contentType: "text/plain"}, 415, "Content-Type"},
		{"form content type", rawRequest{method: "PUT", target: "/v1/shops/11/threshold", body: `threshold=1`, contentType: "application/x-www-form-urlencoded"}, 415, "Content-Type"},
		{"malformed content type", rawRequest{method: "PUT", target: "/v1/shops/11/threshold", body: `{"threshold": 1}`, contentType: "application/"}, 415, "Content-Type"},
		{"declared body over the limit", rawRequest{method: "PUT", target: vp + "/threshold", body: `{"threshold": 1, "x": "` + strings.Repeat("a", 10<<20) + `"}`,
			contentType: "application/json"}, 413, "Content-Length"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.rq.token == "" {
				tc.rq.token = seller
			}
			got := send(t, srv.URL, tc.rq)
			wantProblem(t, cmpOr(tc.rq.method, "GET")+" "+tc.rq.target, got, tc.status, tc.param)
			if got.header.Get("X-Content-Type-Options") != "nosniff" {
				t.Error("no X-Content-Type-Options: nosniff")
			}
		})
	}
}

// A chunked body (no Content-Length) over the limit is refused once the
// limit is crossed.
func TestChunkedBodyOverTheLimitIs413(t *testing.T) {
	t.Parallel()
	w, _, srv := newWorldServer(t, 20)
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write([]byte(`{"threshold": 1, "pad": "`))
		chunk := []byte(strings.Repeat("a", 1<<10))
		for range 64 {
			if _, err := pw.Write(chunk); err != nil {
				return
			}
		}
		_ = pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/v1/shops/11/threshold", pr)
	req.Header.Set("Authorization", "Bearer "+w.tokens[1].seller)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	wantProblem(t, "chunked 64 KiB body", responseOf(t, resp), http.StatusRequestEntityTooLarge, "body")
}

// A body shorter than its Content-Length is a 400 naming Content-Length,
// whether the client closes its side or just stops sending, and the
// answer comes well before the server's own 30 s read timeout.
func TestShortBodyIs400(t *testing.T) {
	t.Parallel()
	w, _, srv := newWorldServer(t, 21)
	for _, closeWrite := range []bool{true, false} {
		t.Run(fmt.Sprint("client closes its side: ", closeWrite), func(t *testing.T) {
			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
			fmt.Fprintf(conn, "PUT /v1/shops/11/threshold HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer %s\r\n"+
				"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"threshold\": 3", w.tokens[1].seller)
			if closeWrite {
				_ = conn.(*net.TCPConn).CloseWrite()
			}
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("no answer before the client's 15 s deadline: %v", err)
			}
			wantProblem(t, "short body", responseOf(t, resp), http.StatusBadRequest, "Content-Length")
		})
	}
	var n int
	if err := w.db.DB.QueryRow(`SELECT count(*) FROM events WHERE type = 'stock.threshold_set'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("short bodies appended %d threshold events (err %v)", n, err)
	}
}

// HEAD works wherever GET does, 405 names the allowed methods, and every
// answer under /v1 is kept out of caches.
func TestMethodsHeadAndHeaders(t *testing.T) {
	t.Parallel()
	w, h, srv := newWorldServer(t, 22)
	seller, auditor := w.tokens[1].seller, w.tokens[1].auditor
	v := firstVariantOf(w, 11)
	routes, err := httpapi.Routes(h)
	if err != nil {
		t.Fatal(err)
	}
	heads := 0
	for _, route := range routes {
		method, pattern, _ := strings.Cut(route, " ")
		if method != http.MethodGet {
			continue
		}
		path, ok := routeCall(t, w, 1, pattern)
		if !ok {
			t.Fatalf("cannot fill %s", pattern)
		}
		get := send(t, srv.URL, rawRequest{target: path, token: auditor})
		head := send(t, srv.URL, rawRequest{method: http.MethodHead, target: path, token: auditor})
		if head.status != get.status || head.header.Get("Content-Type") != get.header.Get("Content-Type") || len(head.body) != 0 {
			t.Errorf("HEAD %s = %d %q with %d body bytes; GET = %d %q", path, head.status, head.header.Get("Content-Type"), len(head.body),
				get.status, get.header.Get("Content-Type"))
		}
		for _, r := range []response{get, head} {
			if r.header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("%s: no nosniff", path)
			}
			if strings.HasPrefix(path, "/v1/") && r.header.Get("Cache-Control") != "no-store" {
				t.Errorf("%s: Cache-Control %q, want no-store", path, r.header.Get("Cache-Control"))
			}
		}
		heads++
	}
	if heads < 15 {
		t.Errorf("only %d GET routes tried with HEAD", heads)
	}

	cases := []struct {
		method, path, allow string
	}{
		{http.MethodPost, "/v1/shops", "GET, HEAD"},
		{http.MethodDelete, "/v1/shops/11", "GET, HEAD"},
		{http.MethodGet, "/v1/shops/11/threshold", "PUT"},
		{http.MethodPost, variantPath(v) + "/threshold", "PUT"},
		{"PROPFIND", "/v1/products", "GET, HEAD"},
		{http.MethodPut, "/openapi.json", "GET, HEAD"},
	}
	for _, tc := range cases {
		got := send(t, srv.URL, rawRequest{method: tc.method, target: tc.path, token: seller})
		if got.status != http.StatusMethodNotAllowed || got.header.Get("Allow") != tc.allow {
			t.Errorf("%s %s = %d Allow %q, want 405 Allow %q", tc.method, tc.path, got.status, got.header.Get("Allow"), tc.allow)
			continue
		}
		problemIn(t, got)
	}
	if got := send(t, srv.URL, rawRequest{method: "PROPFIND", target: "/v1/nothing-here", token: seller}); got.status != http.StatusNotFound {
		t.Errorf("an unknown method on an unknown path = %d, want 404", got.status)
	}
}

// A cursor continues only the walk it was made for: another sort or order
// is a 400, not a page that silently skips or repeats rows.
func TestCursorsBelongToTheirSort(t *testing.T) {
	t.Parallel()
	w, h := newWorldAPI(t, 23, nil)
	tok := w.tokens[1].seller
	page := getJSON[struct {
		NextCursor string `json:"next_cursor"`
	}](t, h, tok, "/v1/products?limit=1&sort=title")
	if page.NextCursor == "" {
		t.Fatal("no second page")
	}
	for _, sort := range []string{"quantity", "-title", "listing_id", ""} {
		got := do(t, h, call{path: "/v1/products?sort=" + sort + "&cursor=" + page.NextCursor, token: tok})
		if got.Code != http.StatusBadRequest || problemOf(t, got).Param != "cursor" {
			t.Errorf("title cursor with sort=%q = %d %s, want 400 naming cursor", sort, got.Code, got.Body)
		}
	}
	if got := do(t, h, call{path: "/v1/products?sort=title&cursor=" + page.NextCursor, token: tok}); got.Code != http.StatusOK {
		t.Errorf("title cursor with its own sort = %d %s", got.Code, got.Body)
	}

	v := firstVariantOf(w, 11)
	hist := getJSON[struct {
		NextCursor string `json:"next_cursor"`
	}](t, h, tok, variantPath(v)+"/history?limit=1")
	if hist.NextCursor == "" {
		t.Fatal("no second history page")
	}
	if got := do(t, h, call{path: variantPath(v) + "/history?order=desc&cursor=" + hist.NextCursor, token: tok}); got.Code != http.StatusBadRequest {
		t.Errorf("ascending cursor with order=desc = %d, want 400", got.Code)
	}

	// A cursor this API did not make, holding a NUL, never reaches a query.
	forged := base64.RawURLEncoding.EncodeToString([]byte(`{"l":1,"t":"a\u0000b","o":"title"}`))
	if got := do(t, h, call{path: "/v1/products?sort=title&cursor=" + forged, token: tok}); got.Code != http.StatusBadRequest {
		t.Errorf("cursor with a NUL = %d %s, want 400", got.Code, got.Body)
	}
}

// slowThresholds takes longer than the body's read deadline to append, as
// a busy database might.
type slowThresholds struct {
	httpapi.ThresholdSetter
	delay time.Duration
}

func (s slowThresholds) Append(ctx context.Context, stream string, expected eventstore.ExpectedVersion, evs ...events.Event) (eventstore.Result, error) {
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return eventstore.Result{}, ctx.Err()
	}
	return s.ThresholdSetter.Append(ctx, stream, expected, evs...)
}

// The deadline that bounds reading a body ends with the body: a write
// whose work takes longer than that still completes.
func TestSlowWriteAfterItsBodyCompletes(t *testing.T) {
	t.Parallel()
	w, _ := newWorldAPI(t, 24, nil)
	h, _ := newAPI(t, w.db, apiOpts{mod: func(c *httpapi.Config) {
		c.Data.Thresholds = slowThresholds{ThresholdSetter: c.Data.Thresholds, delay: 3 * time.Second}
	}})
	srv := httptest.NewServer(h)
	defer srv.Close()
	got := send(t, srv.URL, rawRequest{method: http.MethodPut, target: "/v1/shops/11/threshold", body: `{"threshold": 3}`,
		contentType: "application/json", token: w.tokens[1].seller})
	if got.status != http.StatusAccepted {
		t.Fatalf("slow write = %d, want 202: %s", got.status, got.body)
	}
}

// encodingErrors is a ProductReader whose database refuses the text it
// was given, as PostgreSQL does (SQLSTATE 22021) for bytes that are not
// UTF-8.
type encodingErrors struct{ httpapi.ProductReader }

func (encodingErrors) ListProducts(context.Context, projections.ProductFilter) ([]projections.Product, error) {
	return nil, fmt.Errorf("list products: %w", &pgconn.PgError{Code: "22021", Message: "invalid byte sequence for encoding \"UTF8\": 0xff"})
}

// Text the database cannot hold is the client's input, so it stays a 400
// even if a check before the query missed it, and the database's message
// is not shown.
func TestDatabaseEncodingErrorsAreBadInput(t *testing.T) {
	t.Parallel()
	w, _ := newWorldAPI(t, 25, nil)
	h, _ := newAPI(t, w.db, apiOpts{mod: func(c *httpapi.Config) { c.Data.Products = encodingErrors{c.Data.Products} }})
	got := do(t, h, call{path: "/v1/products", token: w.tokens[1].seller})
	if got.Code != http.StatusBadRequest {
		t.Fatalf("22021 = %d, want 400: %s", got.Code, got.Body)
	}
	if p := problemOf(t, got); strings.Contains(p.Detail, "0xff") {
		t.Errorf("problem shows the database's message: %+v", p)
	}
}

// An answer given before the body is read (the token, the path or the
// content type is wrong) does not wait for a body that never comes: the
// connection closes after it instead.
func TestEarlyAnswersDoNotWaitForTheBody(t *testing.T) {
	t.Parallel()
	w, _, srv := newWorldServer(t, 26)
	cases := []struct {
		name, method, path, token, contentType string
		status                                 int
	}{
		{"another seller's shop", "PUT", "/v1/shops/21/threshold", w.tokens[1].seller, "application/json", 404},
		{"no token", "PUT", "/v1/shops/11/threshold", "", "application/json", 401},
		{"wrong content type", "PUT", "/v1/shops/11/threshold", w.tokens[1].seller, "text/plain", 415},
		{"method not allowed", "POST", "/v1/shops", w.tokens[1].seller, "application/json", 405},
		{"unknown path", "PUT", "/nothing", w.tokens[1].seller, "application/json", 404},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
			auth := ""
			if tc.token != "" {
				auth = "Authorization: Bearer " + tc.token + "\r\n"
			}
			fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: test\r\n%sContent-Type: %s\r\nContent-Length: 100\r\n\r\n{\"threshold\": 3",
				tc.method, tc.path, auth, tc.contentType)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("no answer before the client's 15 s deadline: %v", err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.status || !resp.Close {
				t.Errorf("%s %s = %d, closing %v; want %d and the connection closed", tc.method, tc.path, resp.StatusCode, resp.Close, tc.status)
			}
		})
	}
}
