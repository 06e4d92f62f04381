package systemtest_test

// The browser tests: headless Chromium over the whole system as make run
// starts it. TestBrowser walks every page route of the app as each kind
// of person (status, screenshots at 1280 and 390 px, axe-core), follows a
// seller through the stock pages, then has a newcomer connect a shop of
// their own through the simulator's consent page.
//
// Screenshots go to test-artifacts/screenshots/ (or
// $SHOPLEDGER_ARTIFACTS/screenshots). With SHOPLEDGER_DOC_IMAGES set to a
// directory (make screenshots sets docs/images), the 1280 px shots of the
// pages docs/user-guide.md shows are copied there under the guide's
// names.

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/shopledger/shopledger/webapp"
)

// docImages names, by route pattern (parameters written {}), the guide's
// screenshot of that page, taken as who. A page not yet in the app is
// simply not copied.
var docImages = map[string]struct{ who, file string }{
	"/login":                           {"visitor", "login.png"},
	"/":                                {"owner", "dashboard.png"},
	"/products":                        {"owner", "products.png"},
	"/products/{}":                     {"owner", "product.png"},
	"/products/{}/variants/{}":         {"owner", "variant.png"},
	"/products/{}/variants/{}/explain": {"auditor", "explain.png"},
	"/sales":                           {"owner", "sales.png"},
	"/alerts":                          {"owner", "alerts.png"},
	"/shops":                           {"owner", "shops.png"},
	"/shops/{}":                        {"owner", "shop.png"},
	"/channels":                        {"owner", "channels.png"},
	"/members":                         {"owner", "members.png"},
	"/tokens":                          {"owner", "tokens.png"},
	"/log":                             {"auditor", "event-log.png"},
	"/audit":                           {"owner", "audit.png"},
	"/account":                         {"owner", "account.png"},
}

// publicPages are the GET routes for visitors without a session.
var publicPages = []string{"/login", "/signup", "/password/forgot"}

// linkPages are opened from an e-mailed link; without its token they
// answer a page that says the link is not valid.
var linkPages = []string{"/verify", "/password/reset", "/account/email/confirm", "/invitations/accept"}

// notFor lists, by role, the route patterns (parameters written {}) and
// the prefixes of patterns whose pages that role may not open (403): the
// event log and "explain this number" for owners and auditors, alert
// channels and the security audit trail for owners, the stocktake for
// owners and staff.
var notFor = map[string][]string{
	"staff":   {"/audit", "/channels", "/log", "/products/{}/variants/{}/explain"},
	"auditor": {"/audit", "/channels", "/shops/{}/stocktake"},
}

var paramRE = regexp.MustCompile(`\{[^}]*\}`)

// normalise writes a pattern's parameters as {}.
func normalise(pattern string) string { return paramRE.ReplaceAllString(pattern, "{}") }

