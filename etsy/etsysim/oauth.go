package etsysim

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shopledger/shopledger/etsy"
)

// knownScopes are Etsy's scope names.
var knownScopes = []string{
	"address_r", "address_w", "billing_r", "cart_r", "cart_w", "email_r", "favorites_r",
	"favorites_w", "feedback_r", "listings_d", "listings_r", "listings_w", "profile_r",
	"profile_w", "recommend_r", "recommend_w", "shops_r", "shops_w", "transactions_r",
	"transactions_w",
}

// DefaultScopes are the scopes shopledger asks for.
var DefaultScopes = []string{etsy.ScopeListingsRead, etsy.ScopeListingsWrite, etsy.ScopeTransactionsRead, etsy.ScopeShopsRead}

const authCodeTTL = 10 * time.Minute

type oauthState struct {
	codes   map[string]*authCode
	access  map[string]*grantToken
	refresh map[string]*grantToken
}

func (o *oauthState) init() {
	o.codes = make(map[string]*authCode)
	o.access = make(map[string]*grantToken)
	o.refresh = make(map[string]*grantToken)
}

type authCode struct {
	clientID    string
	redirectURI string
	challenge   string
	scopes      []string
	userID      int64
	expires     time.Time
	used        bool
}

type grantToken struct {
	userID   int64
	clientID string
	scopes   []string
	expires  time.Time
	used     bool // refresh tokens: rotated away
	revoked  bool
}

func (s *Sim) routeOAuth() {
	s.mux.HandleFunc("GET /oauth/connect", s.handleConnect)
	s.mux.HandleFunc("POST /v3/public/oauth/token", s.handleToken)
}

// opaqueLocked makes the random part of a token or code from the seeded
// source, so runs repeat under a seed.
func (s *Sim) opaqueLocked(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = opaqueAlphabet[s.rng.IntN(len(opaqueAlphabet))]
	}
	return string(b)
}

// opaqueAlphabet is what ids, tokens and codes are made of.
const opaqueAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func (s *Sim) redirectAllowed(app *App, uri string) bool {
	if len(app.RedirectURIs) > 0 {
		return slices.Contains(app.RedirectURIs, uri)
	}
	u, err := url.Parse(uri)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && u.Fragment == ""
}

// handleConnect is Etsy's consent page. The simulator extension user_id
// or shop_id names who consents, and the request is approved at once;
// consent=deny refuses it as a seller pressing "Deny" does. Without
// either, Options.ConsentPage shows the page that asks who signs in;
// otherwise the owner of the first shop approves at once.
func (s *Sim) handleConnect(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	defer s.mu.Unlock()
	app := s.apps[q.Get("client_id")]
	if app == nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_client", "client_id is not a registered app")
		return
	}
	redirect := q.Get("redirect_uri")
	if !s.redirectAllowed(app, redirect) {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "redirect_uri does not match a registered URI")
		return
	}
	fail := func(code, desc string) {
		u, _ := url.Parse(redirect)
		v := u.Query()
		v.Set("error", code)
		v.Set("error_description", desc)
		if st := q.Get("state"); st != "" {
			v.Set("state", st)
		}
		u.RawQuery = v.Encode()
		http.Redirect(w, r, u.String(), http.StatusFound)
	}
	if q.Get("response_type") != "code" {
		fail("unsupported_response_type", "response_type must be code")
		return
	}
	if q.Get("state") == "" {
		fail("invalid_request", "state is required")
		return
	}
	if q.Get("code_challenge") == "" || q.Get("code_challenge_method") != "S256" {
		fail("invalid_request", "PKCE with code_challenge_method=S256 is required")
		return
	}
	scopes := strings.Fields(q.Get("scope"))
	if len(scopes) == 0 {
		fail("invalid_scope", "scope is required")
		return
	}
	for _, sc := range scopes {
		if !slices.Contains(knownScopes, sc) {
			fail("invalid_scope", "unknown scope "+sc)
			return
		}
	}
	if q.Get("consent") == "deny" {
		fail("access_denied", "The user denied the request")
		return
	}
	if s.opts.ConsentPage && q.Get("user_id") == "" && q.Get("shop_id") == "" {
		s.writeConsentPageLocked(w, app, redirect, scopes, q)
		return
	}
	uid, err := s.consentingUserLocked(q.Get("user_id"), q.Get("shop_id"))
	if err != nil {
		fail("access_denied", err.Error())
		return
	}
	code := s.opaqueLocked(40)
	s.oauth.codes[code] = &authCode{
		clientID: app.KeyString, redirectURI: redirect, challenge: q.Get("code_challenge"),
		scopes: scopes, userID: uid, expires: s.clock.now().Add(authCodeTTL),
	}
	s.stats.authorizations++
	u, _ := url.Parse(redirect)
	v := u.Query()
	v.Set("code", code)
	v.Set("state", q.Get("state"))
	u.RawQuery = v.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

