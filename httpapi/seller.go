package httpapi

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/shopledger/shopledger/domain"
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/projections"
)

// ShopReader reads the shops read model.
type ShopReader interface {
	ListShops(ctx context.Context, shops []int64) ([]projections.Shop, error)
	GetShop(ctx context.Context, shops []int64, shopID int64) (projections.Shop, error)
}

// ProductReader reads products and their variants.
type ProductReader interface {
	ListProducts(ctx context.Context, f projections.ProductFilter) ([]projections.Product, error)
	GetProduct(ctx context.Context, shops []int64, listingID int64) (projections.ProductDetail, error)
}

// StockReader reads stock movements and balances as of an instant.
type StockReader interface {
	// VariantShop returns the shop of a variant among shops, or ErrNotFound.
	VariantShop(ctx context.Context, shops []int64, listingID int64, variantKey string) (int64, error)
	History(ctx context.Context, f projections.HistoryFilter) ([]projections.Movement, error)
	VariantStockAt(ctx context.Context, shops []int64, listingID int64, variantKey string, at time.Time) (projections.VariantStock, error)
	// ShopStockAt pages the shop's variants by (listing_id, variant_key)
	// after the given key.
	ShopStockAt(ctx context.Context, shops []int64, shopID int64, at time.Time, afterListing int64, afterKey string, limit int) ([]projections.VariantStock, error)
}

// SalesReader reads sales, their items and aggregates.
type SalesReader interface {
	ListSales(ctx context.Context, f projections.SaleFilter) ([]projections.Sale, error)
	GetSale(ctx context.Context, shops []int64, receiptID int64) (projections.SaleDetail, error)
	DailySales(ctx context.Context, shops []int64, shopID int64, from, to time.Time) ([]projections.DailySales, error)
	// DailySalesIn is DailySales with days in loc.
	DailySalesIn(ctx context.Context, shops []int64, shopID int64, from, to time.Time, loc *time.Location) ([]projections.DailySales, error)
	TopProducts(ctx context.Context, shops []int64, shopID int64, from, to time.Time, byRevenue bool, limit int) ([]projections.TopProduct, error)
}

// ThresholdSetter appends threshold events; *eventstore.Store is one.
type ThresholdSetter interface {
	Append(ctx context.Context, stream string, expected eventstore.ExpectedVersion, evs ...events.Event) (eventstore.Result, error)
}

func (s *server) sellerRoutes(r chi.Router) {
	r.Get("/shops", s.handle(s.listShops))
	r.Get("/shops/{shopID}", s.handle(s.getShop))
	r.Get("/shops/{shopID}/stock", s.handle(s.shopStock))
	r.Get("/shops/{shopID}/sales/daily", s.handle(s.dailySales))
	r.Get("/shops/{shopID}/top-products", s.handle(s.topProducts))
	r.Get("/products", s.handle(s.listProducts))
	r.Get("/products/{listingID}", s.handle(s.getProduct))
	r.Get("/products/{listingID}/variants/{variantKey}/history", s.handle(s.variantHistory))
	r.Get("/products/{listingID}/variants/{variantKey}/stock", s.handle(s.variantStock))
	r.Get("/products/{listingID}/variants/{variantKey}/adjustments", s.handle(s.listAdjustments))
	r.Get("/sales", s.handle(s.listSales))
	r.Get("/sales/{receiptID}", s.handle(s.getSale))
	r.Group(func(r chi.Router) {
		r.Use(s.requireRole(RoleSeller))
		r.Put("/shops/{shopID}/threshold", s.handle(s.putShopThreshold))
		r.Put("/products/{listingID}/threshold", s.handle(s.putListingThreshold))
		r.Put("/products/{listingID}/variants/{variantKey}/threshold", s.handle(s.putVariantThreshold))
		r.Post("/products/{listingID}/variants/{variantKey}/adjustments", s.handle(s.postAdjustment))
		r.Put("/products/{listingID}/variants/{variantKey}/price", s.handle(s.putPrice))
		r.Post("/shops/{shopID}/stocktake", s.handle(s.postStocktake))
	})
}

// handler is a handler that returns its error, so every failure goes
// through the one mapping in problemFor.
type handler func(w http.ResponseWriter, r *http.Request, p Principal) error

func (s *server) handle(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := principalOf(r.Context())
		if err == nil {
			err = h(w, r, p)
		}
		if err != nil {
			s.errs.write(w, r, err)
		}
	}
}

// pathID reads a numeric path parameter; anything else names no object.
func pathID(r *http.Request, name string) (int64, error) {
	id, err := strconv.ParseInt(chi.URLParam(r, name), 10, 64)
	if err != nil || id <= 0 {
		return 0, ErrNotFound
	}
	return id, nil
}

