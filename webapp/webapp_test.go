package webapp_test

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shopledger/shopledger/accounts"
)

func TestSignUpVerifyLoginCookieAndLogout(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	b := s.browser("ann@example.com")
	form := url.Values{"email": {"ann@example.com"}, "password": {password}, "password_again": {password}, "timezone": {"Europe/Paris"}}

	// Before verifying, the right password does not log in.
	s.must(b.post("/signup", form), http.StatusSeeOther, "sign up")
	if a := b.post("/login", url.Values{"email": {"ann@example.com"}, "password": {password}}); a.status != http.StatusUnprocessableEntity || !strings.Contains(a.body, "not verified") {
		t.Fatalf("login before verification: %d %s", a.status, a.body)
	}
	s.must(b.get(s.link("ann@example.com", "Verify")), http.StatusSeeOther, "verify")

	a := b.login(password)
	var raw string
	for _, c := range a.header.Values("Set-Cookie") {
		if strings.HasPrefix(c, "__Host-shopledger_session=") {
			raw = c
		}
	}
	if raw == "" {
		t.Fatalf("login set no __Host- session cookie: %q", a.header.Values("Set-Cookie"))
	}
	for _, attr := range []string{"Path=/", "HttpOnly", "Secure", "SameSite=Lax"} {
		if !strings.Contains(raw, attr) {
			t.Errorf("session cookie %q lacks %s", raw, attr)
		}
	}
	if strings.Contains(raw, "Domain=") {
		t.Errorf("session cookie %q names a domain; __Host- cookies must not", raw)
	}
	value := b.cookie()
	if len(value) != 43 {
		t.Fatalf("session id %q is not 256 bits in base64url", value)
	}
	if got := query(s.db.DB, `SELECT count(*) FROM sessions WHERE id_hash = sha256(convert_to($1, 'UTF8'))`, value); got != "1" {
		t.Fatalf("sessions stored under the id's hash: %s, want 1", got)
	}
	if got := query(s.db.DB, `SELECT count(*) FROM sessions WHERE encode(id_hash, 'escape') LIKE '%' || $1 || '%'`, value); got != "0" {
		t.Fatalf("the session id itself is stored")
	}
	s.must(b.get("/account"), http.StatusOK, "account page")

	// Logging out ends the session on the server: the old cookie, sent
	// again by hand, opens nothing.
	s.must(b.post("/logout", nil), http.StatusSeeOther, "log out")
	replay := s.browser("ann@example.com")
	u, _ := url.Parse(s.srv.URL)
	replay.client.Jar.SetCookies(u, []*http.Cookie{{Name: "__Host-shopledger_session", Value: value, Path: "/", Secure: true}})
	if a := replay.get("/account"); a.status != http.StatusSeeOther || !strings.HasPrefix(a.header.Get("Location"), "/login") {
		t.Fatalf("old session cookie after logout: %d %s", a.status, a.header.Get("Location"))
	}

	// A new login gets a new id, never the one the browser had.
	b.login(password)
	if b.cookie() == value {
		t.Fatal("login reused the previous session id")
	}
	want := []string{accounts.ActionSignUp, accounts.ActionEmailVerified, accounts.ActionLoginSucceeded, accounts.ActionLogout}
	for _, w := range want {
		if !slices.Contains(s.actions(s.orgOf("ann@example.com")), w) {
			t.Errorf("audit trail lacks %s: %v", w, s.actions(s.orgOf("ann@example.com")))
		}
	}
}

