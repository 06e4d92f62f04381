package webapp

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/httpapi"
	"github.com/shopledger/shopledger/projections"
)

// Alerts.

type alertRow struct {
	httpapi.Alert
	ShopName string
	Variant  string
}

type alertsData struct {
	Shops     []shopOption
	Q         url.Values
	Rows      []alertRow
	Next      string
	First     string
	Filtered  bool
	HasCursor bool
}

func (a *app) alertsPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := alertsData{Q: q, HasCursor: q.Get("cursor") != "", First: withCursor(r, "")}
	v := view{Title: "Alerts", Data: &d}
	ids, shops, names, err := a.orgShopOptions(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	d.Shops, d.Filtered = shops, filtered(q, "shop_id", "status", "from", "to")
	f, err := httpapi.AlertFilterOf(localDates(q, a.location(r), "from", "to"), ids)
	items, next, ok := listPage(a, w, r, "alerts", v, httpapi.AlertPage, a.cfg.Data.Alerts, f, err)
	if !ok {
		return
	}
	for _, al := range items {
		d.Rows = append(d.Rows, alertRow{Alert: al, ShopName: names[al.ShopID], Variant: variantPath(al.ListingID, al.VariantKey)})
	}
	d.Next = next
	a.render(w, r, http.StatusOK, "alerts", v)
}

func (a *app) alertPage(w http.ResponseWriter, r *http.Request) {
	al, _, ok := orgObject(a, w, r, "alertID", parseUUID, "Alert", a.cfg.Data.Alerts.GetAlert)
	if !ok {
		return
	}
	shopName, err := a.shopName(r.Context(), al.ShopID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.render(w, r, http.StatusOK, "alert", view{Title: "Low-stock alert", Data: alertRow{Alert: al, ShopName: shopName, Variant: variantPath(al.ListingID, al.VariantKey)}})
}

// The event log (owners and auditors).

type logData struct {
	Shops     []shopOption
	Types     []string
	Q         url.Values
	Events    []eventstore.LoggedEvent
	Next      string
	First     string
	Export    string
	Filtered  bool
	HasCursor bool
}

var logFilters = []string{"shop_id", "stream", "type", "from", "to"}

func (a *app) logPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := logData{Types: events.Types(), Q: q, HasCursor: q.Get("cursor") != "", First: withCursor(r, "")}
	v := view{Title: "Event log", Data: &d}
	ids, shops, _, err := a.orgShopOptions(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	d.Shops = shops
	// The export link carries the page's filter with its dates turned into
	// instants, so that the file holds exactly the events the page lists.
	local := localDates(q, a.location(r), "from", "to")
	exp := url.Values{}
	for _, k := range logFilters {
		if q.Get(k) != "" {
			d.Filtered = true
			exp.Set(k, local.Get(k))
		}
	}
	d.Export = (&url.URL{Path: "/log/export", RawQuery: exp.Encode()}).String()
	f, err := httpapi.EventFilterOf(local, ids)
	var ok bool
	if d.Events, d.Next, ok = listPage(a, w, r, "log", v, httpapi.EventPage, a.cfg.Data.Events, f, err); !ok {
		return
	}
	a.render(w, r, http.StatusOK, "log", v)
}

type eventData struct {
	Event    eventstore.LoggedEvent
	Data     string
	Metadata string
	CausedBy []eventstore.LoggedEvent
	Caused   []eventstore.LoggedEvent
	Receipt  int64
	Variant  string
}

// eventLinks is a table of the events page: the events the event is
// linked to, under label.
type eventLinks struct {
	Label  string
	Events []eventstore.LoggedEvent
	Loc    *time.Location
}

// Links makes the argument of the events page's eventLinks template.
func (eventData) Links(label string, evs []eventstore.LoggedEvent, loc *time.Location) eventLinks {
	return eventLinks{Label: label, Events: evs, Loc: loc}
}

// indent shows stored JSON readably; what does not parse is shown as is.
func indent(raw []byte) string {
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return string(raw)
	}
	return buf.String()
}