// pathShop reads {shopID} and checks that the caller may see it.
func pathShop(r *http.Request, p Principal) (int64, error) {
	id, err := pathID(r, "shopID")
	if err != nil {
		return 0, err
	}
	if !p.Owns(id) {
		return 0, ErrNotFound
	}
	return id, nil
}

// pathVariantKey reads {variantKey}. Keys are SKUs chosen by sellers and
// may hold any character, sent percent-encoded. chi matches on the raw
// path when the URL has one (an encoded "/" makes it so), and then the
// parameter is still encoded; otherwise it is already decoded.
func pathVariantKey(r *http.Request) (string, error) {
	key := chi.URLParam(r, "variantKey")
	if r.URL.RawPath != "" {
		var err error
		if key, err = url.PathUnescape(key); err != nil {
			return "", ErrNotFound
		}
	}
	if key == "" {
		return "", ErrNotFound
	}
	return key, nil
}

// pathVariant reads {listingID} and {variantKey}.
func pathVariant(r *http.Request) (listingID int64, key string, err error) {
	if listingID, err = pathID(r, "listingID"); err != nil {
		return 0, "", err
	}
	if key, err = pathVariantKey(r); err != nil {
		return 0, "", err
	}
	return listingID, key, nil
}

// getOne answers with the one object get reads for the id that idOf reads
// from the path, among the caller's shops.
func getOne[ID, T any](w http.ResponseWriter, r *http.Request, p Principal, idOf func(*http.Request, Principal) (ID, error), get func(context.Context, []int64, ID) (T, error)) error {
	id, err := idOf(r, p)
	if err != nil {
		return err
	}
	v, err := get(r.Context(), p.Shops, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// byPathID is pathID as an idOf for getOne.
func byPathID(name string) func(*http.Request, Principal) (int64, error) {
	return func(r *http.Request, _ Principal) (int64, error) { return pathID(r, name) }
}

func (s *server) listShops(w http.ResponseWriter, r *http.Request, p Principal) error {
	if _, err := negotiate(r, false); err != nil {
		return err
	}
	shops, err := s.cfg.Data.Shops.ListShops(r.Context(), p.Shops)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, shopList{Items: nonNil(shops)})
	return nil
}

func (s *server) getShop(w http.ResponseWriter, r *http.Request, p Principal) error {
	return getOne(w, r, p, pathShop, s.cfg.Data.Shops.GetShop)
}

// param is the sort as the sort parameter spells it.
func sortParam(ps projections.ProductSort) string {
	if ps.Desc {
		return "-" + ps.Key
	}
	return ps.Key
}

func parseProductSort(s string) (projections.ProductSort, error) {
	if s == "" {
		return projections.ProductSort{Key: "listing_id"}, nil
	}
	ps := projections.ProductSort{Key: strings.TrimPrefix(s, "-"), Desc: strings.HasPrefix(s, "-")}
	if !projections.KnownProductSort(ps.Key) {
		return ps, badInput("sort", "want listing_id, title, quantity or updated_at, with - for descending")
	}
	return ps, nil
}

func parseBool(q url.Values, name string) (bool, error) {
	v := q.Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, badInput(name, "want true or false")
	}
	return b, nil
}

func (s *server) listProducts(w http.ResponseWriter, r *http.Request, p Principal) error {
	return listPage(w, r, p, "products", ProductQuery,
		func(ctx context.Context, f projections.ProductFilter) ([]projections.Product, string, error) {
			return ProductPage(ctx, s.cfg.Data.Products, f)
		},
		func(items []projections.Product, next string) any { return productPage{Items: items, NextCursor: next} })
}

// listPage answers one page of a list: filterOf reads the query, read
// reads the page and the next page's cursor, and page is the answer's
// body. A list with a csvName is sent as CSV too when asked.
func listPage[F, T any](w http.ResponseWriter, r *http.Request, p Principal, csvName string,
	filterOf func(url.Values, []int64) (F, error),
	read func(context.Context, F) ([]T, string, error),
	page func(items []T, next string) any) error {
	f, err := negotiate(r, csvName != "")
	if err != nil {
		return err
	}
	filter, err := filterOf(r.URL.Query(), p.Shops)
	if err != nil {
		return err
	}
	items, next, err := read(r.Context(), filter)
	if err != nil {
		return err
	}
	nextLink(w, r, next)
	respond(w, f, csvName, page(items, next))
	return nil
}