// pageRoutes lists the app's GET page patterns (webapp.Routes of a
// handler built as cmd/query builds it), static files left out.
func pageRoutes(t *testing.T, h http.Handler) []string {
	t.Helper()
	routes, err := webapp.Routes(h)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range routes {
		method, pattern, _ := strings.Cut(r, " ")
		if method != http.MethodGet || strings.HasSuffix(pattern, "/*") {
			continue
		}
		out = append(out, pattern)
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// objects are the demo's real ids, by the path segment that precedes a
// parameter: /shops/{id} takes the shop, /products/{id} a low-stock
// listing, /variants/{key} its low variant, and so on.
func (d *demo) objects(t *testing.T) map[string]string {
	t.Helper()
	ctx := context.Background()
	obj := map[string]string{"shops": strconv.FormatInt(d.shopID, 10)}
	type product struct {
		ListingID int64 `json:"listing_id"`
		Variants  []struct {
			VariantKey string `json:"variant_key"`
			LowStock   bool   `json:"low_stock"`
		} `json:"variants"`
	}
	low, err := pages[product](ctx, d.seller, fmt.Sprintf("/v1/products?shop_id=%d&low_stock=true", d.shopID))
	if err != nil {
		t.Fatal(err)
	}
	if len(low) == 0 {
		t.Fatal("the demo shop has no low-stock product to show")
	}
	var p product
	if err := d.seller.get(ctx, fmt.Sprintf("/v1/products/%d", low[0].ListingID), &p); err != nil {
		t.Fatal(err)
	}
	obj["products"] = strconv.FormatInt(p.ListingID, 10)
	obj["listings"] = obj["products"]
	for _, v := range p.Variants {
		if v.LowStock {
			obj["variants"] = url.PathEscape(v.VariantKey)
			break
		}
	}
	var sales struct {
		Items []struct {
			ReceiptID int64 `json:"receipt_id"`
		} `json:"items"`
	}
	if err := d.seller.get(ctx, fmt.Sprintf("/v1/sales?shop_id=%d&limit=1", d.shopID), &sales); err != nil {
		t.Fatal(err)
	}
	if len(sales.Items) > 0 {
		obj["sales"] = strconv.FormatInt(sales.Items[0].ReceiptID, 10)
		obj["orders"], obj["receipts"] = obj["sales"], obj["sales"]
	}
	var alerts struct {
		Items []struct {
			AlertID string `json:"alert_id"`
		} `json:"items"`
	}
	if err := d.seller.get(ctx, fmt.Sprintf("/v1/alerts?shop_id=%d&limit=1", d.shopID), &alerts); err != nil {
		t.Fatal(err)
	}
	if len(alerts.Items) > 0 {
		obj["alerts"] = url.PathEscape(alerts.Items[0].AlertID)
	}
	var events struct {
		Items []struct {
			EventID string `json:"event_id"`
		} `json:"items"`
	}
	if err := d.auditor.get(ctx, "/v1/events?limit=1", &events); err != nil {
		t.Fatal(err)
	}
	if len(events.Items) > 0 {
		obj["events"] = url.PathEscape(events.Items[0].EventID)
		obj["log"] = obj["events"]
	}
	return obj
}

// fill puts real ids into a pattern's parameters, or says which it cannot
// fill.
func fill(pattern string, obj map[string]string) (string, error) {
	segs := strings.Split(pattern, "/")
	for i, s := range segs {
		if !paramRE.MatchString(s) {
			continue
		}
		prev := ""
		if i > 0 {
			prev = segs[i-1]
		}
		v, ok := obj[prev]
		if !ok {
			return "", fmt.Errorf("no demo object for %s after /%s/; add one to (*demo).objects", s, prev)
		}
		segs[i] = paramRE.ReplaceAllString(s, v)
	}
	return strings.Join(segs, "/"), nil
}

func forbidden(role, pattern string) bool {
	pattern = normalise(pattern)
	for _, p := range notFor[role] {
		if pattern == p || strings.HasPrefix(pattern, p+"/") {
			return true
		}
	}
	return false
}

// newcomerEmail signs up through the form during the walk, making an
// organisation of their own.
const newcomerEmail = "newcomer@example.com"

var linkRE = regexp.MustCompile(`https?://[^\s<>"]+`)

// emailedLinks makes the system e-mail three of its links, the way people
// get them, and returns each by route: a sign-up's verification link
// (the sign-up form filled in), a password reset (the forgot form, for
// the demo owner) and an invitation (the owner's members form).
func emailedLinks(t *testing.T, d *demo, c *chrome, visitor *tab) map[string]string {
	t.Helper()
	const newcomer, invitee = newcomerEmail, "invitee@example.com"
	visitor.open("/signup")
	visitor.submit("sign up",
		chromedp.SendKeys(chromedp.CSS(`form[action="/signup"] input[name="email"]`), newcomer),
		chromedp.SendKeys(chromedp.CSS(`form[action="/signup"] input[name="display_name"]`), "Nell Newcomer"),
		chromedp.SendKeys(chromedp.CSS(`form[action="/signup"] input[name="organisation"]`), "Newcomer crafts"),
		chromedp.SendKeys(chromedp.CSS(`form[action="/signup"] input[name="password"]`), d.password),
		chromedp.SendKeys(chromedp.CSS(`form[action="/signup"] input[name="password_again"]`), d.password),
		chromedp.Click(chromedp.CSS(`form[action="/signup"] button[type="submit"]`)),
	)
	visitor.open("/password/forgot")
	visitor.submit("ask for a reset link",
		chromedp.SendKeys(chromedp.CSS(`form[action="/password/forgot"] input[name="email"]`), ownerEmail),
		chromedp.Click(chromedp.CSS(`form[action="/password/forgot"] button[type="submit"]`)),
	)
	owner := c.tab(t, "owner inviting")
	owner.login(ownerEmail, d.password)
	owner.open("/members")
	if st := owner.submit("invite "+invitee,
		chromedp.SendKeys(chromedp.CSS(`form[action="/members/invite"] input[name="email"]`), invitee),
		chromedp.Click(chromedp.CSS(`form[action="/members/invite"] button[type="submit"]`)),
	); st != http.StatusOK || !strings.Contains(owner.text(), invitee) {
		t.Errorf("inviting %s from /members: %d:\n%s", invitee, st, owner.text())
	}

	mailbox := c.tab(t, "inbox")
	out := map[string]string{}
	for _, want := range []struct{ to, route string }{{newcomer, "/verify"}, {ownerEmail, "/password/reset"}, {invitee, "/invitations/accept"}} {
		m := mailbox.waitMail(d.inboxURL, 30*time.Second, func(m inboxMessage) bool {
			return strings.Contains(m.Meta, want.to) && strings.Contains(m.Body, d.queryURL+want.route+"?")
		})
		for _, l := range linkRE.FindAllString(m.Body, -1) {
			if strings.HasPrefix(l, d.queryURL+want.route+"?") {
				out[want.route] = strings.TrimPrefix(l, d.queryURL)
			}
		}
	}
	return out
}

// shot records the screenshot files of one page, for the guide.
type shot struct{ who, pattern, file string }

func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: builds and runs every binary and Chromium")
	}
	chromiumPath(t) // before the minute of building and starting
	// Only this run's screenshots in the artefacts directory.
	old, _ := filepath.Glob(filepath.Join(artifactsDir(t), "*.png"))
	for _, f := range old {
		_ = os.Remove(f)
	}
	began := time.Now()
	d := startDemo(t)
	c := newChrome(t, d.queryURL)
	t.Logf("system and browser up after %s", time.Since(began).Round(time.Second))
	routes := pageRoutes(t, d.pagesHandler(t))
	obj := d.objects(t)
	var shots []shot

	t.Run("pages", func(t *testing.T) {
		// Every route is one of: a visitor's page, a page opened from an
		// e-mailed link, or a member's page. A new route must be placed.
		for _, r := range routes {
			if !slices.Contains(publicPages, r) && !slices.Contains(linkPages, r) && strings.Contains(r, "{") {
				if _, err := fill(r, obj); err != nil {
					t.Errorf("GET %s: %v", r, err)
				}
			}
		}
		for _, p := range append(slices.Clone(publicPages), linkPages...) {
			if !slices.Contains(routes, p) {
				t.Errorf("GET %s is listed in browser_test.go but the app no longer has it", p)
			}
		}

		visitor := c.tab(t, "visitor")
		linked := emailedLinks(t, d, c, visitor)
		for _, r := range routes {
			switch {
			case slices.Contains(publicPages, r):
				if st := visitor.open(r); st != http.StatusOK {
					t.Errorf("visitor: GET %s answered %d:\n%s", r, st, visitor.text())
					continue
				}
				files := visitor.screenshot(shotName("visitor " + r))
				shots = append(shots, shot{"visitor", r, files["1280"]})
				visitor.axe(r)
			case linked[r] != "":
				// The link as e-mailed, followed to the page it leads to.
				if st := visitor.open(linked[r]); st != http.StatusOK {
					t.Errorf("visitor: the e-mailed %s link answered %d:\n%s", r, st, visitor.text())
					continue
				}
				files := visitor.screenshot(shotName("visitor " + r))
				shots = append(shots, shot{"visitor", r, files["1280"]})
				visitor.axe(r + " from its e-mail (now " + visitor.path() + ")")
			case slices.Contains(linkPages, r):
				// No token: the page that says the link does not work.
				st := visitor.open(r)
				if st < 400 || st >= 500 {
					t.Errorf("visitor: GET %s without a token answered %d, want a 4xx page:\n%s", r, st, visitor.text())
					continue
				}
				visitor.screenshot(shotName("visitor " + r + " no token"))
				visitor.axe(r + " without a token")
			default:
				// A member's page sends a visitor to log in.
				path, err := fill(r, obj)
				if err != nil {
					continue // reported above
				}
				visitor.open(path)
				if p := visitor.path(); !strings.HasPrefix(p, "/login") {
					t.Errorf("visitor: GET %s ended on %s, want the login page", path, p)
				}
			}
		}

		// The demo's people, and the newcomer who signed up above with an
		// organisation of their own: their empty pages, and a 404 for every
		// object of the demo's.
		for _, who := range []struct{ role, email string }{{"owner", ownerEmail}, {"staff", staffEmail}, {"auditor", auditorEmail}, {"newcomer", newcomerEmail}} {
			t.Run(who.role, func(t *testing.T) {
				b := c.tab(t, who.role)
				b.login(who.email, d.password)
				for _, r := range routes {
					if slices.Contains(publicPages, r) || slices.Contains(linkPages, r) {
						continue
					}
					path, err := fill(r, obj)
					if err != nil {
						continue // reported above
					}
					// A download is fetched with the session, not shown.
					st, ctype := b.fetch(path)
					if !strings.HasPrefix(ctype, "text/html") && st == http.StatusOK {
						continue
					}
					st = b.open(path)
					switch {
					case who.role == "newcomer" && path != r:
						if st != http.StatusNotFound {
							t.Errorf("newcomer: GET %s, the demo organisation's, answered %d, want 404", path, st)
						}
						continue
					case forbidden(who.role, r):
						if st != http.StatusForbidden {
							t.Errorf("%s: GET %s answered %d, want 403", who.role, path, st)
						}
						continue
					case st != http.StatusOK:
						t.Errorf("%s: GET %s answered %d, want 200:\n%s", who.role, path, st, b.text())
						continue
					}
					files := b.screenshot(shotName(who.role + " " + r))
					shots = append(shots, shot{who.role, r, files["1280"]})
					b.axe(path)
				}
			})
		}
	})

	t.Run("seller flow", func(t *testing.T) {
		sellerFlow(t, d, c, routes)
	})
	t.Run("stock edit reaches Etsy", func(t *testing.T) {
		stockEditFlow(t, d, c)
	})

	// Last: it connects the simulator's second shop, which no figure of
	// the demo organisation's above may include.
	t.Run("newcomer connects a shop", func(t *testing.T) {
		newcomerConnects(t, d, c)
	})

	if dir := os.Getenv("SHOPLEDGER_DOC_IMAGES"); dir != "" {
		copyDocImages(t, dir, shots)
	}
}

// copyDocImages copies the guide's screenshots into dir.
func copyDocImages(t *testing.T, dir string, shots []shot) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, s := range shots {
		want, ok := docImages[normalise(s.pattern)]
		if !ok || want.who != s.who {
			continue
		}
		png, err := os.ReadFile(s.file)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, want.file), png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("docs image %s from %s's %s", want.file, s.who, s.pattern)
	}
}