func (a *app) eventPage(w http.ResponseWriter, r *http.Request) {
	ev, ids, ok := orgObject(a, w, r, "eventID", parseUUID, "Event", a.cfg.Data.Events.GetEvent)
	if !ok {
		return
	}
	id, _ := parseUUID(chi.URLParam(r, "eventID")) // orgObject has checked it
	causes, effects, err := a.cfg.Data.Events.Causation(r.Context(), ids, id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	meta, _ := json.Marshal(ev.Metadata)
	d := eventData{Event: ev, Data: indent(ev.Data), Metadata: indent(meta), CausedBy: causes, Caused: effects}
	// Links to the pages of what the event is about, when its data names
	// a receipt or a variant.
	var about struct {
		ReceiptID  int64  `json:"receipt_id"`
		ListingID  int64  `json:"listing_id"`
		VariantKey string `json:"variant_key"`
	}
	if json.Unmarshal(ev.Data, &about) == nil {
		d.Receipt = about.ReceiptID
		if about.ListingID != 0 && about.VariantKey != "" {
			d.Variant = variantPath(about.ListingID, about.VariantKey)
		}
	}
	a.render(w, r, http.StatusOK, "event", view{Title: "Event " + ev.Type, Data: d})
}

func (a *app) chainPage(w http.ResponseWriter, r *http.Request) {
	ids, err := a.orgShops(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	st, err := a.cfg.Data.Events.ChainStatus(r.Context(), ids)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.render(w, r, http.StatusOK, "chain", view{Title: "Seal chain", Data: st})
}

// exportLog downloads the NDJSON export of the filter, written by the
// API's own exporter: the same lines and trailer as /v1/events/export.
// Dates are read as UTC days there, so they are here too: the same
// query string gives the same bytes.
func (a *app) exportLog(w http.ResponseWriter, r *http.Request) {
	ids, err := a.orgShops(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	f, err := httpapi.ExportFilterOf(r.URL.Query(), ids)
	if err == nil {
		err = httpapi.ExportEvents(w, r, a.cfg.Data.Events, f, httpapi.ExportOptions{Batch: a.cfg.ExportBatch, Timeout: a.cfg.QueryTimeout, Logger: a.log})
	}
	if err != nil {
		a.dataError(w, r, "message", view{Title: "Export"}, err)
	}
}

// Shops.

type shopsData struct {
	Shops      []projections.Shop
	Pending    []int64
	CanConnect bool
}

func (a *app) shopsPage(w http.ResponseWriter, r *http.Request) {
	s, _ := sessionOf(r)
	ids, err := a.orgShops(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	shops, err := a.cfg.Shops.ListShops(r.Context(), ids)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	d := shopsData{Shops: shops, CanConnect: s.Role.Manages() && a.cfg.ConnectURL != ""}
	known := map[int64]bool{}
	for _, sh := range shops {
		known[sh.ShopID] = true
	}
	for _, id := range ids {
		if !known[id] {
			d.Pending = append(d.Pending, id)
		}
	}
	a.render(w, r, http.StatusOK, "shops", view{Title: "Shops", Data: d})
}

// reconciliationRuns returns the shop's reconciliation runs of the last
// day from the log, newest first, at most limit.
func (a *app) reconciliationRuns(r *http.Request, ids []int64, shopID int64, now time.Time, limit int) ([]events.ReconciliationCompleted, error) {
	f := projections.EventFilter{Shops: ids, ShopID: shopID, Type: events.TypeReconciliationDone, From: now.Add(-24 * time.Hour), Limit: httpapi.MaxLimit}
	var runs []events.ReconciliationCompleted
	for {
		evs, err := a.cfg.Data.Events.ListEvents(r.Context(), f)
		if err != nil {
			return nil, err
		}
		for _, ev := range evs {
			var run events.ReconciliationCompleted
			if json.Unmarshal(ev.Data, &run) == nil {
				runs = append(runs, run)
			}
		}
		if len(evs) < f.Limit {
			break
		}
		f.AfterSeq = evs[len(evs)-1].Seq
	}
	out := make([]events.ReconciliationCompleted, 0, min(limit, len(runs)))
	for i := len(runs) - 1; i >= 0 && len(out) < limit; i-- {
		out = append(out, runs[i])
	}
	return out, nil
}

func parseShopID(r *http.Request) (int64, bool) { return positiveID(chi.URLParam(r, "shopID")) }