// productQuery reads the products list's query parameters.
func productQuery(q url.Values, p Principal) (projections.ProductFilter, error) {
	var err error
	pf := projections.ProductFilter{Shops: p.Shops, Search: strings.TrimSpace(q.Get("q"))}
	if pf.State, err = optEnum(q, "state", listingStates); err != nil {
		return pf, err
	}
	if pf.ShopID, err = optShop(q, p); err != nil {
		return pf, err
	}
	if pf.LowStockOnly, err = parseBool(q, "low_stock"); err != nil {
		return pf, err
	}
	if pf.IncludeDeleted, err = parseBool(q, "include_deleted"); err != nil {
		return pf, err
	}
	if pf.Sort, err = parseProductSort(q.Get("sort")); err != nil {
		return pf, err
	}
	if pf.Limit, err = parseLimit(q, defaultLimit); err != nil {
		return pf, err
	}
	if pf.After, err = optCursor[projections.ProductCursor](q); err != nil {
		return pf, err
	}
	if pf.After != nil {
		if made := cmp.Or(pf.After.Sort, "listing_id"); made != sortParam(pf.Sort) {
			return pf, badInput("cursor", "this cursor was made for sort=%s; send that sort, or start again without a cursor", made)
		}
	}
	return pf, nil
}

func (s *server) getProduct(w http.ResponseWriter, r *http.Request, p Principal) error {
	return getOne(w, r, p, byPathID("listingID"), s.cfg.Data.Products.GetProduct)
}

// historyCursor is the last movement of a page and the order it was made
// for: a cursor of an ascending walk continues nothing in a descending one.
type historyCursor struct {
	Seq  int64 `json:"s"`
	Desc bool  `json:"d,omitempty"`
}

func (s *server) variantHistory(w http.ResponseWriter, r *http.Request, p Principal) error {
	f, err := negotiate(r, true)
	if err != nil {
		return err
	}
	hf := projections.HistoryFilter{Shops: p.Shops, WebhookEvidence: p.Role == RoleAuditor}
	if hf.ListingID, hf.VariantKey, err = pathVariant(r); err != nil {
		return err
	}
	q := r.URL.Query()
	if hf.From, hf.To, err = timeRange(q, "from", "to"); err != nil {
		return err
	}
	switch q.Get("order") {
	case "", "asc":
	case "desc":
		hf.Desc = true
	default:
		return badInput("order", "want asc or desc")
	}
	if hf.Limit, err = parseLimit(q, defaultLimit); err != nil {
		return err
	}
	if c := q.Get("cursor"); c != "" {
		var cur historyCursor
		if err := decodeCursor(c, &cur); err != nil {
			return err
		}
		if cur.Desc != hf.Desc {
			return badInput("cursor", "this cursor was made for another order; send the same order, or start again without a cursor")
		}
		hf.AfterSeq = cur.Seq
	}
	hf.Limit++
	items, err := s.cfg.Data.Stock.History(r.Context(), hf)
	if err != nil {
		return err
	}
	// History reads only the caller's shops, so a movement on the page
	// shows the variant is theirs. An empty page must still tell a
	// variant with no movement in the range from no variant (404): that
	// takes a key lookup, made only then.
	if len(items) == 0 {
		if _, err := s.cfg.Data.Stock.VariantShop(r.Context(), p.Shops, hf.ListingID, hf.VariantKey); err != nil {
			return err
		}
	}
	page := historyPage{ListingID: hf.ListingID, VariantKey: hf.VariantKey}
	page.Items, page.NextCursor = pageOf(linkMovements(items, p.Role), hf.Limit, func(last movement) any { return historyCursor{Seq: last.Seq, Desc: hf.Desc} })
	nextLink(w, r, page.NextCursor)
	respond(w, f, "stock-history", page)
	return nil
}

// asOf reads ?as_of=, defaulting to now.
func (s *server) asOf(q url.Values) (time.Time, error) {
	at, err := optTime(q, "as_of")
	if err != nil {
		return at, err
	}
	if at.IsZero() {
		at = s.cfg.Now().UTC()
	}
	return at, nil
}

func (s *server) variantStock(w http.ResponseWriter, r *http.Request, p Principal) error {
	listingID, key, err := pathVariant(r)
	if err != nil {
		return err
	}
	at, err := s.asOf(r.URL.Query())
	if err != nil {
		return err
	}
	st, err := s.cfg.Data.Stock.VariantStockAt(r.Context(), p.Shops, listingID, key, at)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, variantStockAt{AsOf: at, VariantStock: st})
	return nil
}

type stockCursor struct {
	ListingID  int64  `json:"l"`
	VariantKey string `json:"k"`
}

