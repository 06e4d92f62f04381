package etsy

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shopledger/shopledger/internal/defaults"
)

// Etsy's OAuth endpoints.
const (
	DefaultAuthURL  = "https://www.etsy.com/oauth/connect"
	DefaultTokenURL = "https://api.etsy.com/v3/public/oauth/token"
)

// Scopes the ledger needs.
const (
	ScopeListingsRead     = "listings_r"
	ScopeListingsWrite    = "listings_w"
	ScopeTransactionsRead = "transactions_r"
	ScopeShopsRead        = "shops_r"
)

// OAuthConfig is an app's OAuth 2.0 (authorization code + PKCE) setup.
type OAuthConfig struct {
	ClientID    string // the app's keystring
	RedirectURL string // must match a URL registered with the app exactly
	AuthURL     string // default DefaultAuthURL
	TokenURL    string // default DefaultTokenURL
	Scopes      []string
	HTTPClient  *http.Client     // default: 30 s timeout
	Now         func() time.Time // computes ExpiresAt; default time.Now
}

// Token is an OAuth grant. AccessToken is the full bearer value
// "<user_id>.<token>". String and LogValue hide the secrets.
type Token struct {
	AccessToken  string
	RefreshToken string
	ExpiresAt    time.Time
	UserID       int64
}

// String hides the token values.
func (t Token) String() string {
	return fmt.Sprintf("etsy token for user %d expiring %s", t.UserID, t.ExpiresAt.UTC().Format(time.RFC3339))
}

// GoString hides the token values from %#v.
func (t Token) GoString() string { return t.String() }

// LogValue hides the token values from slog.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(slog.Int64("user_id", t.UserID), slog.Time("expires_at", t.ExpiresAt))
}

// NewPKCE returns a code verifier (43 characters from 32 random bytes) and
// its S256 challenge.
func NewPKCE() (verifier, challenge string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("new pkce verifier: %w", err)
	}
	verifier = base64.RawURLEncoding.EncodeToString(b)
	return verifier, PKCEChallenge(verifier), nil
}

// PKCEChallenge is the S256 challenge of a verifier: base64url(sha256).
func PKCEChallenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// NewState returns an unguessable state value for one authorization
// request. The caller must accept it once only (see AuthStates).
func NewState() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("new oauth state: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func (o OAuthConfig) authURL() string {
	if o.AuthURL == "" {
		return DefaultAuthURL
	}
	return o.AuthURL
}

func (o OAuthConfig) tokenURL() string {
	if o.TokenURL == "" {
		return DefaultTokenURL
	}
	return o.TokenURL
}

func (o OAuthConfig) now() time.Time {
	if o.Now == nil {
		return time.Now()
	}
	return o.Now()
}

// AuthCodeURL is where to send the seller to grant access.
func (o OAuthConfig) AuthCodeURL(state, challenge string) string {
	v := url.Values{}
	v.Set("response_type", "code")
	v.Set("client_id", o.ClientID)
	v.Set("redirect_uri", o.RedirectURL)
	v.Set("scope", strings.Join(o.Scopes, " "))
	v.Set("state", state)
	v.Set("code_challenge", challenge)
	v.Set("code_challenge_method", "S256")
	sep := "?"
	if strings.Contains(o.authURL(), "?") {
		sep = "&"
	}
	// url.Values encodes spaces as '+'; Etsy documents %20 in scope.
	return o.authURL() + sep + strings.ReplaceAll(v.Encode(), "+", "%20")
}

// Exchange trades an authorization code and its PKCE verifier for a token.
func (o OAuthConfig) Exchange(ctx context.Context, code, verifier string) (Token, error) {
	v := url.Values{}
	v.Set("grant_type", "authorization_code")
	v.Set("client_id", o.ClientID)
	v.Set("redirect_uri", o.RedirectURL)
	v.Set("code", code)
	v.Set("code_verifier", verifier)
	t, err := o.token(ctx, "exchangeCode", v)
	if err != nil {
		return Token{}, fmt.Errorf("exchange oauth code: %w", err)
	}
	return t, nil
}

