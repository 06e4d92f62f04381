package etsysim

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/etsy/internal/wire"
)

const (
	maxLimit     = 100
	maxOffset    = 12000
	defaultLimit = 25
	epochMin     = 946684800
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"error":"Server Error"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeError writes Etsy's ErrorSchema, {"error": "<message>"}.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// writeOAuthError writes an OAuth-style error with error_description.
func writeOAuthError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

// apiReq is what the API middleware learned about a request.
type apiReq struct {
	app    *App
	userID int64 // 0 without a bearer token
}

// api wraps an Etsy endpoint: x-api-key check, rate limits, then the
// bearer token when scope is set (Etsy's "oauth2" security), all under
// the simulator's lock, which the handler keeps.
func (s *Sim) api(scope string, h func(w http.ResponseWriter, r *http.Request, a apiReq)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("x-api-key")
		s.mu.Lock()
		defer s.mu.Unlock()
		if key == "" {
			writeError(w, http.StatusForbidden, "Missing x-api-key header")
			return
		}
		keystring, secret, found := strings.Cut(key, ":")
		if !found {
			writeError(w, http.StatusForbidden, "Invalid API key: x-api-key must be keystring:shared_secret")
			return
		}
		app := s.apps[keystring]
		if app == nil || app.SharedSecret != secret {
			writeError(w, http.StatusForbidden, "Invalid API key")
			return
		}
		if ok, msg := s.admitLocked(app.KeyString, w.Header()); !ok {
			writeError(w, http.StatusTooManyRequests, msg)
			return
		}
		a := apiReq{app: app}
		bearer, hasBearer := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if scope == "" && !hasBearer {
			h(w, r, a)
			return
		}
		if !hasBearer || bearer == "" {
			writeOAuthError(w, http.StatusUnauthorized, "invalid_request", "Missing access token")
			return
		}
		t := s.oauth.access[bearer]
		now := s.clock.now()
		switch {
		case t == nil || t.clientID != app.KeyString:
			writeOAuthError(w, http.StatusUnauthorized, "invalid_token", "access token is invalid")
			return
		case t.revoked:
			writeOAuthError(w, http.StatusUnauthorized, "invalid_token", "access token is revoked")
			return
		case !now.Before(t.expires):
			writeOAuthError(w, http.StatusUnauthorized, "invalid_token", "access token is expired")
			return
		case scope != "" && !slices.Contains(t.scopes, scope):
			writeOAuthError(w, http.StatusForbidden, "insufficient_scope", "Insufficient scope")
			return
		}
		a.userID = t.userID
		h(w, r, a)
	}
}

func (s *Sim) routeAPI() {
	const p = "/v3/application"
	s.mux.HandleFunc("GET "+p+"/openapi-ping", s.api("", s.getPing))
	s.mux.HandleFunc("GET "+p+"/users/me", s.api(etsy.ScopeShopsRead, s.getMe))
	s.mux.HandleFunc("GET "+p+"/shops/{shop_id}", s.api("", s.getShop))
	s.mux.HandleFunc("GET "+p+"/shops/{shop_id}/listings", s.api(etsy.ScopeListingsRead, s.getListingsByShop))
	s.mux.HandleFunc("GET "+p+"/listings/batch", s.api("", s.getListingsByListingIDs))
	s.mux.HandleFunc("GET "+p+"/listings/{listing_id}", s.resource(s.api("", s.getListing)))
	s.mux.HandleFunc("GET "+p+"/listings/{listing_id}/inventory", s.resource(s.api(etsy.ScopeListingsRead, s.getListingInventory)))
	s.mux.HandleFunc("PUT "+p+"/listings/{listing_id}/inventory", s.api(etsy.ScopeListingsWrite, s.updateListingInventory))
	s.mux.HandleFunc("GET "+p+"/listings/{listing_id}/inventory/products/{product_id}", s.resource(s.api(etsy.ScopeListingsRead, s.getListingProduct)))
	s.mux.HandleFunc("GET "+p+"/shops/{shop_id}/receipts", s.api(etsy.ScopeTransactionsRead, s.getShopReceipts))
	s.mux.HandleFunc("GET "+p+"/shops/{shop_id}/receipts/{receipt_id}", s.resource(s.api(etsy.ScopeTransactionsRead, s.getShopReceipt)))
	s.mux.HandleFunc("GET "+p+"/shops/{shop_id}/receipts/{receipt_id}/transactions", s.resource(s.api(etsy.ScopeTransactionsRead, s.getReceiptTransactions)))
	s.mux.HandleFunc("GET "+p+"/shops/{shop_id}/transactions", s.api(etsy.ScopeTransactionsRead, s.getShopTransactions))
	s.mux.HandleFunc("/v3/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "Resource not found")
	})
}

