package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/ingest"
	"github.com/shopledger/shopledger/stdwebhooks"
)

// A history-checked soak: a generator sends
// signed webhooks with random duplicates at a fixed concurrency and
// records each attempt's outcome; a checker compares the outcomes with
// what the log holds.

type outcome int

const (
	outcomeOK      outcome = iota // 2xx: the sender may forget the message
	outcomeFailed                 // a non-2xx answer
	outcomeUnknown                // no answer: refused, reset, timed out
)

// history is every attempt per webhook id.
type history struct {
	done     atomic.Int64 // attempts finished, for a killer timing itself
	mu       sync.Mutex
	attempts map[string][]outcome
	ids      []string // every generated id
}

func (h *history) record(id string, o outcome) {
	defer h.done.Add(1)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.attempts[id] = append(h.attempts[id], o)
}

func (h *history) ok(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, o := range h.attempts[id] {
		if o == outcomeOK {
			return true
		}
	}
	return false
}

func (h *history) counts() (ok, failed, unknown int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, os := range h.attempts {
		for _, o := range os {
			switch o {
			case outcomeOK:
				ok++
			case outcomeFailed:
				failed++
			default:
				unknown++
			}
		}
	}
	return ok, failed, unknown
}

type soakConfig struct {
	base        func() string // the endpoint's base URL, which may move
	n           int           // unique webhook ids
	dupFraction float64       // extra deliveries of already-sent ids
	concurrency int
	secret      string
	seed        uint64
}

// sender posts signed webhooks the way Etsy does: every attempt has a
// fresh timestamp and signature, the same id and body.
type sender struct {
	client *http.Client
	secret string
}

func newSender(secret string, concurrency int) *sender {
	return &sender{
		secret: secret,
		client: &http.Client{
			Timeout: 10 * time.Second,
			Transport: &http.Transport{
				MaxIdleConns: concurrency * 2, MaxIdleConnsPerHost: concurrency * 2,
				IdleConnTimeout: 30 * time.Second,
			},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

func soakBody(id string) []byte { return appendSoakBody(nil, id) }

// appendSoakBody appends soakBody(id) to dst.
func appendSoakBody(dst []byte, id string) []byte {
	// Deterministic per id, so a resend carries the same bytes.
	n := int64(len(id))
	shop := 1000 + n%7
	dst = append(dst, `{"event_type":"order.paid","resource_url":"https://openapi.etsy.com/v3/application/shops/`...)
	dst = strconv.AppendInt(dst, shop, 10)
	dst = append(dst, "/receipts/"...)
	dst = strconv.AppendInt(dst, 1_000_000+n, 10)
	dst = append(dst, `","shop_id":`...)
	dst = strconv.AppendInt(dst, shop, 10)
	return append(dst, '}')
}

func (s *sender) send(ctx context.Context, base, id string) (outcome, time.Duration) {
	body := soakBody(id)
	now := time.Now()
	sig, err := stdwebhooks.Sign(s.secret, id, now, body)
	if err != nil {
		panic(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+ingest.WebhookPath, bytes.NewReader(body))
	if err != nil {
		return outcomeUnknown, 0
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(stdwebhooks.HeaderID, id)
	req.Header.Set(stdwebhooks.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(stdwebhooks.HeaderSignature, sig)
	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		return outcomeUnknown, time.Since(start)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	elapsed := time.Since(start)
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300 && err == nil:
		return outcomeOK, elapsed
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		// The answer was cut off after the status line: still a 2xx.
		return outcomeOK, elapsed
	default:
		return outcomeFailed, elapsed
	}
}

// planned is how many attempts the first pass makes.
func (c soakConfig) planned() int { return c.n + int(float64(c.n)*c.dupFraction) }

// soak runs the generator's first pass: every id once, plus duplicates,
// shuffled, at cfg.concurrency. h may be prepared by the caller (to watch
// its progress) or nil.
func soak(ctx context.Context, cfg soakConfig, h *history) *history {
	rng := rand.New(rand.NewPCG(cfg.seed, 1))
	if h == nil {
		h = newHistory()
	}
	for i := range cfg.n {
		h.ids = append(h.ids, fmt.Sprintf("msg_soak_%d_%08x", i, rng.Uint32()))
	}
	plan := append([]string(nil), h.ids...)
	for range int(float64(cfg.n) * cfg.dupFraction) {
		plan = append(plan, h.ids[rng.IntN(len(h.ids))])
	}
	rng.Shuffle(len(plan), func(i, j int) { plan[i], plan[j] = plan[j], plan[i] })

	// A sender backs off a little when the receiver is down.
	deliver(ctx, newSender(cfg.secret, cfg.concurrency), cfg, h, plan, 20*time.Millisecond)
	return h
}

// deliver sends each of ids once over cfg.concurrency workers and
// records the outcomes; a worker pauses for backoff after each delivery
// that is not ok.
func deliver(ctx context.Context, s *sender, cfg soakConfig, h *history, ids []string, backoff time.Duration) {
	work := make(chan string)
	var wg sync.WaitGroup
	for range cfg.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				o, _ := s.send(ctx, cfg.base(), id)
				h.record(id, o)
				if o != outcomeOK && backoff > 0 {
					time.Sleep(backoff)
				}
			}
		}()
	}
	for _, id := range ids {
		work <- id
	}
	close(work)
	wg.Wait()
}

func newHistory() *history { return &history{attempts: map[string][]outcome{}} }

// resend delivers every id without an ok until each has one, as Etsy's
// retries would, pausing between rounds.
func resend(ctx context.Context, t *testing.T, cfg soakConfig, h *history, within time.Duration) {
	t.Helper()
	s := newSender(cfg.secret, cfg.concurrency)
	deadline := time.Now().Add(within)
	for round := 0; ; round++ {
		var pending []string
		for _, id := range h.ids {
			if !h.ok(id) {
				pending = append(pending, id)
			}
		}
		if len(pending) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d ids still without a 2xx after %v of resending", len(pending), within)
		}
		if round > 0 {
			time.Sleep(200 * time.Millisecond)
		}
		deliver(ctx, s, cfg, h, pending, 0)
	}
}

// stored counts the evidence per webhook id in the log.
func stored(t *testing.T, db *sql.DB) map[string]int {
	t.Helper()
	got, err := eventstore.WebhookEvidence(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// checkBeforeResend: every ok id is present exactly once; every other id
// (failed or indeterminate) at most once; nothing unseen.
func checkBeforeResend(t *testing.T, h *history, got map[string]int) {
	t.Helper()
	checkHistory(t, h, got, false)
}

// checkAfterResend: every id has an ok and is present exactly once.
func checkAfterResend(t *testing.T, h *history, got map[string]int) {
	t.Helper()
	checkHistory(t, h, got, true)
}

func checkHistory(t *testing.T, h *history, got map[string]int, final bool) {
	t.Helper()
	known := map[string]bool{}
	var lost, duplicated, extra, missing []string
	for _, id := range h.ids {
		known[id] = true
		n := got[id]
		switch {
		case n > 1:
			duplicated = append(duplicated, id)
		case h.ok(id) && n == 0:
			lost = append(lost, id)
		case final && n == 0:
			missing = append(missing, id)
		}
	}
	for id := range got {
		if !known[id] {
			extra = append(extra, id)
		}
	}
	for name, ids := range map[string][]string{"lost-write (ok but absent)": lost, "duplicate": duplicated, "unseen (never sent)": extra, "missing after resend": missing} {
		if len(ids) > 0 {
			sort.Strings(ids)
			t.Errorf("%s: %d ids, e.g. %v", name, len(ids), ids[:min(5, len(ids))])
		}
	}
}
