package webapp

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/go-chi/chi/v5"
	"github.com/shopledger/shopledger/projections"
)

// connectShop starts connecting an Etsy shop for the session's
// organisation: ingest takes the intent, checks that this browser session
// made it, and sends the browser on to Etsy.
func (a *app) connectShop(w http.ResponseWriter, r *http.Request) {
	if a.cfg.ConnectURL == "" {
		a.notFound(w, r)
		return
	}
	s, _ := sessionOf(r)
	token, err := a.cfg.Accounts.StartConnect(r.Context(), s, a.client(r))
	if err != nil {
		a.formError(w, r, "message", view{Title: "Connect an Etsy shop"}, err)
		return
	}
	http.Redirect(w, r, a.cfg.ConnectURL+"?intent="+url.QueryEscape(token), http.StatusSeeOther)
}

// shopPage shows one of the organisation's shops: its connection and how
// far its import has come.
func (a *app) shopPage(w http.ResponseWriter, r *http.Request) {
	s, _ := sessionOf(r)
	id, err := strconv.ParseInt(chi.URLParam(r, "shopID"), 10, 64)
	if err != nil {
		a.notFound(w, r)
		return
	}
	owned, err := a.cfg.Accounts.ShopIDs(r.Context(), s.OrgID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if !slices.Contains(owned, id) {
		a.notFound(w, r)
		return
	}
	shops, err := a.cfg.Shops.ListShops(r.Context(), []int64{id})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	v := view{Title: "Shop " + strconv.FormatInt(id, 10)}
	if len(shops) == 1 {
		v.Title, v.Data = shops[0].Name, shops[0]
	} else {
		// Connected a moment ago: the projector has not caught up yet.
		v.Data = projections.Shop{ShopID: id, ConnectionState: "importing"}
	}
	a.render(w, r, http.StatusOK, "shop", v)
}
