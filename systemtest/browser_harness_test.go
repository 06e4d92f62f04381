package systemtest_test

// The browser tests' plumbing: headless Chromium driven with chromedp,
// one isolated browser context (its own cookies) per person, screenshots
// at a desktop and a phone width, and axe-core run in the page.

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// axeSource is axe-core as `make assets` vendored it from the version
// pinned in web/package.json. It is injected into pages under test only;
// the app never serves it.
//
//go:embed testdata/axe/axe.min.js
var axeSource string

// stepTimeout bounds every browser action: a page that never loads or an
// element that never appears fails the test instead of hanging it.
const stepTimeout = 30 * time.Second

// widths are the screenshot widths: a laptop and a phone.
var widths = []struct {
	name          string
	width, height int64
	mobile        bool
}{
	{"1280", 1280, 800, false},
	{"390", 390, 844, true},
}

// chromiumPath finds the browser as scripts/chromium-ensure does. Without
// one the test skips, naming the script, except under CI=true, where it
// fails.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("SHOPLEDGER_CHROMIUM"); p != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
		missingBrowser(t, "SHOPLEDGER_CHROMIUM="+p+" does not exist")
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	missingBrowser(t, "no chromium, chromium-browser or google-chrome on PATH")
	return ""
}

func missingBrowser(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("browser tests: %s; under CI=true a missing browser is a failure (scripts/chromium-ensure installs Debian's chromium as root)", why)
	}
	t.Skipf("browser tests: %s; run scripts/chromium-ensure (as root it installs Debian's chromium)", why)
}

// artifactsDir is where screenshots go: $SHOPLEDGER_ARTIFACTS/screenshots,
// else test-artifacts/screenshots at the module root (git-ignored).
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join("..", "test-artifacts", "screenshots")
	if a := os.Getenv("SHOPLEDGER_ARTIFACTS"); a != "" {
		dir = filepath.Join(a, "screenshots")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		t.Fatal(err)
	}
	return abs
}

// chrome is one headless Chromium for a test: a fresh profile in a
// temporary directory, killed when the test ends (and by the kernel if
// the test process dies first: chromedp starts it with Pdeathsig).
type chrome struct {
	t    *testing.T
	ctx  context.Context
	base string // the app's URL
	dir  string // screenshots
}

func newChrome(t *testing.T, base string) *chrome {
	t.Helper()
	path := chromiumPath(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
		chromedp.DisableGPU,
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("lang", "en-GB"),
	)
	// Chromium refuses to start its sandbox as root (CI runs as root).
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithErrorf(t.Logf))
	// Cancelling the allocator kills the browser and waits for it.
	t.Cleanup(cancelAlloc)
	t.Cleanup(cancel)
	// The first Run starts the browser; it must not carry a timeout (that
	// would end the browser with it), so the start is bounded from outside.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start %s: %v", path, err)
		}
	case <-time.After(time.Minute):
		cancelAlloc()
		t.Fatalf("%s did not start within a minute", path)
	}
	return &chrome{t: t, ctx: ctx, base: strings.TrimRight(base, "/"), dir: artifactsDir(t)}
}

// tab is one person's browser: a tab in a browser context of its own, so
// its cookies are nobody else's.
type tab struct {
	c    *chrome
	t    *testing.T
	ctx  context.Context
	name string
}

func (c *chrome) tab(t *testing.T, name string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(c.ctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	// As with the browser, the first Run opens the tab for the life of its
	// context: it carries no timeout (a timeout would close the tab when
	// it ends), and is bounded from outside.
	opened := make(chan error, 1)
	go func() { opened <- chromedp.Do(ctx) }()
	select {
	case err := <-opened:
		if err != nil {
			t.Fatalf("%s: open a tab: %v", name, err)
		}
	case <-time.After(stepTimeout):
		cancel()
		t.Fatalf("%s: no tab within %s", name, stepTimeout)
	}
	return &tab{c: c, t: t, ctx: ctx, name: name}
}

// do runs actions within stepTimeout, failing the test with what on error.
func (b *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %s: %v", b.name, what, err)
	}
}

// url makes path absolute on the app (an absolute URL is kept).
func (b *tab) url(path string) string {
	if strings.HasPrefix(path, "http://") || strings.HasPrefix(path, "https://") {
		return path
	}
	return b.c.base + path
}

// open loads path and returns the HTTP status of the document.
func (b *tab) open(path string) int {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(b.url(path)))
	if err != nil {
		b.t.Fatalf("%s: open %s: %v", b.name, path, err)
	}
	return int(resp.Status)
}

// submit runs the steps (which fill a form and click its button) and
// waits for the page the form leads to, returning its status.
func (b *tab) submit(what string, steps ...chromedp.Action[chromedp.Void]) int {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, steps...)
	if err != nil {
		b.t.Fatalf("%s: %s: %v", b.name, what, err)
	}
	return int(resp.Status)
}