// paramError is a 400 for a bad parameter.
type paramError struct{ name, value, want string }

func (e *paramError) Error() string {
	return fmt.Sprintf("Invalid value %q for parameter %s: expected %s", e.value, e.name, e.want)
}

func pathID(r *http.Request, name string) (int64, error) {
	v := r.PathValue(name)
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 {
		return 0, &paramError{name, v, "an integer >= 1"}
	}
	return n, nil
}

func queryInt(r *http.Request, name string, def, lo, hi int64) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, &paramError{name, v, fmt.Sprintf("an integer from %d to %d", lo, hi)}
	}
	return n, nil
}

// queryBool parses Etsy's booleans (true/false/1/0); nil when absent.
func queryBool(r *http.Request, name string) (*bool, error) {
	switch v := r.URL.Query().Get(name); strings.ToLower(v) {
	case "":
		return nil, nil
	case "true", "1":
		return ptr(true), nil
	case "false", "0":
		return ptr(false), nil
	default:
		return nil, &paramError{name, v, "a boolean"}
	}
}

func queryEnum(r *http.Request, name, def string, allowed ...string) (string, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	if !slices.Contains(allowed, v) {
		return "", &paramError{name, v, "one of " + strings.Join(allowed, ", ")}
	}
	return v, nil
}

// queryList parses a comma-separated array parameter.
func queryList(r *http.Request, name string, allowed ...string) ([]string, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return nil, nil
	}
	var out []string
	for _, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		if len(allowed) > 0 && !slices.Contains(allowed, item) {
			return nil, &paramError{name, item, "one of " + strings.Join(allowed, ", ")}
		}
		out = append(out, item)
	}
	return out, nil
}

func descending(order string) bool {
	switch order {
	case "asc", "ascending", "up":
		return false
	}
	return true
}

func fail(w http.ResponseWriter, err error) {
	var pe *paramError
	var ie *inventoryError
	switch {
	case errors.As(err, &pe):
		writeError(w, http.StatusBadRequest, pe.Error())
	case errors.As(err, &ie):
		writeError(w, http.StatusBadRequest, ie.Error())
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrInvalid):
		writeError(w, http.StatusBadRequest, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, "Server Error")
	}
}

var listingIncludes = []string{"Shipping", "Images", "Shop", "User", "Translations", "Inventory", "Videos", "Personalization", "BuyerPrice"}

func (s *Sim) getPing(w http.ResponseWriter, _ *http.Request, a apiReq) {
	writeJSON(w, http.StatusOK, map[string]int64{"application_id": a.app.ApplicationID})
}

func (s *Sim) getMe(w http.ResponseWriter, _ *http.Request, a apiReq) {
	u := s.users[a.userID]
	writeJSON(w, http.StatusOK, wire.Self{UserID: u.id, ShopID: u.shopID})
}

func (s *Sim) getShop(w http.ResponseWriter, r *http.Request, _ apiReq) {
	id, err := pathID(r, "shop_id")
	if err != nil {
		fail(w, err)
		return
	}
	sh := s.shops[id]
	if sh == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("Shop with shop_id %d not found", id))
		return
	}
	writeJSON(w, http.StatusOK, s.wireShopLocked(sh))
}

