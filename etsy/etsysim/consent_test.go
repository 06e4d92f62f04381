package etsysim_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/etsy/etsysim"
)

const consentRedirect = "http://app.test/connect/etsy/callback"

// authorizeQuery is an authorization request as the app makes it, with
// challenge as its PKCE code challenge.
func authorizeQuery(challenge string) url.Values {
	return url.Values{
		"response_type": {"code"}, "client_id": {etsysim.DefaultKeyString}, "redirect_uri": {consentRedirect},
		"scope": {"listings_r transactions_r"}, "state": {`st"><script>x</script>`},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"},
	}
}

func getConnect(t *testing.T, sim http.Handler, q url.Values) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	sim.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/oauth/connect?"+q.Encode(), nil))
	return w
}

// redirected is the query of the redirect w answers, which must go back
// to the app.
func redirected(t *testing.T, w *httptest.ResponseRecorder) url.Values {
	t.Helper()
	if w.Code != http.StatusFound {
		t.Fatalf("status %d, want 302: %s", w.Code, w.Body)
	}
	u, err := url.Parse(w.Header().Get("Location"))
	if err != nil || !strings.HasPrefix(u.String(), consentRedirect+"?") {
		t.Fatalf("redirect to %q (%v), want %s?…", w.Header().Get("Location"), err, consentRedirect)
	}
	return u.Query()
}

// tokenUser exchanges code and returns the Etsy user the grant is for.
func tokenUser(t *testing.T, sim http.Handler, code, verifier string) int64 {
	t.Helper()
	form := url.Values{"grant_type": {"authorization_code"}, "client_id": {etsysim.DefaultKeyString},
		"redirect_uri": {consentRedirect}, "code": {code}, "code_verifier": {verifier}}
	req := httptest.NewRequest(http.MethodPost, "/v3/public/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := httptest.NewRecorder()
	sim.ServeHTTP(w, req)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &tok); w.Code != http.StatusOK || err != nil {
		t.Fatalf("token exchange: %d %s", w.Code, w.Body)
	}
	// Etsy's access tokens start with the user id.
	prefix, _, _ := strings.Cut(tok.AccessToken, ".")
	id, err := strconv.ParseInt(prefix, 10, 64)
	if err != nil {
		t.Fatalf("access token %q does not start with a user id", tok.AccessToken)
	}
	return id
}

func TestConsentPage(t *testing.T) {
	sim := newSim(t, etsysim.Options{ConsentPage: true})
	first, err := sim.CreateShop(etsysim.ShopSpec{})
	if err != nil {
		t.Fatal(err)
	}
	second, err := sim.CreateShop(etsysim.ShopSpec{Name: `<i>Tom&Jerry"`})
	if err != nil {
		t.Fatal(err)
	}
	verifier, challenge, err := etsy.NewPKCE()
	if err != nil {
		t.Fatal(err)
	}
	q := authorizeQuery(challenge)

	t.Run("lists the sellers", func(t *testing.T) {
		w := getConnect(t, sim, q)
		body := w.Body.String()
		if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
			t.Fatalf("status %d, %s: %s", w.Code, w.Header().Get("Content-Type"), body)
		}
		if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("Content-Security-Policy %q", csp)
		}
		for _, want := range []string{
			"Local Etsy simulator", etsysim.DefaultKeyString, "app.test", "listings_r", "transactions_r",
			first.Name, strconv.FormatInt(first.ShopID, 10), strconv.FormatInt(first.UserID, 10),
			"&lt;i&gt;Tom&amp;Jerry&#34;", strconv.FormatInt(second.ShopID, 10), strconv.FormatInt(second.UserID, 10),
			`name="shop_id" value="` + strconv.FormatInt(second.ShopID, 10) + `"`, `name="consent" value="deny"`,
			// The request's parameters ride along, escaped.
			`name="state" value="st&#34;&gt;&lt;script&gt;x&lt;/script&gt;"`, `name="code_challenge" value="` + challenge + `"`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("the consent page lacks %q:\n%s", want, body)
			}
		}
		if strings.Contains(body, "<script>") || strings.Contains(body, "<i>Tom") {
			t.Errorf("the consent page carries unescaped input:\n%s", body)
		}
	})

	t.Run("allow issues a code for that seller", func(t *testing.T) {
		allow := authorizeQuery(challenge)
		allow.Set("shop_id", strconv.FormatInt(second.ShopID, 10))
		got := redirected(t, getConnect(t, sim, allow))
		if got.Get("state") != q.Get("state") || got.Get("code") == "" || got.Get("error") != "" {
			t.Fatalf("allow redirected with %v", got)
		}
		if uid := tokenUser(t, sim, got.Get("code"), verifier); uid != second.UserID {
			t.Errorf("the grant is user %d's, want %d (the chosen seller)", uid, second.UserID)
		}
	})

	t.Run("deny", func(t *testing.T) {
		deny := authorizeQuery(challenge)
		deny.Set("consent", "deny")
		got := redirected(t, getConnect(t, sim, deny))
		if got.Get("error") != "access_denied" || got.Get("state") != q.Get("state") || got.Get("code") != "" {
			t.Errorf("deny redirected with %v", got)
		}
	})

	t.Run("a bad request gets no page", func(t *testing.T) {
		for name, c := range map[string]struct {
			key, value string
			status     int
			oauthError string
		}{
			"unknown client":   {"client_id", "nobody", http.StatusBadRequest, "invalid_client"},
			"unknown redirect": {"redirect_uri", "ftp://elsewhere", http.StatusBadRequest, "invalid_request"},
			"unknown scope":    {"scope", "listings_r teleport_w", http.StatusFound, "invalid_scope"},
			"no PKCE":          {"code_challenge_method", "plain", http.StatusFound, "invalid_request"},
		} {
			bad := authorizeQuery(challenge)
			bad.Set(c.key, c.value)
			w := getConnect(t, sim, bad)
			var got string
			if w.Code == http.StatusFound {
				got = redirected(t, w).Get("error")
			} else {
				var e struct {
					Error string `json:"error"`
				}
				_ = json.Unmarshal(w.Body.Bytes(), &e)
				got = e.Error
			}
			if w.Code != c.status || got != c.oauthError {
				t.Errorf("%s: %d %q, want %d %q: %s", name, w.Code, got, c.status, c.oauthError, w.Body)
			}
		}
	})
}

// TestConsentAuto: without the page, a request naming no seller is the
// first shop's owner's at once, as tests and ledger shops connect expect.
func TestConsentAuto(t *testing.T) {
	sim := newSim(t, etsysim.Options{})
	first, err := sim.CreateShop(etsysim.ShopSpec{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sim.CreateShop(etsysim.ShopSpec{}); err != nil {
		t.Fatal(err)
	}
	verifier, challenge, err := etsy.NewPKCE()
	if err != nil {
		t.Fatal(err)
	}
	got := redirected(t, getConnect(t, sim, authorizeQuery(challenge)))
	if uid := tokenUser(t, sim, got.Get("code"), verifier); uid != first.UserID {
		t.Errorf("the grant is user %d's, want %d (the first shop's owner)", uid, first.UserID)
	}
}