func (s *Sim) consentingUserLocked(userID, shopID string) (int64, error) {
	switch {
	case userID != "":
		id, err := strconv.ParseInt(userID, 10, 64)
		if err != nil || s.users[id] == nil {
			return 0, fmt.Errorf("unknown user %q", userID)
		}
		return id, nil
	case shopID != "":
		id, err := strconv.ParseInt(shopID, 10, 64)
		if err != nil || s.shops[id] == nil {
			return 0, fmt.Errorf("unknown shop %q", shopID)
		}
		return s.shops[id].userID, nil
	case len(s.shopIDs) > 0:
		return s.shops[s.shopIDs[0]].userID, nil
	}
	return 0, fmt.Errorf("the simulator has no shops yet")
}

func validVerifier(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	for _, c := range v {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.ContainsRune("-._~", c)) {
			return false
		}
	}
	return true
}

// handleToken is Etsy's token endpoint: authorization_code with PKCE, and
// refresh_token with rotation.
func (s *Sim) handleToken(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "body must be application/x-www-form-urlencoded")
		return
	}
	f := r.PostForm
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.Get("grant_type") == "refresh_token" {
		s.stats.refreshCalls++
	}
	app := s.apps[f.Get("client_id")]
	if app == nil {
		s.countRefreshFailureLocked(f)
		writeOAuthError(w, http.StatusUnauthorized, "invalid_client", "client_id is not a registered app")
		return
	}
	now := s.clock.now()
	switch f.Get("grant_type") {
	case "authorization_code":
		s.stats.tokenExchanges++
		c := s.oauth.codes[f.Get("code")]
		switch {
		case f.Get("code") == "" || f.Get("code_verifier") == "" || f.Get("redirect_uri") == "":
			writeOAuthError(w, http.StatusBadRequest, "invalid_request", "code, code_verifier and redirect_uri are required")
		case !validVerifier(f.Get("code_verifier")):
			writeOAuthError(w, http.StatusBadRequest, "invalid_request", "code_verifier must be 43-128 characters of [A-Za-z0-9-._~]")
		case c == nil || c.clientID != app.KeyString:
			writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "code is invalid")
		case c.used:
			writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "code has already been used")
		case now.After(c.expires):
			writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "code is expired")
		case c.redirectURI != f.Get("redirect_uri"):
			writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "redirect_uri does not match the authorization request")
		case pkceChallenge(f.Get("code_verifier")) != c.challenge:
			c.used = true // a wrong verifier burns the code: no guessing
			writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "code_verifier does not match code_challenge")
		default:
			c.used = true
			writeJSON(w, http.StatusOK, s.grantLocked(app.KeyString, c.userID, c.scopes, now))
		}
	case "refresh_token":
		t := s.oauth.refresh[f.Get("refresh_token")]
		var desc string
		switch {
		case t == nil || t.clientID != app.KeyString:
			desc = "refresh_token is invalid"
		case t.revoked:
			desc = "refresh_token is revoked"
		case t.used:
			desc = "refresh_token has already been used"
		case now.After(t.expires):
			desc = "refresh_token is expired"
		}
		if desc != "" {
			s.stats.refreshFailures++
			writeOAuthError(w, http.StatusBadRequest, "invalid_grant", desc)
			return
		}
		t.used = true
		writeJSON(w, http.StatusOK, s.grantLocked(app.KeyString, t.userID, t.scopes, now))
	default:
		writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token")
	}
}

