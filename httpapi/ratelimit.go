package httpapi

import (
	"math"
	"net"
	"net/http"
	"sync"
	"time"

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
	lim, ok := l.m[key]
	if !ok {
		lim = rate.NewLimiter(l.rate, l.burst)
		l.m[key] = lim
	}
	res := lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		// Refused requests do not consume the bucket: only served ones count.
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

func (s *server) refuse(w http.ResponseWriter, r *http.Request, limiter string, wait time.Duration) {
	s.metrics.rateLimited.WithLabelValues(limiter).Inc()
	retryAfter(w, int(math.Ceil(wait.Seconds())))
	s.errs.write(w, r, ErrRateLimited)
}

// limitAddress throttles by client address before authentication, so that
// guessing tokens or flooding with bad ones is slow too.
func (s *server) limitAddress(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			host = r.RemoteAddr
		}
		if ok, wait := s.byAddress.allow(host, s.cfg.Now()); !ok {
			s.refuse(w, r, "address", wait)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// limitToken throttles by token; it reports whether the request may go on.
func (s *server) limitToken(w http.ResponseWriter, r *http.Request, id uuid.UUID) bool {
	if ok, wait := s.byToken.allow(id.String(), s.cfg.Now()); !ok {
		s.refuse(w, r, "token", wait)
		return false
	}
	return true
}
