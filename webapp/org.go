package webapp

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/shopledger/shopledger/accounts"
	"github.com/shopledger/shopledger/httpapi"
	"github.com/shopledger/shopledger/projections"
	"github.com/shopledger/shopledger/tokens"
)

type membersData struct {
	Members     []accounts.Member
	Invitations []accounts.Invitation
	Now         time.Time
}

func (a *app) membersView(r *http.Request) (view, error) {
	s, _ := sessionOf(r)
	act := s.Actor(a.client(r))
	d := membersData{Now: time.Now()}
	var err error
	if d.Members, err = a.cfg.Accounts.Members(r.Context(), act); err != nil {
		return view{}, err
	}
	if s.Role.Manages() {
		if d.Invitations, err = a.cfg.Accounts.Invitations(r.Context(), act); err != nil {
			return view{}, err
		}
	}
	return view{Title: "Members", Data: d}, nil
}

func (a *app) membersPage(w http.ResponseWriter, r *http.Request) {
	a.showView(w, r, "members", a.membersView, nil)
}

// membersError shows the members page again with the reason.
func (a *app) membersError(w http.ResponseWriter, r *http.Request, err error) {
	a.showView(w, r, "members", a.membersView, err)
}

// showView shows page with the view build makes; a refused form's error
// (formErr) is shown on it as formError does.
func (a *app) showView(w http.ResponseWriter, r *http.Request, page string, build func(*http.Request) (view, error), formErr error) {
	v, err := build(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if formErr != nil {
		a.formError(w, r, page, v, formErr)
		return
	}
	a.render(w, r, http.StatusOK, page, v)
}

func (a *app) actor(r *http.Request) accounts.Actor {
	s, _ := sessionOf(r)
	return s.Actor(a.client(r))
}

func (a *app) invite(w http.ResponseWriter, r *http.Request) {
	role, err := accounts.ParseRole(r.PostFormValue("role"))
	if err == nil {
		_, err = a.cfg.Accounts.Invite(r.Context(), a.actor(r), r.PostFormValue("email"), role)
	}
	if err != nil {
		a.membersError(w, r, err)
		return
	}
	redirect(w, r, "/members", "invited")
}

// pathUUID reads a uuid from the path; a malformed one names nothing.
func pathUUID(r *http.Request, name string) (uuid.UUID, error) {
	id, err := uuid.Parse(chi.URLParam(r, name))
	if err != nil {
		return uuid.Nil, fmt.Errorf("%s %q: %w", name, chi.URLParam(r, name), accounts.ErrNotFound)
	}
	return id, nil
}

func (a *app) revokeInvitation(w http.ResponseWriter, r *http.Request) {
	id, err := pathUUID(r, "invitationID")
	if err == nil {
		err = a.cfg.Accounts.RevokeInvitation(r.Context(), a.actor(r), id)
	}
	if err != nil {
		a.membersError(w, r, err)
		return
	}
	redirect(w, r, "/members", "revoked")
}

func (a *app) changeRole(w http.ResponseWriter, r *http.Request) {
	id, err := pathUUID(r, "userID")
	var role accounts.Role
	if err == nil {
		role, err = accounts.ParseRole(r.PostFormValue("role"))
	}
	if err == nil {
		err = a.cfg.Accounts.ChangeRole(r.Context(), a.actor(r), id, role)
	}
	if err != nil {
		a.membersError(w, r, err)
		return
	}
	redirect(w, r, "/members", "role")
}

func (a *app) removeMember(w http.ResponseWriter, r *http.Request) {
	id, err := pathUUID(r, "userID")
	if err == nil {
		err = a.cfg.Accounts.RemoveMember(r.Context(), a.actor(r), id)
	}
	if err != nil {
		a.membersError(w, r, err)
		return
	}
	redirect(w, r, "/members", "removed")
}

func (a *app) leave(w http.ResponseWriter, r *http.Request) {
	act := a.actor(r)
	if err := a.cfg.Accounts.RemoveMember(r.Context(), act, act.UserID); err != nil {
		a.membersError(w, r, err)
		return
	}
	redirect(w, r, "/", "left")
}

func (a *app) invitationPage(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("token")
	inv, err := a.cfg.Accounts.InvitationByToken(r.Context(), token)
	if err != nil {
		a.formError(w, r, "message", view{Title: "Invitation"}, err)
		return
	}
	a.render(w, r, http.StatusOK, "invitation", view{Title: "Invitation", Data: struct {
		Invitation accounts.Invitation
		Token      string
		Next       string
	}{inv, token, r.URL.RequestURI()}})
}

func (a *app) acceptInvitation(w http.ResponseWriter, r *http.Request) {
	s, _ := sessionOf(r)
	c := a.client(r)
	inv, err := a.cfg.Accounts.AcceptInvitation(r.Context(), r.PostFormValue("token"), s.User, c)
	if err != nil {
		a.formError(w, r, "message", view{Title: "Invitation"}, err)
		return
	}
	// Joining is a change of privilege: a new session id, acting for the
	// organisation just joined.
	a.rotate(w, r, s, inv.OrgID, "/", "joined")
}

func (a *app) switchOrganisation(w http.ResponseWriter, r *http.Request) {
	s, _ := sessionOf(r)
	org, err := strconv.ParseInt(r.PostFormValue("org"), 10, 64)
	if err != nil {
		a.notFound(w, r)
		return
	}
	id, err := a.cfg.Accounts.SwitchOrganisation(r.Context(), s, org)
	if err != nil {
		a.formError(w, r, "message", view{Title: "Switch organisation"}, err)
		return
	}
	a.setCookie(w, id)
	redirect(w, r, "/", "switched")
}

// apiRoles are the API token roles a member of role may create: owners
// any, staff seller tokens (read and thresholds), auditors auditor tokens
// (read and the event log).
func apiRoles(role accounts.Role) []httpapi.Role {
	switch role {
	case accounts.RoleOwner:
		return []httpapi.Role{httpapi.RoleSeller, httpapi.RoleAuditor}
	case accounts.RoleStaff:
		return []httpapi.Role{httpapi.RoleSeller}
	case accounts.RoleAuditor:
		return []httpapi.Role{httpapi.RoleAuditor}
	}
	return nil
}

type tokensData struct {
	Tokens  []tokens.Token
	Roles   []httpapi.Role
	Shops   []projections.Shop
	Secret  string
	Created *tokens.Token
	Now     time.Time
	Owner   bool
	Self    uuid.UUID
}

func (a *app) tokensView(r *http.Request) (view, error) {
	s, _ := sessionOf(r)
	d := tokensData{Roles: apiRoles(s.Role), Now: time.Now(), Owner: s.Role.Manages(), Self: s.User.ID}
	all, err := a.cfg.Tokens.ListOrganisation(r.Context(), s.OrgID)
	if err != nil {
		return view{}, err
	}
	// Owners see every token of the organisation; others their own.
	for _, t := range all {
		if d.Owner || t.UserID == s.User.ID {
			d.Tokens = append(d.Tokens, t)
		}
	}
	ids, err := a.cfg.Accounts.ShopIDs(r.Context(), s.OrgID)
	if err != nil {
		return view{}, err
	}
	if d.Shops, err = a.cfg.Shops.ListShops(r.Context(), ids); err != nil {
		return view{}, err
	}
	return view{Title: "API tokens", Data: d}, nil
}

func (a *app) tokensPage(w http.ResponseWriter, r *http.Request) {
	a.showView(w, r, "tokens", a.tokensView, nil)
}

func (a *app) tokensError(w http.ResponseWriter, r *http.Request, err error) {
	a.showView(w, r, "tokens", a.tokensView, err)
}

func (a *app) createToken(w http.ResponseWriter, r *http.Request) {
	s, _ := sessionOf(r)
	if err := r.ParseForm(); err != nil {
		a.tokensError(w, r, accounts.ErrInvalid)
		return
	}
	f := r.PostForm
	role := httpapi.Role(f.Get("role"))
	if !slices.Contains(apiRoles(s.Role), role) {
		a.tokensError(w, r, fmt.Errorf("%w: a %s cannot create a %q token", accounts.ErrForbidden, s.Role, role))
		return
	}
	label := strings.TrimSpace(f.Get("label"))
	if len(label) > 100 {
		a.tokensError(w, r, fmt.Errorf("%w: the label is longer than 100 characters", accounts.ErrInvalid))
		return
	}
	owned, err := a.cfg.Accounts.ShopIDs(r.Context(), s.OrgID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var shops []int64
	for _, raw := range f["shop"] {
		id, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || !slices.Contains(owned, id) {
			a.tokensError(w, r, fmt.Errorf("%w: shop %q is not one of this organisation's", accounts.ErrInvalid, raw))
			return
		}
		shops = append(shops, id)
	}
	var ttl time.Duration
	if days := f.Get("expires_days"); days != "" {
		n, err := strconv.Atoi(days)
		if err != nil || n < 1 || time.Duration(n)*24*time.Hour > a.cfg.TokenMaxTTL {
			a.tokensError(w, r, fmt.Errorf("%w: expiry must be between 1 and %d days", accounts.ErrInvalid, int(a.cfg.TokenMaxTTL.Hours()/24)))
			return
		}
		ttl = time.Duration(n) * 24 * time.Hour
	}
	secret, tok, err := a.cfg.Tokens.Create(r.Context(), tokens.NewToken{OrgID: s.OrgID, UserID: s.User.ID, Role: role, ShopIDs: shops, Label: label, TTL: ttl})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	act := a.actor(r)
	if err := a.cfg.Accounts.Record(r.Context(), nil, accounts.AuditEntry{OrgID: act.OrgID, ActorID: act.UserID, Actor: act.Email,
		Action: accounts.ActionTokenCreated, Target: tok.Prefix, Address: act.Client.Address, UserAgent: act.Client.UserAgent,
		Detail: map[string]string{"token": tok.ID.String(), "role": string(tok.Role), "label": tok.Label}}); err != nil {
		a.fail(w, r, err)
		return
	}
	v, err := a.tokensView(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	d := v.Data.(tokensData)
	d.Secret, d.Created = secret, &tok
	v.Data = d
	a.render(w, r, http.StatusOK, "tokens", v)
}

func (a *app) revokeToken(w http.ResponseWriter, r *http.Request) {
	s, _ := sessionOf(r)
	id, err := pathUUID(r, "tokenID")
	if err != nil {
		a.notFound(w, r)
		return
	}
	// Members revoke their own tokens; owners any of the organisation's.
	// Another organisation's token, or a colleague's for a non-owner, is
	// not found.
	toks, err := a.cfg.Tokens.ListOrganisation(r.Context(), s.OrgID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	i := slices.IndexFunc(toks, func(t tokens.Token) bool { return t.ID == id })
	if i < 0 || (!s.Role.Manages() && toks[i].UserID != s.User.ID) {
		a.notFound(w, r)
		return
	}
	tok, err := a.cfg.Tokens.RevokeInOrganisation(r.Context(), s.OrgID, id)
	if err != nil {
		a.tokensError(w, r, err)
		return
	}
	act := a.actor(r)
	if err := a.cfg.Accounts.Record(r.Context(), nil, accounts.AuditEntry{OrgID: act.OrgID, ActorID: act.UserID, Actor: act.Email,
		Action: accounts.ActionTokenRevoked, Target: tok.Prefix, Address: act.Client.Address, UserAgent: act.Client.UserAgent,
		Detail: map[string]string{"token": tok.ID.String()}}); err != nil {
		a.fail(w, r, err)
		return
	}
	redirect(w, r, "/tokens", "revoked")
}

func (a *app) auditPage(w http.ResponseWriter, r *http.Request) {
	s, _ := sessionOf(r)
	before, _ := strconv.ParseInt(r.URL.Query().Get("before"), 10, 64)
	entries, err := a.cfg.Accounts.AuditTrail(r.Context(), s.OrgID, before, 100)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var next int64
	if len(entries) == 100 {
		next = entries[len(entries)-1].ID
	}
	a.render(w, r, http.StatusOK, "audit", view{Title: "Security audit trail", Data: struct {
		Entries []accounts.AuditEntry
		Next    int64
	}{entries, next}})
}