// ownShopLocked finds a shop the token's user owns: 404 if unknown, 403 if
// someone else's.
func (s *Sim) ownShopLocked(w http.ResponseWriter, r *http.Request, a apiReq) *shop {
	return owned(w, r, a, "Shop", "shop_id", func(id int64) (*shop, int64) {
		sh := s.shops[id]
		if sh == nil {
			return nil, 0
		}
		return sh, sh.userID
	})
}

// ownListingLocked finds a listing for the endpoints that need its owner.
func (s *Sim) ownListingLocked(w http.ResponseWriter, r *http.Request, a apiReq) *listing {
	return owned(w, r, a, "Listing", "listing_id", func(id int64) (*listing, int64) {
		l := s.listing[id]
		if l == nil || l.deleted {
			return nil, 0
		}
		return l, l.userID
	})
}

// owned finds what the path parameter param names with find, which
// returns nil when there is none, and answers as Etsy does: 404 if
// unknown, 403 if the token's user does not own it.
func owned[T any](w http.ResponseWriter, r *http.Request, a apiReq, noun, param string, find func(id int64) (*T, int64)) *T {
	id, err := pathID(r, param)
	if err != nil {
		fail(w, err)
		return nil
	}
	v, owner := find(id)
	if v == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("%s with %s %d not found", noun, param, id))
		return nil
	}
	if owner != a.userID {
		writeError(w, http.StatusForbidden, "The authenticated user does not own this "+strings.ToLower(noun))
		return nil
	}
	return v
}

func (s *Sim) getListingsByShop(w http.ResponseWriter, r *http.Request, a apiReq) {
	sh := s.ownShopLocked(w, r, a)
	if sh == nil {
		return
	}
	state, err := queryEnum(r, "state", etsy.ListingActive, "active", "inactive", "sold_out", "draft", "expired")
	if err != nil {
		fail(w, err)
		return
	}
	limit, offset, err := paging(r)
	if err != nil {
		fail(w, err)
		return
	}
	sortOn, err := queryEnum(r, "sort_on", "created", "created", "price", "updated", "score")
	if err != nil {
		fail(w, err)
		return
	}
	order, err := queryEnum(r, "sort_order", "desc", "asc", "ascending", "desc", "descending", "up", "down")
	if err != nil {
		fail(w, err)
		return
	}
	includes, err := queryList(r, "includes", listingIncludes...)
	if err != nil {
		fail(w, err)
		return
	}
	if _, err := queryBool(r, "legacy"); err != nil {
		fail(w, err)
		return
	}
	var ls []*listing
	for _, id := range sh.listingIDs {
		if l := s.listing[id]; !l.deleted && l.state == state {
			ls = append(ls, l)
		}
	}
	slices.SortStableFunc(ls, func(x, y *listing) int {
		var c int
		switch sortOn {
		case "price":
			c = cmp.Compare(x.price(), y.price())
		case "updated":
			c = x.updated.Compare(y.updated)
		default:
			c = x.created.Compare(y.created)
		}
		if c == 0 {
			c = cmp.Compare(x.id, y.id)
		}
		if descending(order) {
			return -c
		}
		return c
	})
	out := wire.Page[wire.Listing]{Count: len(ls), Results: []wire.Listing{}}
	withInv := slices.Contains(includes, "Inventory")
	for _, l := range window(ls, offset, limit) {
		out.Results = append(out.Results, s.wireListingLocked(l, true, withInv, true))
	}
	writeJSON(w, http.StatusOK, out)
}

func paging(r *http.Request) (limit, offset int, err error) {
	l, err := queryInt(r, "limit", defaultLimit, 1, maxLimit)
	if err != nil {
		return 0, 0, err
	}
	o, err := queryInt(r, "offset", 0, 0, maxOffset)
	if err != nil {
		return 0, 0, err
	}
	return int(l), int(o), nil
}

