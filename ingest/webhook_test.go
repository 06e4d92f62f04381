package ingest_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/ingest"
	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/service/servicetest"
	"github.com/shopledger/shopledger/stdwebhooks"
)

// The Standard Webhooks known-answer vector.
const (
	kavSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	kavID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	kavTS     = 1614265330
	kavBody   = `{"test": 2432232314}`
	kavSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

var (
	secretA = mustSecret()
	secretB = mustSecret()
	// clock is the receiver's injected "now" in most tests.
	clock = time.Unix(1_780_000_000, 0).UTC()
)

func mustSecret() string {
	s, err := stdwebhooks.NewSecret()
	if err != nil {
		panic(err)
	}
	return s
}

// rig is one webhook endpoint over a fresh database.
type rig struct {
	db        *pgtest.Database
	store     *eventstore.Store
	committer *ingest.Committer
	handler   *ingest.WebhookHandler
	reg       *prometheus.Registry
	srv       *httptest.Server
	parses    atomic.Int64
}

type rigOptions struct {
	secrets      []string
	now          time.Time
	before       func() error
	after        func() error
	committerCfg ingest.CommitterConfig
	realClock    bool // judge timestamps by the real clock, not now
}

func newRig(t *testing.T, o rigOptions) *rig {
	t.Helper()
	if o.secrets == nil {
		o.secrets = []string{secretA}
	}
	if o.now.IsZero() {
		o.now = clock
	}
	r := &rig{db: pgtest.New(t), reg: prometheus.NewRegistry()}
	r.store = eventstore.New(r.db.DB)
	var err error
	r.committer, err = ingest.NewCommitter(r.store, o.committerCfg, r.reg)
	if err != nil {
		t.Fatal(err)
	}
	ingest.SetCommitFaults(r.committer, o.before, o.after)
	now := func() time.Time { return o.now }
	if o.realClock {
		now = time.Now
	}
	r.handler, err = ingest.NewWebhookHandler(r.committer, ingest.WebhookConfig{
		Secrets: o.secrets,
		Now:     now,
	}, r.reg)
	if err != nil {
		t.Fatal(err)
	}
	ingest.CountParses(r.handler, func() { r.parses.Add(1) })
	mux := http.NewServeMux()
	mux.Handle(ingest.WebhookPath, r.handler)
	r.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		r.srv.Close()
		r.committer.Close()
	})
	return r
}

// delivery is one webhook request as Etsy would send it.
type delivery struct {
	id, ts, sig string
	body        []byte
	omit        string // header to leave out
}