func (s *Sim) countRefreshFailureLocked(f url.Values) {
	if f.Get("grant_type") == "refresh_token" {
		s.stats.refreshFailures++
	}
}

func pkceChallenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
}

func (s *Sim) grantLocked(clientID string, userID int64, scopes []string, now time.Time) tokenResponse {
	prefix := strconv.FormatInt(userID, 10) + "."
	access := prefix + s.opaqueLocked(22)
	refresh := prefix + s.opaqueLocked(22)
	s.oauth.access[access] = &grantToken{userID: userID, clientID: clientID, scopes: scopes, expires: now.Add(s.opts.AccessTokenTTL)}
	s.oauth.refresh[refresh] = &grantToken{userID: userID, clientID: clientID, scopes: scopes, expires: now.Add(s.opts.RefreshTokenTTL)}
	return tokenResponse{
		AccessToken: access, TokenType: "Bearer", RefreshToken: refresh,
		ExpiresIn: int64(s.opts.AccessTokenTTL / time.Second),
	}
}

// IssueToken grants a token to the owner of shopID without the OAuth
// dance, for tests that are not about OAuth. scopes nil means
// DefaultScopes; the grant belongs to the first app.
func (s *Sim) IssueToken(shopID int64, scopes []string) (etsy.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sh := s.shops[shopID]
	if sh == nil {
		return etsy.Token{}, fmt.Errorf("issue token for shop %d: %w", shopID, ErrNotFound)
	}
	if scopes == nil {
		scopes = DefaultScopes
	}
	now := s.clock.now()
	g := s.grantLocked(s.opts.Apps[0].KeyString, sh.userID, slices.Clone(scopes), now)
	return etsy.Token{
		AccessToken: g.AccessToken, RefreshToken: g.RefreshToken, UserID: sh.userID,
		ExpiresAt: now.Add(s.opts.AccessTokenTTL),
	}, nil
}

// RevokeTokens revokes every token of a user, as a password change does on
// Etsy: access tokens stop working and refreshing gives invalid_grant.
func (s *Sim) RevokeTokens(userID int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.users[userID] == nil {
		return fmt.Errorf("revoke tokens of user %d: %w", userID, ErrNotFound)
	}
	for _, m := range []map[string]*grantToken{s.oauth.access, s.oauth.refresh} {
		for _, t := range m {
			if t.userID == userID {
				t.revoked = true
			}
		}
	}
	return nil
}

// ExpireAccessTokens makes every access token of a user expired now,
// without moving the clock.
func (s *Sim) ExpireAccessTokens(userID int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.users[userID] == nil {
		return fmt.Errorf("expire tokens of user %d: %w", userID, ErrNotFound)
	}
	now := s.clock.now()
	for _, t := range s.oauth.access {
		if t.userID == userID && t.expires.After(now) {
			t.expires = now
		}
	}
	return nil
}

// scopeDescriptions say what each scope lets an app do, in the words of
// Etsy's consent page.
var scopeDescriptions = map[string]string{
	"address_r": "See billing and shipping addresses", "address_w": "Update billing and shipping addresses",
	"billing_r": "See all billing statement data", "cart_r": "Read shopping carts",
	"cart_w": "Add to and remove from shopping carts", "email_r": "Read your e-mail address",
	"favorites_r": "See private favourites", "favorites_w": "Add and remove favourites",
	"feedback_r": "See purchase information in feedback", "listings_d": "Delete listings",
	"listings_r": "See all listings, including inactive and expired ones", "listings_w": "Create and edit listings, including their stock",
	"profile_r": "See all profile data", "profile_w": "Update your profile",
	"recommend_r": "See recommended listings", "recommend_w": "Accept and reject recommended listings",
	"shops_r": "See private shop information", "shops_w": "Update your shop",
	"transactions_r": "See orders, payments and checkout data", "transactions_w": "Update orders",
}

