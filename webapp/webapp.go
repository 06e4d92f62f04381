// Package webapp serves the seller's pages: sign up, log in, account
// settings, members and invitations, API tokens and the security audit
// trail. Pages are rendered on the server from embedded templates and one
// stylesheet; there is no script, so the Content-Security-Policy forbids
// it. Every state-changing request passes Go's cross-origin protection,
// and every object a page names is looked up within the session's
// organisation, so another organisation's object is a 404.
package webapp

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/google/uuid"

	"github.com/shopledger/shopledger/accounts"
	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/httpapi"
	"github.com/shopledger/shopledger/internal/defaults"
	"github.com/shopledger/shopledger/projections"
	"github.com/shopledger/shopledger/tokens"
)

// Tokens is what the token pages need of the API token store.
type Tokens interface {
	Create(ctx context.Context, nt tokens.NewToken) (string, tokens.Token, error)
	ListOrganisation(ctx context.Context, orgID int64) ([]tokens.Token, error)
	RevokeInOrganisation(ctx context.Context, orgID int64, id uuid.UUID) (tokens.Token, error)
}

// Shops lists the organisation's shops for the pages.
type Shops interface {
	ListShops(ctx context.Context, shops []int64) ([]projections.Shop, error)
}

// Config is what the pages need.
type Config struct {
	Accounts *accounts.Store
	Tokens   Tokens
	Shops    Shops
	Logger   *slog.Logger
	// ClientAddress names the client of a request (the API's rule, with
	// its trusted proxies); default the host of RemoteAddr.
	ClientAddress func(*http.Request) string
	// TokenMaxTTL bounds a self-service token's life (default one year).
	TokenMaxTTL time.Duration
	// ConnectURL is ingest's public /connect/etsy, where "Connect an Etsy
	// shop" sends the browser; empty hides the button.
	ConnectURL string
	// ConsentURL is Etsy's consent page (its OAuth authorize URL), where
	// ingest sends the browser on from ConnectURL; default Etsy's.
	// Browsers apply a page's form-action to every redirect that follows
	// its form, so the pages let forms lead to both origins.
	ConsentURL string
	// Data is the read side (and the threshold writer) the API's /v1
	// handlers use, so that a page and the API show the same numbers.
	Data httpapi.Readers
	// ExportBatch and QueryTimeout bound the event log export's queries
	// as the API's do (defaults 1000 events and 5 s a query).
	ExportBatch  int
	QueryTimeout time.Duration
	// Channels is the alert channel configuration the owners' channels
	// page manages (*alerts.Channels); nil leaves the page out (404).
	Channels AlertChannels
	// ShopControl disconnects shops for their owners (*shops.Store: it
	// deletes the tokens, so ingest stops polling, and appends
	// shop.disconnected); nil leaves the disconnect button out.
	ShopControl ShopControl
	// SyncNow records owners' "sync now" requests for ingest's scheduler
	// (reconcile.SyncRequests); nil leaves the button out.
	SyncNow SyncNow
	// StockEdits records the variant page's stock forms and stocktakes
	// (*stockedits.Service, the instance the API's adjustments use); nil
	// leaves the forms out.
	StockEdits StockEdits
}

type app struct {
	cfg   Config
	pages map[string]*template.Template
	log   *slog.Logger
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// New returns the pages' handler, to be mounted at the site's root.
func New(cfg Config) (http.Handler, error) {
	if cfg.Accounts == nil || cfg.Tokens == nil || cfg.Shops == nil {
		return nil, errors.New("webapp: Accounts, Tokens and Shops are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ClientAddress == nil {
		cfg.ClientAddress = func(r *http.Request) string { return httpapi.ClientAddress(r, nil, "") }
	}
	defaults.Positive(&cfg.TokenMaxTTL, 365*24*time.Hour)
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	if cfg.ConsentURL == "" {
		cfg.ConsentURL = etsy.DefaultAuthURL
	}
	a := &app{cfg: cfg, pages: pages, log: cfg.Logger}
	return a.routes(), nil
}

func parsePages() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"roles": accounts.Roles,
		"when": func(t time.Time, loc *time.Location) string {
			return t.In(loc).Format("2 Jan 2006 15:04 MST")
		},
	}
	layout, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.Must(layout.Clone()).ParseFS(templateFS, n)
		if err != nil {
			return nil, err
		}
		pages[name] = t
	}
	return pages, nil
}

