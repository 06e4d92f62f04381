package webapp

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/shopledger/shopledger/httpapi"
	"github.com/shopledger/shopledger/projections"
)

// ledgerRoutes registers the sales, alerts, shop settings, alert channels
// and the auditor's pages. Every page reads through the API's readers and
// its filter parsing (httpapi's exported helpers), scoped to the
// organisation's shops, so a page and /v1 show the same rows and another
// organisation's object is a 404.
func (a *app) ledgerRoutes(r chi.Router) {
	r.Get("/sales", a.salesPage)
	r.Get("/sales.csv", a.salesCSV)
	r.Get("/sales/{receiptID}", a.salePage)
	r.Get("/alerts", a.alertsPage)
	r.Get("/alerts/{alertID}", a.alertPage)
	r.Get("/shops", a.shopsPage)
	r.Group(func(r chi.Router) {
		r.Use(a.requireOwner)
		r.Post("/shops/{shopID}/sync", a.changeSync)
		r.Post("/shops/{shopID}/disconnect", a.disconnectShop)
		r.Post("/shops/{shopID}/sync-now", a.syncNow)
		a.channelRoutes(r)
	})
	r.Group(func(r chi.Router) {
		r.Use(a.requireLogReader)
		r.Get("/log", a.logPage)
		r.Get("/log/events/{eventID}", a.eventPage)
		r.Get("/log/chain", a.chainPage)
		r.Get("/log/export", a.exportLog)
	})
}

// shopNames maps the organisation's shops to their names, for filters
// and tables; shops the read model does not know yet are named by id.
type shopOption struct {
	ID   int64
	Name string
}

func (a *app) shopOptions(ctx context.Context, ids []int64) ([]shopOption, map[int64]string, error) {
	shops, err := a.cfg.Shops.ListShops(ctx, ids)
	if err != nil {
		return nil, nil, err
	}
	names := map[int64]string{}
	for _, s := range shops {
		names[s.ShopID] = s.Name
	}
	var out []shopOption
	for _, id := range ids {
		n := names[id]
		if n == "" {
			n = "Shop " + strconv.FormatInt(id, 10)
			names[id] = n
		}
		out = append(out, shopOption{ID: id, Name: n})
	}
	return out, names, nil
}

// orgShopOptions is the organisation's shops, as options for filters and
// with their names for tables.
func (a *app) orgShopOptions(r *http.Request) ([]int64, []shopOption, map[int64]string, error) {
	ids, err := a.orgShops(r)
	if err != nil {
		return nil, nil, nil, err
	}
	opts, names, err := a.shopOptions(r.Context(), ids)
	return ids, opts, names, err
}

// filtered says whether q sets any of the filters keys.
func filtered(q url.Values, keys ...string) bool {
	return slices.ContainsFunc(keys, func(k string) bool { return q.Get(k) != "" })
}

// dataError answers an error of the readers or of the API's parsing: a
// bad filter is shown on the page (400), a missing or foreign object is a
// 404, anything else fails.
func (a *app) dataError(w http.ResponseWriter, r *http.Request, page string, v view, err error) {
	var in *httpapi.InputError
	switch {
	case errors.As(err, &in):
		v.Error = "Check the filter “" + in.Param + "”: " + in.Msg + "."
		a.render(w, r, http.StatusBadRequest, page, v)
	case errors.Is(err, httpapi.ErrNotFound), errors.Is(err, projections.ErrNotFound):
		a.notFound(w, r)
	default:
		a.fail(w, r, err)
	}
}

// orgObject reads the object a page's path parameter names among the
// organisation's shops, which it returns too: an id that does not parse
// names nothing (404), and a failed read answers as dataError does, on a
// page with title. ok is false when the answer is written.
func orgObject[ID, T any](a *app, w http.ResponseWriter, r *http.Request, param string, parse func(string) (ID, bool), title string,
	get func(context.Context, []int64, ID) (T, error)) (obj T, shops []int64, ok bool) {
	id, ok := parse(chi.URLParam(r, param))
	if !ok {
		a.notFound(w, r)
		return obj, nil, false
	}
	shops, err := a.orgShops(r)
	if err != nil {
		a.fail(w, r, err)
		return obj, nil, false
	}
	if obj, err = get(r.Context(), shops, id); err != nil {
		a.dataError(w, r, "message", view{Title: title}, err)
		return obj, nil, false
	}
	return obj, shops, true
}

// positiveID reads a numeric id; anything but a positive number names
// nothing.
func positiveID(s string) (int64, bool) {
	id, err := strconv.ParseInt(s, 10, 64)
	return id, err == nil && id > 0
}

// parseUUID reads a uuid id.
func parseUUID(s string) (uuid.UUID, bool) {
	id, err := uuid.Parse(s)
	return id, err == nil
}

