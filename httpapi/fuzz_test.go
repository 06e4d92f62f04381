package httpapi_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/shopledger/shopledger/httpapi"
)

// fuzzTimeout is the request timeout the fuzzed router runs with; no
// answer may take longer.
const fuzzTimeout = 5 * time.Second

// shortBody is a body that ends before its Content-Length, as net/http
// reports a client that closed its side early.
type shortBody struct{ r io.Reader }

func (b shortBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (shortBody) Close() error { return nil }

// FuzzRouter sends the query router whatever method, path, query, content
// type and body the fuzzer makes (cut short when cut is below the body's
// length), with a seller token for writes and an auditor token otherwise.
// No answer may be a 5xx or take longer than the request timeout, and
// every error is a problem document. The seeds are the malformed inputs
// the API must refuse cleanly; they run in every go test, and make fuzz
// searches further.
func FuzzRouter(f *testing.F) {
	w, h := newWorldAPI(f, 90, func(c *httpapi.Config) { c.QueryTimeout = fuzzTimeout })
	v := firstVariantOf(w, 11)
	_, _, _, receipt, eventID := w.firstOf(1)
	alertID := w.alertOf(11)
	vp := fmt.Sprintf("/v1/products/%d/variants/%s", v.listing, url.PathEscape(v.key))
	json := "application/json"
	seeds := []struct {
		method, path, query, contentType, body string
		cut                                    uint16
	}{
		{"GET", "/v1/products", "q=%FF%FE", "", "", 0},
		{"GET", "/v1/products", "q=a%00b", "", "", 0},
		{"GET", "/v1/products", "state=%FF%FE&sort=-title&limit=3", "", "", 0},
		{"GET", "/v1/products", "state=bogus", "", "", 0},
		{"GET", "/v1/products", "cursor=eyJsIjoxLCJ0IjoiYVx1MDAwMGIiLCJvIjoidGl0bGUifQ&sort=title", "", "", 0},
		{"GET", "/v1/products", "sort=quantity&cursor=eyJsIjoxMTAwLCJ0IjoiQSIsIm8iOiJ0aXRsZSJ9", "", "", 0},
		{"GET", "/v1/products", "q=%ZZ;x=1", "", "", 0},
		{"GET", "/v1/sales", "status=%FF%FE", "", "", 0},
		{"GET", "/v1/sales", "status=bogus&from=2026-01-01&to=2025-01-01", "", "", 0},
		{"GET", "/v1/alerts", "status=bogus", "", "", 0},
		{"GET", "/v1/events", "type=bogus", "", "", 0},
		{"GET", "/v1/events", "type=a%00b&stream=%FF", "", "", 0},
		{"GET", "/v1/events/export", "stream=a%00b&after_seq=-1", "", "", 0},
		{"GET", "/v1/events/export", "type=stock.sold&to_seq=5", "", "", 0},
		{"GET", "/v1/events/" + eventID, "", "", "", 0},
		{"GET", "/v1/events/%FF", "", "", "", 0},
		{"GET", "/v1/chain", "", "", "", 0},
		{"GET", "/v1/alerts/" + alertID, "", "", "", 0},
		{"GET", fmt.Sprintf("/v1/sales/%d", receipt), "", "", "", 0},
		{"GET", vp + "/history", "order=desc&limit=2&format=csv", "", "", 0},
		{"GET", vp + "/stock", "as_of=9999-12-31", "", "", 0},
		{"GET", fmt.Sprintf("/v1/products/%d/variants/%%FF%%FE/history", v.listing), "", "", "", 0},
		{"GET", fmt.Sprintf("/v1/products/%d/variants/a%%00b/stock", v.listing), "", "", "", 0},
		{"GET", fmt.Sprintf("/v1/products/%d/variants/a%%2F%%FF/history", v.listing), "", "", "", 0},
		{"GET", "/v1/shops/11%00", "", "", "", 0},
		{"GET", "/v1/shops/11/sales/daily", "from=0001-01-01&to=0001-12-31", "", "", 0},
		{"GET", "/v1/shops/11/top-products", "by=revenue&limit=9223372036854775808", "", "", 0},
		{"GET", "/v1/shops/11/stock", "cursor=eyJsIjoxLCJrIjoiXHUwMDAwIn0", "", "", 0},
		{"HEAD", "/v1/shops", "", "", "", 0},
		{"HEAD", "/v1/events/export", "", "", "", 0},
		{"POST", "/v1/shops", "", json, `{}`, 0},
		{"DELETE", "/v1/shops/11/threshold", "", "", "", 0},
		{"PROPFIND", "/v1/products", "", "", "", 0},
		{"GET", "/v1/shops/../shops", "", "", "", 0},
		{"GET", "/v1//shops", "", "", "", 0},
		{"GET", "/v1/shops/%2e%2e/11", "", "", "", 0},
		{"PUT", "/v1/shops/11/threshold", "", json, `{"threshold": 3}`, 0},
		{"PUT", "/v1/shops/11/threshold", "", json, `{"threshold": 3}`, 5},
		{"PUT", "/v1/shops/11/threshold", "", "text/plain", `{"threshold": 3}`, 0},
		{"PUT", "/v1/shops/11/threshold", "", "application/", `{"threshold": 3}`, 0},
		{"PUT", "/v1/shops/11/threshold", "", json, `{"threshold": 3, "pad": "` + strings.Repeat("a", 5000) + `"}`, 0},
		{"PUT", "/v1/shops/11/threshold", "", json, `{"threshold": "\u0000"}`, 0},
		{"PUT", "/v1/products/1100/threshold", "", json, `{"threshold": 1e400}`, 0},
		{"PUT", vp + "/threshold", "", json, `{"threshold": 2}{"threshold": 3}`, 0},
		{"PUT", fmt.Sprintf("/v1/products/%d/variants/a%%00/threshold", v.listing), "", json, `{"threshold": 1}`, 0},
		{"GET", "/openapi.json", "", "", "", 0},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.query, s.contentType, s.body, s.cut)
	}
	f.Fuzz(func(t *testing.T, method, path, query, contentType, body string, cut uint16) {
		// What net/http would refuse before any handler runs is out of
		// scope: a method that is not a token, a target that does not
		// parse, header values with control bytes.
		u, err := url.ParseRequestURI(path + "?" + query)
		if err != nil || method == "" || strings.ContainsFunc(method, func(r rune) bool { return r <= ' ' || r >= 0x7f || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) }) ||
			strings.ContainsFunc(contentType, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			t.Skip()
		}
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Method, req.URL, req.RequestURI = method, u, u.RequestURI()
		token := w.tokens[1].auditor
		if method == http.MethodPut || method == http.MethodPost {
			token = w.tokens[1].seller
		}
		req.Header.Set("Authorization", "Bearer "+token)
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		if body != "" {
			req.ContentLength = int64(len(body))
			if int(cut) < len(body) && cut > 0 {
				req.Body = shortBody{strings.NewReader(body[:cut])}
			} else {
				req.Body = io.NopCloser(strings.NewReader(body))
			}
		}
		rec := httptest.NewRecorder()
		start := time.Now()
		done := make(chan struct{})
		go func() {
			defer close(done)
			h.ServeHTTP(rec, req)
		}()
		select {
		case <-done:
		case <-time.After(2 * fuzzTimeout):
			stacks := make([]byte, 1<<20)
			stacks = stacks[:runtime.Stack(stacks, true)]
			t.Fatalf("%s %s has not answered after %s, twice the request timeout; goroutines:\n%s", method, u.RequestURI(), 2*fuzzTimeout, stacks)
		}
		took := time.Since(start)
		if rec.Code >= 500 {
			t.Fatalf("%s %s = %d: %s", method, u.RequestURI(), rec.Code, rec.Body)
		}
		if took > fuzzTimeout {
			t.Fatalf("%s %s took %s, longer than the request timeout %s", method, u.RequestURI(), took, fuzzTimeout)
		}
		if rec.Code >= 400 && rec.Header().Get("Content-Type") != "application/problem+json" {
			t.Fatalf("%s %s = %d with Content-Type %q, want a problem document", method, u.RequestURI(), rec.Code, rec.Header().Get("Content-Type"))
		}
		if rec.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("%s %s: no X-Content-Type-Options", method, u.RequestURI())
		}
	})
}