// eval runs a script in the page and decodes its JSON value into out.
func (b *tab) eval(script string, out any) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](script, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("%s: evaluate %.60q: %v", b.name, script, err)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			b.t.Fatalf("%s: evaluate %.60q: decode %s: %v", b.name, script, raw, err)
		}
	}
}

// path is the current page's path and query.
func (b *tab) path() string {
	var p string
	b.eval(`location.pathname + location.search`, &p)
	return p
}

// text is the page's visible text, for failure messages and checks.
func (b *tab) text() string {
	var s string
	b.eval(`document.body ? document.body.innerText : ""`, &s)
	return s
}

// login logs in through the real login form.
func (b *tab) login(email, password string) {
	b.t.Helper()
	if st := b.open("/login"); st != http.StatusOK {
		b.t.Fatalf("%s: /login answered %d", b.name, st)
	}
	st := b.submit("log in as "+email,
		chromedp.SendKeys(chromedp.CSS(`form[action="/login"] input[name="email"]`), email),
		chromedp.SendKeys(chromedp.CSS(`form[action="/login"] input[name="password"]`), password),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type="submit"]`)),
	)
	if p := b.path(); st != http.StatusOK || strings.HasPrefix(p, "/login") {
		b.t.Fatalf("%s: logging in as %s ended on %s (%d):\n%s", b.name, email, p, st, b.text())
	}
}

// cookies are the browser's cookies for the app, to fetch a download
// with the same session.
func (b *tab) cookies() []*http.Cookie {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{b.c.base + "/"}})
	if err != nil {
		b.t.Fatalf("%s: read cookies: %v", b.name, err)
	}
	var out []*http.Cookie
	for _, c := range res.Cookies {
		out = append(out, &http.Cookie{Name: c.Name, Value: c.Value})
	}
	return out
}

var unsafeName = regexp.MustCompile(`[^a-z0-9]+`)

// shotName turns a label into a file name: "owner /products/{id}" →
// "owner-products-id".
func shotName(label string) string {
	s := strings.Trim(unsafeName.ReplaceAllString(strings.ToLower(label), "-"), "-")
	if s == "" {
		s = "home"
	}
	return s
}

// screenshot saves the whole page at each width as NAME-WIDTH.png in the
// artefacts directory and returns the files by width.
func (b *tab) screenshot(name string) map[string]string {
	b.t.Helper()
	files := map[string]string{}
	for _, w := range widths {
		ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
		png, err := chromedp.Run(ctx, func(ctx context.Context, t *chromedp.Target) ([]byte, error) {
			if err := emulate(ctx, t, w.width, w.height, w.mobile); err != nil {
				return nil, err
			}
			if err := checkLayout(ctx, t); err != nil {
				return nil, err
			}
			return chromedp.FullScreenshot(100)(ctx, t)
		})
		cancel()
		if err != nil {
			b.t.Fatalf("%s: screenshot %s at %s px: %v", b.name, name, w.name, err)
		}
		f := filepath.Join(b.c.dir, name+"-"+w.name+".png")
		if err := os.WriteFile(f, png, 0o644); err != nil {
			b.t.Fatal(err)
		}
		files[w.name] = f
	}
	// Back to the window's own size for what follows.
	b.do("clear the emulated size", chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.ClearDeviceMetricsOverride, cdp.Empty{})
		return err
	}))
	return files
}

// layoutProblems lists what the page at its current width lays out
// wrongly: cells of tables in a .scroll box that do not lay out as table
// cells (such tables keep their rows and columns at every width and
// scroll sideways on a phone; a cell stacked as a block sits at the
// table's full width, where a right-aligned figure is out of sight), and
// a page wider than the window, which scrolls sideways as a whole, with
// the elements that reach its right edge.
const layoutProblems = `(() => {
	const out = [];
	const describe = e => e.outerHTML.slice(0, 160);
	for (const c of document.querySelectorAll(".scroll th, .scroll td")) {
		if (getComputedStyle(c).display !== "table-cell") {
			out.push("a cell of a scrolling table is stacked, not laid out as a table: " + describe(c));
			break;
		}
	}
	const w = document.documentElement.clientWidth, sw = document.documentElement.scrollWidth;
	if (sw > w) {
		// Elements that reach the page's right edge, or whose content
		// spills out of them there (an unbroken word).
		const edge = [...document.body.querySelectorAll("*")].filter(e => Math.ceil(e.getBoundingClientRect().right) >= sw - 1 ||
			(e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX === "visible" && e.getBoundingClientRect().left + e.scrollWidth >= sw - 1));
		// The innermost ones say what is too wide; their ancestors only
		// follow them.
		const inner = edge.filter(e => !edge.some(o => o !== e && e.contains(o))).slice(0, 3).map(describe);
		out.push("the page is " + sw + " px wide in a " + w + " px window; at its right edge: " + inner.join(" · "));
	}
	return out;
})()`

// emulate gives the page a window of width × height CSS pixels, as a
// phone's when mobile.
func emulate(ctx context.Context, t *chromedp.Target, width, height int64, mobile bool) error {
	_, err := cdp.Call(ctx, t, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{
		Width: width, Height: height, DeviceScaleFactor: 1, Mobile: mobile})
	return err
}

// checkLayout fails with the layout problems of the page at its current
// width.
func checkLayout(ctx context.Context, t *chromedp.Target) error {
	raw, err := chromedp.Evaluate[[]byte](layoutProblems)(ctx, t)
	if err != nil {
		return err
	}
	var problems []string
	if err := json.Unmarshal(raw, &problems); err != nil {
		return err
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// axeViolation is one rule axe found broken, with the elements that break it.
type axeViolation struct {
	ID      string `json:"id"`
	Impact  string `json:"impact"`
	Help    string `json:"help"`
	HelpURL string `json:"helpUrl"`
	Nodes   []struct {
		Target []any  `json:"target"`
		HTML   string `json:"html"`
	} `json:"nodes"`
}

// axeScript runs axe on the whole document and returns its violations.
const axeScript = `axe.run(document, {resultTypes: ["violations"]}).then(r => r.violations.map(v => ({
	id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
	nodes: v.nodes.map(n => ({target: n.target, html: n.html.slice(0, 200)}))})))`

// axe injects the vendored axe-core into the page (through the DevTools
// protocol, which the page's Content-Security-Policy does not govern: the
// page itself still runs no script) and fails the test for every
// violation of impact serious or critical, one readable entry each.
func (b *tab) axe(label string) {
	b.t.Helper()
	if bad := b.axeSerious(label); len(bad) > 0 {
		b.t.Errorf("%s: %s has %d serious or critical accessibility violations:\n%s", b.name, label, len(bad), strings.Join(bad, "\n"))
	}
}

// axeSerious runs axe-core in the page and describes each violation of
// impact serious or critical: rule id, impact, help, the elements' CSS
// selectors and where the rule is explained.
func (b *tab) axeSerious(label string) []string {
	b.t.Helper()
	var loaded bool
	b.eval(`typeof axe === "object"`, &loaded)
	if !loaded {
		ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
		_, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](axeSource))
		cancel()
		if err != nil {
			b.t.Fatalf("%s: inject axe-core into %s: %v", b.name, label, err)
		}
	}
	var all []axeViolation
	b.eval(axeScript, &all)
	var bad []string
	for _, v := range all {
		if v.Impact != "serious" && v.Impact != "critical" {
			continue
		}
		var targets []string
		for _, n := range v.Nodes {
			targets = append(targets, fmt.Sprint(n.Target...))
		}
		if len(targets) > 8 {
			targets = append(targets[:8], fmt.Sprintf("… %d more", len(targets)-8))
		}
		bad = append(bad, fmt.Sprintf("  %s (%s): %s\n    at %s\n    see %s", v.ID, v.Impact, v.Help, strings.Join(targets, ", "), v.HelpURL))
	}
	return bad
}

// inboxMessage is one e-mail as the local inbox's page shows it.
type inboxMessage struct {
	Subject string `json:"subject"`
	Meta    string `json:"meta"`
	Body    string `json:"body"`
}

// waitMail reloads the local inbox's page in b until a message matches,
// and returns it.
func (b *tab) waitMail(inboxURL string, timeout time.Duration, match func(inboxMessage) bool) inboxMessage {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if st := b.open(inboxURL); st != http.StatusOK {
			b.t.Fatalf("%s: the inbox answered %d", b.name, st)
		}
		var msgs []inboxMessage
		b.eval(`Array.from(document.querySelectorAll("article")).map(a => ({
			subject: a.querySelector("h2").innerText,
			meta: a.querySelector(".meta").innerText,
			body: a.querySelector("pre").innerText}))`, &msgs)
		for _, m := range msgs {
			if match(m) {
				return m
			}
		}
		if time.Now().After(deadline) {
			var subjects []string
			for _, m := range msgs {
				subjects = append(subjects, m.Subject+" ("+m.Meta+")")
			}
			b.t.Fatalf("%s: no matching e-mail in the inbox within %s; it holds:\n  %s", b.name, timeout, strings.Join(subjects, "\n  "))
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// fetch GETs path over plain HTTP with the tab's cookies, without
// following redirects, and returns the status and content type: what a
// download would be, without the browser's download machinery.
func (b *tab) fetch(path string) (int, string) {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.url(path), nil)
	if err != nil {
		b.t.Fatal(err)
	}
	for _, c := range b.cookies() {
		req.AddCookie(c)
	}
	client := &http.Client{Timeout: stepTimeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		b.t.Fatalf("%s: GET %s: %v", b.name, path, err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Content-Type")
}