func (a *app) routes() http.Handler {
	r := chi.NewRouter()
	// HEAD answers wherever GET does (the server sends no body).
	r.Use(middleware.GetHead, pageHeaders(a.formAction()), a.loadSession)
	static, _ := fs.Sub(staticFS, "static")
	r.Handle("/static/*", http.StripPrefix("/static/", http.FileServerFS(static)))
	r.NotFound(func(w http.ResponseWriter, r *http.Request) { a.notFound(w, r) })

	r.Get("/", a.home)
	r.Get("/signup", a.signUpPage)
	r.Post("/signup", a.signUp)
	r.Get("/verify", a.verify)
	r.Post("/verify/resend", a.resendVerification)
	r.Get("/login", a.loginPage)
	r.Post("/login", a.login)
	r.Get("/password/forgot", a.forgotPage)
	r.Post("/password/forgot", a.forgot)
	r.Get("/password/reset", a.resetPage)
	r.Post("/password/reset", a.reset)
	r.Get("/account/email/confirm", a.confirmEmail)
	r.Get("/invitations/accept", a.invitationPage)

	r.Group(func(r chi.Router) {
		r.Use(a.requireSession)
		r.Post("/logout", a.logout)
		r.Post("/logout/everywhere", a.logoutEverywhere)
		r.Get("/account", a.accountPage)
		r.Post("/account/profile", a.updateProfile)
		r.Post("/account/password", a.changePassword)
		r.Post("/account/email", a.changeEmail)
		r.Post("/invitations/accept", a.acceptInvitation)
		r.Post("/organisation/switch", a.switchOrganisation)
		r.Post("/members/leave", a.leave)

		r.Group(func(r chi.Router) {
			r.Use(a.requireMember)
			r.Get("/shops/{shopID}", a.shopPage)
			r.Get("/members", a.membersPage)
			r.Get("/tokens", a.tokensPage)
			a.stockRoutes(r)
			a.ledgerRoutes(r)
			r.Post("/tokens", a.createToken)
			r.Post("/tokens/{tokenID}/revoke", a.revokeToken)
		})
		r.Group(func(r chi.Router) {
			r.Use(a.requireOwner)
			r.Post("/shops/connect", a.connectShop)
			r.Post("/members/invite", a.invite)
			r.Post("/members/invitations/{invitationID}/revoke", a.revokeInvitation)
			r.Post("/members/{userID}/role", a.changeRole)
			r.Post("/members/{userID}/remove", a.removeMember)
			r.Get("/audit", a.auditPage)
		})
	})
	// Cross-origin protection refuses a state-changing request that a
	// browser marks as sent from another site (Sec-Fetch-Site) or whose
	// Origin is not this host; safe methods pass.
	return withCrossOriginProtection(r)
}

// Routes lists the pages' routes as "METHOD /pattern", for tests that
// walk every route.
func Routes(h http.Handler) ([]string, error) {
	cop, ok := h.(*protected)
	if !ok {
		return nil, errors.New("webapp: not a handler built by New")
	}
	var out []string
	err := chi.Walk(cop.router, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		out = append(out, method+" "+route)
		return nil
	})
	return out, err
}

type protected struct {
	router chi.Router
	h      http.Handler
}

func (p *protected) ServeHTTP(w http.ResponseWriter, r *http.Request) { p.h.ServeHTTP(w, r) }

func withCrossOriginProtection(r chi.Router) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte("Refused: this form was sent from another site. Go back to the page and send it again.\n"))
	}))
	return &protected{router: r, h: cop.Handler(r)}
}

// formAction is where the pages' forms may lead: the app itself, and for
// "Connect an Etsy shop", whose answer redirects to ingest and on to
// Etsy's consent page, those two origins.
func (a *app) formAction() string {
	sources := []string{"'self'"}
	if a.cfg.ConnectURL == "" {
		return sources[0]
	}
	for _, raw := range []string{a.cfg.ConnectURL, a.cfg.ConsentURL} {
		if u, err := url.Parse(raw); err == nil && u.Scheme != "" && u.Host != "" {
			if o := u.Scheme + "://" + u.Host; !slices.Contains(sources, o) {
				sources = append(sources, o)
			}
		}
	}
	return strings.Join(sources, " ")
}

// pageHeaders: no script, no framing, forms only to formAction, no
// caching of pages that show account data, no referrer leaking link
// tokens.
func pageHeaders(formAction string) func(http.Handler) http.Handler {
	csp := "default-src 'none'; style-src 'self'; img-src 'self'; form-action " + formAction + "; frame-ancestors 'none'; base-uri 'none'"
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h.Set("Content-Security-Policy", csp)
			h.Set("X-Content-Type-Options", "nosniff")
			h.Set("Referrer-Policy", "no-referrer")
			h.Set("X-Frame-Options", "DENY")
			if !strings.HasPrefix(r.URL.Path, "/static/") {
				h.Set("Cache-Control", "no-store")
			}
			next.ServeHTTP(w, r)
		})
	}
}
