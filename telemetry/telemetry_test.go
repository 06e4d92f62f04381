package telemetry_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopledger/shopledger/telemetry"
)

// sentryServer is a local Sentry: it keeps the envelopes posted to it.
type sentryServer struct {
	*httptest.Server
	mu        sync.Mutex
	envelopes []string
}

func newSentryServer(t *testing.T) *sentryServer {
	t.Helper()
	s := &sentryServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/api/42/envelope/" {
			t.Errorf("sentry got %s %s, want POST /api/42/envelope/", r.Method, r.URL.Path)
		}
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				t.Error(err)
				return
			}
			body = zr
		}
		b, _ := io.ReadAll(body)
		s.mu.Lock()
		s.envelopes = append(s.envelopes, string(b))
		s.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *sentryServer) dsn() string {
	return strings.Replace(s.URL, "http://", "http://publickey@", 1) + "/42"
}

func (s *sentryServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.envelopes)
}

// await waits up to 10 s for an envelope holding want and returns all
// received so far.
func (s *sentryServer) await(want string) string {
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(s.received(), want) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	return s.received()
}

// received returns the envelopes so far, joined.
func (s *sentryServer) received() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.envelopes, "\n---\n")
}

func start(t *testing.T, cfg telemetry.Config) (*telemetry.Telemetry, *slog.Logger, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	tel, logger, err := telemetry.Start(context.Background(), cfg, "ingest", "v1.2.3", slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return tel, logger, &logs
}

func TestErrorsLoggedReachSentryAndStillTheLog(t *testing.T) {
	srv := newSentryServer(t)
	tel, logger, logs := start(t, telemetry.Config{SentryDSN: srv.dsn(), Environment: "test"})
	logger = logger.With("component", "webhooks")
	logger.Info("webhook accepted", "webhook_id", "msg_1")
	logger.Warn("webhook rejected", "reason", "signature")
	logger.Error("webhook not stored", "webhook_id", "msg_2", "err", errors.New("connection refused"))
	tel.Close()

	got := srv.received()
	for _, want := range []string{"webhook not stored", "connection refused", `"service":"ingest"`, "msg_2", `"component":"webhooks"`, "shopledger@v1.2.3", `"environment":"test"`} {
		if !strings.Contains(got, want) {
			t.Errorf("sentry envelope lacks %q:\n%s", want, got)
		}
	}
	// Only the ERROR record is an event. (The envelope quotes source lines
	// around the stack's frames, so the messages of the other records may
	// appear in it; the count tells.)
	if n := srv.count(); n != 1 {
		t.Errorf("sentry received %d envelopes, want 1 (the ERROR record):\n%s", n, got)
	}
	for _, want := range []string{"webhook accepted", "webhook rejected", "webhook not stored"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log lacks %q: Sentry must not take records away from it", want)
		}
	}
}

func TestPanicsReachSentryAndStillPanic(t *testing.T) {
	srv := newSentryServer(t)
	tel, _, _ := start(t, telemetry.Config{SentryDSN: srv.dsn()})
	defer tel.Close()

	func() {
		defer func() {
			if v := recover(); v != "ledger broke" {
				t.Errorf("Recover let through %v, want the original panic value", v)
			}
		}()
		defer tel.Recover()
		panic("ledger broke")
	}()
	if got := srv.await("ledger broke"); !strings.Contains(got, "ledger broke") {
		t.Errorf("sentry did not receive the run's panic:\n%s", got)
	}

	// A panicking handler: reported, and net/http still drops the
	// connection as it does for any panic.
	h := tel.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("handler broke") }), "test")
	web := httptest.NewUnstartedServer(h)
	web.Config.ErrorLog = slog.NewLogLogger(slog.DiscardHandler, slog.LevelError)
	web.Start()
	defer web.Close()
	if resp, err := http.Get(web.URL); err == nil {
		resp.Body.Close()
		t.Errorf("a panicking handler answered %s, want the connection dropped", resp.Status)
	}
	if got := srv.await("handler broke"); !strings.Contains(got, "handler broke") {
		t.Errorf("sentry did not receive the handler's panic:\n%s", got)
	}

	tel.CaptureError(context.Background(), errors.New("ledger backup: disk full"))
	tel.Close()
	if got := srv.await("disk full"); !strings.Contains(got, "disk full") {
		t.Errorf("sentry did not receive the captured error:\n%s", got)
	}
}

func TestOffCostsNothingAndBadSettingsAreRefused(t *testing.T) {
	tel, logger, logs := start(t, telemetry.Config{})
	h := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	if got := tel.Handler(h, "x"); got == nil || logs.Len() != 0 {
		t.Errorf("without settings: handler %v, log %q; want the handler itself and no log line", got, logs.String())
	}
	logger.Error("nothing configured") // must not panic
	tel.Close()
	if tp := telemetry.TraceParent(context.Background()); tp != "" {
		t.Errorf("TraceParent without a span = %q, want empty", tp)
	}

	for _, cfg := range []telemetry.Config{
		{SentryDSN: "not a dsn"},
		{OTLPEndpoint: "collector:4318"},
		{OTLPEndpoint: "ftp://collector"},
		{SampleRatio: 1.5},
	} {
		if _, _, err := telemetry.Start(context.Background(), cfg, "ingest", "dev", slog.New(slog.DiscardHandler)); err == nil {
			t.Errorf("Start(%+v) accepted it", cfg)
		}
	}
}