// Refresh trades a refresh token for a new token. Etsy rotates the refresh
// token each time: the old one stops working, so the new Token must be
// stored before anything else. A used, revoked or expired refresh token
// gives an error matching ErrInvalidGrant.
func (o OAuthConfig) Refresh(ctx context.Context, refreshToken string) (Token, error) {
	v := url.Values{}
	v.Set("grant_type", "refresh_token")
	v.Set("client_id", o.ClientID)
	v.Set("refresh_token", refreshToken)
	t, err := o.token(ctx, "refreshToken", v)
	if err != nil {
		return Token{}, fmt.Errorf("refresh oauth token: %w", err)
	}
	return t, nil
}

func (o OAuthConfig) token(ctx context.Context, op string, form url.Values) (Token, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.tokenURL(), strings.NewReader(form.Encode()))
	if err != nil {
		return Token{}, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	hc := o.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	start := o.now()
	resp, err := hc.Do(req)
	if err != nil {
		return Token{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Token{}, fmt.Errorf("read response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return Token{}, newAPIError(op, resp, body)
	}
	var w struct {
		AccessToken  string `json:"access_token"`
		TokenType    string `json:"token_type"`
		ExpiresIn    int64  `json:"expires_in"`
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.Unmarshal(body, &w); err != nil {
		return Token{}, fmt.Errorf("decode token: %w", err)
	}
	if w.AccessToken == "" || w.RefreshToken == "" {
		return Token{}, errors.New("decode token: access or refresh token missing")
	}
	uid, err := TokenUserID(w.AccessToken)
	if err != nil {
		return Token{}, fmt.Errorf("decode token: %w", err)
	}
	// Expiry counts from when we asked, so a slow answer errs early.
	return Token{
		AccessToken: w.AccessToken, RefreshToken: w.RefreshToken, UserID: uid,
		ExpiresAt: start.Add(time.Duration(w.ExpiresIn) * time.Second),
	}, nil
}

// TokenUserID reads the Etsy user id every Etsy token starts with
// ("12345678.<opaque>").
func TokenUserID(token string) (int64, error) {
	prefix, _, ok := strings.Cut(token, ".")
	if !ok {
		return 0, errors.New("token has no user id prefix")
	}
	uid, err := strconv.ParseInt(prefix, 10, 64)
	if err != nil || uid <= 0 {
		return 0, errors.New("token user id prefix is not a positive integer")
	}
	return uid, nil
}

// AuthStates remembers pending authorization requests so each callback's
// state is accepted once, within a time limit, and yields its PKCE
// verifier. It is in memory: a process restart forgets pending requests,
// and the seller simply starts again.
type AuthStates struct {
	TTL time.Duration    // default 10 minutes
	Now func() time.Time // default time.Now

	mu      sync.Mutex
	pending map[string]pendingAuth
}

type pendingAuth struct {
	verifier string
	expires  time.Time
}

// Begin starts an authorization request: it returns the state and the PKCE
// challenge to put in AuthCodeURL, and remembers the verifier.
func (a *AuthStates) Begin() (state, challenge string, err error) {
	state, err = NewState()
	if err != nil {
		return "", "", err
	}
	verifier, challenge, err := NewPKCE()
	if err != nil {
		return "", "", err
	}
	now := a.now()
	ttl := a.TTL
	defaults.Positive(&ttl, 10*time.Minute)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pending == nil {
		a.pending = make(map[string]pendingAuth)
	}
	for s, p := range a.pending {
		if now.After(p.expires) {
			delete(a.pending, s)
		}
	}
	a.pending[state] = pendingAuth{verifier: verifier, expires: now.Add(ttl)}
	return state, challenge, nil
}

// Take returns the verifier of a pending state and forgets it; unknown,
// used or expired states give ok false.
func (a *AuthStates) Take(state string) (verifier string, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p, found := a.pending[state]
	if !found {
		return "", false
	}
	delete(a.pending, state)
	if a.now().After(p.expires) {
		return "", false
	}
	return p.verifier, true
}

func (a *AuthStates) now() time.Time {
	if a.Now == nil {
		return time.Now()
	}
	return a.Now()
}