func window[T any](xs []T, offset, limit int) []T {
	if offset >= len(xs) {
		return nil
	}
	return xs[offset:min(offset+limit, len(xs))]
}

func (s *Sim) getListing(w http.ResponseWriter, r *http.Request, a apiReq) {
	id, err := pathID(r, "listing_id")
	if err != nil {
		fail(w, err)
		return
	}
	includes, err := queryList(r, "includes", listingIncludes...)
	if err != nil {
		fail(w, err)
		return
	}
	l := s.listing[id]
	if l == nil || l.deleted {
		writeError(w, http.StatusNotFound, fmt.Sprintf("Listing with listing_id %d not found", id))
		return
	}
	writeJSON(w, http.StatusOK, s.wireListingLocked(l, true, slices.Contains(includes, "Inventory"), a.userID == l.userID))
}

func (s *Sim) getListingsByListingIDs(w http.ResponseWriter, r *http.Request, a apiReq) {
	raw, err := queryList(r, "listing_ids")
	if err != nil || len(raw) == 0 || len(raw) > maxLimit {
		fail(w, &paramError{"listing_ids", r.URL.Query().Get("listing_ids"), "1 to 100 listing ids"})
		return
	}
	includes, err := queryList(r, "includes", listingIncludes...)
	if err != nil {
		fail(w, err)
		return
	}
	out := wire.Page[wire.Listing]{Results: []wire.Listing{}}
	for _, v := range raw {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil || id < 1 {
			fail(w, &paramError{"listing_ids", v, "an integer >= 1"})
			return
		}
		if l := s.listing[id]; l != nil && !l.deleted {
			out.Results = append(out.Results, s.wireListingLocked(l, true, slices.Contains(includes, "Inventory"), a.userID == l.userID))
		}
	}
	out.Count = len(out.Results)
	writeJSON(w, http.StatusOK, out)
}