func TestSignUpRevealsNothingAboutRegisteredAddresses(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	s.signUp("bea@example.com")
	b := s.browser("x")
	form := func(email string) url.Values {
		return url.Values{"email": {email}, "password": {password}, "password_again": {password}}
	}
	taken := s.must(b.post("/signup", form("BEA@example.com")), http.StatusSeeOther, "sign up with a taken address")
	fresh := s.must(b.post("/signup", form("new@example.com")), http.StatusSeeOther, "sign up with a new address")
	if taken.header.Get("Location") != fresh.header.Get("Location") {
		t.Fatalf("sign-up answers differ: %q vs %q", taken.header.Get("Location"), fresh.header.Get("Location"))
	}
	forgotKnown := b.post("/password/forgot", url.Values{"email": {"bea@example.com"}})
	forgotUnknown := b.post("/password/forgot", url.Values{"email": {"nobody@example.com"}})
	if forgotKnown.status != forgotUnknown.status || forgotKnown.header.Get("Location") != forgotUnknown.header.Get("Location") {
		t.Fatalf("reset answers differ: %d %q vs %d %q", forgotKnown.status, forgotKnown.header.Get("Location"), forgotUnknown.status, forgotUnknown.header.Get("Location"))
	}
	wrongPw := b.post("/login", url.Values{"email": {"bea@example.com"}, "password": {"not the password"}})
	noUser := b.post("/login", url.Values{"email": {"nobody@example.com"}, "password": {"not the password"}})
	if wrongPw.status != noUser.status || !strings.Contains(noUser.body, accounts.ErrBadCredentials.Error()) || !strings.Contains(wrongPw.body, accounts.ErrBadCredentials.Error()) {
		t.Fatalf("login answers differ: %d vs %d", wrongPw.status, noUser.status)
	}
	// The owner of the taken address hears about the attempt.
	s.mail("bea@example.com", "Someone tried to sign up")
}

func TestResetLinkIsSingleUseOverHTTP(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	b := s.signUp("cat@example.com")
	other := s.browser("cat@example.com")
	s.must(other.post("/password/forgot", url.Values{"email": {"cat@example.com"}}), http.StatusSeeOther, "forgot")
	link := s.link("cat@example.com", "Reset")
	token := strings.TrimPrefix(link[strings.Index(link, "token="):], "token=")
	token, _ = url.QueryUnescape(token)
	s.must(other.get(link), http.StatusOK, "reset page")
	newPw := url.Values{"token": {token}, "password": {"a whole new secret"}, "password_again": {"a whole new secret"}}
	s.must(other.post("/password/reset", newPw), http.StatusSeeOther, "reset")
	if a := other.post("/password/reset", newPw); a.status != http.StatusUnprocessableEntity {
		t.Fatalf("second use of a reset link: %d", a.status)
	}
	// A reset ends every session: the browser logged in before is out.
	if a := b.get("/account"); a.status != http.StatusSeeOther {
		t.Fatalf("session from before the reset: %d", a.status)
	}
	s.clock.add(2 * time.Hour)
	s.must(other.post("/password/forgot", url.Values{"email": {"cat@example.com"}}), http.StatusSeeOther, "forgot again")
	late := s.link("cat@example.com", "Reset")
	s.clock.add(61 * time.Minute)
	if a := other.get(late); a.status != http.StatusUnprocessableEntity {
		t.Fatalf("expired reset link: %d", a.status)
	}
}

func TestCrossSitePostIsRefused(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	b := s.signUp("dan@example.com")
	for _, h := range []map[string]string{
		{"Sec-Fetch-Site": "cross-site"},
		{"Origin": "https://evil.example"},
	} {
		a := b.do(http.MethodPost, "/members/invite", url.Values{"email": {"eve@example.com"}, "role": {"owner"}}, h)
		if a.status != http.StatusForbidden {
			t.Fatalf("cross-site POST with %v: %d, want 403", h, a.status)
		}
		a = b.do(http.MethodPost, "/logout/everywhere", url.Values{}, h)
		if a.status != http.StatusForbidden {
			t.Fatalf("cross-site logout with %v: %d, want 403", h, a.status)
		}
	}
	if got := query(s.db.DB, `SELECT count(*) FROM invitations`); got != "0" {
		t.Fatalf("a cross-site POST made %s invitations", got)
	}
	s.must(b.get("/account"), http.StatusOK, "still logged in")
	// The same form from the site itself works.
	s.must(b.do(http.MethodPost, "/members/invite", url.Values{"email": {"eve@example.com"}, "role": {"staff"}}, map[string]string{"Sec-Fetch-Site": "same-origin"}), http.StatusSeeOther, "same-origin invite")
}

