package webapp

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shopledger/shopledger/domain"
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/projections"
)

// timeNow is the pages' clock.
var timeNow = time.Now

const (
	// chartWindow is the span of a variant's stock chart.
	chartWindow = 90 * 24 * time.Hour
	// maxChartMovements bounds what one chart reads.
	maxChartMovements = 5000
	// historyPage is how many movements the variant page lists at a time.
	historyPage = 50
	// explainPage is how many movements explain reads at a time.
	explainPage = 1000
)

type variantData struct {
	Product productData
	Variant variantRow
	Chart   chartHTML
	// ChartSince is set when the variant's whole history fits in the
	// chart's window: the chart then starts just before its first
	// movement instead of showing weeks of nothing.
	ChartSince *time.Time
	History    []historyRow
	// OlderLink pages the history; NewestLink goes back to the start.
	OlderLink  string
	NewestLink string
	// At is the "stock as of" answer when one was asked.
	AtInput string
	At      *asOf
	TZ      string
	// Edits are the stock forms and the commands sent to Etsy.
	Edits *editsView
}

type asOf struct {
	When        time.Time
	Quantity    int64
	Movements   int64
	ExplainLink string
}

type historyRow struct {
	projections.Movement
	Receipt     string
	ReceiptLink string
	Webhook     string
	WebhookLink string
	EventLink   string
	Reconciled  bool
	// Edit is a movement a stock edit made (cause edit:<command id>).
	Edit         bool
	ActorShown   string
	DeltaShown   string
	BalanceShown string
}

// loadVariant finds {listingID}/{variantKey} among the organisation's
// shops; ok false means it answered.
func (a *app) loadVariant(w http.ResponseWriter, r *http.Request) (productData, variantRow, bool) {
	key, ok := variantParam(r)
	if !ok {
		a.notFound(w, r)
		return productData{}, variantRow{}, false
	}
	d, ok := a.loadProduct(w, r)
	if !ok {
		return d, variantRow{}, false
	}
	v, ok := findVariant(d, key)
	if !ok {
		a.notFound(w, r)
		return d, v, false
	}
	return d, v, true
}

func (a *app) variantPage(w http.ResponseWriter, r *http.Request) {
	d, v, ok := a.loadVariant(w, r)
	if !ok {
		return
	}
	vd, status, msg, err := a.variantView(r, d, v)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.render(w, r, status, "variant", view{Title: v.Name + " — " + cmp.Or(d.Title, "listing "+strconv.FormatInt(d.ListingID, 10)), Error: msg, Data: vd})
}

// variantView reads what the variant page shows; a bad "as of" instant
// gives status 400 and its message, the rest of the page still shown.
func (a *app) variantView(r *http.Request, d productData, v variantRow) (*variantData, int, string, error) {
	s, _ := sessionOf(r)
	ctx := r.Context()
	loc := s.User.Location()
	shops, err := a.orgShops(r)
	if err != nil {
		return nil, 0, "", err
	}
	vd := &variantData{Product: d, Variant: v, TZ: loc.String()}
	status, msg := http.StatusOK, ""
	q := r.URL.Query()

	// Stock as of an instant the member names in their own time zone.
	if in := strings.TrimSpace(q.Get("at")); in != "" {
		vd.AtInput = in
		at, err := parseLocal(in, loc)
		if err != nil {
			status, msg = http.StatusBadRequest, err.Error()
		} else {
			st, err := a.cfg.Data.Stock.VariantStockAt(ctx, shops, d.ListingID, v.VariantKey, at)
			if err != nil {
				return nil, 0, "", err
			}
			vd.At = &asOf{When: at, Quantity: st.Quantity, Movements: st.Movements}
			vd.AtInput = at.In(loc).Format("2006-01-02T15:04")
			if d.ReadsLog {
				vd.At.ExplainLink = explainPath(d.ListingID, v.VariantKey, at)
			}
		}
	}

	// The chart: the balance at the window's start, then every movement
	// in it in business-time order.
	now := timeNow()
	from := now.Add(-chartWindow)
	start, err := a.cfg.Data.Stock.VariantStockAt(ctx, shops, d.ListingID, v.VariantKey, from)
	if err != nil {
		return nil, 0, "", err
	}
	moves, err := a.cfg.Data.Stock.History(ctx, projections.HistoryFilter{Shops: shops, ListingID: d.ListingID, VariantKey: v.VariantKey,
		From: from.Add(time.Microsecond), To: now.Add(time.Microsecond), Limit: maxChartMovements})
	if err != nil {
		return nil, 0, "", err
	}
	slices.SortStableFunc(moves, func(x, y projections.Movement) int { return x.OccurredAt.Compare(y.OccurredAt) })
	points := make([]stockPoint, 0, len(moves))
	bal := start.Quantity
	for _, m := range moves {
		bal += m.Delta
		points = append(points, stockPoint{At: m.OccurredAt, Delta: m.Delta, Balance: bal, Reason: m.Reason})
	}
	title := "Stock of " + v.Name + " over the last 90 days"
	if start.Movements == 0 && len(points) > 0 {
		first := points[0].At
		from = first.Add(-max(now.Sub(first)/20, time.Minute))
		vd.ChartSince = &first
		title = "Stock of " + v.Name + " since its first movement"
	}
	vd.Chart = stockChart("stock-chart", title, from, now, start.Quantity, points, v.LowStockThreshold, loc)

	// The history, newest first, paged by seq.
	hf := projections.HistoryFilter{Shops: shops, ListingID: d.ListingID, VariantKey: v.VariantKey, Desc: true, Limit: historyPage + 1, WebhookEvidence: d.ReadsLog}
	if b := q.Get("before"); b != "" {
		seq, err := strconv.ParseInt(b, 10, 64)
		if err != nil || seq < 1 {
			status, msg = http.StatusBadRequest, "before: want the number of a movement"
		} else {
			hf.AfterSeq = seq
			vd.NewestLink = v.Link + "#history"
		}
	}
	hist, err := a.cfg.Data.Stock.History(ctx, hf)
	if err != nil {
		return nil, 0, "", err
	}
	if len(hist) > historyPage {
		hist = hist[:historyPage]
		vd.OlderLink = v.Link + "?before=" + strconv.FormatInt(hist[len(hist)-1].Seq, 10) + "#history"
	}
	vd.History = historyRows(hist, d.ReadsLog)
	names := sync.OnceValue(func() map[string]string { return a.actorNames(r) })
	for i := range vd.History {
		vd.History[i].ActorShown = whoIs(vd.History[i].Actor, names, s.User.ID.String())
	}
	if err := a.fillEdits(r, vd, shops, names); err != nil {
		return nil, 0, "", err
	}
	return vd, status, msg, nil
}

