package projections

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/shopledger/shopledger/events"
)

// Product is an Etsy listing with its variants.
type Product struct {
	ShopID    int64        `json:"shop_id"`
	ListingID int64        `json:"listing_id"`
	Title     string       `json:"title"`
	State     string       `json:"state"`
	URL       string       `json:"url,omitempty"`
	Price     events.Money `json:"price"`
	// LowStockThreshold is the listing-wide line when one was set.
	LowStockThreshold *int64     `json:"low_stock_threshold,omitempty"`
	Deleted           bool       `json:"deleted"`
	EtsyUpdatedAt     *time.Time `json:"etsy_updated_at,omitempty"`
	CreatedAt         time.Time  `json:"created_at"`
	UpdatedAt         time.Time  `json:"updated_at"`
	LastPosition      int64      `json:"last_position"`

	// Filled by readers.
	Quantity int64     `json:"quantity"` // sum over active variants
	Variants []Variant `json:"variants"`
}

// Variant is one purchasable variant of a listing and its stock.
type Variant struct {
	ShopID     int64        `json:"shop_id"`
	ListingID  int64        `json:"listing_id"`
	Key        string       `json:"variant_key"`
	SKU        string       `json:"sku,omitempty"`
	ProductID  int64        `json:"product_id,omitempty"`
	Properties string       `json:"properties,omitempty"`
	Price      events.Money `json:"price"`
	Enabled    bool         `json:"enabled"`
	// Active is false when the listing's latest description no longer has
	// the variant, or the variant was only seen in a stock movement.
	Active bool `json:"active"`
	// Quantity is the ledger's balance: the sum of the variant's movements.
	Quantity int64 `json:"quantity"`
	// OwnThreshold is the variant's own low-stock line when one was set.
	OwnThreshold     *int64     `json:"-"`
	ObservedQuantity *int64     `json:"observed_quantity,omitempty"`
	ObservedAt       *time.Time `json:"observed_at,omitempty"`
	DriftExpected    *int64     `json:"drift_expected,omitempty"`
	DriftObserved    *int64     `json:"drift_observed,omitempty"`
	DriftAt          *time.Time `json:"drift_at,omitempty"`
	LastMovementAt   *time.Time `json:"last_movement_at,omitempty"`
	UpdatedAt        time.Time  `json:"updated_at"`
	LastPosition     int64      `json:"last_position"`

	// Filled by readers: the line that applies (variant, else listing,
	// else shop default, else DefaultLowStockThreshold) and where it
	// comes from.
	LowStockThreshold int64  `json:"low_stock_threshold"`
	ThresholdSource   string `json:"threshold_source"` // variant, listing, shop, default
	LowStock          bool   `json:"low_stock"`
}

var productsTable = table{
	name: "products",
	columns: []string{"shop_id", "listing_id", "title", "state", "url", "price_amount", "price_currency",
		"low_stock_threshold", "deleted", "etsy_updated_at", "created_at", "updated_at", "last_position"},
	key: []string{"listing_id"},
}

func (p *Product) fields() []any {
	return []any{&p.ShopID, &p.ListingID, &p.Title, &p.State, &p.URL, &p.Price.Amount, &p.Price.Currency,
		&p.LowStockThreshold, &p.Deleted, &p.EtsyUpdatedAt, &p.CreatedAt, &p.UpdatedAt, &p.LastPosition}
}

var variantsTable = table{
	name: "product_variants",
	columns: []string{"shop_id", "listing_id", "variant_key", "sku", "product_id", "properties",
		"price_amount", "price_currency", "enabled", "active", "quantity", "low_stock_threshold",
		"observed_quantity", "observed_at", "drift_expected", "drift_observed", "drift_at",
		"last_movement_at", "updated_at", "last_position"},
	key: []string{"listing_id", "variant_key"},
}

func (v *Variant) fields() []any {
	return []any{&v.ShopID, &v.ListingID, &v.Key, &v.SKU, &v.ProductID, &v.Properties,
		&v.Price.Amount, &v.Price.Currency, &v.Enabled, &v.Active, &v.Quantity, &v.OwnThreshold,
		&v.ObservedQuantity, &v.ObservedAt, &v.DriftExpected, &v.DriftObserved, &v.DriftAt,
		&v.LastMovementAt, &v.UpdatedAt, &v.LastPosition}
}