func TestLoginThrottleLocksThenLetsTheOwnerIn(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	s.signUp("eve@example.com")
	b := s.browser("eve@example.com")
	wrong := url.Values{"email": {"eve@example.com"}, "password": {"wrong password!"}}
	var last answer
	for i := 0; i < 20; i++ {
		last = b.post("/login", wrong)
		if last.status == http.StatusTooManyRequests {
			break
		}
		if last.status != http.StatusUnprocessableEntity {
			t.Fatalf("failure %d: status %d", i+1, last.status)
		}
	}
	if last.status != http.StatusTooManyRequests || last.header.Get("Retry-After") == "" {
		t.Fatalf("repeated failures never throttled: %d", last.status)
	}
	// Even the right password waits while the lock runs.
	if a := b.post("/login", url.Values{"email": {"eve@example.com"}, "password": {password}}); a.status != http.StatusTooManyRequests {
		t.Fatalf("right password during the lock: %d", a.status)
	}
	s.clock.add(16 * time.Minute)
	b.login(password)
	if got := s.actions(s.orgOf("eve@example.com")); !slices.Contains(got, accounts.ActionLoginFailed) || !slices.Contains(got, accounts.ActionLoginThrottled) {
		t.Fatalf("audit trail lacks failed and throttled logins: %v", got)
	}
}

var tokenRE = regexp.MustCompile(`slt_[A-Za-z0-9_-]{43}`)

