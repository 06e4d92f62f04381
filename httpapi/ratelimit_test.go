package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shopledger/shopledger/httpapi"
	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/tokens"
)

func TestClientAddrBelievesOnlyTrustedProxies(t *testing.T) {
	proxies, err := httpapi.ParseTrustedProxies([]string{"10.0.0.0/8", "192.0.2.10", "2001:db8:ffff::/48"})
	if err != nil {
		t.Fatal(err)
	}
	xff := httpapi.Config{TrustedProxies: proxies}
	fwd := httpapi.Config{TrustedProxies: proxies, ProxyHeader: httpapi.Forwarded}
	for _, tc := range []struct {
		name   string
		cfg    httpapi.Config
		remote string
		header map[string][]string
		want   string
	}{
		{"no proxy trusted", httpapi.Config{}, "10.0.0.1:1234", map[string][]string{"X-Forwarded-For": {"203.0.113.9"}}, "10.0.0.1"},
		{"untrusted peer", xff, "198.51.100.7:1234", map[string][]string{"X-Forwarded-For": {"203.0.113.9"}}, "198.51.100.7"},
		{"trusted peer", xff, "10.0.0.1:1234", map[string][]string{"X-Forwarded-For": {"203.0.113.9"}}, "203.0.113.9"},
		{"single trusted address", xff, "192.0.2.10:1234", map[string][]string{"X-Forwarded-For": {"203.0.113.9"}}, "203.0.113.9"},
		{"client-written hops ignored", xff, "10.0.0.1:1234", map[string][]string{"X-Forwarded-For": {"6.6.6.6, 203.0.113.9"}}, "203.0.113.9"},
		{"chain of proxies", xff, "10.0.0.1:1234", map[string][]string{"X-Forwarded-For": {"6.6.6.6, 203.0.113.9, 10.9.9.9"}}, "203.0.113.9"},
		{"several header lines", xff, "10.0.0.1:1234", map[string][]string{"X-Forwarded-For": {"6.6.6.6", "203.0.113.9"}}, "203.0.113.9"},
		{"no header", xff, "10.0.0.1:1234", nil, "10.0.0.1"},
		{"malformed hop", xff, "10.0.0.1:1234", map[string][]string{"X-Forwarded-For": {"203.0.113.9, bogus"}}, "10.0.0.1"},
		{"hop with port", xff, "10.0.0.1:1234", map[string][]string{"X-Forwarded-For": {"203.0.113.9:4711"}}, "203.0.113.9"},
		{"IPv6 hop", xff, "[2001:db8:ffff::1]:443", map[string][]string{"X-Forwarded-For": {"[2001:db8::5]:80"}}, "2001:db8::5"},
		{"every hop trusted", xff, "10.0.0.1:1234", map[string][]string{"X-Forwarded-For": {"10.0.0.3, 10.0.0.2"}}, "10.0.0.3"},
		{"mapped peer", xff, "[::ffff:10.0.0.1]:1234", map[string][]string{"X-Forwarded-For": {"203.0.113.9"}}, "203.0.113.9"},
		{"Forwarded", fwd, "10.0.0.1:1234", map[string][]string{"Forwarded": {`for=6.6.6.6, for="[2001:db8::7]:4711";proto=https`}}, "2001:db8::7"},
		{"Forwarded, several lines", fwd, "10.0.0.1:1234", map[string][]string{"Forwarded": {"for=6.6.6.6", "for=203.0.113.9;by=10.0.0.1"}}, "203.0.113.9"},
		{"Forwarded unknown", fwd, "10.0.0.1:1234", map[string][]string{"Forwarded": {"for=unknown"}}, "10.0.0.1"},
		{"Forwarded hop without for", fwd, "10.0.0.1:1234", map[string][]string{"Forwarded": {"for=203.0.113.9, proto=https"}}, "10.0.0.1"},
		{"X-Forwarded-For ignored when Forwarded is trusted", fwd, "10.0.0.1:1234", map[string][]string{"X-Forwarded-For": {"6.6.6.6"}}, "10.0.0.1"},
		{"Forwarded ignored when X-Forwarded-For is trusted", xff, "10.0.0.1:1234", map[string][]string{"Forwarded": {"for=6.6.6.6"}}, "10.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/v1/shops", nil)
			r.RemoteAddr = tc.remote
			for k, vs := range tc.header {
				for _, v := range vs {
					r.Header.Add(k, v)
				}
			}
			if got := httpapi.ClientAddr(tc.cfg, r); got != tc.want {
				t.Errorf("client address = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestParseTrustedProxiesAndHeader(t *testing.T) {
	if _, err := httpapi.ParseTrustedProxies([]string{"10.0.0.0/8", "nonsense"}); err == nil {
		t.Error("nonsense accepted as a proxy")
	}
	for in, want := range map[string]httpapi.ProxyHeader{"": httpapi.XForwardedFor, "x-forwarded-for": httpapi.XForwardedFor, "Forwarded": httpapi.Forwarded} {
		if got, err := httpapi.ParseProxyHeader(in); err != nil || got != want {
			t.Errorf("ParseProxyHeader(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := httpapi.ParseProxyHeader("X-Real-IP"); err == nil {
		t.Error("X-Real-IP accepted")
	}
}

// Behind one trusted proxy, a client sending junk tokens runs dry its own
// failure bucket only: other clients through the same proxy, sellers with
// valid tokens among them, are served, and the junk costs nobody's address
// bucket.
func TestJunkTokensThrottleOnlyTheirSender(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	valid, _ := createToken(t, db, tokens.NewToken{SellerID: 1})
	proxies, err := httpapi.ParseTrustedProxies([]string{"10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	clock := &fixedClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	h, reg := newAPI(t, db, apiOpts{shops: fixedShops{1: {10}}, mod: func(c *httpapi.Config) {
		c.TokenRate = 0
		c.AddressRate, c.AddressBurst = 1, 3
		c.AuthFailureRate, c.AuthFailureBurst = 0.1, 2
		c.TrustedProxies = proxies
		c.Now = clock.Now
	}})
	via := func(client, token string) int {
		return do(t, h, call{path: "/v1/shops", token: token, remote: "10.0.0.1:5000", header: map[string]string{"X-Forwarded-For": client}}).Code
	}
	var junk []int
	for range 5 {
		junk = append(junk, via("203.0.113.66", "slt_junk"))
	}
	if diff := cmp.Diff([]int{401, 401, 429, 429, 429}, junk); diff != "" {
		t.Errorf("junk from one client (-want +got):\n%s", diff)
	}
	// Another client through the same proxy: a failure of its own is
	// still answered 401, and its valid requests use the whole address
	// burst, which the junk did not touch.
	if code := via("198.51.100.20", "slt_typo"); code != 401 {
		t.Errorf("another client's one bad token = %d, want 401", code)
	}
	var good []int
	for range 4 {
		good = append(good, via("198.51.100.20", valid))
	}
	if diff := cmp.Diff([]int{200, 200, 200, 429}, good); diff != "" {
		t.Errorf("valid requests of another client (-want +got):\n%s", diff)
	}
	if code := via("198.51.100.21", valid); code != 200 {
		t.Errorf("a third client = %d, want 200", code)
	}
	// The failure bucket refills with time.
	clock.t = clock.t.Add(10 * time.Second)
	if code := via("203.0.113.66", "slt_junk"); code != 401 {
		t.Errorf("junk after the refill = %d, want 401", code)
	}
	if got := counterValue(t, reg, "shopledger_query_rate_limited_total", map[string]string{"limiter": "auth_failure"}); got != 3 {
		t.Errorf("rate_limited_total{limiter=auth_failure} = %v, want 3", got)
	}
}