// parseLocal reads a datetime-local value (or RFC 3339) in loc.
func parseLocal(in string, loc *time.Location) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, in); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, in, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a date and time: pick one with the date picker, or write it as 2026-03-01T09:30", in)
}

func historyRows(ms []projections.Movement, readsLog bool) []historyRow {
	out := make([]historyRow, 0, len(ms))
	for _, m := range ms {
		h := historyRow{Movement: m, DeltaShown: fmt.Sprintf("%+d", m.Delta), BalanceShown: number(m.Balance)}
		if m.ReceiptID != nil {
			h.Receipt = strconv.FormatInt(*m.ReceiptID, 10)
			h.ReceiptLink = "/sales/" + h.Receipt
		}
		if m.WebhookID != nil {
			h.Webhook = *m.WebhookID
		}
		// A reconciliation's movements name it ("reconciliation" or
		// "reconciliation:<run id>").
		h.Reconciled = m.Cause == "reconciliation" || strings.HasPrefix(m.Cause, "reconciliation:") || m.Reason == events.ReasonEtsyChange
		h.Edit = strings.HasPrefix(m.Cause, "edit:")
		if readsLog {
			h.EventLink = "/log/events/" + url.PathEscape(m.EventID)
			if m.WebhookEventID != "" {
				h.WebhookLink = "/log/events/" + url.PathEscape(m.WebhookEventID)
			}
		}
		out = append(out, h)
	}
	return out
}

// Explain: the movements whose deltas sum to a balance.

type explainData struct {
	Product   productData
	Variant   variantRow
	At        time.Time
	AtInput   string
	Rows      []explainRow
	Sum       int64
	Balance   int64
	Agrees    bool
	TZ        string
	Movements int64
}

type explainRow struct {
	historyRow
	Running int64
}