func TestInvitationRolesRemovalAndTokens(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	owner, org := s.signUpOwner("olga@example.com")
	s.addShop(org, 501, "Olga's mugs")

	staff := s.signUp("sam@example.com")
	auditor := s.signUp("ada@example.com")
	s.must(owner.post("/members/invite", url.Values{"email": {"sam@example.com"}, "role": {"staff"}}), http.StatusSeeOther, "invite staff")
	s.must(owner.post("/members/invite", url.Values{"email": {"ada@example.com"}, "role": {"auditor"}}), http.StatusSeeOther, "invite auditor")
	samLink := s.link("sam@example.com", "invited")
	s.must(staff.get(samLink), http.StatusOK, "invitation page")
	token := strings.TrimPrefix(samLink[strings.Index(samLink, "token="):], "token=")
	token, _ = url.QueryUnescape(token)
	before := staff.cookie()
	s.must(staff.post("/invitations/accept", url.Values{"token": {token}}), http.StatusSeeOther, "accept")
	if staff.cookie() == before {
		t.Fatal("joining an organisation kept the session id")
	}
	if a := staff.post("/invitations/accept", url.Values{"token": {token}}); a.status != http.StatusUnprocessableEntity {
		t.Fatalf("second acceptance: %d", a.status)
	}
	adaLink := s.link("ada@example.com", "invited")
	adaToken, _ := url.QueryUnescape(adaLink[strings.Index(adaLink, "token=")+len("token="):])
	s.must(auditor.post("/invitations/accept", url.Values{"token": {adaToken}}), http.StatusSeeOther, "auditor accepts")

	// Staff cannot manage members; auditors write nothing.
	samID, adaID := s.userID("sam@example.com"), s.userID("ada@example.com")
	for _, b := range []*browser{staff, auditor} {
		for _, c := range []struct {
			path string
			form url.Values
		}{
			{"/members/invite", url.Values{"email": {"x@example.com"}, "role": {"owner"}}},
			{"/members/" + samID + "/role", url.Values{"role": {"owner"}}},
			{"/members/" + adaID + "/remove", nil},
		} {
			if a := b.post(c.path, c.form); a.status != http.StatusForbidden {
				t.Errorf("%s POST %s: %d, want 403", b.email, c.path, a.status)
			}
		}
		if a := b.get("/audit"); a.status != http.StatusForbidden {
			t.Errorf("%s GET /audit: %d, want 403", b.email, a.status)
		}
	}
	// Only owners start connecting a shop; the browser goes on to ingest
	// with a single-use intent, and the shop page shows it.
	for _, b := range []*browser{staff, auditor} {
		if a := b.post("/shops/connect", nil); a.status != http.StatusForbidden {
			t.Errorf("%s starting a connection: %d, want 403", b.email, a.status)
		}
	}
	if a := s.must(owner.post("/shops/connect", nil), http.StatusSeeOther, "connect"); !strings.HasPrefix(a.header.Get("Location"), connectURL+"?intent=") {
		t.Errorf("connect sends the browser to %q", a.header.Get("Location"))
	}
	if page := s.must(auditor.get("/shops/501"), http.StatusOK, "shop page").body; !strings.Contains(page, "Olga&#39;s mugs") {
		t.Errorf("the shop page does not name the shop:\n%s", page)
	}
	// Tokens never above the member's role.
	if a := auditor.post("/tokens", url.Values{"role": {"seller"}}); a.status != http.StatusForbidden {
		t.Fatalf("auditor creating a seller token: %d", a.status)
	}
	if a := staff.post("/tokens", url.Values{"role": {"auditor"}}); a.status != http.StatusForbidden {
		t.Fatalf("staff creating an auditor token: %d", a.status)
	}
	a := s.must(staff.post("/tokens", url.Values{"role": {"seller"}, "label": {"laptop"}, "shop": {"501"}, "expires_days": {"30"}}), http.StatusOK, "staff creates a token")
	secret := tokenRE.FindString(a.body)
	if secret == "" {
		t.Fatal("the new token is not shown")
	}
	if strings.Contains(s.must(staff.get("/tokens"), http.StatusOK, "tokens page").body, secret) {
		t.Fatal("the token is shown a second time")
	}
	api := func(secret string) int {
		req, _ := http.NewRequest(http.MethodGet, s.srv.URL+"/v1/shops", nil)
		req.Header.Set("Authorization", "Bearer "+secret)
		res, err := s.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if got := api(secret); got != http.StatusOK {
		t.Fatalf("self-service token on /v1: %d", got)
	}
	// The owner demotes staff to auditor: the seller token stops working.
	s.must(owner.post("/members/"+samID+"/role", url.Values{"role": {"auditor"}}), http.StatusSeeOther, "demote")
	if got := api(secret); got != http.StatusUnauthorized {
		t.Fatalf("seller token of a member demoted to auditor: %d, want 401", got)
	}
	s.must(owner.post("/members/"+samID+"/role", url.Values{"role": {"staff"}}), http.StatusSeeOther, "promote back")
	a = s.must(staff.post("/tokens", url.Values{"role": {"seller"}}), http.StatusOK, "new token")
	secret = tokenRE.FindString(a.body)

	// Removed: the session loses the organisation and the token stops on
	// the next request.
	s.must(owner.post("/members/"+samID+"/remove", nil), http.StatusSeeOther, "remove")
	if a := staff.get("/tokens"); a.status != http.StatusForbidden {
		t.Fatalf("removed member's session on /tokens: %d, want 403", a.status)
	}
	if got := api(secret); got != http.StatusUnauthorized {
		t.Fatalf("removed member's token: %d, want 401", got)
	}
	// The last owner cannot leave.
	if a := owner.post("/members/leave", nil); a.status != http.StatusUnprocessableEntity {
		t.Fatalf("last owner leaving: %d", a.status)
	}
	got := s.actions(org)
	for _, w := range []string{accounts.ActionInvited, accounts.ActionInvitationAccepted, accounts.ActionRoleChanged,
		accounts.ActionMemberRemoved, accounts.ActionTokenCreated, accounts.ActionShopConnectStarted} {
		if !slices.Contains(got, w) {
			t.Errorf("audit trail lacks %s: %v", w, got)
		}
	}
	if page := s.must(owner.get("/audit"), http.StatusOK, "audit page").body; !strings.Contains(page, accounts.ActionMemberRemoved) {
		t.Error("the audit page does not show the removal")
	}
}

// Every route the pages register, asked by one organisation's owner for
// another organisation's object, answers 404 (or, for routes that name no
// object, shows nothing of the other organisation). The routes come from
// the router, so a new route is covered or fails here.
func TestEveryRouteHidesOtherOrganisationsObjects(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	a := s.signUp("alice@example.com")
	b := s.signUp("bob@example.com")
	orgA := s.orgOf("alice@example.com")
	s.addShop(orgA, 601, "Alice secret shop")
	seeded := s.seedShop(orgA, 602, "Alice second shop", time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC))
	s.signUp("amy@example.com")
	s.must(a.post("/members/invite", url.Values{"email": {"amy@example.com"}, "role": {"staff"}}), http.StatusSeeOther, "invite")
	tok := tokenRE.FindString(s.must(a.post("/tokens", url.Values{"role": {"seller"}, "label": {"alice-token"}}), http.StatusOK, "token").body)
	// A listing of A's shop, with a variant whose key needs escaping.
	l := s.ledger()
	l.listing(601, 60101, "Alice secret listing", "EUR", map[string]int64{"sku:SECRET/1": 4})
	l.sell(601, 60101, "sku:SECRET/1", 1, "EUR", time.Hour, false)
	l.project()
	objects := map[string]string{
		"{listingID}":    "60101",
		"{variantKey}":   url.PathEscape("sku:SECRET/1"),
		"{tokenID}":      query(s.db.DB, `SELECT id::text FROM api_tokens WHERE org_id = $1`, orgA),
		"{invitationID}": query(s.db.DB, `SELECT id::text FROM invitations WHERE org_id = $1`, orgA),
		"{userID}":       s.userID("alice@example.com"),
		"{shopID}":       "601",
		"{receiptID}":    fmt.Sprint(seeded.receipts[0]),
		"{alertID}":      seeded.alertID,
		"{eventID}":      seeded.saleEvent,
		"{channelID}":    s.channel(602, "email", "alice-alerts@example.com"),
	}
	tested := 0
	for _, rt := range s.routes(func(_, pattern string) bool { return !strings.HasSuffix(pattern, "/*") }) {
		method, pattern := rt.method, rt.pattern
		path := pattern
		for k, v := range objects {
			path = strings.ReplaceAll(path, k, v)
		}
		if strings.Contains(path, "{") {
			t.Errorf("%s: no object to fill %s with; add one to this test", rt, pattern)
			continue
		}
		if path == pattern {
			if method != http.MethodGet {
				continue
			}
			// No object named: nothing of A may show on B's page.
			ans := b.get(path)
			for _, leak := range []string{"alice@example.com", "Alice secret shop", "Alice second shop", tok[:10], "amy@example.com", "Alice secret listing", "SECRET",
				seeded.alertID, seeded.saleEvent, "alice-alerts@example.com"} {
				if strings.Contains(ans.body, leak) {
					t.Errorf("B's %s shows A's %q", rt, leak)
				}
			}
			tested++
			continue
		}
		ans := b.do(method, path, url.Values{"role": {"auditor"}}, nil)
		if ans.status != http.StatusNotFound {
			t.Errorf("B's %s %s for A's object: %d, want 404", method, path, ans.status)
		}
		tested++
	}
	if tested < 10 {
		t.Fatalf("only %d routes tested", tested)
	}
	// A's objects are untouched.
	if got := query(s.db.DB, `SELECT count(*) FROM api_tokens WHERE org_id = $1 AND revoked_at IS NULL`, orgA); got != "1" {
		t.Fatalf("A's live tokens: %s, want 1", got)
	}
	if got := query(s.db.DB, `SELECT role FROM memberships WHERE user_id = $1`, s.userID("alice@example.com")); got != "owner" {
		t.Fatalf("A's owner role: %s", got)
	}
}

