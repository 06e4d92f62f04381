package etsysim

import (
	"net/http"
	"strconv"
	"time"
)

const (
	dayWindow = 24 * time.Hour
	dayBucket = 5 * time.Minute
)

// keyLimits is one app key's usage. The per-second window slides over
// real time (QPS is about real load); the daily window is a rolling
// simulated day of 5-minute buckets, as Etsy describes its own.
type keyLimits struct {
	accepted []time.Time // real arrival times in the last second, admitted
	arrived  []time.Time // real arrival times in the last second, all
	maxQPS   int
	buckets  []bucket
	served   int64
	limited  int64
}

type bucket struct {
	start time.Time
	n     int
}

func trimSecond(ts []time.Time, now time.Time) []time.Time {
	cut := now.Add(-time.Second)
	i := 0
	for i < len(ts) && !ts[i].After(cut) {
		i++
	}
	return ts[i:]
}

func (k *keyLimits) dayUsed(simNow time.Time) int {
	cut := simNow.Add(-dayWindow)
	i := 0
	for i < len(k.buckets) && !k.buckets[i].start.Add(dayBucket).After(cut) {
		i++
	}
	k.buckets = k.buckets[i:]
	n := 0
	for _, b := range k.buckets {
		n += b.n
	}
	return n
}

// admitLocked applies the key's limits to one request: QPS first, then
// QPD, as Etsy evaluates them. It sets the four x-limit/x-remaining headers
// and, when refusing, retry-after and the 429 message.
func (s *Sim) admitLocked(key string, h http.Header) (ok bool, msg string) {
	k := s.limits[key]
	if k == nil {
		k = &keyLimits{}
		s.limits[key] = k
	}
	now := time.Now()
	simNow := s.clock.now()
	k.accepted = trimSecond(k.accepted, now)
	k.arrived = append(trimSecond(k.arrived, now), now)
	k.maxQPS = max(k.maxQPS, len(k.arrived))
	used := k.dayUsed(simNow)
	qps, qpd := s.opts.QPS, s.opts.QPD

	h.Set("x-limit-per-second", strconv.Itoa(qps))
	h.Set("x-limit-per-day", strconv.Itoa(qpd))
	switch {
	case len(k.accepted) >= qps:
		wait := k.accepted[0].Add(time.Second).Sub(now)
		h.Set("x-remaining-this-second", "0")
		h.Set("x-remaining-today", strconv.Itoa(max(qpd-used, 0)))
		h.Set("retry-after", strconv.Itoa(ceilSeconds(wait)))
		k.limited++
		s.stats.rateLimited++
		return false, "Exceeded per second rate limit"
	case used >= qpd:
		wait := k.buckets[0].start.Add(dayBucket + dayWindow).Sub(simNow)
		h.Set("x-remaining-this-second", strconv.Itoa(qps-len(k.accepted)))
		h.Set("x-remaining-today", "0")
		h.Set("retry-after", strconv.Itoa(ceilSeconds(wait)))
		k.limited++
		s.stats.rateLimited++
		return false, "Exceeded daily rate limit"
	}
	k.accepted = append(k.accepted, now)
	start := simNow.Truncate(dayBucket)
	if n := len(k.buckets); n > 0 && k.buckets[n-1].start.Equal(start) {
		k.buckets[n-1].n++
	} else {
		k.buckets = append(k.buckets, bucket{start: start, n: 1})
	}
	k.served++
	s.stats.requestsServed++
	h.Set("x-remaining-this-second", strconv.Itoa(qps-len(k.accepted)))
	h.Set("x-remaining-today", strconv.Itoa(qpd-used-1))
	return true, ""
}

func ceilSeconds(d time.Duration) int {
	if d <= 0 {
		return 1
	}
	return int((d + time.Second - 1) / time.Second)
}
