package webapp

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/shopledger/shopledger/accounts"
	"github.com/shopledger/shopledger/tokens"
)

// view is what every template gets.
type view struct {
	Title   string
	Session *accounts.Session
	Orgs    []accounts.Organisation
	Notice  string
	Error   string
	Form    url.Values
	Loc     *time.Location
	Data    any
}

// notices are the messages a redirect can ask the next page to show, by
// code: nothing a visitor types is ever echoed through a URL.
var notices = map[string]string{
	"check-email":    "If that address can receive mail, a message is on its way. Open the link in it to continue.",
	"verified":       "Your address is verified. You can log in now.",
	"reset":          "Your password is changed and every session ended. Log in with the new password.",
	"logged-out":     "You are logged out.",
	"profile":        "Your settings are saved.",
	"password":       "Your password is changed. Every other session has ended.",
	"email-sent":     "A confirmation link is on its way to the new address. The change happens when you open it.",
	"email-changed":  "Your login address is changed.",
	"invited":        "The invitation is sent.",
	"revoked":        "Revoked.",
	"role":           "The role is changed.",
	"removed":        "The member is removed.",
	"left":           "You left the organisation.",
	"joined":         "You joined the organisation.",
	"switched":       "You switched organisation.",
	"logged-out-all": "Every session of yours has ended.",
	"connected":      "The shop is connected. Its listings and orders are being imported.",
}

func (a *app) render(w http.ResponseWriter, r *http.Request, status int, page string, v view) {
	t, ok := a.pages[page]
	if !ok {
		a.fail(w, r, fmt.Errorf("no template %q", page))
		return
	}
	if s, ok := sessionOf(r); ok {
		v.Session = &s
		v.Loc = s.User.Location()
		if orgs, err := a.cfg.Accounts.Organisations(r.Context(), s.User.ID); err == nil {
			v.Orgs = orgs
		}
	}
	if v.Loc == nil {
		v.Loc = time.UTC
	}
	if v.Notice == "" {
		v.Notice = notices[r.URL.Query().Get("notice")]
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", v); err != nil {
		a.fail(w, r, fmt.Errorf("render %s: %w", page, err))
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

// redirect sends the browser on after a successful POST, with a notice.
func redirect(w http.ResponseWriter, r *http.Request, path, notice string) {
	if notice != "" {
		path += "?notice=" + url.QueryEscape(notice)
	}
	http.Redirect(w, r, path, http.StatusSeeOther)
}

func (a *app) notFound(w http.ResponseWriter, r *http.Request) {
	a.render(w, r, http.StatusNotFound, "message", view{Title: "Not found", Error: "There is nothing here, or it is not yours to see."})
}

func (a *app) forbidden(w http.ResponseWriter, r *http.Request, msg string) {
	a.render(w, r, http.StatusForbidden, "message", view{Title: "Not allowed", Error: msg})
}

// fail answers an unexpected error: logged once, never shown.
func (a *app) fail(w http.ResponseWriter, r *http.Request, err error) {
	a.log.ErrorContext(r.Context(), "page failed", "path", r.URL.Path, "err", err)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusInternalServerError)
	_, _ = w.Write([]byte("Something went wrong on our side. Try again in a moment.\n"))
}

// formError answers a form that could not be done: the page again with
// the reason, or the error page for errors that are not the form's.
// formDone ends a form's POST: on to path with notice when it succeeded,
// else page with v and the form's error, as formError shows it.
func (a *app) formDone(w http.ResponseWriter, r *http.Request, err error, page string, v view, path, notice string) {
	if err != nil {
		a.formError(w, r, page, v, err)
		return
	}
	redirect(w, r, path, notice)
}

func (a *app) formError(w http.ResponseWriter, r *http.Request, page string, v view, err error) {
	v.Form = r.PostForm
	if wait, ok := accounts.IsThrottled(err); ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		v.Error = fmt.Sprintf("Too many attempts. Try again in %s.", wait.Round(time.Second))
		a.render(w, r, http.StatusTooManyRequests, page, v)
		return
	}
	switch {
	case errors.Is(err, accounts.ErrNotFound), errors.Is(err, tokens.ErrNotFound):
		a.notFound(w, r)
	case errors.Is(err, accounts.ErrForbidden):
		a.forbidden(w, r, userMessage(err))
	case errors.Is(err, accounts.ErrInvalid), errors.Is(err, accounts.ErrWeakPassword), errors.Is(err, accounts.ErrLastOwner),
		errors.Is(err, accounts.ErrLinkInvalid), errors.Is(err, accounts.ErrBadCredentials), errors.Is(err, accounts.ErrNotVerified):
		v.Error = userMessage(err)
		a.render(w, r, http.StatusUnprocessableEntity, page, v)
	default:
		a.fail(w, r, err)
	}
}

// userMessage is the part of an accounts error meant for people: the
// sentinel's text and what the accounts added after it.
func userMessage(err error) string {
	for _, s := range []error{accounts.ErrInvalid, accounts.ErrWeakPassword, accounts.ErrForbidden} {
		if errors.Is(err, s) {
			msg := err.Error()
			if i := bytes.Index([]byte(msg), []byte(s.Error())); i >= 0 {
				return msg[i:]
			}
		}
	}
	for _, s := range []error{accounts.ErrLastOwner, accounts.ErrLinkInvalid, accounts.ErrBadCredentials, accounts.ErrNotVerified} {
		if errors.Is(err, s) {
			return s.Error()
		}
	}
	return "That did not work."
}
