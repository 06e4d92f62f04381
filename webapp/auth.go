package webapp

import (
	"context"
	"errors"
	"net/http"

	"github.com/shopledger/shopledger/accounts"
)

func (a *app) signUpPage(w http.ResponseWriter, r *http.Request) {
	a.render(w, r, http.StatusOK, "signup", view{Title: "Sign up"})
}

func (a *app) signUp(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		a.formError(w, r, "signup", view{Title: "Sign up"}, accounts.ErrInvalid)
		return
	}
	f := r.PostForm
	if f.Get("password") != f.Get("password_again") {
		a.render(w, r, http.StatusUnprocessableEntity, "signup", view{Title: "Sign up", Form: f, Error: "The two passwords differ."})
		return
	}
	err := a.cfg.Accounts.SignUp(r.Context(), accounts.SignUp{
		Email: f.Get("email"), Password: f.Get("password"), DisplayName: f.Get("display_name"),
		Timezone: f.Get("timezone"), Organisation: f.Get("organisation"),
	}, a.client(r))
	a.formDone(w, r, err, "signup", view{Title: "Sign up"}, "/login", "check-email")
}

func (a *app) verify(w http.ResponseWriter, r *http.Request) {
	_, err := a.cfg.Accounts.Verify(r.Context(), r.URL.Query().Get("token"), a.client(r))
	a.formDone(w, r, err, "message", view{Title: "Verify your address"}, "/login", "verified")
}

func (a *app) resendVerification(w http.ResponseWriter, r *http.Request) {
	err := a.cfg.Accounts.ResendVerification(r.Context(), r.PostFormValue("email"), a.client(r))
	a.formDone(w, r, err, "login", view{Title: "Log in"}, "/login", "check-email")
}

func (a *app) loginPage(w http.ResponseWriter, r *http.Request) {
	a.render(w, r, http.StatusOK, "login", view{Title: "Log in", Form: r.URL.Query()})
}

func (a *app) login(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		a.formError(w, r, "login", view{Title: "Log in"}, accounts.ErrInvalid)
		return
	}
	c := a.client(r)
	u, err := a.cfg.Accounts.Login(r.Context(), r.PostForm.Get("email"), r.PostForm.Get("password"), c)
	if errors.Is(err, accounts.ErrNotVerified) {
		v := view{Title: "Log in", Form: r.PostForm, Error: "Your address is not verified yet: open the link we sent, or have a new one sent.", Data: "unverified"}
		a.render(w, r, http.StatusUnprocessableEntity, "login", v)
		return
	}
	if err != nil {
		a.formError(w, r, "login", view{Title: "Log in"}, err)
		return
	}
	// A fresh id on every login; the session the browser had is ended.
	if old, ok := sessionOf(r); ok {
		_ = a.cfg.Accounts.Logout(r.Context(), old, c)
	}
	id, err := a.cfg.Accounts.NewSession(r.Context(), u.ID, 0, c)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.setCookie(w, id)
	http.Redirect(w, r, localPath(r.PostForm.Get("next")), http.StatusSeeOther)
}

func (a *app) logout(w http.ResponseWriter, r *http.Request) {
	a.endSessions(w, r, a.cfg.Accounts.Logout, "logged-out")
}

func (a *app) logoutEverywhere(w http.ResponseWriter, r *http.Request) {
	a.endSessions(w, r, a.cfg.Accounts.LogoutEverywhere, "logged-out-all")
}

// endSessions ends the caller's session (or, with LogoutEverywhere, all of
// the user's), drops the cookie and sends the login page with notice.
func (a *app) endSessions(w http.ResponseWriter, r *http.Request, end func(context.Context, accounts.Session, accounts.Client) error, notice string) {
	s, _ := sessionOf(r)
	if err := end(r.Context(), s, a.client(r)); err != nil {
		a.fail(w, r, err)
		return
	}
	a.clearCookie(w)
	redirect(w, r, "/login", notice)
}

func (a *app) forgotPage(w http.ResponseWriter, r *http.Request) {
	a.render(w, r, http.StatusOK, "forgot", view{Title: "Forgot your password"})
}

func (a *app) forgot(w http.ResponseWriter, r *http.Request) {
	err := a.cfg.Accounts.RequestReset(r.Context(), r.PostFormValue("email"), a.client(r))
	a.formDone(w, r, err, "forgot", view{Title: "Forgot your password"}, "/login", "check-email")
}

func (a *app) resetPage(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("token")
	if err := a.cfg.Accounts.CheckResetLink(r.Context(), token); err != nil {
		a.formError(w, r, "message", view{Title: "Reset your password"}, err)
		return
	}
	a.render(w, r, http.StatusOK, "reset", view{Title: "Choose a new password", Data: token})
}

func (a *app) reset(w http.ResponseWriter, r *http.Request) {
	token := r.PostFormValue("token")
	v := view{Title: "Choose a new password", Data: token}
	if r.PostForm.Get("password") != r.PostForm.Get("password_again") {
		v.Error = "The two passwords differ."
		a.render(w, r, http.StatusUnprocessableEntity, "reset", v)
		return
	}
	if _, err := a.cfg.Accounts.ResetPassword(r.Context(), token, r.PostForm.Get("password"), a.client(r)); err != nil {
		a.formError(w, r, "reset", v, err)
		return
	}
	a.clearCookie(w)
	redirect(w, r, "/login", "reset")
}

func (a *app) accountPage(w http.ResponseWriter, r *http.Request) {
	a.render(w, r, http.StatusOK, "account", view{Title: "Your account"})
}

func (a *app) updateProfile(w http.ResponseWriter, r *http.Request) {
	s, _ := sessionOf(r)
	_, err := a.cfg.Accounts.UpdateProfile(r.Context(), s.User.ID, r.PostFormValue("display_name"), r.PostFormValue("timezone"), a.client(r))
	a.formDone(w, r, err, "account", view{Title: "Your account"}, "/account", "profile")
}

func (a *app) changePassword(w http.ResponseWriter, r *http.Request) {
	s, _ := sessionOf(r)
	err := r.ParseForm()
	f := r.PostForm
	if err != nil || f.Get("password") != f.Get("password_again") {
		a.render(w, r, http.StatusUnprocessableEntity, "account", view{Title: "Your account", Error: "The two new passwords differ."})
		return
	}
	if err := a.cfg.Accounts.ChangePassword(r.Context(), s.User.ID, f.Get("current_password"), f.Get("password"), s.ID, a.client(r)); err != nil {
		a.formError(w, r, "account", view{Title: "Your account"}, err)
		return
	}
	// A change of credentials is a change of privilege: new id.
	a.rotate(w, r, s, 0, "/account", "password")
}

func (a *app) changeEmail(w http.ResponseWriter, r *http.Request) {
	s, _ := sessionOf(r)
	err := a.cfg.Accounts.RequestEmailChange(r.Context(), s.User.ID, r.PostFormValue("current_password"), r.PostFormValue("email"), a.client(r))
	a.formDone(w, r, err, "account", view{Title: "Your account"}, "/account", "email-sent")
}

func (a *app) confirmEmail(w http.ResponseWriter, r *http.Request) {
	_, err := a.cfg.Accounts.ConfirmEmailChange(r.Context(), r.URL.Query().Get("token"), a.client(r))
	a.formDone(w, r, err, "message", view{Title: "Confirm your new address"}, "/account", "email-changed")
}