// listing is the unit the products projection loads and folds: a listing
// and every variant it ever had.
type listing struct {
	product  *Product // nil until a listing event arrives
	variants map[string]*Variant

	dirtyProduct  bool
	dirtyVariants map[string]bool
}

func newListing() *listing {
	return &listing{variants: map[string]*Variant{}, dirtyVariants: map[string]bool{}}
}

func (l *listing) touchProduct(rec events.Record, shopID int64, listingID int64) *Product {
	if l.product == nil {
		if shopID == 0 {
			shopID = rec.ShopID
		}
		l.product = &Product{ShopID: shopID, ListingID: listingID, CreatedAt: rec.OccurredAt}
	}
	l.product.UpdatedAt = rec.OccurredAt
	l.product.LastPosition = rec.Position
	l.dirtyProduct = true
	return l.product
}

func (l *listing) touchVariant(rec events.Record, listingID int64, key string) *Variant {
	v := l.variants[key]
	if v == nil {
		shopID := rec.ShopID
		if l.product != nil {
			shopID = l.product.ShopID
		}
		v = &Variant{ShopID: shopID, ListingID: listingID, Key: key, Enabled: true}
		l.variants[key] = v
	}
	v.UpdatedAt = rec.OccurredAt
	v.LastPosition = rec.Position
	l.dirtyVariants[key] = true
	return v
}

// listingOf returns the listing an event of the products projection is
// about.
func listingOf(rec events.Record) (int64, bool) {
	switch d := rec.Data.(type) {
	case events.ListingImported:
		return d.ListingID, true
	case events.ListingUpdated:
		return d.ListingID, true
	case events.ListingStateChanged:
		return d.ListingID, true
	case events.ListingDeleted:
		return d.ListingID, true
	case events.StockSold:
		return d.ListingID, true
	case events.StockAdjusted:
		return d.ListingID, true
	case events.StockObserved:
		return d.ListingID, true
	case events.StockDriftDetected:
		return d.ListingID, true
	case events.StockThresholdSet:
		if d.Scope == events.ScopeVariant || d.Scope == events.ScopeListing {
			return d.ListingID, true
		}
	case events.StockThresholdCleared:
		if d.Scope == events.ScopeVariant || d.Scope == events.ScopeListing {
			return d.ListingID, true
		}
	}
	return 0, false
}

type listingDescription struct {
	listingID, shopID int64
	title, state, url string
	price             events.Money
	variants          []events.Variant
	etsyUpdatedAt     time.Time
	imported          bool
}

// foldListing applies rec to l, marking what changed.
func foldListing(l *listing, rec events.Record) {
	at := rec.OccurredAt
	switch d := rec.Data.(type) {
	case events.ListingImported:
		describeListing(l, rec, listingDescription{d.ListingID, d.ShopID, d.Title, d.State, d.URL, d.Price, d.Variants, d.EtsyUpdatedAt, true})
	case events.ListingUpdated:
		describeListing(l, rec, listingDescription{d.ListingID, d.ShopID, d.Title, d.State, d.URL, d.Price, d.Variants, d.EtsyUpdatedAt, false})
	case events.ListingStateChanged:
		l.touchProduct(rec, 0, d.ListingID).State = d.To
	case events.ListingDeleted:
		l.touchProduct(rec, 0, d.ListingID).Deleted = true
	case events.StockSold:
		v := l.touchVariant(rec, d.ListingID, d.VariantKey)
		v.Quantity -= d.Quantity
		v.LastMovementAt = timePtr(at)
	case events.StockAdjusted:
		v := l.touchVariant(rec, d.ListingID, d.VariantKey)
		v.Quantity += d.Delta
		v.LastMovementAt = timePtr(at)
	case events.StockObserved:
		v := l.touchVariant(rec, d.ListingID, d.VariantKey)
		v.ObservedQuantity = int64Ptr(d.Quantity)
		v.ObservedAt = timePtr(d.ObservedAt.UTC())
	case events.StockDriftDetected:
		v := l.touchVariant(rec, d.ListingID, d.VariantKey)
		v.DriftExpected, v.DriftObserved = int64Ptr(d.Expected), int64Ptr(d.Observed)
		v.DriftAt = timePtr(at)
	case events.StockThresholdSet:
		switch d.Scope {
		case events.ScopeVariant:
			l.touchVariant(rec, d.ListingID, d.VariantKey).OwnThreshold = int64Ptr(d.Threshold)
		case events.ScopeListing:
			l.touchProduct(rec, d.ShopID, d.ListingID).LowStockThreshold = int64Ptr(d.Threshold)
		}
	case events.StockThresholdCleared:
		switch d.Scope {
		case events.ScopeVariant:
			l.touchVariant(rec, d.ListingID, d.VariantKey).OwnThreshold = nil
		case events.ScopeListing:
			l.touchProduct(rec, d.ShopID, d.ListingID).LowStockThreshold = nil
		}
	}
}

