package webapp

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/shopledger/shopledger/httpapi"
	"github.com/shopledger/shopledger/projections"
)

// stockRoutes registers the stock pages: dashboard figures, products,
// variants and their history, the stock forms and the stocktake. The
// dashboard itself is home, at /.
func (a *app) stockRoutes(r chi.Router) {
	r.Get("/products", a.productsPage)
	r.Get("/products.csv", a.productsCSV)
	r.Get("/products/{listingID}", a.productPage)
	r.Post("/products/{listingID}/threshold", a.setListingThreshold)
	r.Post("/products/{listingID}/shop-threshold", a.setShopThreshold)
	r.Get("/products/{listingID}/variants/{variantKey}", a.variantPage)
	r.Post("/products/{listingID}/variants/{variantKey}/threshold", a.setVariantThreshold)
	r.Get("/products/{listingID}/variants/{variantKey}/explain", a.explainPage)
	r.Post("/products/{listingID}/variants/{variantKey}/adjust", a.adjust)
	r.Post("/products/{listingID}/variants/{variantKey}/price", a.setPrice)
	r.Post("/products/{listingID}/variants/{variantKey}/enabled", a.setEnabled)
	r.Get("/shops/{shopID}/stocktake", a.stocktakePage)
	r.Post("/shops/{shopID}/stocktake/preview", a.previewStocktake)
	r.Post("/shops/{shopID}/stocktake/apply", a.applyStocktake)
}

func init() {
	notices["threshold"] = "The new low-stock line is recorded. Figures follow as soon as the ledger has folded it in, usually within a second: reload if the old line still shows."
}

// StockPages is what the stock pages read beyond the API's readers: the
// dashboard's sums and the days of cover. *projections.Reader is one, and
// the pages take it from Config.Data.Stock.
type StockPages interface {
	StockSummary(ctx context.Context, shops []int64) (projections.StockSummary, error)
	SalesTotals(ctx context.Context, shops []int64, from, to time.Time) ([]projections.SalesTotal, error)
	LocalDailySales(ctx context.Context, shops []int64, to time.Time, days int, loc *time.Location) ([]projections.LocalDaySales, error)
	RunningOut(ctx context.Context, shops []int64, listingID int64, since, until time.Time, limit int) ([]projections.Cover, error)
	TopProductsOf(ctx context.Context, shops []int64, from, to time.Time, limit int) ([]projections.TopProduct, error)
	OpenAlertCount(ctx context.Context, shops []int64) (int64, error)
}

func (a *app) stockPages() (StockPages, error) {
	sp, ok := a.cfg.Data.Stock.(StockPages)
	if !ok {
		return nil, errors.New("webapp: Config.Data.Stock does not read the dashboard's figures (it is not a *projections.Reader)")
	}
	return sp, nil
}

// coverWindow is the span whose sales set a variant's rate of sale.
const coverWindow = 30 * 24 * time.Hour

// orgShops returns the shops of the session's organisation (never nil):
// every lookup of the pages is scoped to them.
func (a *app) orgShops(r *http.Request) ([]int64, error) {
	s, _ := sessionOf(r)
	ids, err := a.cfg.Accounts.ShopIDs(r.Context(), s.OrgID)
	if ids == nil {
		ids = []int64{}
	}
	return ids, err
}

// lookupError answers err with 404 when it means "not yours or not
// there", else as a failure.
func (a *app) lookupError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, projections.ErrNotFound) || errors.Is(err, httpapi.ErrNotFound) {
		a.notFound(w, r)
		return
	}
	a.fail(w, r, err)
}

// listingParam reads {listingID}; anything but a positive number names
// nothing.
func listingParam(r *http.Request) (int64, bool) { return positiveID(chi.URLParam(r, "listingID")) }

// variantParam reads {variantKey}. Keys are sellers' SKUs and may hold
// any character, sent percent-encoded: chi matches on the raw path when
// the URL has one (an encoded "/" makes it so), and then the parameter
// is still encoded; otherwise it is already decoded.
func variantParam(r *http.Request) (string, bool) {
	key := chi.URLParam(r, "variantKey")
	if r.URL.RawPath != "" {
		var err error
		if key, err = url.PathUnescape(key); err != nil {
			return "", false
		}
	}
	return key, key != ""
}

// Paths of the stock pages.

func productPath(listingID int64) string { return "/products/" + strconv.FormatInt(listingID, 10) }

func variantPath(listingID int64, key string) string {
	return productPath(listingID) + "/variants/" + url.PathEscape(key)
}

func explainPath(listingID int64, key string, at time.Time) string {
	p := variantPath(listingID, key) + "/explain"
	if !at.IsZero() {
		p += "?at=" + url.QueryEscape(at.UTC().Format(time.RFC3339))
	}
	return p
}

// zeroDecimals are the ISO 4217 currencies without minor units that a
// shop may sell in; every other currency has two decimals.
var zeroDecimals = map[string]bool{"JPY": true, "KRW": true, "VND": true, "CLP": true, "ISK": true}

// money shows an amount in minor units as people read it: "1,234.50 EUR".
func money(amount int64, currency string) string {
	neg := amount < 0
	if neg {
		amount = -amount
	}
	var s string
	if zeroDecimals[currency] {
		s = groupThousands(strconv.FormatInt(amount, 10))
	} else {
		s = groupThousands(strconv.FormatInt(amount/100, 10)) + fmt.Sprintf(".%02d", amount%100)
	}
	if neg {
		s = "−" + s
	}
	return strings.TrimSpace(s + " " + currency)
}