func (s *Sim) getListingInventory(w http.ResponseWriter, r *http.Request, a apiReq) {
	l := s.ownListingLocked(w, r, a)
	if l == nil {
		return
	}
	if _, err := queryBool(r, "show_deleted"); err != nil {
		fail(w, err)
		return
	}
	inc, err := queryEnum(r, "includes", "", "Listing")
	if err != nil {
		fail(w, err)
		return
	}
	out := wireInventoryWithListing{Inventory: s.wireInventoryLocked(l)}
	if inc == "Listing" {
		wl := s.wireListingLocked(l, false, false, true)
		out.Listing = &wl
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Sim) getListingProduct(w http.ResponseWriter, r *http.Request, a apiReq) {
	l := s.ownListingLocked(w, r, a)
	if l == nil {
		return
	}
	pid, err := pathID(r, "product_id")
	if err != nil {
		fail(w, err)
		return
	}
	inv := s.wireInventoryLocked(l)
	for _, p := range inv.Products {
		if p.ProductID == pid {
			writeJSON(w, http.StatusOK, p)
			return
		}
	}
	writeError(w, http.StatusNotFound, fmt.Sprintf("Product with product_id %d not found", pid))
}

// readOnlyFields are in getListingInventory's answer but must be removed
// before writing it back (Etsy's listings tutorial).
var readOnlyFields = []string{"product_id", "offering_id", "is_deleted", "scale_name", "value_pairs"}

func (s *Sim) updateListingInventory(w http.ResponseWriter, r *http.Request, a apiReq) {
	l := s.ownListingLocked(w, r, a)
	if l == nil {
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		writeError(w, http.StatusBadRequest, "Content-Type must be application/json")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	in, err := parseInventoryBody(r, s.shops[l.shopID].currency)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := s.writeInventoryLocked(l, in, s.clock.now()); err != nil {
		fail(w, err)
		return
	}
	if s.apiFaults.DropInventoryWrites > 0 {
		// Applied, then the answer is lost: close the connection
		// without writing a response.
		s.apiFaults.DropInventoryWrites--
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	}
	writeJSON(w, http.StatusOK, s.wireInventoryLocked(l))
}

func parseInventoryBody(r *http.Request, currency string) (inventoryInput, error) {
	var body struct {
		Products []struct {
			SKU            *string          `json:"sku"`
			PropertyValues []map[string]any `json:"property_values"`
			Offerings      []map[string]any `json:"offerings"`
			Extra          map[string]any   `json:"-"`
		} `json:"products"`
		PriceOnProperty    []int64 `json:"price_on_property"`
		QuantityOnProperty []int64 `json:"quantity_on_property"`
		SKUOnProperty      []int64 `json:"sku_on_property"`
	}
	var raw bytes.Buffer
	if _, err := raw.ReadFrom(r.Body); err != nil {
		return inventoryInput{}, invalidf("Request body too large or unreadable")
	}
	dec := json.NewDecoder(bytes.NewReader(raw.Bytes()))
	dec.UseNumber()
	if err := dec.Decode(&body); err != nil {
		return inventoryInput{}, invalidf("Invalid JSON body: %v", err)
	}
	// A second pass as generic maps finds read-only fields at any level.
	var generic map[string]any
	_ = json.Unmarshal(raw.Bytes(), &generic)
	if field := findReadOnly(generic); field != "" {
		return inventoryInput{}, invalidf("Unexpected parameter %s: remove read-only fields before updating inventory", field)
	}
	if body.Products == nil {
		return inventoryInput{}, invalidf("Missing required parameter: products")
	}
	in := inventoryInput{
		priceOnProperty: body.PriceOnProperty, quantityOnProperty: body.QuantityOnProperty,
		skuOnProperty: body.SKUOnProperty,
	}
	for _, p := range body.Products {
		pi := productInput{offerings: len(p.Offerings)}
		if p.SKU != nil {
			pi.sku = strings.TrimSpace(*p.SKU)
		}
		if p.Offerings == nil {
			return inventoryInput{}, invalidf("Missing required parameter: offerings")
		}
		if len(p.Offerings) > 0 {
			o := p.Offerings[0]
			price, ok := o["price"].(json.Number)
			if !ok {
				return inventoryInput{}, invalidf("Missing or invalid offering price")
			}
			minor, err := decimalToMinor(string(price), currency)
			if err != nil {
				return inventoryInput{}, err
			}
			qn, ok := o["quantity"].(json.Number)
			if !ok {
				return inventoryInput{}, invalidf("Missing or invalid offering quantity")
			}
			q, err := qn.Int64()
			if err != nil {
				return inventoryInput{}, invalidf("Offering quantity must be an integer")
			}
			en, ok := o["is_enabled"].(bool)
			if !ok {
				return inventoryInput{}, invalidf("Missing or invalid offering is_enabled")
			}
			pi.price, pi.quantity, pi.enabled = minor, int(q), en
		}
		for _, pv := range p.PropertyValues {
			v, err := parsePropertyValue(pv)
			if err != nil {
				return inventoryInput{}, err
			}
			pi.values = append(pi.values, v)
		}
		in.products = append(in.products, pi)
	}
	return in, nil
}

func findReadOnly(v any) string {
	switch x := v.(type) {
	case map[string]any:
		for k, child := range x {
			if slices.Contains(readOnlyFields, k) {
				return k
			}
			if f := findReadOnly(child); f != "" {
				return f
			}
		}
	case []any:
		for _, child := range x {
			if f := findReadOnly(child); f != "" {
				return f
			}
		}
	}
	return ""
}

func parsePropertyValue(m map[string]any) (propValue, error) {
	var v propValue
	idNum, ok := m["property_id"].(json.Number)
	if !ok {
		return v, invalidf("Missing required parameter: property_id")
	}
	id, err := idNum.Int64()
	if err != nil || id < 1 {
		return v, invalidf("Invalid property_id")
	}
	v.propertyID = id
	if name, ok := m["property_name"].(string); ok {
		v.propertyName = name
	}
	if sc, ok := m["scale_id"].(json.Number); ok {
		n, err := sc.Int64()
		if err != nil {
			return v, invalidf("Invalid scale_id")
		}
		v.scaleID = &n
	}
	ids, ok := m["value_ids"].([]any)
	if !ok {
		return v, invalidf("Missing required parameter: value_ids")
	}
	for _, x := range ids {
		n, ok := x.(json.Number)
		if !ok {
			return v, invalidf("Invalid value_ids")
		}
		id, err := n.Int64()
		if err != nil || id < 1 {
			return v, invalidf("Invalid value_ids")
		}
		v.valueIDs = append(v.valueIDs, id)
	}
	vals, ok := m["values"].([]any)
	if !ok {
		return v, invalidf("Missing required parameter: values")
	}
	for _, x := range vals {
		str, ok := x.(string)
		if !ok {
			return v, invalidf("Invalid values")
		}
		v.values = append(v.values, str)
	}
	return v, nil
}

// decimalToMinor turns the float price Etsy's write takes into minor
// units, rounding half up as a float-sending client's 19.990000000000002
// needs.
func decimalToMinor(text, currency string) (int64, error) {
	rat, ok := new(big.Rat).SetString(text)
	if !ok || rat.Sign() < 0 {
		return 0, invalidf("Invalid price %s", text)
	}
	scale := new(big.Rat).SetInt64(1)
	for range etsy.MinorUnitExponent(currency) {
		scale.Mul(scale, big.NewRat(10, 1))
	}
	rat.Mul(rat, scale)
	rat.Add(rat, big.NewRat(1, 2))
	q := new(big.Int).Quo(rat.Num(), rat.Denom())
	if !q.IsInt64() {
		return 0, invalidf("Invalid price %s", text)
	}
	return q.Int64(), nil
}

type receiptQuery struct {
	minCreated, maxCreated, minModified, maxModified int64
	limit, offset                                    int
	sortOn, order                                    string
	paid, shipped, delivered, canceled               *bool
}

func parseReceiptQuery(r *http.Request) (receiptQuery, error) {
	var q receiptQuery
	var err error
	for _, p := range []struct {
		name string
		dst  *int64
	}{{"min_created", &q.minCreated}, {"max_created", &q.maxCreated}, {"min_last_modified", &q.minModified}, {"max_last_modified", &q.maxModified}} {
		if *p.dst, err = queryInt(r, p.name, 0, epochMin, 1<<62); err != nil {
			return q, err
		}
	}
	if q.limit, q.offset, err = paging(r); err != nil {
		return q, err
	}
	if q.sortOn, err = queryEnum(r, "sort_on", "created", "created", "updated", "receipt_id"); err != nil {
		return q, err
	}
	if q.order, err = queryEnum(r, "sort_order", "desc", "asc", "ascending", "desc", "descending", "up", "down"); err != nil {
		return q, err
	}
	for _, p := range []struct {
		name string
		dst  **bool
	}{{"was_paid", &q.paid}, {"was_shipped", &q.shipped}, {"was_delivered", &q.delivered}, {"was_canceled", &q.canceled}} {
		if *p.dst, err = queryBool(r, p.name); err != nil {
			return q, err
		}
	}
	if _, err := queryBool(r, "legacy"); err != nil {
		return q, err
	}
	return q, nil
}

func (q receiptQuery) match(rc *receipt) bool {
	c, m := rc.created.Unix(), rc.updated.Unix()
	switch {
	case q.minCreated != 0 && c < q.minCreated,
		q.maxCreated != 0 && c > q.maxCreated,
		q.minModified != 0 && m < q.minModified,
		q.maxModified != 0 && m > q.maxModified,
		q.paid != nil && *q.paid != rc.paid,
		q.shipped != nil && *q.shipped != rc.shipped,
		q.delivered != nil && *q.delivered != rc.delivered,
		q.canceled != nil && *q.canceled != rc.canceled:
		return false
	}
	return true
}

func (s *Sim) getShopReceipts(w http.ResponseWriter, r *http.Request, a apiReq) {
	sh := s.ownShopLocked(w, r, a)
	if sh == nil {
		return
	}
	q, err := parseReceiptQuery(r)
	if err != nil {
		fail(w, err)
		return
	}
	var rs []*receipt
	for _, id := range sh.receiptIDs {
		if rc := s.receipt[id]; q.match(rc) {
			rs = append(rs, rc)
		}
	}
	// Receipts are kept in creation order, which is already (created,
	// receipt_id) order: only the other sorts need sorting.
	switch {
	case q.sortOn != "updated" && descending(q.order):
		slices.Reverse(rs)
	case q.sortOn != "updated":
	default:
		s.sortReceipts(rs, q)
	}
	var b bytes.Buffer
	b.WriteString(`{"count":` + strconv.Itoa(len(rs)) + `,"results":[`)
	for i, rc := range window(rs, q.offset, q.limit) {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(s.receiptJSONLocked(rc))
	}
	b.WriteString("]}")
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b.Bytes())
}

func (s *Sim) receiptJSONLocked(rc *receipt) []byte {
	if rc.cached == nil {
		rc.cached, _ = json.Marshal(s.wireReceiptLocked(rc))
	}
	return rc.cached
}

func (s *Sim) sortReceipts(rs []*receipt, q receiptQuery) {
	slices.SortStableFunc(rs, func(x, y *receipt) int {
		var c int
		switch q.sortOn {
		case "updated":
			c = cmp.Compare(x.updated.Unix(), y.updated.Unix())
		case "receipt_id":
		default:
			c = cmp.Compare(x.created.Unix(), y.created.Unix())
		}
		if c == 0 {
			c = cmp.Compare(x.id, y.id)
		}
		if descending(q.order) {
			return -c
		}
		return c
	})
}

func (s *Sim) shopReceiptLocked(w http.ResponseWriter, r *http.Request, a apiReq) *receipt {
	sh := s.ownShopLocked(w, r, a)
	if sh == nil {
		return nil
	}
	id, err := pathID(r, "receipt_id")
	if err != nil {
		fail(w, err)
		return nil
	}
	rc := s.receipt[id]
	if rc == nil || rc.shopID != sh.id {
		writeError(w, http.StatusNotFound, fmt.Sprintf("Receipt with receipt_id %d not found", id))
		return nil
	}
	return rc
}

func (s *Sim) getShopReceipt(w http.ResponseWriter, r *http.Request, a apiReq) {
	if rc := s.shopReceiptLocked(w, r, a); rc != nil {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(s.receiptJSONLocked(rc))
	}
}

func (s *Sim) getReceiptTransactions(w http.ResponseWriter, r *http.Request, a apiReq) {
	rc := s.shopReceiptLocked(w, r, a)
	if rc == nil {
		return
	}
	out := wire.Page[wire.Transaction]{Count: len(rc.txs), Results: []wire.Transaction{}}
	for _, tx := range rc.txs {
		out.Results = append(out.Results, wireTx(rc, tx))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Sim) getShopTransactions(w http.ResponseWriter, r *http.Request, a apiReq) {
	sh := s.ownShopLocked(w, r, a)
	if sh == nil {
		return
	}
	limit, offset, err := paging(r)
	if err != nil {
		fail(w, err)
		return
	}
	type pair struct {
		r *receipt
		t *transaction
	}
	var all []pair
	for i := len(sh.receiptIDs) - 1; i >= 0; i-- {
		rc := s.receipt[sh.receiptIDs[i]]
		for _, tx := range rc.txs {
			all = append(all, pair{rc, tx})
		}
	}
	out := wire.Page[wire.Transaction]{Count: len(all), Results: []wire.Transaction{}}
	for _, p := range window(all, offset, limit) {
		out.Results = append(out.Results, wireTx(p.r, p.t))
	}
	writeJSON(w, http.StatusOK, out)
}