func signed(t testing.TB, secret, id string, ts time.Time, body string) delivery {
	t.Helper()
	sig, err := stdwebhooks.Sign(secret, id, ts, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return delivery{id: id, ts: strconv.FormatInt(ts.Unix(), 10), sig: sig, body: []byte(body)}
}

func (d delivery) request(t testing.TB, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(d.body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for name, v := range map[string]string{stdwebhooks.HeaderID: d.id, stdwebhooks.HeaderTimestamp: d.ts, stdwebhooks.HeaderSignature: d.sig} {
		if name != d.omit {
			req.Header.Set(name, v)
		}
	}
	return req
}

func (r *rig) send(t testing.TB, d delivery) int {
	t.Helper()
	resp, err := http.DefaultClient.Do(d.request(t, r.srv.URL+ingest.WebhookPath))
	if err != nil {
		t.Fatalf("send webhook: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// serve runs the handler directly, for requests net/http's client refuses
// to send (control characters in headers).
func (r *rig) serve(t testing.TB, req *http.Request) int {
	t.Helper()
	rec := httptest.NewRecorder()
	r.handler.ServeHTTP(rec, req)
	return rec.Code
}

func orderBody(shopID, receiptID int64) string {
	return fmt.Sprintf(`{"event_type":"order.paid","resource_url":"https://openapi.etsy.com/v3/application/shops/%d/receipts/%d","shop_id":%d}`, shopID, receiptID, shopID)
}

func eventCount(t testing.TB, db *sql.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM events`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func evidenceCount(t testing.TB, db *sql.DB, webhookID string) int {
	t.Helper()
	var n int
	err := db.QueryRow(`SELECT count(*) FROM events WHERE type = $1 AND data->>'webhook_id' = $2`, events.TypeWebhookReceived, webhookID).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func evidence(t testing.TB, s *eventstore.Store, webhookID string) (events.Record, events.WebhookReceived) {
	t.Helper()
	recs, err := s.ReadStream(context.Background(), events.WebhookStream(webhookID), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) == 0 {
		t.Fatalf("no evidence for webhook %s", webhookID)
	}
	return recs[0], recs[0].Data.(events.WebhookReceived)
}

// wantStored checks how many events the log holds; why says which.
func (r *rig) wantStored(t testing.TB, want int, why string) {
	t.Helper()
	if n := eventCount(t, r.db.DB); n != want {
		if why != "" {
			why = ": " + why
		}
		t.Errorf("%d events stored, want %d%s", n, want, why)
	}
}

func isSuccess(code int) bool { return code >= 200 && code < 300 }

func TestKnownAnswerVector(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{secrets: []string{kavSecret}, now: time.Unix(kavTS, 0)})
	d := delivery{id: kavID, ts: strconv.Itoa(kavTS), sig: kavSig, body: []byte(kavBody)}
	if code := r.send(t, d); code != http.StatusOK {
		t.Fatalf("known-answer delivery = %d, want 200", code)
	}
	if n := evidenceCount(t, r.db.DB, kavID); n != 1 {
		t.Fatalf("stored %d times, want 1", n)
	}
	d.sig = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=" // same MAC
	d.body = []byte(`{"test": 2432232315}`)                   // one byte changed
	d.id = kavID + "x"
	if code := r.send(t, d); code != http.StatusUnauthorized {
		t.Errorf("tampered body = %d, want 401", code)
	}
}

func TestMissingHeaderIs400WithoutWrite(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{})
	for _, h := range []string{stdwebhooks.HeaderID, stdwebhooks.HeaderTimestamp, stdwebhooks.HeaderSignature} {
		t.Run(h, func(t *testing.T) {
			before := eventCount(t, r.db.DB)
			d := signed(t, secretA, "msg_missing_"+h, clock, orderBody(1, 1))
			d.omit = h
			if code := r.send(t, d); code != http.StatusBadRequest {
				t.Errorf("without %s = %d, want 400", h, code)
			}
			if after := eventCount(t, r.db.DB); after != before {
				t.Errorf("event count %d -> %d, want unchanged", before, after)
			}
		})
	}
}

func TestTimestampToleranceBoundaries(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{})
	for _, c := range []struct {
		offset time.Duration
		want   int
	}{
		{-300 * time.Second, http.StatusOK},
		{300 * time.Second, http.StatusOK},
		{-301 * time.Second, http.StatusUnauthorized},
		{301 * time.Second, http.StatusUnauthorized},
	} {
		t.Run(c.offset.String(), func(t *testing.T) {
			id := "msg_ts_" + c.offset.String()
			if code := r.send(t, signed(t, secretA, id, clock.Add(c.offset), orderBody(1, 1))); code != c.want {
				t.Errorf("timestamp now%+v = %d, want %d", c.offset, code, c.want)
			}
			wantStored := 0
			if c.want == http.StatusOK {
				wantStored = 1
			}
			if n := evidenceCount(t, r.db.DB, id); n != wantStored {
				t.Errorf("stored %d, want %d", n, wantStored)
			}
		})
	}
}

func TestNonIntegerTimestampIs400(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{})
	for _, ts := range []string{"abc", "1.5", ""} {
		t.Run(strconv.Quote(ts), func(t *testing.T) {
			d := signed(t, secretA, "msg_badts", clock, orderBody(1, 1))
			d.ts = ts
			req := d.request(t, "http://ingest"+ingest.WebhookPath)
			// An empty header must reach the handler as present-but-empty.
			req.Header[http.CanonicalHeaderKey(stdwebhooks.HeaderTimestamp)] = []string{ts}
			if code := r.serve(t, req); code != http.StatusBadRequest {
				t.Errorf("timestamp %q = %d, want 400", ts, code)
			}
		})
	}
	r.wantStored(t, 0, "")
}

func TestAnyV1SignatureAmongDecoys(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{})
	good := signed(t, secretA, "msg_decoys", clock, orderBody(1, 1))
	other := signed(t, secretB, "msg_decoys", clock, orderBody(1, 1))
	v1a := "v1a," + strings.TrimPrefix(good.sig, "v1,") // right bytes, wrong scheme
	v2 := "v2," + strings.TrimPrefix(good.sig, "v1,")
	for name, c := range map[string]struct {
		header string
		want   int
	}{
		"valid last":        {other.sig + " " + v1a + " " + good.sig, http.StatusOK},
		"valid first":       {good.sig + " " + other.sig + " v1,bm90LWEtbWFj", http.StatusOK},
		"valid in middle":   {"v1,AAAA " + good.sig + " " + v2, http.StatusOK},
		"only other scheme": {v1a + " " + v2, http.StatusUnauthorized},
		"only decoys":       {other.sig + " v1,AAAA", http.StatusUnauthorized},
	} {
		t.Run(name, func(t *testing.T) {
			d := good
			d.sig = c.header
			if code := r.send(t, d); code != c.want {
				t.Errorf("signatures %q = %d, want %d", c.header, code, c.want)
			}
		})
	}
}

func TestSecretRotation(t *testing.T) {
	t.Parallel()
	removed := mustSecret()
	r := newRig(t, rigOptions{secrets: []string{secretA, secretB}})
	for name, c := range map[string]struct {
		secret string
		want   int
	}{
		"current":  {secretA, http.StatusOK},
		"previous": {secretB, http.StatusOK},
		"removed":  {removed, http.StatusUnauthorized},
	} {
		t.Run(name, func(t *testing.T) {
			if code := r.send(t, signed(t, c.secret, "msg_rot_"+name, clock, orderBody(1, 1))); code != c.want {
				t.Errorf("signed with %s secret = %d, want %d", name, code, c.want)
			}
		})
	}
}

func TestVerifiesExactRawBytes(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{})
	body := orderBody(5, 6)
	d := signed(t, secretA, "msg_raw", clock, body)
	var v any
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	reserialised, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	d.body = reserialised
	if code := r.send(t, d); code != http.StatusUnauthorized {
		t.Errorf("re-serialised body = %d, want 401", code)
	}
	if n := r.parses.Load(); n != 0 {
		t.Errorf("handler decoded %d unverified bodies", n)
	}
	d.body = []byte(body)
	if code := r.send(t, d); code != http.StatusOK {
		t.Errorf("exact body = %d, want 200", code)
	}
	if n := r.parses.Load(); n != 1 {
		t.Errorf("handler decoded %d bodies after one verified delivery, want 1", n)
	}
}

// FuzzNoDecodeBeforeVerification feeds bodies and headers that
// are not signed with the configured secret: the handler must refuse each
// without ever decoding the body.
func FuzzNoDecodeBeforeVerification(f *testing.F) {
	f.Add([]byte(orderBody(1, 2)), "msg_1", "v1,AAAA")
	f.Add([]byte(`{"event_type":`), "msg_2", "")
	f.Add([]byte(kavBody), kavID, kavSig)
	f.Add([]byte{0xff, 0x00}, "", "v1a,xyz v1,")
	var parses atomic.Int64
	h, err := ingest.NewWebhookHandler(refuseAppender{}, ingest.WebhookConfig{
		Secrets: []string{secretA},
		Now:     func() time.Time { return clock },
	}, nil)
	if err != nil {
		f.Fatal(err)
	}
	ingest.CountParses(h, func() { parses.Add(1) })
	f.Fuzz(func(t *testing.T, body []byte, id, sig string) {
		req := httptest.NewRequest(http.MethodPost, ingest.WebhookPath, bytes.NewReader(body))
		req.Header.Set(stdwebhooks.HeaderID, id)
		req.Header.Set(stdwebhooks.HeaderTimestamp, strconv.FormatInt(clock.Unix(), 10))
		req.Header.Set(stdwebhooks.HeaderSignature, sig)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if isSuccess(rec.Code) {
			t.Fatalf("unsigned delivery answered %d", rec.Code)
		}
		if n := parses.Load(); n != 0 {
			t.Fatalf("decoded %d bodies before verification", n)
		}
	})
}

type refuseAppender struct{}

func (refuseAppender) Append(context.Context, events.Event) (bool, error) {
	return false, errors.New("refuseAppender: nothing may be stored")
}

func TestBodyOver64KiBIs413(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{})
	big := `{"event_type":"order.paid","pad":"` + strings.Repeat("x", 1<<20) + `"}`
	for _, chunked := range []bool{true, false} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			d := signed(t, secretA, fmt.Sprintf("msg_big_%v", chunked), clock, big)
			req := d.request(t, r.srv.URL+ingest.WebhookPath)
			if chunked {
				// An io.Reader of unknown length goes out chunked.
				req.Body = io.NopCloser(io.MultiReader(bytes.NewReader(d.body)))
				req.ContentLength = -1
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Errorf("1 MiB body = %d, want 413", resp.StatusCode)
			}
			if chunked && len(resp.Request.TransferEncoding) > 0 && resp.Request.TransferEncoding[0] != "chunked" {
				t.Errorf("request was not chunked: %v", resp.Request.TransferEncoding)
			}
		})
	}
	exact := `{"event_type":"order.paid","pad":"`
	exact += strings.Repeat("x", ingest.MaxWebhookBody-len(exact)-2) + `"}`
	if code := r.send(t, signed(t, secretA, "msg_exact", clock, exact)); code != http.StatusOK {
		t.Errorf("body of exactly 64 KiB = %d, want 200", code)
	}
	r.wantStored(t, 1, "only the 64 KiB one")
}

func TestWebhookIDLimits(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{})
	for name, c := range map[string]struct {
		id   string
		want int
	}{
		"256 bytes":      {strings.Repeat("a", 256), http.StatusOK},
		"257 bytes":      {strings.Repeat("a", 257), http.StatusBadRequest},
		"newline":        {"msg_a\nb", http.StatusBadRequest},
		"nul":            {"msg_a\x00b", http.StatusBadRequest},
		"tab":            {"msg_a\tb", http.StatusBadRequest},
		"space":          {"msg a", http.StatusBadRequest},
		"non-ascii":      {"msg_é", http.StatusBadRequest},
		"del":            {"msg_\x7f", http.StatusBadRequest},
		"printable mark": {"msg_!~{}", http.StatusOK},
	} {
		t.Run(name, func(t *testing.T) {
			d := signed(t, secretA, c.id, clock, orderBody(1, 1))
			req := d.request(t, "http://ingest"+ingest.WebhookPath)
			req.Header[http.CanonicalHeaderKey(stdwebhooks.HeaderID)] = []string{c.id}
			if code := r.serve(t, req); code != c.want {
				t.Errorf("id %q = %d, want %d", c.id, code, c.want)
			}
		})
	}
	r.wantStored(t, 2, "the 2 valid ids")
}

func TestDatabaseDownIs503(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{})
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, pgtest.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	// Registered first so it runs after the cleanup that reopens the
	// database.
	t.Cleanup(func() { admin.Close(ctx) })
	setDown := func(down bool) {
		t.Helper()
		if _, err := admin.Exec(ctx, fmt.Sprintf(`ALTER DATABASE %s ALLOW_CONNECTIONS %v`, r.db.Name, !down)); err != nil {
			t.Fatal(err)
		}
		if down {
			if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1`, r.db.Name); err != nil {
				t.Fatal(err)
			}
		}
	}
	setDown(true)
	t.Cleanup(func() { setDown(false) })
	for i := range 3 {
		code := r.send(t, signed(t, secretA, fmt.Sprintf("msg_down_%d", i), clock, orderBody(1, 1)))
		if code != http.StatusServiceUnavailable {
			t.Errorf("delivery %d with the database down = %d, want 503", i, code)
		}
	}
	setDown(false)
	// The pool recovers without a restart.
	var code int
	for range 50 {
		if code = r.send(t, signed(t, secretA, "msg_down_0", clock, orderBody(1, 1))); code == http.StatusOK {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code != http.StatusOK {
		t.Fatalf("after the database came back = %d, want 200", code)
	}
	r.wantStored(t, 1, "only the retried delivery")
	if got := servicetest.Metric(t, r.reg, "ingest_webhooks_total", map[string]string{"result": "failed", "reason": "database"}); got != 3 {
		t.Errorf("failed deliveries counted %v, want 3", got)
	}
}

func TestNoSuccessUntilCommit(t *testing.T) {
	t.Parallel()
	var fail atomic.Bool
	fail.Store(true)
	r := newRig(t, rigOptions{before: func() error {
		if fail.Load() {
			return errors.New("injected: commit refused")
		}
		return nil
	}})
	d := signed(t, secretA, "msg_commit_fails", clock, orderBody(1, 1))
	checkRefusedThenStoredOnce(t, r, d, "commit failed", func() { fail.Store(false) })
}

// checkRefusedThenStoredOnce sends d while a fault makes its commit fail
// and wants no 2xx and no event stored; then heal ends the fault, and the
// retry must be answered 200 and d stored once.
func checkRefusedThenStoredOnce(t *testing.T, r *rig, d delivery, fault string, heal func()) {
	t.Helper()
	if code := r.send(t, d); isSuccess(code) {
		t.Fatalf("delivery whose %s = %d, want non-2xx", fault, code)
	}
	if n := eventCount(t, r.db.DB); n != 0 {
		t.Fatalf("%d events stored after the %s", n, fault)
	}
	heal()
	if code := r.send(t, d); code != http.StatusOK {
		t.Fatalf("retry after the fault = %d, want 200", code)
	}
	if n := evidenceCount(t, r.db.DB, d.id); n != 1 {
		t.Errorf("stored %d times, want 1", n)
	}
}

// The same, with the failure where it really happens: PostgreSQL refuses
// the COMMIT itself (a deferred constraint trigger raises at commit time,
// after the INSERT succeeded). The sender must not see 2xx and nothing may
// be stored.
func TestCommitRefusedByDatabase(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{})
	for _, stmt := range []string{
		`CREATE FUNCTION refuse_commit() RETURNS trigger LANGUAGE plpgsql AS $$
		 BEGIN RAISE EXCEPTION 'injected: commit refused'; END $$`,
		`CREATE CONSTRAINT TRIGGER refuse_commit AFTER INSERT ON events
		 DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_commit()`,
	} {
		if _, err := r.db.DB.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	d := signed(t, secretA, "msg_commit_refused", clock, orderBody(1, 1))
	checkRefusedThenStoredOnce(t, r, d, "COMMIT was refused", func() {
		if _, err := r.db.DB.Exec(`DROP TRIGGER refuse_commit ON events`); err != nil {
			t.Fatal(err)
		}
	})
}

func TestCrashAfterCommitThenRetry(t *testing.T) {
	t.Parallel()
	var crashed atomic.Int64
	r := newRig(t, rigOptions{after: func() error {
		if crashed.Add(1) == 1 {
			return errors.New("injected: died after commit")
		}
		return nil
	}})
	d := signed(t, secretA, "msg_after_commit", clock, orderBody(1, 1))
	if code := r.send(t, d); isSuccess(code) {
		t.Fatalf("delivery that died after commit = %d, want non-2xx", code)
	}
	if n := evidenceCount(t, r.db.DB, d.id); n != 1 {
		t.Fatalf("committed evidence stored %d times, want 1", n)
	}
	// Etsy retries with the same id, a new timestamp and signature.
	retry := signed(t, secretA, d.id, clock.Add(5*time.Second), orderBody(1, 1))
	if code := r.send(t, retry); code != http.StatusOK {
		t.Fatalf("retry = %d, want 200", code)
	}
	if n := evidenceCount(t, r.db.DB, d.id); n != 1 {
		t.Errorf("after the retry stored %d times, want 1", n)
	}
	if got := servicetest.Metric(t, r.reg, "ingest_webhooks_total", map[string]string{"result": "duplicate", "reason": ""}); got != 1 {
		t.Errorf("retry counted as duplicate %v times, want 1", got)
	}
}

func TestDedupeKeyIsUnique(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	var def string
	err := db.DB.QueryRow(`SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'events'::regclass AND conname = 'events_dedupe_key_key'`).Scan(&def)
	if err != nil {
		t.Fatalf("no unique constraint on events.dedupe_key: %v", err)
	}
	if def != "UNIQUE (dedupe_key)" {
		t.Errorf("constraint = %q, want UNIQUE (dedupe_key)", def)
	}
	// Webhook evidence is keyed by source and id in one column.
	if got := ingest.WebhookDedupeKey("msg_1"); got != "etsy-webhook:msg_1" {
		t.Errorf("WebhookDedupeKey = %q", got)
	}
	s := eventstore.New(db.DB)
	ev := func() events.Event {
		return events.New(events.WebhookStream("msg_1"), 1, clock, events.WebhookReceived{WebhookID: "msg_1"}).WithDedupe(ingest.WebhookDedupeKey("msg_1"))
	}
	if _, err := s.Append(context.Background(), events.WebhookStream("msg_1"), eventstore.Any, ev()); err != nil {
		t.Fatal(err)
	}
	// A raw second insert hits the constraint ...
	_, err = db.DB.Exec(`INSERT INTO events (event_id, stream_id, stream_version, type, schema_version, data, occurred_at, dedupe_key)
		VALUES (gen_random_uuid(), 'other', 1, 'etsy.webhook.received', 1, '{}', now(), 'etsy-webhook:msg_1')`)
	if err == nil || !strings.Contains(err.Error(), "events_dedupe_key_key") {
		t.Errorf("second raw insert: err = %v, want a unique violation", err)
	}
	// ... and the ingest path reports it as a duplicate instead.
	c, err := ingest.NewCommitter(s, ingest.CommitterConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dup, err := c.Append(context.Background(), ev())
	if err != nil || !dup {
		t.Errorf("Append of a stored key = duplicate %v, err %v; want true, nil", dup, err)
	}
}

func TestDuplicateDeliveryAddsNothing(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{})
	for i := range 5 {
		// Every retry has a fresh timestamp and so a fresh signature.
		d := signed(t, secretA, "msg_dup", clock.Add(time.Duration(i)*time.Second), orderBody(1, 1))
		if code := r.send(t, d); code != http.StatusOK {
			t.Errorf("delivery %d = %d, want 200", i, code)
		}
	}
	r.wantStored(t, 1, "")
}

func TestConcurrentSameID(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{})
	const senders = 50
	codes := make([]int, senders)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range senders {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			d := signed(t, secretA, "msg_same", clock.Add(time.Duration(i%10)*time.Second), orderBody(1, 1))
			<-start
			resp, err := http.DefaultClient.Do(d.request(t, r.srv.URL+ingest.WebhookPath))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			codes[i] = resp.StatusCode
		}(i)
	}
	close(start)
	wg.Wait()
	for i, c := range codes {
		if c != http.StatusOK {
			t.Errorf("sender %d got %d, want 200", i, c)
		}
	}
	r.wantStored(t, 1, "")
}

func TestEvidenceRoundTrip(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{})
	body := orderBody(77, 88)
	d := signed(t, secretA, "msg_roundtrip", clock, body)
	req := d.request(t, r.srv.URL+ingest.WebhookPath)
	req.Header.Set("Authorization", "Bearer should-not-be-stored")
	req.Header.Set("X-Api-Key", "key:secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("delivery = %d", resp.StatusCode)
	}
	rec, ev := evidence(t, r.store, d.id)
	got := struct {
		ID, Type, URL, Body string
		TS, Shop, RecShop   int64
		Occurred            time.Time
		Dedupe              string
	}{ev.WebhookID, ev.EtsyEventType, ev.ResourceURL, string(ev.RawBody), ev.Timestamp, ev.ShopID, rec.ShopID, rec.OccurredAt, rec.DedupeKey}
	want := got
	want.ID, want.Type, want.Body = d.id, "order.paid", body
	want.URL = "https://openapi.etsy.com/v3/application/shops/77/receipts/88"
	want.TS, want.Shop, want.RecShop = clock.Unix(), 77, 77
	want.Occurred, want.Dedupe = clock, "etsy-webhook:msg_roundtrip"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("evidence (-want +got):\n%s", diff)
	}
	if !ev.ReceivedAt.Equal(clock) {
		t.Errorf("received_at = %v, want %v", ev.ReceivedAt, clock)
	}
	for _, h := range []string{"authorization", "x-api-key"} {
		if v := ev.Headers[h]; v != "[redacted]" {
			t.Errorf("header %s stored as %q, want [redacted]", h, v)
		}
	}
	if rec.Metadata.CorrelationID == "" || rec.Metadata.Source != ingest.EvidenceSource {
		t.Errorf("metadata = %+v, want a correlation id and source %s", rec.Metadata, ingest.EvidenceSource)
	}
	// The stored body and headers verify again, as an auditor would check.
	h := http.Header{}
	for k, v := range ev.Headers {
		h.Set(k, v)
	}
	if err := stdwebhooks.Verify(h, ev.RawBody, []string{secretA}, time.Unix(ev.Timestamp, 0)); err != nil {
		t.Errorf("stored evidence does not verify: %v", err)
	}
}

func TestAppendOnlyForAppRole(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{})
	if code := r.send(t, signed(t, secretA, "msg_immutable", clock, orderBody(1, 1))); code != http.StatusOK {
		t.Fatal(code)
	}
	ctx := context.Background()
	for _, stmt := range []string{
		`UPDATE events SET type = 'x'`,
		`DELETE FROM events`,
		`TRUNCATE events`,
	} {
		for _, role := range []string{"shopledger_app", ""} {
			t.Run(fmt.Sprintf("%s as %q", stmt, role), func(t *testing.T) {
				tx, err := r.db.DB.BeginTx(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer tx.Rollback() //nolint:errcheck
				if role != "" {
					if _, err := tx.Exec(`SET LOCAL ROLE ` + role); err != nil {
						t.Fatal(err)
					}
				}
				_, err = tx.Exec(stmt)
				if err == nil {
					t.Fatalf("%s succeeded", stmt)
				}
				// The app role lacks the grant; even the owner meets the trigger.
				if !strings.Contains(err.Error(), "permission denied") && !strings.Contains(err.Error(), "append-only") {
					t.Errorf("%s: err = %v, want permission denied or append-only", stmt, err)
				}
			})
		}
	}
	r.wantStored(t, 1, "after the attempts")
}

func TestUnknownTypesAndShapesStored(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{})
	for name, c := range map[string]struct {
		body     string
		wantType string
		wantShop int64
	}{
		"future event type": {`{"event_type":"shop.vacation_started","resource_url":"https://openapi.etsy.com/v3/application/shops/5","shop_id":5}`, "shop.vacation_started", 5},
		"flat with extras":  {`{"event_type":"order.paid","resource_url":"https://openapi.etsy.com/v3/application/shops/5/receipts/9","shop_id":"5","new_field":{"a":[1,2]}}`, "order.paid", 5},
		"old nested shape":  {`{"event_type":"ORDER_PAID","event_id":"evt_1","created_at":1614265330,"data":{"receipt_id":9,"shop_id":5}}`, "ORDER_PAID", 0},
		"not json":          {`hello`, "", 0},
	} {
		t.Run(name, func(t *testing.T) {
			id := "msg_shape_" + strings.ReplaceAll(name, " ", "_")
			if code := r.send(t, signed(t, secretA, id, clock, c.body)); code != http.StatusOK {
				t.Fatalf("delivery = %d, want 200", code)
			}
			_, ev := evidence(t, r.store, id)
			if ev.EtsyEventType != c.wantType || ev.ShopID != c.wantShop || string(ev.RawBody) != c.body {
				t.Errorf("stored type %q shop %d body %q; want %q, %d, the raw body", ev.EtsyEventType, ev.ShopID, ev.RawBody, c.wantType, c.wantShop)
			}
		})
	}
}

func TestUnconnectedShopAcknowledged(t *testing.T) {
	t.Parallel()
	// No shop is connected in this database at all: the evidence is still
	// stored and acknowledged. The fetcher's side is in fetcher_test.go.
	r := newRig(t, rigOptions{})
	for i, shop := range []int64{404, 410, 999999} {
		id := fmt.Sprintf("msg_unconnected_%d", i)
		code := r.send(t, signed(t, secretA, id, clock, orderBody(shop, 1)))
		if code != http.StatusOK {
			t.Errorf("shop %d = %d, want 200 (never 4xx, never 410)", shop, code)
		}
		if n := evidenceCount(t, r.db.DB, id); n != 1 {
			t.Errorf("shop %d evidence stored %d times, want 1", shop, n)
		}
	}
}

func TestGroupCommitSharesTransactions(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{committerCfg: ingest.CommitterConfig{Workers: 1}})
	const senders = 64
	var wg sync.WaitGroup
	for i := range senders {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			d := signed(t, secretA, fmt.Sprintf("msg_group_%d", i), clock, orderBody(1, int64(i)))
			if code := r.send(t, d); code != http.StatusOK {
				t.Errorf("sender %d = %d", i, code)
			}
		}(i)
	}
	wg.Wait()
	var rows, txs int
	if err := r.db.DB.QueryRow(`SELECT count(*), count(DISTINCT transaction_id) FROM events`).Scan(&rows, &txs); err != nil {
		t.Fatal(err)
	}
	if rows != senders {
		t.Fatalf("%d events, want %d", rows, senders)
	}
	t.Logf("%d deliveries committed in %d transactions", rows, txs)
	if txs > rows {
		t.Errorf("more transactions (%d) than events (%d)", txs, rows)
	}
}

func TestRejectionsAreCountedByReason(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{})
	bad := signed(t, secretB, "msg_wrong_secret", clock, orderBody(1, 1))
	r.send(t, bad)
	old := signed(t, secretA, "msg_old", clock.Add(-time.Hour), orderBody(1, 1))
	r.send(t, old)
	r.send(t, signed(t, secretA, "msg_ok", clock, orderBody(1, 1)))
	for _, c := range []struct {
		labels map[string]string
		want   float64
	}{
		{map[string]string{"result": "rejected", "reason": "signature"}, 1},
		{map[string]string{"result": "rejected", "reason": "expired"}, 1},
		{map[string]string{"result": "accepted", "reason": ""}, 1},
	} {
		if got := servicetest.Metric(t, r.reg, "ingest_webhooks_total", c.labels); got != c.want {
			t.Errorf("ingest_webhooks_total%v = %v, want %v", c.labels, got, c.want)
		}
	}
	if samples := servicetest.Metric(t, r.reg, "ingest_append_duration_seconds", nil); samples != 1 {
		t.Errorf("append latency histogram has %v samples, want 1 (one stored delivery)", samples)
	}
}
