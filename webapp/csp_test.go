package webapp_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestFormActionAllowsTheConnectFlow: "Connect an Etsy shop" posts to the
// app, which redirects to ingest, which redirects to Etsy's consent page.
// Browsers check form-action at each of those redirects, so the pages
// name both origins, and no other.
func TestFormActionAllowsTheConnectFlow(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	b := s.browser("visitor@example.com")
	a := s.must(b.get("/login"), http.StatusOK, "login page")
	csp := a.header.Get("Content-Security-Policy")
	want := "form-action 'self' https://ingest.test https://www.etsy.com;"
	if !strings.Contains(csp, want) {
		t.Errorf("Content-Security-Policy %q, want %q in it", csp, want)
	}
}
