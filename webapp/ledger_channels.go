package webapp

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/shopledger/shopledger/accounts"
	"github.com/shopledger/shopledger/alerts"
)

// AlertChannels is what the channels page needs of the alert channel
// configuration; *alerts.Channels is one.
type AlertChannels interface {
	List(ctx context.Context, shopID int64) ([]alerts.ChannelConfig, error)
	Add(ctx context.Context, shopID int64, kind, target string) (alerts.ChannelConfig, error)
	Remove(ctx context.Context, shopID int64, channelID uuid.UUID) error
	HasWebhookSecret(ctx context.Context, shopID int64) (bool, error)
	RotateWebhookSecret(ctx context.Context, shopID int64) (string, error)
	SendTest(ctx context.Context, shopID int64, channelID uuid.UUID, shopName string, now time.Time) (uuid.UUID, error)
	LastTests(ctx context.Context, shopIDs []int64) (map[uuid.UUID]alerts.TestResult, error)
}

func (a *app) channelRoutes(r chi.Router) {
	r.Get("/channels", a.channelsPage)
	r.Post("/channels", a.addChannel)
	r.Post("/channels/{channelID}/test", a.testChannel)
	r.Post("/channels/{channelID}/remove", a.removeChannel)
	r.Post("/shops/{shopID}/webhook-secret/rotate", a.rotateWebhookSecret)
}

func init() {
	notices["channel-added"] = "The channel is added. Send it a test alert to check it."
	notices["channel-removed"] = "The channel is removed. Alerts not yet delivered to it will not be."
	notices["channel-tested"] = "A test alert is queued. Its result shows here within a minute; reload the page."
}

type channelRow struct {
	alerts.ChannelConfig
	ShopName string
	Test     *alerts.TestResult
}

type channelsData struct {
	Shops    []shopOption
	Channels []channelRow
	// Secret is a webhook signing secret shown this once, for ShopName.
	Secret       string
	SecretShop   string
	SecretShopID int64
	// Signed lists the shops that have webhook channels, for rotation.
	Signed []shopOption
}

func (a *app) channelsView(r *http.Request) (view, *channelsData, error) {
	d := &channelsData{}
	v := view{Title: "Alert channels", Data: d}
	ids, shops, names, err := a.orgShopOptions(r)
	if err != nil {
		return v, d, err
	}
	d.Shops = shops
	tests, err := a.cfg.Channels.LastTests(r.Context(), ids)
	if err != nil {
		return v, d, err
	}
	signed := map[int64]bool{}
	for _, id := range ids {
		chs, err := a.cfg.Channels.List(r.Context(), id)
		if err != nil {
			return v, d, err
		}
		for _, ch := range chs {
			row := channelRow{ChannelConfig: ch, ShopName: names[ch.ShopID]}
			if t, ok := tests[ch.ChannelID]; ok {
				row.Test = &t
			}
			d.Channels = append(d.Channels, row)
			if ch.Kind == alerts.KindWebhook && !signed[id] {
				signed[id] = true
				d.Signed = append(d.Signed, shopOption{ID: id, Name: names[id]})
			}
		}
	}
	return v, d, nil
}

func (a *app) channelsOff(w http.ResponseWriter, r *http.Request) bool {
	if a.cfg.Channels == nil {
		a.notFound(w, r)
		return true
	}
	return false
}

