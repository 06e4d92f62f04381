package webapp

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/shopledger/shopledger/accounts"
)

type sessionKey struct{}

func sessionOf(r *http.Request) (accounts.Session, bool) {
	s, ok := r.Context().Value(sessionKey{}).(accounts.Session)
	return s, ok
}

// loadSession puts the cookie's live session, if any, into the context.
func (a *app) loadSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(a.cfg.Accounts.Sessions().CookieName())
		if err != nil || c.Value == "" {
			next.ServeHTTP(w, r)
			return
		}
		sess, err := a.cfg.Accounts.Session(r.Context(), accounts.SessionID(c.Value))
		if errors.Is(err, accounts.ErrNoSession) {
			a.clearCookie(w)
			next.ServeHTTP(w, r)
			return
		}
		if err != nil {
			a.fail(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, sess)))
	})
}

// requireSession sends a visitor without a session to the login page,
// coming back here afterwards for a page.
func (a *app) requireSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := sessionOf(r); !ok {
			target := "/login"
			if r.Method == http.MethodGet {
				target += "?next=" + url.QueryEscape(r.URL.RequestURI())
			}
			http.Redirect(w, r, target, http.StatusSeeOther)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// requireMember lets through sessions acting for an organisation.
func (a *app) requireMember(next http.Handler) http.Handler {
	return a.requireSessionThat(func(accounts.Session) bool { return true },
		"You are not a member of any organisation. Ask an owner for an invitation.", next)
}

// requireOwner lets through owners of the session's organisation.
func (a *app) requireOwner(next http.Handler) http.Handler {
	return a.requireSessionThat(func(s accounts.Session) bool { return s.Role.Manages() },
		"Only an owner of the organisation can do this.", next)
}

// requireLogReader lets through the roles that read the event log
// (owners and auditors).
func (a *app) requireLogReader(next http.Handler) http.Handler {
	return a.requireSessionThat(func(s accounts.Session) bool { return s.Role.ReadsLog() },
		"Only owners and auditors of the organisation can read the event log.", next)
}

// requireSessionThat lets through sessions acting for an organisation
// that may, and forbids the others with why.
func (a *app) requireSessionThat(may func(accounts.Session) bool, why string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s, _ := sessionOf(r); s.OrgID == 0 || !may(s) {
			a.forbidden(w, r, why)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (a *app) setCookie(w http.ResponseWriter, id accounts.SessionID) {
	cfg := a.cfg.Accounts.Sessions()
	http.SetCookie(w, &http.Cookie{
		Name: cfg.CookieName(), Value: string(id), Path: "/",
		MaxAge: int(cfg.Absolute / time.Second), HttpOnly: true, Secure: cfg.Secure, SameSite: http.SameSiteLaxMode,
	})
}

// rotate gives the session a new id (acting for org unless 0), sets it
// and sends the browser on to path with a notice.
func (a *app) rotate(w http.ResponseWriter, r *http.Request, s accounts.Session, org int64, path, notice string) {
	id, err := a.cfg.Accounts.Rotate(r.Context(), s.ID, org)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.setCookie(w, id)
	redirect(w, r, path, notice)
}

func (a *app) clearCookie(w http.ResponseWriter) {
	cfg := a.cfg.Accounts.Sessions()
	http.SetCookie(w, &http.Cookie{Name: cfg.CookieName(), Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: cfg.Secure, SameSite: http.SameSiteLaxMode})
}

func (a *app) client(r *http.Request) accounts.Client {
	return accounts.Client{Address: a.cfg.ClientAddress(r), UserAgent: r.UserAgent()}
}

// localPath keeps a ?next= target on this site: a path, never a URL.
func localPath(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	// Browsers drop tabs and newlines from a URL and read "\" as "/", so
	// "/\t/evil.example" would leave the site: no control character and
	// no backslash anywhere.
	if strings.ContainsFunc(next, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }) {
		return "/"
	}
	return next
}
