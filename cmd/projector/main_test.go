package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/service"
)

func TestStartsServesOpsAndStops(t *testing.T) {
	db := pgtest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, w := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, nil, service.MapEnv(map[string]string{
			"SHOPLEDGER_DATABASE_URL":   db.RoleURL(pgtest.ProjectorRole),
			"SHOPLEDGER_PROJECTOR_ADDR": "127.0.0.1:0",
		}), w)
		w.Close()
	}()
	base := readBaseURL(t, out)
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d, want 200", path, resp.StatusCode)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run after shutdown: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not stop after its context ended")
	}
}

func readBaseURL(t *testing.T, r io.Reader) string {
	t.Helper()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if _, after, ok := strings.Cut(sc.Text(), " listening on "); ok {
				lines <- after
			}
		}
		close(lines)
	}()
	select {
	case u, ok := <-lines:
		if !ok {
			t.Fatal("binary exited before listening")
		}
		go func() {
			for range lines {
			}
		}()
		return u
	case <-time.After(30 * time.Second):
		t.Fatal("binary did not start listening")
	}
	return ""
}