func TestChangePasswordRotatesAndEndsOtherSessions(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	b := s.signUp("fay@example.com")
	laptop := s.browser("fay@example.com")
	laptop.login(password)
	before := b.cookie()
	weak := s.must(b.post("/account/password", url.Values{"current_password": {password}, "password": {"password123"}, "password_again": {"password123"}}),
		http.StatusUnprocessableEntity, "weak new password")
	if !strings.Contains(weak.body, "leaked") {
		t.Fatalf("the refusal gives no reason:\n%s", weak.body)
	}
	s.must(b.post("/account/password", url.Values{"current_password": {password}, "password": {"a fresh long secret"}, "password_again": {"a fresh long secret"}}),
		http.StatusSeeOther, "change password")
	if b.cookie() == before || b.cookie() == "" {
		t.Fatal("changing the password kept the session id")
	}
	s.must(b.get("/account"), http.StatusOK, "this browser stays logged in")
	if a := laptop.get("/account"); a.status != http.StatusSeeOther {
		t.Fatalf("the other session after a password change: %d, want a redirect to log in", a.status)
	}
	laptop.login("a fresh long secret")
	if got := s.actions(s.orgOf("fay@example.com")); !slices.Contains(got, accounts.ActionPasswordChanged) {
		t.Fatalf("audit trail lacks the password change: %v", got)
	}
}
