package webapp_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// malformed are query strings a careless or hostile client sends: bad
// encodings, NUL bytes, out-of-range numbers, unknown words, cursors that
// are not ours, for every parameter name the pages read.
var malformed = []string{
	"q=%FF%FE&shop_id=%FF&state=%00&status=a%00b&type=%FF&stream=%00&sort=%FF",
	"q=a%00b&cursor=%00&before=%FF&at=%00&from=%FF&to=a%00b&low_stock=%FF",
	"shop_id=99999999999999999999999&limit=-1&before=-5&at=9999-99-99T99:99&from=yesterday&to=1e400",
	"state=bogus&status=bogus&type=bogus&sort=bogus&order=bogus&low_stock=maybe&include_deleted=2",
	"cursor=not-a-cursor&limit=100000000&before=0&at=" + url.QueryEscape(time.Now().AddDate(200, 0, 0).Format("2006-01-02T15:04")),
	"q=" + strings.Repeat("x", 5000),
}

// badObjects replace a route's {param} with values that name nothing or
// cannot be parsed.
var badObjects = []string{"%00", "%FF%FE", "99999999999999999999999", "-1", "0", "..%2F..%2Fetc", "a%20b"}

// Every page a member can GET answers malformed input with a client error
// or the page, never a server error; HEAD answers as GET does, without a
// body; a method a route does not serve is 405 with Allow.
func TestPagesAnswerMalformedInputWithoutServerErrors(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	a, org := s.signUpOwner("mal@example.com")
	s.addShop(org, 701, "Malformed shop")
	l := s.ledger()
	l.listing(701, 70101, "A listing", "EUR", map[string]int64{"sku:M/1": 6})
	l.sell(701, 70101, "sku:M/1", 1, "EUR", time.Hour, false)
	l.project()

	tested := 0
	for _, rt := range s.routes(func(method, pattern string) bool {
		return method == http.MethodGet && !strings.HasSuffix(pattern, "/*")
	}) {
		pattern := rt.pattern
		paths := []string{pattern}
		if strings.Contains(pattern, "{") {
			paths = nil
			for _, bad := range badObjects {
				p := pattern
				for strings.Contains(p, "{") {
					i, j := strings.Index(p, "{"), strings.Index(p, "}")
					p = p[:i] + bad + p[j+1:]
				}
				paths = append(paths, p)
			}
		}
		for _, p := range paths {
			for _, q := range malformed {
				ans := a.get(p + "?" + q)
				if ans.status >= 500 {
					t.Errorf("GET %s?%s = %d: %.200s", p, q, ans.status, ans.body)
				}
				tested++
			}
			get, head := a.get(p), a.do(http.MethodHead, p, nil, nil)
			if head.status != get.status || len(head.body) != 0 {
				t.Errorf("HEAD %s = %d with %d body bytes; GET = %d", p, head.status, len(head.body), get.status)
			}
		}
	}
	if tested < 50 {
		t.Fatalf("only %d requests sent", tested)
	}
	ans := a.do(http.MethodDelete, "/products", nil, nil)
	if ans.status != http.StatusMethodNotAllowed || !strings.Contains(ans.header.Get("Allow"), http.MethodGet) {
		t.Errorf("DELETE /products = %d, Allow %q; want 405 naming GET", ans.status, ans.header.Get("Allow"))
	}
}