// number shows a count with thousands separated.
func number(n int64) string {
	if n < 0 {
		return "−" + groupThousands(strconv.FormatInt(-n, 10))
	}
	return groupThousands(strconv.FormatInt(n, 10))
}

func groupThousands(digits string) string {
	if len(digits) <= 3 {
		return digits
	}
	var b strings.Builder
	lead := len(digits) % 3
	if lead > 0 {
		b.WriteString(digits[:lead])
	}
	for i := lead; i < len(digits); i += 3 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(digits[i : i+3])
	}
	return b.String()
}

// days shows a days-of-cover figure.
func days(d float64) string {
	switch {
	case d <= 0:
		return "out of stock"
	case d < 1:
		return "less than a day"
	case d < 10:
		return strconv.FormatFloat(d, 'f', 1, 64) + " days"
	}
	return strconv.FormatFloat(d, 'f', 0, 64) + " days"
}

// Dashboard.

type dashboard struct {
	Shops         []projections.Shop
	CanConnect    bool
	Summary       projections.StockSummary
	Month         string
	MonthSales    []moneyFigure
	MonthOrders   int64
	Top           []topRow
	RunningOut    []coverRow
	Chart         chartHTML
	ChartOrders   chartHTML
	ChartRows     []chartRow
	ChartCurrency string
	OpenAlerts    int64
	ReadsLog      bool
}

type moneyFigure struct {
	Currency string
	Value    int64
	Shown    string
}

type topRow struct {
	Link   string
	Title  string
	Units  int64
	Orders int64
	Amount string
}

type coverRow struct {
	Link        string
	Title       string
	Variant     string
	Balance     int64
	Sold        int64
	Days        string
	ExplainLink string
}

type chartRow struct {
	Day    string
	Amount string
	Orders int64
}

// home is the dashboard of the session's organisation, or the way into
// one for a user who has none.
func (a *app) home(w http.ResponseWriter, r *http.Request) {
	s, ok := sessionOf(r)
	if !ok {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	d := dashboard{CanConnect: a.cfg.ConnectURL != "" && s.Role.Manages(), ReadsLog: s.Role.ReadsLog()}
	if s.OrgID == 0 {
		a.render(w, r, http.StatusOK, "dashboard", view{Title: "Your shops", Data: d})
		return
	}
	if err := a.fillDashboard(r, &d); err != nil {
		a.fail(w, r, err)
		return
	}
	a.render(w, r, http.StatusOK, "dashboard", view{Title: "Dashboard", Data: d})
}

func (a *app) fillDashboard(r *http.Request, d *dashboard) error {
	ctx := r.Context()
	s, _ := sessionOf(r)
	loc := s.User.Location()
	sp, err := a.stockPages()
	if err != nil {
		return err
	}
	shops, err := a.orgShops(r)
	if err != nil {
		return err
	}
	now := timeNow()
	local := now.In(loc)
	monthStart := time.Date(local.Year(), local.Month(), 1, 0, 0, 0, 0, loc)
	monthEnd := monthStart.AddDate(0, 1, 0)
	d.Month = local.Format("January 2006")
	// The figures are independent reads: they run at once, each on its
	// own connection and into its own fields of d, so the page waits for
	// the slowest instead of the sum.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	read := func(f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	read(func() (err error) {
		d.Shops, err = a.cfg.Data.Shops.ListShops(ctx, shops)
		return err
	})
	read(func() (err error) {
		d.Summary, err = sp.StockSummary(ctx, shops)
		return err
	})
	read(func() error {
		totals, err := sp.SalesTotals(ctx, shops, monthStart, monthEnd)
		for _, t := range totals {
			d.MonthSales = append(d.MonthSales, moneyFigure{Currency: t.Currency, Value: t.Amount, Shown: money(t.Amount, t.Currency)})
			d.MonthOrders += t.Orders
		}
		return err
	})
	read(func() error {
		top, err := sp.TopProductsOf(ctx, shops, monthStart, monthEnd, 5)
		for _, t := range top {
			d.Top = append(d.Top, topRow{Link: productPath(t.ListingID), Title: cmp.Or(t.Title, "Listing "+strconv.FormatInt(t.ListingID, 10)),
				Units: t.Units, Orders: t.Orders, Amount: money(t.Revenue.Amount, t.Revenue.Currency)})
		}
		return err
	})
	read(func() error {
		covers, err := sp.RunningOut(ctx, shops, 0, now.Add(-coverWindow), now, 8)
		for _, c := range covers {
			row := coverRow{Link: variantPath(c.ListingID, c.VariantKey), Title: c.Title, Variant: cmp.Or(c.SKU, c.VariantKey),
				Balance: c.Balance, Sold: c.Sold, Days: days(c.DaysOfCover)}
			if d.ReadsLog {
				row.ExplainLink = explainPath(c.ListingID, c.VariantKey, time.Time{})
			}
			d.RunningOut = append(d.RunningOut, row)
		}
		return err
	})
	read(func() error {
		series, err := sp.LocalDailySales(ctx, shops, now, 30, loc)
		if err == nil {
			d.Chart, d.ChartOrders, d.ChartRows, d.ChartCurrency = salesCharts(series)
		}
		return err
	})
	// Alerts count when the API serves them, as GET /v1/alerts does.
	if a.cfg.Data.Alerts != nil {
		read(func() (err error) {
			d.OpenAlerts, err = sp.OpenAlertCount(ctx, shops)
			return err
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
