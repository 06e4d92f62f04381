package httpapi

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5/middleware"
	"github.com/google/uuid"
	"golang.org/x/time/rate"
)

// limiters holds one token bucket per key (a token id or a client address).
type limiters struct {
	mu    sync.Mutex
	m     map[string]*rate.Limiter
	rate  rate.Limit
	burst int
	calls int
}

func newLimiters(perSecond float64, burst int) *limiters {
	l := &limiters{m: map[string]*rate.Limiter{}, rate: rate.Limit(perSecond), burst: burst}
	if perSecond <= 0 {
		l.rate = rate.Inf
	}
	if l.burst < 1 {
		l.burst = 1
	}
	return l
}

// sweepEvery bounds the map: every so many calls, buckets that have
// refilled are dropped, since a fresh bucket behaves the same.
const sweepEvery = 4096

// allow takes one request from key's bucket, or reports how long until
// one is available.
func (l *limiters) allow(key string, now time.Time) (bool, time.Duration) {
	if l.rate == rate.Inf {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	if l.calls%sweepEvery == 0 {
		for k, lim := range l.m {
			if lim.TokensAt(now) >= float64(l.burst) {
				delete(l.m, k)
			}
		}
	}
	res, wait := l.reserve(key, now)
	return res != nil, wait
}

// reserve takes one request from key's bucket, with l.mu held; nil and
// how long to wait when the bucket is empty.
func (l *limiters) reserve(key string, now time.Time) (*rate.Reservation, time.Duration) {
	lim, ok := l.m[key]
	if !ok {
		lim = rate.NewLimiter(l.rate, l.burst)
		l.m[key] = lim
	}
	res := lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		// Refused requests do not consume the bucket: only served ones count.
		res.CancelAt(now)
		return nil, d
	}
	return res, 0
}

// available reports, without taking anything, whether key's bucket holds
// a request, or how long until it does.
func (l *limiters) available(key string, now time.Time) (bool, time.Duration) {
	if l.rate == rate.Inf {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.m[key]
	if !ok {
		return true, 0
	}
	tokens := lim.TokensAt(now)
	if tokens >= 1 {
		return true, 0
	}
	return false, time.Duration((1 - tokens) / float64(l.rate) * float64(time.Second))
}

// take is allow that can be taken back: refund returns the request to the
// bucket, as far as later requests let it.
func (l *limiters) take(key string, now time.Time) (ok bool, wait time.Duration, refund func()) {
	if l.rate == rate.Inf {
		return true, 0, func() {}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	res, wait := l.reserve(key, now)
	if res == nil {
		return false, wait, nil
	}
	return true, 0, func() { res.CancelAt(now) }
}

func (s *server) refuse(w http.ResponseWriter, r *http.Request, limiter string, wait time.Duration) {
	s.metrics.rateLimited.WithLabelValues(limiter).Inc()
	retryAfter(w, int(math.Ceil(wait.Seconds())))
	s.errs.write(w, r, ErrRateLimited)
}

// limitAddress throttles by client address (see clientAddr), around
// authentication. Failed authentications (answers 401) count in a bucket
// of their own: a client that runs it dry with junk or guessed tokens is
// refused before its tokens are even looked up, while the same address's
// authenticated requests, and everyone else's, are untouched by it. The
// address bucket counts authenticated requests only: a failed one is
// handed back.
func (s *server) limitAddress(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		client := s.clientAddr(r)
		if ok, wait := s.byAuthFailure.available(client, s.cfg.Now()); !ok {
			s.refuse(w, r, "auth_failure", wait)
			return
		}
		ok, wait, refund := s.byAddress.take(client, s.cfg.Now())
		if !ok {
			s.refuse(w, r, "address", wait)
			return
		}
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		if ww.Status() == http.StatusUnauthorized {
			refund()
			s.byAuthFailure.allow(client, s.cfg.Now())
		}
	})
}

// ProxyHeader names the header a trusted proxy records the client in.
type ProxyHeader string

// The headers clientAddr reads. Only the one the proxies set may be
// trusted: a client can send the other one itself, and nothing would
// strip it.
const (
	XForwardedFor ProxyHeader = "X-Forwarded-For"
	Forwarded     ProxyHeader = "Forwarded" // RFC 7239
)

// ParseProxyHeader accepts either header name, in any case.
func ParseProxyHeader(s string) (ProxyHeader, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "x-forwarded-for":
		return XForwardedFor, nil
	case "forwarded":
		return Forwarded, nil
	}
	return "", fmt.Errorf("proxy header %q is neither X-Forwarded-For nor Forwarded", s)
}

// ParseTrustedProxies reads proxy addresses and CIDR ranges
// ("10.0.0.0/8", "192.0.2.10", "2001:db8::/32").
func ParseTrustedProxies(items []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(items))
	for _, it := range items {
		it = strings.TrimSpace(it)
		if p, err := netip.ParsePrefix(it); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(it)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q is neither an address nor a CIDR range", it)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

func (s *server) trustedProxy(a netip.Addr) bool {
	a = a.WithZone("").Unmap()
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientAddr is the address the rate limits key on: RemoteAddr, unless it
// is a trusted proxy; then the proxy header is read from its right end
// (the hop the proxy itself added) leftwards, skipping trusted proxies,
// and the first address that is not one is the client. Whatever lies to
// its left the client wrote itself and is never believed. A malformed or
// hidden hop ends the walk at the last trusted hop, so a client cannot
// pick its own bucket.
func (s *server) clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	last, err := netip.ParseAddr(host)
	if err != nil || len(s.cfg.TrustedProxies) == 0 || !s.trustedProxy(last) {
		return host
	}
	hops := proxyHops(r.Header, s.cfg.ProxyHeader)
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := parseHop(hops[i])
		if !ok {
			break
		}
		if !s.trustedProxy(a) {
			return a.String()
		}
		last = a
	}
	return last.WithZone("").Unmap().String()
}

// proxyHops lists the addresses a proxy header records, leftmost (the
// farthest hop) first, over every line of the header.
func proxyHops(h http.Header, which ProxyHeader) []string {
	var hops []string
	if which == Forwarded {
		for _, line := range h.Values("Forwarded") {
			for elem := range strings.SplitSeq(line, ",") {
				hop := "" // an element without for= is a hop we cannot place
				for pair := range strings.SplitSeq(elem, ";") {
					k, v, _ := strings.Cut(strings.TrimSpace(pair), "=")
					if strings.EqualFold(k, "for") {
						hop = strings.Trim(v, `"`)
					}
				}
				hops = append(hops, hop)
			}
		}
		return hops
	}
	for _, line := range h.Values("X-Forwarded-For") {
		for hop := range strings.SplitSeq(line, ",") {
			hops = append(hops, strings.TrimSpace(hop))
		}
	}
	return hops
}

// parseHop reads "192.0.2.1", "192.0.2.1:4711", "2001:db8::1" or
// "[2001:db8::1]:4711"; "unknown" and obfuscated names are not addresses.
func parseHop(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.WithZone("").Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().WithZone("").Unmap(), true
	}
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")); err == nil {
		return a.WithZone("").Unmap(), true
	}
	return netip.Addr{}, false
}

// limitToken throttles by token; it reports whether the request may go on.
func (s *server) limitToken(w http.ResponseWriter, r *http.Request, id uuid.UUID) bool {
	if ok, wait := s.byToken.allow(id.String(), s.cfg.Now()); !ok {
		s.refuse(w, r, "token", wait)
		return false
	}
	return true
}
