package webapp

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/shopledger/shopledger/accounts"
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/projections"
	shopconn "github.com/shopledger/shopledger/shops"
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

// shopView is the shop page: the shop, its last reconciliation runs and
// what the member may change.
type shopView struct {
	projections.Shop
	CanDisconnect bool
	CanSyncNow    bool
	// SyncRequested is a pending "sync now" (after the last run).
	SyncRequested *time.Time
	// Listings and Sales count what the import brought in so far, up to
	// importShown ("100+" beyond).
	Listings, Sales string
	Pending         bool
	Runs            []events.ReconciliationCompleted
	CanManage       bool
	Intervals       []syncInterval
	// CanStocktake links the stocktake page (owners and staff).
	CanStocktake bool
}

type syncInterval struct {
	Seconds int64
	Label   string
}

// syncIntervals are the intervals the page offers: ingest accepts any of
// at least a minute (ledger shops sync --interval), the page a few sane
// ones.
var syncIntervals = []syncInterval{{300, "5 minutes"}, {900, "15 minutes"}, {1800, "30 minutes"}, {3600, "1 hour"}, {6 * 3600, "6 hours"}, {24 * 3600, "1 day"}}

// ownedShop reads {shopID} and checks that the session's organisation
// owns it; otherwise the answer is a 404.
func (a *app) ownedShop(w http.ResponseWriter, r *http.Request) ([]int64, int64, bool) {
	id, ok := parseShopID(r)
	if !ok {
		a.notFound(w, r)
		return nil, 0, false
	}
	owned, err := a.orgShops(r)
	if err != nil {
		a.fail(w, r, err)
		return nil, 0, false
	}
	if !slices.Contains(owned, id) {
		a.notFound(w, r)
		return nil, 0, false
	}
	return owned, id, true
}

// configuredShop is ownedShop for an action the app may be configured
// without: without it, there is nothing at the action's path.
func (a *app) configuredShop(w http.ResponseWriter, r *http.Request, configured bool) ([]int64, int64, bool) {
	if !configured {
		a.notFound(w, r)
		return nil, 0, false
	}
	return a.ownedShop(w, r)
}

// shopAudit records an action on a shop in the security audit trail.
func (a *app) shopAudit(r *http.Request, action string, shopID int64, detail map[string]string) error {
	return a.audit(r, action, strconv.FormatInt(shopID, 10), withShop(detail, shopID))
}

// withShop is an audit entry's detail that names its shop too.
func withShop(detail map[string]string, shopID int64) map[string]string {
	if detail == nil {
		detail = map[string]string{}
	}
	detail["shop_id"] = strconv.FormatInt(shopID, 10)
	return detail
}

// audit records an action of the session's member in the security audit
// trail.
func (a *app) audit(r *http.Request, action, target string, detail map[string]string) error {
	s, _ := sessionOf(r)
	c := a.client(r)
	return a.cfg.Accounts.Record(r.Context(), nil, accounts.AuditEntry{OrgID: s.OrgID, ActorID: s.User.ID, Actor: s.User.Email,
		Action: action, Target: target, Address: c.Address, UserAgent: c.UserAgent, Detail: detail})
}

// shopPage shows one of the organisation's shops: its connection, how
// far its import has come, the last day's reconciliation runs and, for
// owners, the sync settings.
func (a *app) shopPage(w http.ResponseWriter, r *http.Request) {
	s, _ := sessionOf(r)
	owned, id, ok := a.ownedShop(w, r)
	if !ok {
		return
	}
	shops, err := a.cfg.Shops.ListShops(r.Context(), []int64{id})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	d := shopView{CanManage: s.Role.Manages(), Intervals: syncIntervals, CanStocktake: s.Role.Writes() && a.cfg.StockEdits != nil}
	v := view{Title: "Shop " + strconv.FormatInt(id, 10)}
	if len(shops) == 1 {
		v.Title, d.Shop = shops[0].Name, shops[0]
	} else {
		// Connected a moment ago: the projector has not caught up yet.
		d.Shop, d.Pending = projections.Shop{ShopID: id, ConnectionState: "importing"}, true
	}
	if d.Listings, d.Sales, err = a.imported(r, owned, id); err != nil {
		a.fail(w, r, err)
		return
	}
	if a.cfg.Data.Events != nil {
		if d.Runs, err = a.reconciliationRuns(r, owned, id, time.Now(), 25); err != nil {
			a.fail(w, r, err)
			return
		}
	}
	d.CanDisconnect = d.CanManage && a.cfg.ShopControl != nil && !d.Pending && d.ConnectionState != projections.ShopDisconnected
	if a.cfg.SyncNow != nil && !d.Pending && d.ConnectionState == projections.ShopConnected {
		d.CanSyncNow = d.CanManage
		at, err := a.cfg.SyncNow.SyncRequested(r.Context(), id)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		if !at.IsZero() && (d.LastReconciledAt == nil || at.After(*d.LastReconciledAt)) {
			d.SyncRequested = &at
		}
	}
	v.Data = d
	a.render(w, r, http.StatusOK, "shop", v)
}