func (s *server) shopStock(w http.ResponseWriter, r *http.Request, p Principal) error {
	shopID, err := pathShop(r, p)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	at, err := s.asOf(q)
	if err != nil {
		return err
	}
	limit, err := parseLimit(q, MaxLimit)
	if err != nil {
		return err
	}
	var cur stockCursor
	if c := q.Get("cursor"); c != "" {
		if err := decodeCursor(c, &cur); err != nil {
			return err
		}
	}
	items, err := s.cfg.Data.Stock.ShopStockAt(r.Context(), p.Shops, shopID, at, cur.ListingID, cur.VariantKey, limit+1)
	if err != nil {
		return err
	}
	page := shopStockPage{ShopID: shopID, AsOf: at}
	page.Items, page.NextCursor = pageOf(items, limit+1, func(last projections.VariantStock) any {
		return stockCursor{ListingID: last.ListingID, VariantKey: last.VariantKey}
	})
	nextLink(w, r, page.NextCursor)
	writeJSON(w, http.StatusOK, page)
	return nil
}

func (s *server) listSales(w http.ResponseWriter, r *http.Request, p Principal) error {
	return listPage(w, r, p, "sales", SaleFilterOf,
		func(ctx context.Context, f projections.SaleFilter) ([]projections.Sale, string, error) {
			return SalePage(ctx, s.cfg.Data.Sales, f)
		},
		func(items []projections.Sale, next string) any { return salePage{Items: items, NextCursor: next} })
}

func (s *server) getSale(w http.ResponseWriter, r *http.Request, p Principal) error {
	return getOne(w, r, p, byPathID("receiptID"), s.cfg.Data.Sales.GetSale)
}

// maxSeriesDays bounds a daily series so one request stays cheap.
const maxSeriesDays = 366

// dayRange reads from/to as dates: [from, to), default the last 30 days.
func (s *server) dayRange(q url.Values) (from, to time.Time, err error) {
	return s.dayRangeIn(q, time.UTC)
}

// dayRangeIn is dayRange with days in loc: the dates are loc's, and
// today is today in loc.
func (s *server) dayRangeIn(q url.Values, loc *time.Location) (from, to time.Time, err error) {
	if from, to, err = timeRange(q, "from", "to"); err != nil {
		return
	}
	// A date names that day in loc; an instant names the day it falls on
	// in loc.
	day := func(name string, t time.Time) time.Time {
		if d, err := time.Parse(time.DateOnly, q.Get(name)); err == nil {
			t = d
		} else {
			t = t.In(loc)
		}
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, loc)
	}
	if to.IsZero() {
		now := s.cfg.Now().In(loc)
		to = time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, loc).AddDate(0, 0, 1)
	} else {
		to = day("to", to)
	}
	if from.IsZero() {
		from = to.AddDate(0, 0, -30)
	} else {
		from = day("from", from)
	}
	if !from.Before(to) {
		return from, to, badInput("to", "must be at least a day after from")
	}
	if days := int(to.Sub(from).Hours()/24 + 0.5); days > maxSeriesDays {
		return from, to, badInput("from", "a series spans at most %d days", maxSeriesDays)
	}
	return from, to, nil
}

// ParseZone reads an IANA time zone name (tz=Europe/Paris); empty is UTC.
func ParseZone(q url.Values, name string) (*time.Location, error) {
	tz := q.Get(name)
	if tz == "" {
		return time.UTC, nil
	}
	if tz == "Local" {
		return nil, badInput(name, "want an IANA time zone name such as Europe/Paris")
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, badInput(name, "want an IANA time zone name such as Europe/Paris")
	}
	return loc, nil
}

func (s *server) dailySales(w http.ResponseWriter, r *http.Request, p Principal) error {
	shopID, err := pathShop(r, p)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	loc, err := ParseZone(q, "tz")
	if err != nil {
		return err
	}
	from, to, err := s.dayRangeIn(q, loc)
	if err != nil {
		return err
	}
	days, err := s.cfg.Data.Sales.DailySalesIn(r.Context(), p.Shops, shopID, from, to, loc)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, dailySeries{ShopID: shopID, From: from.Format(time.DateOnly), To: to.Format(time.DateOnly), TZ: loc.String(), Days: nonNil(days)})
	return nil
}

