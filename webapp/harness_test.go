package webapp_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopledger/shopledger/accounts"
	"github.com/shopledger/shopledger/accounts/accountstest"
	"github.com/shopledger/shopledger/alerts"
	"github.com/shopledger/shopledger/domain"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/httpapi"
	"github.com/shopledger/shopledger/inbox"
	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/projections"
	"github.com/shopledger/shopledger/reconcile"
	"github.com/shopledger/shopledger/service"
	"github.com/shopledger/shopledger/shops"
	"github.com/shopledger/shopledger/stockedits"
	"github.com/shopledger/shopledger/tokens"
	"github.com/shopledger/shopledger/webapp"
)

// site is the query service's public side as cmd/query mounts it (the
// API at /v1, the pages at /) over TLS, as the shopledger_query role,
// with a real SMTP sink receiving its e-mails.
type site struct {
	t     *testing.T
	db    *pgtest.Database
	srv   *httptest.Server
	pages http.Handler
	inbox *inbox.Inbox
	store *accounts.Store
	clock *clock
	mu    sync.Mutex
	used  map[int]bool
	// cursor is how far project has folded the log.
	cursor eventstore.Cursor
	// keys seal the alert webhook secrets, as SHOPLEDGER_TOKEN_KEYS do.
	keys    *shops.Keyring
	keySpec string
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newSite(t *testing.T) *site {
	t.Helper()
	db := pgtest.New(t)
	ctx := context.Background()
	qdb, qpool, err := service.OpenDB(ctx, db.RoleURL("shopledger_query"), 10, nil, service.AllowNonDurable(true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { qdb.Close(); qpool.Close() })

	mailer, box := accountstest.Mailer(t)

	s := &site{t: t, db: db, inbox: box, clock: &clock{t: time.Now().UTC()}, used: map[int]bool{}}
	s.srv = httptest.NewUnstartedServer(nil)
	s.srv.StartTLS()
	t.Cleanup(s.srv.Close)
	s.store, err = accounts.New(accounts.Config{
		DB: qdb, Mailer: mailer, BaseURL: s.srv.URL, Now: s.clock.now,
		Argon2:   accounts.Argon2Params{MemoryKiB: 64, Iterations: 1, Threads: 1},
		Sessions: accounts.SessionConfig{Secure: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	readers := projections.NewReader(qdb, projections.ReaderConfig{DefaultThreshold: domain.DefaultLowStockThreshold})
	edits := stockedits.NewService(qdb, eventstore.New(qdb), nil)
	data := httpapi.Readers{Shops: readers, Products: readers, Stock: readers, Sales: readers, Events: readers, Alerts: httpapi.NewAlertStore(qdb), Thresholds: eventstore.New(qdb), StockEdits: edits}
	api, err := httpapi.New(httpapi.Config{Tokens: tokens.NewStore(qdb), Data: data})
	if err != nil {
		t.Fatal(err)
	}
	key, err := shops.GenerateKey("k1")
	if err != nil {
		t.Fatal(err)
	}
	s.keySpec = key.Spec()
	s.keys, err = shops.NewKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	channels := alerts.NewChannels(qdb).WithSecretBox(s.keys)
	control, err := shops.NewStore(shops.Config{DB: qdb, Events: eventstore.New(qdb)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.pages, err = webapp.New(webapp.Config{Accounts: s.store, Tokens: tokens.NewStore(qdb), Shops: readers, ConnectURL: connectURL, Data: data, Channels: channels, ShopControl: control, SyncNow: reconcile.SyncRequests{DB: qdb}, StockEdits: edits})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", api)
	mux.Handle("/", s.pages)
	s.srv.Config.Handler = mux
	return s
}

// browser is one person's browser: its own cookies, redirects not
// followed so that each answer can be looked at.
type browser struct {
	s      *site
	client *http.Client
	email  string
}

func (s *site) browser(email string) *browser {
	jar, _ := cookiejar.New(nil)
	// A copy: Client() hands every caller the same *http.Client.
	c := &http.Client{Transport: s.srv.Client().Transport, Jar: jar}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &browser{s: s, client: c, email: email}
}

// route is one of the app's routes.
type route struct{ method, pattern string }

func (r route) String() string { return r.method + " " + r.pattern }

// routes lists the app's routes that keep lets through, from the router
// itself, so that a new route is covered without anyone adding it.
func (s *site) routes(keep func(method, pattern string) bool) []route {
	s.t.Helper()
	all, err := webapp.Routes(s.pages)
	if err != nil {
		s.t.Fatal(err)
	}
	var out []route
	for _, r := range all {
		method, pattern, _ := strings.Cut(r, " ")
		if keep(method, pattern) {
			out = append(out, route{method, pattern})
		}
	}
	return out
}

type answer struct {
	status int
	header http.Header
	body   string
}

func (b *browser) do(method, path string, form url.Values, header map[string]string) answer {
	b.s.t.Helper()
	if form == nil {
		return b.send(method, path, nil, "", header)
	}
	return b.send(method, path, strings.NewReader(form.Encode()), "application/x-www-form-urlencoded", header)
}

// send makes a request with the browser's cookies and reads the answer.
func (b *browser) send(method, path string, body io.Reader, contentType string, header map[string]string) answer {
	b.s.t.Helper()
	req, err := http.NewRequest(method, b.s.srv.URL+path, body)
	if err != nil {
		b.s.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := b.client.Do(req)
	if err != nil {
		b.s.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return answer{status: res.StatusCode, header: res.Header, body: string(raw)}
}

func (b *browser) get(path string) answer { return b.do(http.MethodGet, path, nil, nil) }

func (b *browser) post(path string, form url.Values) answer {
	if form == nil {
		form = url.Values{}
	}
	return b.do(http.MethodPost, path, form, nil)
}

// must checks an answer's status, showing its body when it is wrong.
func (s *site) must(a answer, status int, what string) answer {
	s.t.Helper()
	if a.status != status {
		s.t.Fatalf("%s: status %d, want %d; body:\n%s", what, a.status, status, a.body)
	}
	return a
}

var linkRE = regexp.MustCompile(`https://127\.0\.0\.1:\d+(/[a-z/]+\?token=[A-Za-z0-9_%-]+)`)

// mail waits for a message to addr, not looked at before, whose subject
// contains subject.
func (s *site) mail(addr, subject string) inbox.Message {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := s.inbox.WaitFor(ctx, func(m inbox.Message) bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(m.To) == 1 && strings.EqualFold(m.To[0], addr) && strings.Contains(m.Subject, subject) && !s.used[m.ID]
	})
	if err != nil {
		s.t.Fatalf("no e-mail %q to %s: %v", subject, addr, err)
	}
	s.mu.Lock()
	s.used[m.ID] = true
	s.mu.Unlock()
	return m
}

// link waits for a message like mail and returns the path and query of
// its link.
func (s *site) link(addr, subject string) string {
	s.t.Helper()
	m := s.mail(addr, subject)
	got := linkRE.FindStringSubmatch(m.Body)
	if got == nil {
		s.t.Fatalf("no link in %q", m.Body)
	}
	return got[1]
}

// connectURL stands for ingest's /connect/etsy.
const connectURL = "https://ingest.test/connect/etsy"

const password = "correct horse battery"

// signUp registers email, verifies it through the e-mailed link and logs
// in, returning the logged-in browser.
func (s *site) signUp(email string) *browser {
	s.t.Helper()
	b := s.browser(email)
	s.must(b.post("/signup", url.Values{"email": {email}, "password": {password}, "password_again": {password}, "display_name": {"Owner of " + email}, "timezone": {"Europe/Paris"}}), http.StatusSeeOther, "sign up")
	s.must(b.get(s.link(email, "Verify")), http.StatusSeeOther, "verify")
	b.login(password)
	return b
}

func (b *browser) login(pw string) answer {
	b.s.t.Helper()
	return b.s.must(b.post("/login", url.Values{"email": {b.email}, "password": {pw}}), http.StatusSeeOther, "log in "+b.email)
}

// cookie returns the browser's session cookie value ("" without one).
func (b *browser) cookie() string {
	u, _ := url.Parse(b.s.srv.URL)
	for _, c := range b.client.Jar.Cookies(u) {
		if c.Name == "__Host-shopledger_session" {
			return c.Value
		}
	}
	return ""
}

// orgOf returns the id of the organisation a user owns.
// signUpOwner signs email up and returns the browser and the organisation
// it owns.
func (s *site) signUpOwner(email string) (*browser, int64) {
	s.t.Helper()
	return s.signUp(email), s.orgOf(email)
}

func (s *site) orgOf(email string) int64 {
	s.t.Helper()
	var id int64
	err := s.db.DB.QueryRow(`SELECT m.org_id FROM memberships m JOIN users u ON u.id = m.user_id WHERE u.email_key = lower($1) AND m.role = 'owner' ORDER BY m.created_at LIMIT 1`, email).Scan(&id)
	if err != nil {
		s.t.Fatal(err)
	}
	return id
}

// addShop gives an organisation a shop, as a connection would.
func (s *site) addShop(org, shopID int64, name string) {
	s.t.Helper()
	if _, err := s.db.DB.Exec(`INSERT INTO shops (shop_id, name, connection_state, updated_at, last_position) VALUES ($1, $2, 'connected', now(), 0)`, shopID, name); err != nil {
		s.t.Fatal(err)
	}
	if _, err := s.db.DB.Exec(`INSERT INTO organisation_shops (shop_id, org_id) VALUES ($1, $2)`, shopID, org); err != nil {
		s.t.Fatal(err)
	}
}

func (s *site) userID(email string) string {
	s.t.Helper()
	var id string
	if err := s.db.DB.QueryRow(`SELECT id FROM users WHERE email_key = lower($1)`, email).Scan(&id); err != nil {
		s.t.Fatal(err)
	}
	return id
}

func (s *site) actions(org int64) []string {
	s.t.Helper()
	entries, err := s.store.AuditTrail(context.Background(), org, 0, 500)
	if err != nil {
		s.t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Action)
	}
	return out
}

func query(db *sql.DB, q string, args ...any) string {
	var v string
	if err := db.QueryRow(q, args...).Scan(&v); err != nil {
		return fmt.Sprint("error: ", err)
	}
	return v
}