func (a *app) channelsPage(w http.ResponseWriter, r *http.Request) {
	if a.channelsOff(w, r) {
		return
	}
	v, _, err := a.channelsView(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.render(w, r, http.StatusOK, "channels", v)
}

// channelAudit records a channel change in the security audit trail.
func (a *app) channelAudit(r *http.Request, action string, shopID int64, detail map[string]string) error {
	detail = withShop(detail, shopID)
	return a.audit(r, action, detail["channel_id"], detail)
}

// channelTarget is what the audit trail may say of a target: an e-mail
// address, or a URL's scheme and host (a webhook or Slack URL's path can
// be its credential).
func channelTarget(kind, target string) string {
	if kind == alerts.KindEmail {
		return target
	}
	if i := strings.Index(target, "://"); i >= 0 {
		rest := target[i+3:]
		if j := strings.IndexAny(rest, "/?#"); j >= 0 {
			rest = rest[:j]
		}
		return target[:i+3] + rest + "/…"
	}
	return "…"
}

func (a *app) addChannel(w http.ResponseWriter, r *http.Request) {
	if a.channelsOff(w, r) {
		return
	}
	if err := r.ParseForm(); err != nil {
		a.render(w, r, http.StatusBadRequest, "message", view{Title: "Alert channels", Error: "The form could not be read."})
		return
	}
	v, d, err := a.channelsView(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	v.Form = r.PostForm
	shopID, err := strconv.ParseInt(r.PostForm.Get("shop_id"), 10, 64)
	known := false
	var shopName string
	for _, s := range d.Shops {
		if s.ID == shopID {
			known, shopName = true, s.Name
		}
	}
	if err != nil || !known {
		a.notFound(w, r)
		return
	}
	kind := r.PostForm.Get("kind")
	ch, err := a.cfg.Channels.Add(r.Context(), shopID, kind, r.PostForm.Get("target"))
	switch {
	case errors.Is(err, alerts.ErrInvalidChannel):
		v.Error = map[string]string{
			alerts.KindEmail:   "Enter a valid e-mail address.",
			alerts.KindWebhook: "Enter the webhook's http(s) URL.",
			alerts.KindSlack:   "Enter the Slack incoming webhook's https URL.",
		}[kind]
		if v.Error == "" {
			v.Error = "Choose e-mail, webhook or Slack."
		}
		a.render(w, r, http.StatusUnprocessableEntity, "channels", v)
		return
	case errors.Is(err, alerts.ErrChannelExists):
		v.Error = "That shop already has this channel."
		a.render(w, r, http.StatusUnprocessableEntity, "channels", v)
		return
	case err != nil:
		a.fail(w, r, err)
		return
	}
	if err := a.channelAudit(r, accounts.ActionChannelAdded, shopID, map[string]string{"channel_id": ch.ChannelID.String(), "kind": ch.Kind, "target": channelTarget(ch.Kind, ch.Target)}); err != nil {
		a.fail(w, r, err)
		return
	}
	if ch.Kind == alerts.KindWebhook {
		// The shop's first webhook gets the shop's signing secret, shown
		// this once; later webhooks share it (rotate to see a new one).
		has, err := a.cfg.Channels.HasWebhookSecret(r.Context(), shopID)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		if !has {
			a.showNewSecret(w, r, shopID, shopName, "created")
			return
		}
	}
	redirect(w, r, "/channels", "channel-added")
}

// showNewSecret makes the shop a new signing secret and shows it once.
func (a *app) showNewSecret(w http.ResponseWriter, r *http.Request, shopID int64, shopName, how string) {
	secret, err := a.cfg.Channels.RotateWebhookSecret(r.Context(), shopID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.channelAudit(r, accounts.ActionChannelRotated, shopID, map[string]string{"secret": how}); err != nil {
		a.fail(w, r, err)
		return
	}
	v, d, err := a.channelsView(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	d.Secret, d.SecretShop, d.SecretShopID = secret, shopName, shopID
	a.render(w, r, http.StatusOK, "channels", v)
}

// orgChannel finds {channelID} among the organisation's channels.
func (a *app) orgChannel(w http.ResponseWriter, r *http.Request) (channelRow, bool) {
	if a.channelsOff(w, r) {
		return channelRow{}, false
	}
	id, err := uuid.Parse(chi.URLParam(r, "channelID"))
	if err != nil {
		a.notFound(w, r)
		return channelRow{}, false
	}
	_, d, err := a.channelsView(r)
	if err != nil {
		a.fail(w, r, err)
		return channelRow{}, false
	}
	for _, ch := range d.Channels {
		if ch.ChannelID == id {
			return ch, true
		}
	}
	a.notFound(w, r)
	return channelRow{}, false
}

func (a *app) removeChannel(w http.ResponseWriter, r *http.Request) {
	ch, ok := a.orgChannel(w, r)
	if !ok {
		return
	}
	if err := a.cfg.Channels.Remove(r.Context(), ch.ShopID, ch.ChannelID); err != nil {
		if errors.Is(err, alerts.ErrNotFound) {
			a.notFound(w, r)
			return
		}
		a.fail(w, r, err)
		return
	}
	if err := a.channelAudit(r, accounts.ActionChannelRemoved, ch.ShopID, map[string]string{"channel_id": ch.ChannelID.String(), "kind": ch.Kind, "target": channelTarget(ch.Kind, ch.Target)}); err != nil {
		a.fail(w, r, err)
		return
	}
	redirect(w, r, "/channels", "channel-removed")
}

func (a *app) testChannel(w http.ResponseWriter, r *http.Request) {
	ch, ok := a.orgChannel(w, r)
	if !ok {
		return
	}
	if _, err := a.cfg.Channels.SendTest(r.Context(), ch.ShopID, ch.ChannelID, ch.ShopName, time.Now()); err != nil {
		if errors.Is(err, alerts.ErrNotFound) {
			a.notFound(w, r)
			return
		}
		a.fail(w, r, err)
		return
	}
	if err := a.channelAudit(r, accounts.ActionChannelTested, ch.ShopID, map[string]string{"channel_id": ch.ChannelID.String(), "kind": ch.Kind}); err != nil {
		a.fail(w, r, err)
		return
	}
	redirect(w, r, "/channels", "channel-tested")
}

func (a *app) rotateWebhookSecret(w http.ResponseWriter, r *http.Request) {
	if a.channelsOff(w, r) {
		return
	}
	_, id, ok := a.ownedShop(w, r)
	if !ok {
		return
	}
	name, err := a.shopName(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.showNewSecret(w, r, id, name, "rotated")
}