// shopName is the name shopOptions gives the shop.
func (a *app) shopName(ctx context.Context, id int64) (string, error) {
	_, names, err := a.shopOptions(ctx, []int64{id})
	return names[id], err
}

// listPage reads one page of a list page's rows through read (one of
// httpapi's page readers) from rd: f and err are the page's filter as it
// parsed. A bad filter or a failed read is shown the way dataError shows
// it on the list's own template; next is the link to the following page,
// "" on the last.
func listPage[R, F, T any](a *app, w http.ResponseWriter, r *http.Request, page string, v view,
	read func(context.Context, R, F) ([]T, string, error), rd R, f F, err error) (items []T, next string, ok bool) {
	if err == nil {
		items, next, err = read(r.Context(), rd, f)
	}
	if err != nil {
		a.dataError(w, r, page, v, err)
		return nil, "", false
	}
	if next != "" {
		next = withCursor(r, next)
	}
	return items, next, true
}

// allPages reads a list to its end: page reads one page, and after moves
// the cursor past the last row of the page read.
func allPages[T any](page func() ([]T, string, error), after func(last T)) ([]T, error) {
	var all []T
	for {
		items, next, err := page()
		if err != nil {
			return nil, err
		}
		all = append(all, items...)
		if next == "" {
			return all, nil
		}
		after(items[len(items)-1])
	}
}

// localDates turns the date fields of a filter form (YYYY-MM-DD, read as
// days of the member's time zone) into the instants the API's filters
// take; anything else is passed on for the API's parsing to judge.
func localDates(q url.Values, loc *time.Location, names ...string) url.Values {
	out := url.Values{}
	for k, v := range q {
		out[k] = slices.Clone(v)
	}
	for _, n := range names {
		if d, err := time.ParseInLocation(time.DateOnly, q.Get(n), loc); err == nil {
			out.Set(n, d.Format(time.RFC3339))
		}
	}
	return out
}

// withCursor is the page's own URL with the cursor of another page.
func withCursor(r *http.Request, cursor string) string {
	q := r.URL.Query()
	q.Del("notice")
	if cursor == "" {
		q.Del("cursor")
	} else {
		q.Set("cursor", cursor)
	}
	u := url.URL{Path: r.URL.Path, RawQuery: q.Encode()}
	return u.String()
}

func (a *app) location(r *http.Request) *time.Location {
	if s, ok := sessionOf(r); ok {
		if loc := s.User.Location(); loc != nil {
			return loc
		}
	}
	return time.UTC
}

// Sales.

type saleRow struct {
	projections.Sale
	ShopName string
	Total    string
	Refunded string
}

type salesData struct {
	Shops     []shopOption
	Statuses  []string
	Q         url.Values
	Rows      []saleRow
	Next      string
	First     string
	CSV       string
	Filtered  bool
	HasCursor bool
}

func (a *app) salesFilter(r *http.Request) ([]int64, projections.SaleFilter, error) {
	ids, err := a.orgShops(r)
	if err != nil {
		return nil, projections.SaleFilter{}, err
	}
	f, err := httpapi.SaleFilterOf(localDates(r.URL.Query(), a.location(r), "from", "to"), ids)
	return ids, f, err
}

func (a *app) salesPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := salesData{Statuses: httpapi.SaleStatuses(), Q: q, HasCursor: q.Get("cursor") != ""}
	v := view{Title: "Sales", Data: &d}
	_, shops, names, err := a.orgShopOptions(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	d.Shops, d.Filtered = shops, filtered(q, "shop_id", "status", "from", "to")
	csvQ := url.Values{}
	for _, k := range []string{"shop_id", "status", "from", "to"} {
		if q.Get(k) != "" {
			csvQ.Set(k, q.Get(k))
		}
	}
	d.CSV = (&url.URL{Path: "/sales.csv", RawQuery: csvQ.Encode()}).String()
	d.First = withCursor(r, "")
	_, f, err := a.salesFilter(r)
	items, next, ok := listPage(a, w, r, "sales", v, httpapi.SalePage, a.cfg.Data.Sales, f, err)
	if !ok {
		return
	}
	for _, s := range items {
		d.Rows = append(d.Rows, saleRow{Sale: s, ShopName: names[s.ShopID], Total: money(s.GrandTotal, s.Currency), Refunded: money(s.Refunded, s.Currency)})
	}
	d.Next = next
	a.render(w, r, http.StatusOK, "sales", v)
}

