package systemtest_test

import (
	"bytes"
	"context"
	"errors"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestBrowserHarness checks the browser tests' own tools on two small
// pages served with the app's Content-Security-Policy (no script at
// all): axe-core still runs, finds an image without alternative text on
// one page and nothing on the other; screenshots are PNGs at each width;
// a redirect is followed to the page it names; the vendored axe is the
// version web/package.json pins; and a test's browser process is gone
// when the test ends.
func TestBrowserHarness(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	pkg, err := os.ReadFile("../web/package.json")
	if err != nil {
		t.Fatal(err)
	}
	pinned := regexp.MustCompile(`"axe-core":\s*"([0-9.]+)"`).FindSubmatch(pkg)
	if pinned == nil || !strings.HasPrefix(axeSource, "/*! axe v"+string(pinned[1])+"\n") {
		t.Fatalf("systemtest/testdata/axe/axe.min.js is not the axe-core web/package.json pins (%s); run make assets", pinned)
	}

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		switch r.URL.Path {
		case "/":
			http.Redirect(w, r, "/good", http.StatusSeeOther)
		case "/good":
			_, _ = w.Write([]byte(`<!doctype html><html lang="en"><head><meta name="viewport" content="width=device-width, initial-scale=1"><title>Good</title></head><body><main><h1>Good</h1><p>Fine.</p></main></body></html>`))
		case "/wide":
			_, _ = w.Write([]byte(`<!doctype html><html lang="en"><head><meta name="viewport" content="width=device-width, initial-scale=1"><title>Wide</title></head><body><main><h1>Wide</h1><p id="wide">` + strings.Repeat("unbroken", 80) + `</p></main></body></html>`))
		case "/bad":
			_, _ = w.Write([]byte(`<!doctype html><html lang="en"><head><meta name="viewport" content="width=device-width, initial-scale=1"><title>Bad</title></head><body><main><h1>Bad</h1><img src="/x.png" id="nameless"></main></body></html>`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	t.Setenv("SHOPLEDGER_ARTIFACTS", t.TempDir())
	c := newChrome(t, srv.URL)
	b := c.tab(t, "harness")

	if st := b.open("/"); st != http.StatusOK || b.path() != "/good" {
		t.Fatalf("open / ended on %s with %d, want /good with 200", b.path(), st)
	}
	if bad := b.axeSerious("/good"); len(bad) != 0 {
		t.Errorf("axe on a clean page: %v", bad)
	}
	for width, f := range b.screenshot("good") {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.DecodeConfig(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if got := img.Width; (width == "1280" && got != 1280) || (width == "390" && got != 390) {
			t.Errorf("the %s px screenshot is %d px wide", width, got)
		}
	}
	// A page wider than a phone's window fails the layout check, naming
	// the element that reaches the edge; the clean page passes it.
	layoutAt390 := func() error {
		ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
		defer cancel()
		_, err := chromedp.Run(ctx, func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
			if err := emulate(ctx, t, 390, 844, true); err != nil {
				return chromedp.Void{}, err
			}
			return chromedp.Void{}, checkLayout(ctx, t)
		})
		return err
	}
	if err := layoutAt390(); err != nil {
		t.Errorf("layout of a clean page at 390 px: %v", err)
	}
	b.open("/wide")
	if err := layoutAt390(); err == nil || !strings.Contains(err.Error(), "px wide in a 390 px window") || !strings.Contains(err.Error(), `id="wide"`) {
		t.Errorf("layout of a page with an unbroken 640-character word at 390 px: %v, want it named as too wide", err)
	}
	if st := b.open("/missing"); st != http.StatusNotFound {
		t.Errorf("open /missing: %d, want 404", st)
	}
	b.open("/bad")
	bad := b.axeSerious("/bad")
	if len(bad) != 1 || !strings.Contains(bad[0], "image-alt (critical)") || !strings.Contains(bad[0], "#nameless") {
		t.Errorf("axe on a page with an image without alt: %q, want one image-alt violation at #nameless", bad)
	}

	// The browser of a test is gone once the test's cleanups have run.
	var pid int
	t.Run("browser ends with its test", func(t *testing.T) {
		c := newChrome(t, srv.URL)
		pid = chromedp.FromContext(c.ctx).Browser.Process().Pid
		if err := syscall.Kill(pid, 0); err != nil {
			t.Fatalf("browser pid %d not running during the test: %v", pid, err)
		}
	})
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("browser pid %d still there after its test ended (kill -0: %v)", pid, err)
	}
}
