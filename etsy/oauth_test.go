package etsy_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/etsy/etsysim"
)

// authorize follows AuthCodeURL against the simulator's consent page,
// which approves at once, and returns the callback's query.
func authorize(t *testing.T, e *env, state, challenge string) url.Values {
	t.Helper()
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Get(e.oauth.AuthCodeURL(state, challenge))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("consent answered %d, want 302", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(loc.String(), e.oauth.RedirectURL+"?") {
		t.Fatalf("redirected to %s, want the redirect URL", loc)
	}
	return loc.Query()
}

func TestOAuthConnectFlow(t *testing.T) {
	e := newEnv(t, envOptions{sim: etsysim.Options{FreezeClock: true}})
	ctx := ctxT(t)
	var states etsy.AuthStates
	state, challenge, err := states.Begin()
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(e.oauth.AuthCodeURL(state, challenge))
	q := u.Query()
	for k, want := range map[string]string{
		"response_type": "code", "client_id": e.oauth.ClientID, "redirect_uri": e.oauth.RedirectURL,
		"scope": "listings_r listings_w transactions_r shops_r", "state": state,
		"code_challenge": challenge, "code_challenge_method": "S256",
	} {
		if q.Get(k) != want {
			t.Errorf("auth URL %s = %q, want %q", k, q.Get(k), want)
		}
	}
	if !strings.Contains(u.RawQuery, "scope=listings_r%20listings_w") {
		t.Errorf("scope not %%20-separated: %s", u.RawQuery)
	}

	cb := authorize(t, e, state, challenge)
	if cb.Get("state") != state || cb.Get("code") == "" {
		t.Fatalf("callback %v", cb)
	}
	verifier, ok := states.Take(cb.Get("state"))
	if !ok {
		t.Fatal("state not accepted")
	}
	if _, again := states.Take(state); again {
		t.Error("state accepted twice")
	}
	tok, err := e.oauth.Exchange(ctx, cb.Get("code"), verifier)
	if err != nil {
		t.Fatal(err)
	}
	if tok.UserID != e.shop.UserID || !tok.ExpiresAt.Equal(testStart.Add(time.Hour)) || !strings.HasPrefix(tok.AccessToken, "58") {
		t.Errorf("token = %v", tok)
	}
	me, err := e.client.GetMe(ctx, etsy.StaticTokenSource(tok.AccessToken))
	if err != nil || me.ShopID != e.shop.ShopID {
		t.Errorf("GetMe with the new token = %+v, %v", me, err)
	}
	// A code works once.
	if _, err := e.oauth.Exchange(ctx, cb.Get("code"), verifier); !errors.Is(err, etsy.ErrInvalidGrant) {
		t.Errorf("second exchange = %v, want ErrInvalidGrant", err)
	}
	if got := e.sim.Stats().TokenExchanges; got != 2 {
		t.Errorf("token exchanges = %d, want 2", got)
	}
}

func TestOAuthPKCEIsChecked(t *testing.T) {
	e := newEnv(t, envOptions{sim: etsysim.Options{FreezeClock: true}})
	ctx := ctxT(t)
	verifier, challenge, err := etsy.NewPKCE()
	if err != nil {
		t.Fatal(err)
	}
	if len(verifier) < 43 || etsy.PKCEChallenge(verifier) != challenge {
		t.Fatalf("verifier %q, challenge %q", verifier, challenge)
	}
	cb := authorize(t, e, "s1", challenge)
	other, _, _ := etsy.NewPKCE()
	if _, err := e.oauth.Exchange(ctx, cb.Get("code"), other); !errors.Is(err, etsy.ErrInvalidGrant) {
		t.Fatalf("exchange with the wrong verifier = %v, want ErrInvalidGrant", err)
	}
	// The failed attempt burned the code.
	if _, err := e.oauth.Exchange(ctx, cb.Get("code"), verifier); !errors.Is(err, etsy.ErrInvalidGrant) {
		t.Errorf("exchange after a wrong verifier = %v, want ErrInvalidGrant", err)
	}
	// Without PKCE the consent page refuses and says so in the redirect.
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Get(strings.Replace(e.oauth.AuthCodeURL("s2", ""), "code_challenge_method=S256", "code_challenge_method=plain", 1))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if loc.Query().Get("error") != "invalid_request" || loc.Query().Get("state") != "s2" {
		t.Errorf("consent without S256 redirected to %s", loc)
	}
}

func TestRefreshRotatesAndReuseIsInvalidGrant(t *testing.T) {
	e := newEnv(t, envOptions{sim: etsysim.Options{FreezeClock: true}})
	ctx := ctxT(t)
	next, err := e.oauth.Refresh(ctx, e.token.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if next.RefreshToken == e.token.RefreshToken || next.AccessToken == e.token.AccessToken {
		t.Fatal("refresh did not rotate the tokens")
	}
	_, err = e.oauth.Refresh(ctx, e.token.RefreshToken)
	var apiErr *etsy.APIError
	if !errors.Is(err, etsy.ErrInvalidGrant) || !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest {
		t.Fatalf("reusing a rotated refresh token = %v, want 400 invalid_grant", err)
	}
	if _, err := e.oauth.Refresh(ctx, next.RefreshToken); err != nil {
		t.Errorf("the new refresh token: %v", err)
	}
}

func TestInvalidGrantSurfacesThroughTheClient(t *testing.T) {
	e := newEnv(t, envOptions{sim: etsysim.Options{FreezeClock: true}})
	ctx := ctxT(t)
	// The seller changed their password: every token is revoked.
	if err := e.sim.RevokeTokens(e.shop.UserID); err != nil {
		t.Fatal(err)
	}
	_, err := e.client.GetMe(ctx, e.ts)
	if !errors.Is(err, etsy.ErrInvalidGrant) {
		t.Fatalf("GetMe with revoked tokens = %v, want ErrInvalidGrant", err)
	}
	// The source stays failed instead of hammering the token endpoint.
	calls := e.sim.Stats().RefreshCalls
	if _, err := e.client.GetMe(ctx, e.ts); !errors.Is(err, etsy.ErrInvalidGrant) {
		t.Errorf("second GetMe = %v, want ErrInvalidGrant", err)
	}
	if got := e.sim.Stats().RefreshCalls; got != calls {
		t.Errorf("a dead token source called refresh again (%d → %d)", calls, got)
	}
}

func TestConcurrentExpiredTokenRefreshesOnce(t *testing.T) {
	t.Run("expiry known to the source", func(t *testing.T) {
		var persisted atomic.Int32
		e := newEnv(t, envOptions{
			sim: etsysim.Options{FreezeClock: true},
			tokenOpts: etsy.TokenSourceOptions{OnRefresh: func(context.Context, etsy.Token) error {
				persisted.Add(1)
				return nil
			}},
		})
		e.sim.Advance(2 * time.Hour)
		runTwenty(t, e)
		if got := e.sim.Stats().RefreshCalls; got != 1 {
			t.Errorf("refresh calls = %d, want 1", got)
		}
		if persisted.Load() != 1 {
			t.Errorf("OnRefresh ran %d times, want 1", persisted.Load())
		}
	})
	t.Run("expiry only Etsy knows (401 invalid_token)", func(t *testing.T) {
		e := newEnv(t, envOptions{sim: etsysim.Options{FreezeClock: true}})
		if err := e.sim.ExpireAccessTokens(e.shop.UserID); err != nil {
			t.Fatal(err)
		}
		runTwenty(t, e)
		if got := e.sim.Stats().RefreshCalls; got != 1 {
			t.Errorf("refresh calls = %d, want 1", got)
		}
	})
	t.Run("refreshes a little before expiry", func(t *testing.T) {
		e := newEnv(t, envOptions{sim: etsysim.Options{FreezeClock: true}, tokenOpts: etsy.TokenSourceOptions{Skew: 2 * time.Minute}})
		e.sim.Advance(time.Hour - 90*time.Second)
		runTwenty(t, e)
		if got := e.sim.Stats().RefreshCalls; got != 1 {
			t.Errorf("refresh calls = %d, want 1", got)
		}
		if cur := e.ts.Current(); !cur.ExpiresAt.Equal(e.sim.Now().Add(time.Hour)) {
			t.Errorf("new token expires %v, want an hour from now", cur.ExpiresAt)
		}
	})
}

func runTwenty(t *testing.T, e *env) {
	t.Helper()
	ctx := ctxT(t)
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range 20 {
		wg.Go(func() {
			<-start
			_, errs[i] = e.client.GetMe(ctx, e.ts)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("goroutine %d: %v", i, err)
		}
	}
}

func TestAuthStatesExpire(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := etsy.AuthStates{TTL: time.Minute, Now: func() time.Time { return now }}
	s1, _, err := a.Begin()
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Minute)
	if _, ok := a.Take(s1); ok {
		t.Error("expired state accepted")
	}
	if _, ok := a.Take("never-issued"); ok {
		t.Error("unknown state accepted")
	}
}

func TestTokenUserID(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"12345678.VJTv9qyjwJbYlARxdFmEEQ", 12345678, true},
		{"nodot", 0, false},
		{"abc.def", 0, false},
		{"-1.x", 0, false},
	} {
		got, err := etsy.TokenUserID(tt.in)
		if diff := cmp.Diff(tt.want, got); diff != "" || (err == nil) != tt.ok {
			t.Errorf("TokenUserID(%q) = %d, %v", tt.in, got, err)
		}
	}
}