// changeSync turns a shop's polling on or off and sets its interval, as
// ledger shops sync does: a shop.settings_changed event in the shop's
// stream, which ingest's scheduler folds (and the shops read model shows).
func (a *app) changeSync(w http.ResponseWriter, r *http.Request) {
	s, _ := sessionOf(r)
	_, id, ok := a.ownedShop(w, r)
	if !ok {
		return
	}
	if err := r.ParseForm(); err != nil {
		a.formError(w, r, "message", view{Title: "Sync settings"}, accounts.ErrInvalid)
		return
	}
	ch := events.ShopSettingsChanged{ShopID: id}
	switch r.PostForm.Get("enabled") {
	case "true":
		ch.SyncEnabled = &[]bool{true}[0]
	case "false":
		ch.SyncEnabled = &[]bool{false}[0]
	case "":
	default:
		a.render(w, r, http.StatusUnprocessableEntity, "message", view{Title: "Sync settings", Error: "Choose on or off."})
		return
	}
	if raw := r.PostForm.Get("interval"); raw != "" {
		secs, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || !slices.ContainsFunc(syncIntervals, func(i syncInterval) bool { return i.Seconds == secs }) {
			a.render(w, r, http.StatusUnprocessableEntity, "message", view{Title: "Sync settings", Error: "Choose one of the intervals offered."})
			return
		}
		ch.SyncIntervalSeconds = &secs
	}
	if ch.SyncEnabled == nil && ch.SyncIntervalSeconds == nil {
		a.render(w, r, http.StatusUnprocessableEntity, "message", view{Title: "Sync settings", Error: "Nothing to change."})
		return
	}
	stream := events.ShopStream(id)
	ev := events.New(stream, id, time.Now(), ch).WithMetadata(events.Metadata{Source: "web", Actor: "user:" + s.User.ID.String()})
	if _, err := a.cfg.Data.Thresholds.Append(r.Context(), stream, eventstore.Any, ev); err != nil {
		a.fail(w, r, err)
		return
	}
	redirect(w, r, "/shops/"+strconv.FormatInt(id, 10), "sync-saved")
}

// ShopControl is what the shop page needs of ingest's shop store.
type ShopControl interface {
	Disconnect(ctx context.Context, shopID int64, reason string, meta events.Metadata) error
}

// disconnectReason is what shop.disconnected says of a disconnection from
// the app; who did it is the event's actor and the audit trail's entry.
const disconnectReason = "disconnected by an owner in the web app"

// disconnectShop deletes the shop's Etsy tokens and marks it disconnected
// (ingest stops polling it at once: it polls connected shops only), after
// the owner ticked the confirmation. Recorded in the audit trail.
func (a *app) disconnectShop(w http.ResponseWriter, r *http.Request) {
	_, id, ok := a.configuredShop(w, r, a.cfg.ShopControl != nil)
	if !ok {
		return
	}
	s, _ := sessionOf(r)
	if err := r.ParseForm(); err != nil || r.PostForm.Get("confirm") != "yes" {
		a.render(w, r, http.StatusUnprocessableEntity, "message", view{Title: "Disconnect the shop",
			Error: "Tick “I understand” to disconnect: the shop's Etsy tokens are deleted and it is no longer synced."})
		return
	}
	err := a.cfg.ShopControl.Disconnect(r.Context(), id, disconnectReason, events.Metadata{Source: "web", Actor: "user:" + s.User.ID.String()})
	if errors.Is(err, shopconn.ErrUnknownShop) {
		a.render(w, r, http.StatusConflict, "message", view{Title: "Disconnect the shop", Error: "Ingest holds no connection for this shop, so there is nothing to disconnect."})
		return
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.shopAudit(r, accounts.ActionShopDisconnected, id, map[string]string{"reason": disconnectReason}); err != nil {
		a.fail(w, r, err)
		return
	}
	redirect(w, r, "/shops/"+strconv.FormatInt(id, 10), "disconnected")
}

// SyncNow is what the shop page needs of the "sync now" requests.
type SyncNow interface {
	RequestSync(ctx context.Context, shopID int64, at time.Time) error
	SyncRequested(ctx context.Context, shopID int64) (time.Time, error)
}

// syncNow asks ingest for a reconciliation run of a connected shop at its
// scheduler's next tick, and records who asked in the audit trail.
func (a *app) syncNow(w http.ResponseWriter, r *http.Request) {
	owned, id, ok := a.configuredShop(w, r, a.cfg.SyncNow != nil)
	if !ok {
		return
	}
	sh, err := a.cfg.Data.Shops.GetShop(r.Context(), owned, id)
	if err != nil && !errors.Is(err, projections.ErrNotFound) {
		a.fail(w, r, err)
		return
	}
	if err != nil || sh.ConnectionState != projections.ShopConnected {
		a.render(w, r, http.StatusConflict, "message", view{Title: "Sync now", Error: "Only a connected shop can be synced. Connect it again first."})
		return
	}
	if err := a.cfg.SyncNow.RequestSync(r.Context(), id, time.Now()); err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.shopAudit(r, accounts.ActionShopSyncRequested, id, nil); err != nil {
		a.fail(w, r, err)
		return
	}
	redirect(w, r, "/shops/"+strconv.FormatInt(id, 10), "sync-requested")
}

// importShown bounds the import counts: the page says "100+" beyond.
const importShown = 100

// imported counts the shop's listings and recorded sales in the read
// models, up to importShown each.
func (a *app) imported(r *http.Request, owned []int64, shopID int64) (string, string, error) {
	count := func(n int) string {
		if n > importShown {
			return strconv.Itoa(importShown) + "+"
		}
		return strconv.Itoa(n)
	}
	prods, err := a.cfg.Data.Products.ListProducts(r.Context(), projections.ProductFilter{Shops: owned, ShopID: shopID,
		Sort: projections.ProductSort{Key: "listing_id"}, Limit: importShown + 1})
	if err != nil {
		return "", "", err
	}
	sales, err := a.cfg.Data.Sales.ListSales(r.Context(), projections.SaleFilter{Shops: owned, ShopID: shopID, Limit: importShown + 1})
	if err != nil {
		return "", "", err
	}
	return count(len(prods)), count(len(sales)), nil
}