// salesCSV downloads every sale of the filter (all pages, not one), in
// /v1/sales?format=csv's columns.
func (a *app) salesCSV(w http.ResponseWriter, r *http.Request) {
	_, f, err := a.salesFilter(r)
	if err != nil {
		a.dataError(w, r, "message", view{Title: "Sales"}, err)
		return
	}
	f.After = nil
	f.Limit = httpapi.MaxLimit
	all, err := allPages(func() ([]projections.Sale, string, error) { return httpapi.SalePage(r.Context(), a.cfg.Data.Sales, f) },
		func(last projections.Sale) {
			f.After = &projections.SaleCursor{CreatedAt: last.CreatedAt, ReceiptID: last.ReceiptID}
		})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpapi.WriteSalesCSV(w, all)
}

type saleItemRow struct {
	projections.SaleItem
	Variant   string
	UnitPrice string
	LineTotal string
}

type timelineStep struct {
	What string
	At   time.Time
	Note string
}

type movementRow struct {
	projections.Movement
	ListingID  int64
	VariantKey string
	Variant    string
}

type saleData struct {
	Sale      projections.SaleDetail
	ShopName  string
	Items     []saleItemRow
	Timeline  []timelineStep
	Movements []movementRow
	Totals    [][2]string
}

func (a *app) salePage(w http.ResponseWriter, r *http.Request) {
	sale, ids, ok := orgObject(a, w, r, "receiptID", positiveID, "Sale", a.cfg.Data.Sales.GetSale)
	if !ok {
		return
	}
	shopName, err := a.shopName(r.Context(), sale.ShopID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	d := saleData{Sale: sale, ShopName: shopName}
	cur := sale.Currency
	d.Totals = [][2]string{{"Subtotal", money(sale.Subtotal, cur)}, {"Shipping", money(sale.Shipping, cur)}, {"Tax", money(sale.Tax, cur)},
		{"Discount", money(-sale.Discount, cur)}, {"Total", money(sale.GrandTotal, cur)}}
	if sale.Refunded != 0 {
		d.Totals = append(d.Totals, [2]string{"Refunded", money(-sale.Refunded, cur)})
	}
	type vk struct {
		listing int64
		key     string
	}
	var variants []vk
	for _, it := range sale.Items {
		d.Items = append(d.Items, saleItemRow{SaleItem: it, Variant: variantPath(it.ListingID, it.VariantKey),
			UnitPrice: money(it.UnitPrice.Amount, it.UnitPrice.Currency), LineTotal: money(it.UnitPrice.Amount*it.Quantity, it.UnitPrice.Currency)})
		if k := (vk{it.ListingID, it.VariantKey}); it.VariantKey != "" && !slices.Contains(variants, k) {
			variants = append(variants, k)
		}
	}
	d.Timeline = append(d.Timeline, timelineStep{What: "Ordered", At: sale.CreatedAt})
	for _, st := range []struct {
		what string
		at   *time.Time
		note string
	}{{"Paid", sale.PaidAt, ""}, {"Shipped", sale.ShippedAt, sale.Carrier}, {"Delivered", sale.DeliveredAt, ""},
		{"Canceled", sale.CanceledAt, ""}, {"Refunded", sale.RefundedAt, ""}} {
		if st.at != nil {
			d.Timeline = append(d.Timeline, timelineStep{What: st.what, At: *st.at, Note: st.note})
		}
	}
	slices.SortStableFunc(d.Timeline, func(x, y timelineStep) int { return x.At.Compare(y.At) })
	// The stock movements the receipt caused: each variant's movements
	// from the order on that name this receipt (the sale and, later, a
	// cancellation's restock), bounded per variant.
	for _, v := range variants {
		ms, err := a.cfg.Data.Stock.History(r.Context(), projections.HistoryFilter{Shops: ids, ListingID: v.listing, VariantKey: v.key,
			From: sale.CreatedAt.Add(-time.Minute), Limit: httpapi.MaxLimit})
		if err != nil {
			a.fail(w, r, err)
			return
		}
		for _, m := range ms {
			if m.ReceiptID != nil && *m.ReceiptID == sale.ReceiptID {
				d.Movements = append(d.Movements, movementRow{Movement: m, ListingID: v.listing, VariantKey: v.key, Variant: variantPath(v.listing, v.key)})
			}
		}
	}
	slices.SortStableFunc(d.Movements, func(x, y movementRow) int { return x.OccurredAt.Compare(y.OccurredAt) })
	a.render(w, r, http.StatusOK, "sale", view{Title: "Receipt " + strconv.FormatInt(sale.ReceiptID, 10), Data: d})
}

func init() {
	notices["disconnected"] = "The shop is disconnected: its Etsy tokens are deleted and it is no longer synced. Its history stays in the ledger; connect it again at any time."
	notices["sync-requested"] = "A sync is requested: ingest starts it within a minute. Reload this page to see the run."
	notices["sync-saved"] = "The sync settings are saved. Ingest uses them from its next scheduling round."
}