// describeListing applies a listing's full description. A description
// older than the one applied (Etsy's updated time) is ignored, so a stale
// poll arriving after a webhook cannot roll the listing back.
func describeListing(l *listing, rec events.Record, d listingDescription) {
	if p := l.product; p != nil && p.EtsyUpdatedAt != nil && d.etsyUpdatedAt.Before(*p.EtsyUpdatedAt) {
		return
	}
	p := l.touchProduct(rec, d.shopID, d.listingID)
	p.ShopID = d.shopID
	p.Title, p.State, p.URL, p.Price = d.title, d.state, d.url, d.price
	p.EtsyUpdatedAt = timePtr(d.etsyUpdatedAt.UTC())
	if d.imported {
		p.Deleted = false
	}
	present := make(map[string]bool, len(d.variants))
	for _, dv := range d.variants {
		present[dv.Key] = true
		v := l.touchVariant(rec, d.listingID, dv.Key)
		v.ShopID = d.shopID
		v.SKU, v.ProductID, v.Properties, v.Price = dv.SKU, dv.ProductID, dv.Properties, dv.Price
		v.Enabled, v.Active = dv.Enabled, true
	}
	for key, v := range l.variants {
		if !present[key] && v.Active {
			l.touchVariant(rec, d.listingID, key).Active = false
		}
	}
}

// Products maintains products and product_variants.
type Products struct {
	cache txCache[int64, *listing]
}

// NewProducts returns the products projection.
func NewProducts() *Products { return &Products{} }

// Name implements Projection.
func (*Products) Name() string { return "products" }

// Tables implements Rebuildable.
func (*Products) Tables() []string { return []string{productsTable.name, variantsTable.name} }

// Handles implements Projection.
func (*Products) Handles(typ string) bool {
	switch typ {
	case events.TypeListingImported, events.TypeListingUpdated, events.TypeListingStateChanged,
		events.TypeListingDeleted, events.TypeStockSold, events.TypeStockAdjusted, events.TypeStockObserved,
		events.TypeStockDriftDetected, events.TypeStockThresholdSet, events.TypeStockThresholdCleared:
		return true
	}
	return false
}

// Apply implements Projection.
func (p *Products) Apply(ctx context.Context, tx *sql.Tx, rec events.Record) error {
	return applyPlan(ctx, p, tx, rec)
}

func (p *Products) forget() { p.cache.reset() }

func (p *Products) adopt(tx *sql.Tx) { p.cache.adopt(tx) }

func (p *Products) plan(ctx context.Context, tx *sql.Tx, rec events.Record) ([]stmt, error) {
	id, ok := listingOf(rec)
	if !ok {
		return nil, nil
	}
	l, ok := p.cache.get(tx, id)
	if !ok {
		var err error
		if l, err = loadListing(ctx, tx, id); err != nil {
			p.cache.reset()
			return nil, err
		}
	}
	foldListing(l, rec)
	var out []stmt
	if l.dirtyProduct {
		out = append(out, stmt{sql: productsTable.upsertSQL(), args: valuesOf(l.product.fields())})
		l.dirtyProduct = false
	}
	keys := make([]string, 0, len(l.dirtyVariants))
	for key := range l.dirtyVariants {
		keys = append(keys, key)
	}
	slices.Sort(keys)
	for _, key := range keys {
		out = append(out, stmt{sql: variantsTable.upsertSQL(), args: valuesOf(l.variants[key].fields())})
		delete(l.dirtyVariants, key)
	}
	p.cache.put(tx, id, l)
	return out, nil
}