func (a *app) explainPage(w http.ResponseWriter, r *http.Request) {
	s, _ := sessionOf(r)
	d, v, ok := a.loadVariant(w, r)
	if !ok {
		return
	}
	if !s.Role.ReadsLog() {
		a.forbidden(w, r, "Only owners and auditors can see the events behind a number.")
		return
	}
	ctx := r.Context()
	loc := s.User.Location()
	shops, err := a.orgShops(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	title := "Explain the stock of " + v.Name
	at := timeNow()
	in := strings.TrimSpace(r.URL.Query().Get("at"))
	if in != "" {
		if at, err = parseLocal(in, loc); err != nil {
			a.render(w, r, http.StatusBadRequest, "explain", view{Title: title, Error: err.Error(),
				Data: &explainData{Product: d, Variant: v, AtInput: in, TZ: loc.String()}})
			return
		}
	}
	// Postgres keeps microseconds: the balance as of at counts the
	// movements up to at's microsecond, and so does the list.
	at = at.Truncate(time.Microsecond)
	// The form shows the instant as its datetime-local field writes it.
	ed := &explainData{Product: d, Variant: v, At: at, AtInput: at.In(loc).Format("2006-01-02T15:04"), TZ: loc.String()}
	st, err := a.cfg.Data.Stock.VariantStockAt(ctx, shops, d.ListingID, v.VariantKey, at)
	if err != nil {
		a.lookupError(w, r, err)
		return
	}
	ed.Balance, ed.Movements = st.Quantity, st.Movements
	hf := projections.HistoryFilter{Shops: shops, ListingID: d.ListingID, VariantKey: v.VariantKey, To: at.Add(time.Microsecond), Limit: explainPage}
	var all []projections.Movement
	for {
		ms, err := a.cfg.Data.Stock.History(ctx, hf)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		all = append(all, ms...)
		if len(ms) < explainPage {
			break
		}
		hf.AfterSeq = ms[len(ms)-1].Seq
	}
	// Business-time order: the order the balance as of an instant adds
	// them in.
	slices.SortStableFunc(all, func(x, y projections.Movement) int {
		return cmp.Or(x.OccurredAt.Compare(y.OccurredAt), cmp.Compare(x.Seq, y.Seq))
	})
	names := sync.OnceValue(func() map[string]string { return a.actorNames(r) })
	for _, h := range historyRows(all, true) {
		h.ActorShown = whoIs(h.Actor, names, s.User.ID.String())
		ed.Sum += h.Delta
		ed.Rows = append(ed.Rows, explainRow{historyRow: h, Running: ed.Sum})
	}
	ed.Agrees = ed.Sum == ed.Balance && int64(len(ed.Rows)) == ed.Movements
	if !ed.Agrees {
		a.log.ErrorContext(ctx, "explain: movements do not sum to the balance", "listing", d.ListingID, "variant", v.VariantKey,
			"sum", ed.Sum, "balance", ed.Balance, "rows", len(ed.Rows), "movements", ed.Movements)
	}
	a.render(w, r, http.StatusOK, "explain", view{Title: title, Data: ed})
}

// Thresholds: the same events, through the same writer and the same
// domain checks, as PUT /v1/…/threshold.

func (a *app) setListingThreshold(w http.ResponseWriter, r *http.Request) {
	d, ok := a.loadProduct(w, r)
	if !ok {
		return
	}
	a.setThreshold(w, r, domain.ThresholdTarget{ShopID: d.ShopID, ListingID: d.ListingID}, d.Link, func(msg string) {
		d.Form, d.FormTarget = r.PostForm, "listing"
		a.render(w, r, http.StatusUnprocessableEntity, "product", view{Title: cmp.Or(d.Title, "Listing"), Error: msg, Data: &d})
	})
}

func (a *app) setShopThreshold(w http.ResponseWriter, r *http.Request) {
	d, ok := a.loadProduct(w, r)
	if !ok {
		return
	}
	a.setThreshold(w, r, domain.ThresholdTarget{ShopID: d.ShopID}, d.Link, func(msg string) {
		d.Form, d.FormTarget = r.PostForm, "shop"
		a.render(w, r, http.StatusUnprocessableEntity, "product", view{Title: cmp.Or(d.Title, "Listing"), Error: msg, Data: &d})
	})
}

func (a *app) setVariantThreshold(w http.ResponseWriter, r *http.Request) {
	d, v, ok := a.loadVariant(w, r)
	if !ok {
		return
	}
	a.setThreshold(w, r, domain.ThresholdTarget{ShopID: d.ShopID, ListingID: d.ListingID, VariantKey: v.VariantKey}, v.Link, func(msg string) {
		d.Form, d.FormTarget = r.PostForm, "variant"
		vd, _, _, err := a.variantView(r, d, v)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		a.render(w, r, http.StatusUnprocessableEntity, "variant", view{Title: v.Name, Error: msg, Data: vd})
	})
}

// setThreshold records the form's threshold for target and sends the
// browser back to back; a number the domain refuses shows the form again
// through again.
func (a *app) setThreshold(w http.ResponseWriter, r *http.Request, target domain.ThresholdTarget, back string, again func(msg string)) {
	s, _ := sessionOf(r)
	if !s.Role.Writes() {
		a.forbidden(w, r, "Auditors can read the stock but not change it. Ask an owner or staff member.")
		return
	}
	if err := r.ParseForm(); err != nil {
		again("The form could not be read. Send it again.")
		return
	}
	in := strings.TrimSpace(r.PostForm.Get("threshold"))
	n, err := strconv.ParseInt(in, 10, 64)
	if err != nil {
		again(fmt.Sprintf("The low-stock line must be a whole number from 0 to %d; %q is not.", domain.MaxThreshold, in))
		return
	}
	ts, err := domain.SetThreshold(target, n, "user:"+s.User.ID.String())
	if errors.Is(err, domain.ErrInvalidThreshold) {
		again(fmt.Sprintf("The low-stock line must be a whole number from 0 to %d; %d is not.", domain.MaxThreshold, n))
		return
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	ev := events.New(target.Stream(), ts.ShopID, timeNow(), ts).WithMetadata(events.Metadata{Source: "web", Actor: ts.Actor})
	if _, err := a.cfg.Data.Thresholds.Append(r.Context(), target.Stream(), eventstore.Any, ev); err != nil {
		a.fail(w, r, fmt.Errorf("set threshold: %w", err))
		return
	}
	redirect(w, r, back, "threshold")
}
