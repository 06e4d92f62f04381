package service_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shopledger/shopledger/service"
	"github.com/shopledger/shopledger/service/servicetest"
)

func TestReadyzNamesFailingChecksAndLogsWhy(t *testing.T) {
	var logs bytes.Buffer
	ready := &service.Readiness{Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	raw := errors.New(`failed to connect to host=10.0.3.7 user=app: FATAL: password authentication failed`)
	ready.Add("database", func(context.Context) error { return raw })
	ready.Add("projections", func(context.Context) error { return nil })
	mux := service.OpsMux(service.NewRegistry(), ready)

	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable || rec.Body.String() != "database: not ready\n" {
		t.Errorf("/readyz = %d %q, want 503 naming the check only", rec.Code, rec.Body.String())
	}
	if !strings.Contains(logs.String(), "password authentication failed") {
		t.Errorf("the log lacks the reason:\n%s", logs.String())
	}
}

func TestServeAllServesEveryListenerUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &servicetest.Output{}
	done := make(chan error, 1)
	hello := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("public")) })
	go func() {
		done <- service.ServeAll(ctx, out, slog.New(slog.DiscardHandler),
			service.Listener{Addr: "127.0.0.1:0", Handler: hello, Banner: "x listening on"},
			service.Listener{Addr: "127.0.0.1:0", Handler: http.HandlerFunc(service.Healthz), Banner: service.OpsBanner("x")})
	}()
	public, ops := out.After("x listening on "), out.After("x ops endpoints on ")
	for url, want := range map[string]string{public: "public", ops: "ok\n"} {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		resp.Body.Close()
		if b.String() != want {
			t.Errorf("GET %s = %q, want %q", url, b.String(), want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("ServeAll after cancel: %v", err)
	}
}

func TestServeAllBindsAllOrNone(t *testing.T) {
	err := service.ServeAll(context.Background(), &bytes.Buffer{}, slog.New(slog.DiscardHandler),
		service.Listener{Addr: "127.0.0.1:0", Handler: http.NotFoundHandler(), Banner: "a"},
		service.Listener{Addr: "256.0.0.1:0", Handler: http.NotFoundHandler(), Banner: "b"})
	if err == nil || !strings.Contains(err.Error(), "listen 256.0.0.1:0") {
		t.Errorf("ServeAll with an unusable address = %v", err)
	}
}

// A draining listener keeps answering after shutdown is asked, while its
// /healthz tells the proxy to stop sending, and keeps no connection alive.
func TestServeAllDrainsBeforeShutdown(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &servicetest.Output{}
	done := make(chan error, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", service.Healthz)
	mux.HandleFunc("GET /work", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("done")) })
	go func() {
		done <- service.ServeAll(ctx, out, slog.New(slog.DiscardHandler),
			service.Listener{Addr: "127.0.0.1:0", Handler: mux, Banner: "d listening on", Drain: 3 * time.Second})
	}()
	base := out.After("d listening on ")
	get := func(path string) (int, string, bool) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String(), resp.Close
	}
	if code, _, _ := get("/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz before shutdown: %d", code)
	}
	cancel()
	// Draining: health says no, work is still done, connections close.
	deadline := time.Now().Add(2 * time.Second)
	for {
		code, body, _ := get("/healthz")
		if code == http.StatusServiceUnavailable && body == "draining\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz after shutdown was asked: %d %q, want 503 draining", code, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code, body, closed := get("/work"); code != http.StatusOK || body != "done" || !closed {
		t.Errorf("GET /work while draining = %d %q, connection closed %t; want 200 done, closed", code, body, closed)
	}
	if err := <-done; err != nil {
		t.Errorf("ServeAll after the drain: %v", err)
	}
}