func (s *server) topProducts(w http.ResponseWriter, r *http.Request, p Principal) error {
	shopID, err := pathShop(r, p)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	from, to, err := s.dayRange(q)
	if err != nil {
		return err
	}
	by := q.Get("by")
	switch by {
	case "":
		by = "units"
	case "units", "revenue":
	default:
		return badInput("by", "want units or revenue")
	}
	limit, err := parseLimit(q, 10)
	if err != nil {
		return err
	}
	items, err := s.cfg.Data.Sales.TopProducts(r.Context(), p.Shops, shopID, from, to, by == "revenue", limit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, topProducts{ShopID: shopID, By: by, From: from, To: to, Items: nonNil(items)})
	return nil
}

// Thresholds.

// thresholdBody is the only thing a client may send: tenant and owner
// fields (shop_id, seller_id, actor) come from the path and the token.
type thresholdBody struct {
	Threshold *int64 `json:"threshold"`
}

// maxBody bounds write bodies; a threshold is a few bytes.
const maxBody = 4 << 10

func decodeThreshold(w http.ResponseWriter, r *http.Request) (int64, error) {
	var b thresholdBody
	if err := decodeBody(w, r, maxBody, &b, thresholdWords); err != nil {
		return 0, err
	}
	if b.Threshold == nil {
		return 0, badInput("threshold", "required")
	}
	if domain.CheckThreshold(*b.Threshold) != nil {
		return 0, badInput("threshold", "want 0 to %d", domain.MaxThreshold)
	}
	return *b.Threshold, nil
}

var thresholdWords = bodyWords{
	wantType: func(*json.UnmarshalTypeError) string { return "want an integer" },
	unknown:  "only threshold may be set",
	invalid:  "body is not a threshold object",
}

func (s *server) appendThreshold(w http.ResponseWriter, r *http.Request, p Principal, target domain.ThresholdTarget, threshold int64) error {
	ts, err := domain.SetThreshold(target, threshold, p.Actor())
	if err != nil {
		return fmt.Errorf("set threshold: %w", err)
	}
	ev := events.New(target.Stream(), ts.ShopID, s.cfg.Now(), ts).WithMetadata(events.Metadata{
		Source:        "query-api",
		Actor:         ts.Actor,
		RequestID:     requestIDOf(r.Context()),
		CorrelationID: requestIDOf(r.Context()),
	})
	res, err := s.cfg.Data.Thresholds.Append(r.Context(), target.Stream(), eventstore.Any, ev)
	if err != nil {
		return fmt.Errorf("set threshold: %w", err)
	}
	out := thresholdSet{EventID: res.Events[0].EventID.String(), Scope: ts.Scope, ShopID: ts.ShopID, VariantKey: ts.VariantKey, Threshold: ts.Threshold}
	if ts.ListingID != 0 {
		id := ts.ListingID
		out.ListingID = &id
	}
	// Accepted: the event is in the log; read models follow shortly.
	writeJSON(w, http.StatusAccepted, out)
	return nil
}

func (s *server) putShopThreshold(w http.ResponseWriter, r *http.Request, p Principal) error {
	shopID, err := pathShop(r, p)
	if err != nil {
		return err
	}
	th, err := decodeThreshold(w, r)
	if err != nil {
		return err
	}
	return s.appendThreshold(w, r, p, domain.ThresholdTarget{ShopID: shopID}, th)
}

// listingThreshold reads a threshold body and the listing it is for.
func (s *server) listingThreshold(w http.ResponseWriter, r *http.Request, p Principal, listingID int64) (projections.ProductDetail, int64, error) {
	// The body first: a slow or short body must not hold anything else.
	th, err := decodeThreshold(w, r)
	if err != nil {
		return projections.ProductDetail{}, 0, err
	}
	prod, err := s.cfg.Data.Products.GetProduct(r.Context(), p.Shops, listingID)
	return prod, th, err
}

func (s *server) putListingThreshold(w http.ResponseWriter, r *http.Request, p Principal) error {
	listingID, err := pathID(r, "listingID")
	if err != nil {
		return err
	}
	prod, th, err := s.listingThreshold(w, r, p, listingID)
	if err != nil {
		return err
	}
	return s.appendThreshold(w, r, p, domain.ThresholdTarget{ShopID: prod.ShopID, ListingID: listingID}, th)
}

func (s *server) putVariantThreshold(w http.ResponseWriter, r *http.Request, p Principal) error {
	listingID, key, err := pathVariant(r)
	if err != nil {
		return err
	}
	prod, th, err := s.listingThreshold(w, r, p, listingID)
	if err != nil {
		return err
	}
	found := false
	for _, v := range prod.Variants {
		found = found || v.VariantKey == key
	}
	if !found {
		return ErrNotFound
	}
	return s.appendThreshold(w, r, p, domain.ThresholdTarget{ShopID: prod.ShopID, ListingID: listingID, VariantKey: key}, th)
}