func loadListing(ctx context.Context, tx *sql.Tx, id int64) (*listing, error) {
	l := newListing()
	p := &Product{}
	err := tx.QueryRowContext(ctx, `SELECT `+productsTable.columnList("")+` FROM products WHERE listing_id = $1`, id).Scan(p.fields()...)
	switch {
	case err == nil:
		l.product = p
	case !errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("load listing %d: %w", id, err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+variantsTable.columnList("")+` FROM product_variants WHERE listing_id = $1`, id)
	if err != nil {
		return nil, fmt.Errorf("load variants of %d: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		v := &Variant{}
		if err := rows.Scan(v.fields()...); err != nil {
			return nil, fmt.Errorf("load variants of %d: %w", id, err)
		}
		l.variants[v.Key] = v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load variants of %d: %w", id, err)
	}
	return l, nil
}

func (p *Products) prefetch(ctx context.Context, tx *sql.Tx, recs []events.Record) error {
	var ids []int64
	seen := map[int64]bool{}
	for _, rec := range recs {
		id, ok := listingOf(rec)
		if !ok || seen[id] {
			continue
		}
		seen[id] = true
		if _, cached := p.cache.get(tx, id); !cached {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	loaded := make(map[int64]*listing, len(ids))
	for _, id := range ids {
		loaded[id] = newListing()
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+productsTable.columnList("")+` FROM products WHERE listing_id = ANY($1)`, ids)
	if err != nil {
		return fmt.Errorf("prefetch listings: %w", err)
	}
	for rows.Next() {
		pr := &Product{}
		if err := rows.Scan(pr.fields()...); err != nil {
			rows.Close()
			return fmt.Errorf("prefetch listings: %w", err)
		}
		loaded[pr.ListingID].product = pr
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("prefetch listings: %w", err)
	}
	rows, err = tx.QueryContext(ctx, `SELECT `+variantsTable.columnList("")+` FROM product_variants WHERE listing_id = ANY($1)`, ids)
	if err != nil {
		return fmt.Errorf("prefetch variants: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		v := &Variant{}
		if err := rows.Scan(v.fields()...); err != nil {
			return fmt.Errorf("prefetch variants: %w", err)
		}
		loaded[v.ListingID].variants[v.Key] = v
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("prefetch variants: %w", err)
	}
	for _, id := range ids {
		p.cache.put(tx, id, loaded[id])
	}
	return nil
}

type productsRebuild struct {
	listings map[int64]*listing
}

func (*Products) newRebuild() rebuild { return &productsRebuild{listings: map[int64]*listing{}} }

func (r *productsRebuild) apply(rec events.Record, _ emitFunc) error {
	id, ok := listingOf(rec)
	if !ok {
		return nil
	}
	l := r.listings[id]
	if l == nil {
		l = newListing()
		r.listings[id] = l
	}
	foldListing(l, rec)
	// Everything is emitted at the end; dirty marks matter only live.
	l.dirtyProduct = false
	clear(l.dirtyVariants)
	return nil
}

func (r *productsRebuild) finish(emit emitFunc) error {
	for _, l := range r.listings {
		if l.product != nil {
			if err := emit(productsTable.name, l.product.fields()); err != nil {
				return err
			}
		}
		for _, v := range l.variants {
			if err := emit(variantsTable.name, v.fields()); err != nil {
				return err
			}
		}
	}
	return nil
}

// ProductFilter narrows ListProducts.
type ProductFilter struct {
	Scope Scope
	// ListingIDs keeps only these listings.
	ListingIDs []int64
	// State keeps listings in one Etsy state (active, sold_out, …).
	State string
	// Search keeps listings whose title contains it, case-insensitively.
	Search string
	// LowStockOnly keeps listings with an active variant at or below its
	// low-stock line.
	LowStockOnly   bool
	IncludeDeleted bool
	// After is the last listing id of the previous page.
	After int64
	Limit int
}

// GetProduct returns one listing in scope with its variants.
func (r *Reader) GetProduct(ctx context.Context, scope Scope, listingID int64) (Product, error) {
	ps, err := r.ListProducts(ctx, ProductFilter{Scope: scope, ListingIDs: []int64{listingID}, Limit: 1, IncludeDeleted: true})
	if err != nil {
		return Product{}, fmt.Errorf("get product %d: %w", listingID, err)
	}
	if len(ps) == 0 || ps[0].ListingID != listingID {
		return Product{}, fmt.Errorf("get product %d: %w", listingID, ErrNotFound)
	}
	return ps[0], nil
}

// variantSelect is the variants with the low-stock line that applies.
const variantSelect = `SELECT v.shop_id, v.listing_id, v.variant_key, v.sku, v.product_id, v.properties,
	v.price_amount, v.price_currency, v.enabled, v.active, v.quantity, v.low_stock_threshold,
	v.observed_quantity, v.observed_at, v.drift_expected, v.drift_observed, v.drift_at,
	v.last_movement_at, v.updated_at, v.last_position,
	coalesce(v.low_stock_threshold, p.low_stock_threshold, s.default_low_stock_threshold, 5) AS threshold,
	CASE WHEN v.low_stock_threshold IS NOT NULL THEN 'variant'
	     WHEN p.low_stock_threshold IS NOT NULL THEN 'listing'
	     WHEN s.default_low_stock_threshold IS NOT NULL THEN 'shop'
	     ELSE 'default' END AS threshold_source
FROM product_variants v
LEFT JOIN products p ON p.listing_id = v.listing_id
LEFT JOIN shops s ON s.shop_id = v.shop_id`

// lowStockCond is true for an active variant at or below its line.
const lowStockCond = `v.active AND v.quantity <= coalesce(v.low_stock_threshold, p.low_stock_threshold, s.default_low_stock_threshold, 5)`

func scanVariants(rows *sql.Rows) ([]Variant, error) {
	defer rows.Close()
	var out []Variant
	for rows.Next() {
		var v Variant
		dest := append(v.fields(), &v.LowStockThreshold, &v.ThresholdSource)
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		v.ObservedAt, v.DriftAt, v.LastMovementAt = utcPtr(v.ObservedAt), utcPtr(v.DriftAt), utcPtr(v.LastMovementAt)
		v.UpdatedAt = utc(v.UpdatedAt)
		v.LowStock = v.Active && v.Quantity <= v.LowStockThreshold
		out = append(out, v)
	}
	return out, rows.Err()
}

// ListProducts returns listings in scope ordered by listing id, each with
// all its variants (inactive ones too).
func (r *Reader) ListProducts(ctx context.Context, f ProductFilter) ([]Product, error) {
	if f.Scope.empty() {
		return nil, nil
	}
	var b query
	f.Scope.where(&b, "p.shop_id")
	if len(f.ListingIDs) > 0 {
		b.cond("p.listing_id = ANY($?)", f.ListingIDs)
	}
	if f.State != "" {
		b.cond("p.state = $?", f.State)
	}
	if f.Search != "" {
		b.cond("p.title ILIKE $?", "%"+escapeLike(f.Search)+"%")
	}
	if !f.IncludeDeleted {
		b.cond("NOT p.deleted")
	}
	if f.LowStockOnly {
		b.cond(`EXISTS (SELECT 1 FROM product_variants v LEFT JOIN shops s ON s.shop_id = v.shop_id
			WHERE v.listing_id = p.listing_id AND ` + lowStockCond + `)`)
	}
	b.cond("p.listing_id > $?", f.After)
	sqlText := `SELECT ` + productsTable.columnList("p") + ` FROM products p` + b.whereSQL() +
		` ORDER BY p.listing_id LIMIT ` + b.arg(clampLimit(f.Limit))
	rows, err := r.q.QueryContext(ctx, sqlText, b.args...)
	if err != nil {
		return nil, fmt.Errorf("list products: %w", err)
	}
	var out []Product
	index := map[int64]int{}
	var ids []int64
	for rows.Next() {
		var p Product
		if err := rows.Scan(p.fields()...); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list products: %w", err)
		}
		p.EtsyUpdatedAt = utcPtr(p.EtsyUpdatedAt)
		p.CreatedAt, p.UpdatedAt = utc(p.CreatedAt), utc(p.UpdatedAt)
		p.Variants = []Variant{}
		index[p.ListingID] = len(out)
		ids = append(ids, p.ListingID)
		out = append(out, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list products: %w", err)
	}
	if len(ids) == 0 {
		return out, nil
	}
	vrows, err := r.q.QueryContext(ctx, variantSelect+` WHERE v.listing_id = ANY($1) ORDER BY v.listing_id, v.variant_key`, ids)
	if err != nil {
		return nil, fmt.Errorf("list products: variants: %w", err)
	}
	vs, err := scanVariants(vrows)
	if err != nil {
		return nil, fmt.Errorf("list products: variants: %w", err)
	}
	for _, v := range vs {
		p := &out[index[v.ListingID]]
		p.Variants = append(p.Variants, v)
		if v.Active {
			p.Quantity += v.Quantity
		}
	}
	return out, nil
}

// VariantFilter narrows ListVariants.
type VariantFilter struct {
	Scope     Scope
	ListingID int64
	SKU       string
	// LowStockOnly keeps active variants at or below their line.
	LowStockOnly    bool
	IncludeInactive bool
	// After is the last variant of the previous page.
	After VariantCursor
	Limit int
}

// VariantCursor orders variants by listing id, then key.
type VariantCursor struct {
	ListingID int64
	Key       string
}

// GetVariant returns one variant in scope.
func (r *Reader) GetVariant(ctx context.Context, scope Scope, listingID int64, key string) (Variant, error) {
	if scope.empty() {
		return Variant{}, fmt.Errorf("get variant %d/%s: %w", listingID, key, ErrNotFound)
	}
	var b query
	scope.where(&b, "v.shop_id")
	b.cond("v.listing_id = $?", listingID)
	b.cond("v.variant_key = $?", key)
	rows, err := r.q.QueryContext(ctx, variantSelect+b.whereSQL(), b.args...)
	if err != nil {
		return Variant{}, fmt.Errorf("get variant %d/%s: %w", listingID, key, err)
	}
	vs, err := scanVariants(rows)
	if err != nil {
		return Variant{}, fmt.Errorf("get variant %d/%s: %w", listingID, key, err)
	}
	if len(vs) == 0 {
		return Variant{}, fmt.Errorf("get variant %d/%s: %w", listingID, key, ErrNotFound)
	}
	return vs[0], nil
}

// ListVariants returns variants in scope ordered by listing id and key.
func (r *Reader) ListVariants(ctx context.Context, f VariantFilter) ([]Variant, error) {
	if f.Scope.empty() {
		return nil, nil
	}
	var b query
	f.Scope.where(&b, "v.shop_id")
	if f.ListingID != 0 {
		b.cond("v.listing_id = $?", f.ListingID)
	}
	if f.SKU != "" {
		b.cond("v.sku = $?", f.SKU)
	}
	if !f.IncludeInactive {
		b.cond("v.active")
	}
	if f.LowStockOnly {
		b.cond(lowStockCond)
	}
	b.cond("(v.listing_id, v.variant_key) > ($?, $?)", f.After.ListingID, f.After.Key)
	rows, err := r.q.QueryContext(ctx, variantSelect+b.whereSQL()+
		` ORDER BY v.listing_id, v.variant_key LIMIT `+b.arg(clampLimit(f.Limit)), b.args...)
	if err != nil {
		return nil, fmt.Errorf("list variants: %w", err)
	}
	vs, err := scanVariants(rows)
	if err != nil {
		return nil, fmt.Errorf("list variants: %w", err)
	}
	return vs, nil
}

func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}
