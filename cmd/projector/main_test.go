package main

import (
	"net/http"
	"testing"

	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/service/servicetest"
)

func TestStartsServesOpsAndStops(t *testing.T) {
	db := pgtest.New(t)
	p := servicetest.Start(t, run, map[string]string{
		"SHOPLEDGER_DATABASE_URL":   db.RoleURL(pgtest.ProjectorRole),
		"SHOPLEDGER_PROJECTOR_ADDR": "127.0.0.1:0",
	}, false)
	base := p.Base
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
	p.Stop()
}
