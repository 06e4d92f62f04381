package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/shopledger/shopledger/service"
)

func TestRunAnswersWithTheServersHealth(t *testing.T) {
	healthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer healthy.Close()
	sick := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer sick.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()

	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr bool
	}{
		{name: "url argument, 200", args: []string{healthy.URL}},
		{name: "url from the environment, 200", env: map[string]string{"SHOPLEDGER_HEALTHCHECK_URL": healthy.URL}},
		{name: "argument wins over the environment", args: []string{healthy.URL}, env: map[string]string{"SHOPLEDGER_HEALTHCHECK_URL": sick.URL}},
		{name: "503", args: []string{sick.URL}, wantErr: true},
		{name: "nobody listening", args: []string{closed.URL}, wantErr: true},
		{name: "two arguments", args: []string{healthy.URL, healthy.URL}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(context.Background(), tc.args, service.MapEnv(tc.env), &bytes.Buffer{})
			if (err != nil) != tc.wantErr {
				t.Fatalf("run(%q) = %v, want error: %v", tc.args, err, tc.wantErr)
			}
		})
	}
}

func TestVersionPrintsTheStampedVersion(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--version"}, service.MapEnv(nil), &out); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(out.String()), "shopledger "+service.Version; got != want {
		t.Errorf("--version printed %q, want %q", got, want)
	}
}