// consentParams are the OAuth parameters the consent page carries to its
// answer; the simulator's own extensions are what the answer adds.
var consentParams = []string{"response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge", "code_challenge_method"}

//go:embed consent.html
var consentHTML string

var consentPage = template.Must(template.New("consent").Parse(consentHTML))

// consentCSS is the page's only style; the Content-Security-Policy allows
// it by hash, and nothing else.
const consentCSS = `*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;background:#f5f3ef}
.sim{background:#fff3c4;border-bottom:2px solid #b8860b;padding:.6rem 1rem;text-align:center;font-size:.95rem}
main{max-width:40rem;margin:1.5rem auto;padding:1.5rem;background:#fff;border-radius:.75rem;box-shadow:0 1px 4px rgba(0,0,0,.12)}
h1{font-size:1.4rem;line-height:1.3;margin:0 0 .5rem}
h2{font-size:1.05rem;margin:1.5rem 0 .5rem}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9em;background:#f0eeea;padding:0 .25em;border-radius:.25em;overflow-wrap:anywhere}
ul{padding-left:1.25rem;margin:.25rem 0}
ul.sellers{list-style:none;padding:0}
.sellers li{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:center;justify-content:space-between;padding:.75rem 0;border-top:1px solid #e4e0d8}
.sellers li:last-child{border-bottom:1px solid #e4e0d8}
.ids{color:#555;font-size:.9rem}
button{font:inherit;font-weight:600;border-radius:999px;padding:.5rem 1.25rem;cursor:pointer;border:2px solid #222;min-height:44px}
.allow{background:#222;color:#fff}
.deny{background:#fff;color:#222}
button:focus-visible{outline:3px solid #b8860b;outline-offset:2px}
.vh{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
.actions{margin-top:1.5rem}
@media (max-width:480px){main{margin:0;border-radius:0;box-shadow:none;padding:1rem}}`

var consentCSP = func() string {
	sum := sha256.Sum256([]byte(consentCSS))
	// No form-action: Chromium applies it to the redirect that follows the
	// form, which leaves for the app's redirect URI.
	return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; frame-ancestors 'none'; base-uri 'none'"
}()

type consentSeller struct {
	UserID, ShopID int64
	ShopName       string
}

// writeConsentPageLocked answers the consent page: who is asking, for
// what, and the simulator's sellers to sign in as. Its form is a GET to
// /oauth/connect carrying the request's own parameters plus shop_id (the
// seller chosen) or consent=deny, so the answer runs through the same
// validation and code issuing as any request naming a seller. A POST
// with a CSRF token would protect nothing here: the simulator has no
// sign-in, and a GET naming shop_id is approved at once by design
// (ledger shops connect --sim-shop relies on it).
func (s *Sim) writeConsentPageLocked(w http.ResponseWriter, app *App, redirect string, scopes []string, q url.Values) {
	type scope struct{ Name, Description string }
	type param struct{ Name, Value string }
	data := struct {
		App          string
		AppID        int64
		RedirectHost string
		Scopes       []scope
		Sellers      []consentSeller
		Params       []param
		CSS          template.CSS
	}{App: app.KeyString, AppID: app.ApplicationID, CSS: template.CSS(consentCSS)}
	if u, err := url.Parse(redirect); err == nil {
		data.RedirectHost = u.Host
	}
	for _, sc := range scopes {
		data.Scopes = append(data.Scopes, scope{sc, scopeDescriptions[sc]})
	}
	for _, id := range s.shopIDs {
		sh := s.shops[id]
		data.Sellers = append(data.Sellers, consentSeller{UserID: sh.userID, ShopID: sh.id, ShopName: sh.name})
	}
	for _, name := range consentParams {
		data.Params = append(data.Params, param{name, q.Get(name)})
	}
	var buf bytes.Buffer
	if err := consentPage.Execute(&buf, data); err != nil {
		s.log.Error("consent page", "err", err)
		http.Error(w, "consent page failed", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", consentCSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	_, _ = w.Write(buf.Bytes())
}
