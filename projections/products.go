package projections

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/shopledger/shopledger/domain"
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/projections/engine"
)

// productRow is an Etsy listing with its variants.
type productRow struct {
	ShopID    int64
	ListingID int64
	Title     string
	State     string
	URL       string
	Price     events.Money
	// LowStockThreshold is the listing-wide line when one was set.
	LowStockThreshold *int64
	Deleted           bool
	EtsyUpdatedAt     *time.Time
	CreatedAt         time.Time
	UpdatedAt         time.Time
	LastPosition      int64

	// Filled by readers.
	Quantity int64 // sum over active variants
	Variants []variantRow
}

// variantRow is one purchasable variant of a listing and its stock.
type variantRow struct {
	ShopID     int64
	ListingID  int64
	Key        string
	SKU        string
	ProductID  int64
	Properties string
	Price      events.Money
	Enabled    bool
	// Active is false when the listing's latest description no longer has
	// the variant, or the variant was only seen in a stock movement.
	Active bool
	// Quantity is the ledger's balance: the sum of the variant's movements.
	Quantity int64
	// OwnThreshold is the variant's own low-stock line when one was set.
	OwnThreshold     *int64
	ObservedQuantity *int64
	ObservedAt       *time.Time
	DriftExpected    *int64
	DriftObserved    *int64
	DriftAt          *time.Time
	LastMovementAt   *time.Time
	UpdatedAt        time.Time
	LastPosition     int64

	// Filled by readers: the line that applies (variant, else listing,
	// else shop default, else DefaultLowStockThreshold) and where it
	// comes from.
	LowStockThreshold int64
	ThresholdSource   string // variant, listing, shop, default
	LowStock          bool
}

var productsTable = engine.Table{
	Name: "products",
	Columns: []string{"shop_id", "listing_id", "title", "state", "url", "price_amount", "price_currency",
		"low_stock_threshold", "deleted", "etsy_updated_at", "created_at", "updated_at", "last_position"},
	Key: []string{"listing_id"},
}

func (p *productRow) fields() []any {
	return []any{&p.ShopID, &p.ListingID, &p.Title, &p.State, &p.URL, &p.Price.Amount, &p.Price.Currency,
		&p.LowStockThreshold, &p.Deleted, &p.EtsyUpdatedAt, &p.CreatedAt, &p.UpdatedAt, &p.LastPosition}
}

var variantsTable = engine.Table{
	Name: "product_variants",
	Columns: []string{"shop_id", "listing_id", "variant_key", "sku", "product_id", "properties",
		"price_amount", "price_currency", "enabled", "active", "quantity", "low_stock_threshold",
		"observed_quantity", "observed_at", "drift_expected", "drift_observed", "drift_at",
		"last_movement_at", "updated_at", "last_position"},
	Key: []string{"listing_id", "variant_key"},
}

func init() { engine.RegisterTables(productsTable, variantsTable) }

func (v *variantRow) fields() []any {
	return []any{&v.ShopID, &v.ListingID, &v.Key, &v.SKU, &v.ProductID, &v.Properties,
		&v.Price.Amount, &v.Price.Currency, &v.Enabled, &v.Active, &v.Quantity, &v.OwnThreshold,
		&v.ObservedQuantity, &v.ObservedAt, &v.DriftExpected, &v.DriftObserved, &v.DriftAt,
		&v.LastMovementAt, &v.UpdatedAt, &v.LastPosition}
}

// listing is the unit the products projection loads and folds: a listing
// and every variant it ever had.
type listing struct {
	product  *productRow // nil until a listing event arrives
	variants map[string]*variantRow

	dirtyProduct  bool
	dirtyVariants map[string]bool
}

func newListing() *listing {
	return &listing{variants: map[string]*variantRow{}, dirtyVariants: map[string]bool{}}
}

func (l *listing) touchProduct(rec events.Record, shopID int64, listingID int64) *productRow {
	if l.product == nil {
		if shopID == 0 {
			shopID = rec.ShopID
		}
		l.product = &productRow{ShopID: shopID, ListingID: listingID, CreatedAt: rec.OccurredAt}
	}
	l.product.UpdatedAt = rec.OccurredAt
	l.product.LastPosition = rec.Position
	l.dirtyProduct = true
	return l.product
}

func (l *listing) touchVariant(rec events.Record, listingID int64, key string) *variantRow {
	v := l.variants[key]
	if v == nil {
		shopID := rec.ShopID
		if l.product != nil {
			shopID = l.product.ShopID
		}
		v = &variantRow{ShopID: shopID, ListingID: listingID, Key: key, Enabled: true}
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
	case events.StockEditPushed:
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
	case events.StockEditPushed:
		// Etsy's answer to our own write is an observation of every
		// variant of the listing: without it the page would show the
		// write as drift until the next reconciliation looked.
		for _, key := range slices.Sorted(maps.Keys(d.Quantities)) {
			if _, ok := l.variants[key]; !ok {
				continue
			}
			v := l.touchVariant(rec, d.ListingID, key)
			v.ObservedQuantity = int64Ptr(d.Quantities[key])
			v.ObservedAt = timePtr(at.UTC())
		}
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
	cache engine.TxCache[int64, *listing]
}

// NewProducts returns the products projection.
func NewProducts() *Products { return &Products{} }

// Name implements engine.Projection.
func (*Products) Name() string { return "products" }

// Tables implements engine.Rebuildable.
func (*Products) Tables() []string { return []string{productsTable.Name, variantsTable.Name} }

// Handles implements engine.Projection.
func (*Products) Handles(typ string) bool {
	switch typ {
	case events.TypeListingImported, events.TypeListingUpdated, events.TypeListingStateChanged,
		events.TypeListingDeleted, events.TypeStockSold, events.TypeStockAdjusted, events.TypeStockObserved,
		events.TypeStockEditPushed, events.TypeStockDriftDetected, events.TypeStockThresholdSet, events.TypeStockThresholdCleared:
		return true
	}
	return false
}

// Apply implements engine.Projection.
func (p *Products) Apply(ctx context.Context, tx *sql.Tx, rec events.Record) error {
	return engine.ApplyPlan(ctx, p, tx, rec)
}

// Forget implements engine.Planner.
func (p *Products) Forget() { p.cache.Reset() }

// Adopt implements engine.Planner.
func (p *Products) Adopt(tx *sql.Tx) { p.cache.Adopt(tx) }

// Plan implements engine.Planner.
func (p *Products) Plan(ctx context.Context, tx *sql.Tx, rec events.Record) ([]engine.Stmt, error) {
	id, ok := listingOf(rec)
	if !ok {
		return nil, nil
	}
	l, ok := p.cache.Get(tx, id)
	if !ok {
		var err error
		if l, err = loadListing(ctx, tx, id); err != nil {
			p.cache.Reset()
			return nil, err
		}
	}
	foldListing(l, rec)
	var out []engine.Stmt
	if l.dirtyProduct {
		out = append(out, productsTable.Upsert(l.product.fields()))
		l.dirtyProduct = false
	}
	keys := make([]string, 0, len(l.dirtyVariants))
	for key := range l.dirtyVariants {
		keys = append(keys, key)
	}
	slices.Sort(keys)
	for _, key := range keys {
		out = append(out, variantsTable.Upsert(l.variants[key].fields()))
		delete(l.dirtyVariants, key)
	}
	p.cache.Put(tx, id, l)
	return out, nil
}

func loadListing(ctx context.Context, tx *sql.Tx, id int64) (*listing, error) {
	l := newListing()
	p := &productRow{}
	err := tx.QueryRowContext(ctx, `SELECT `+productsTable.ColumnList("")+` FROM products WHERE listing_id = $1`, id).Scan(p.fields()...)
	switch {
	case err == nil:
		l.product = p
	case !errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("load listing %d: %w", id, err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+variantsTable.ColumnList("")+` FROM product_variants WHERE listing_id = $1`, id)
	if err != nil {
		return nil, fmt.Errorf("load variants of %d: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		v := &variantRow{}
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

// Prefetch implements engine.Prefetcher.
func (p *Products) Prefetch(ctx context.Context, tx *sql.Tx, recs []events.Record) error {
	var ids []int64
	seen := map[int64]bool{}
	for _, rec := range recs {
		id, ok := listingOf(rec)
		if !ok || seen[id] {
			continue
		}
		seen[id] = true
		if _, cached := p.cache.Get(tx, id); !cached {
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
	rows, err := tx.QueryContext(ctx, `SELECT `+productsTable.ColumnList("")+` FROM products WHERE listing_id = ANY($1)`, ids)
	if err != nil {
		return fmt.Errorf("prefetch listings: %w", err)
	}
	for rows.Next() {
		pr := &productRow{}
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
	rows, err = tx.QueryContext(ctx, `SELECT `+variantsTable.ColumnList("")+` FROM product_variants WHERE listing_id = ANY($1)`, ids)
	if err != nil {
		return fmt.Errorf("prefetch variants: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		v := &variantRow{}
		if err := rows.Scan(v.fields()...); err != nil {
			return fmt.Errorf("prefetch variants: %w", err)
		}
		loaded[v.ListingID].variants[v.Key] = v
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("prefetch variants: %w", err)
	}
	for _, id := range ids {
		p.cache.Put(tx, id, loaded[id])
	}
	return nil
}

type productsRebuild struct {
	listings map[int64]*listing
}

// NewFold implements engine.Rebuildable.
func (*Products) NewFold() engine.Fold { return &productsRebuild{listings: map[int64]*listing{}} }

func (r *productsRebuild) Apply(rec events.Record, _ engine.EmitFunc) error {
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

func (r *productsRebuild) Finish(emit engine.EmitFunc) error {
	for _, l := range r.listings {
		if l.product != nil {
			if err := emit(productsTable.Name, l.product.fields()); err != nil {
				return err
			}
		}
		for _, v := range l.variants {
			if err := emit(variantsTable.Name, v.fields()); err != nil {
				return err
			}
		}
	}
	return nil
}

// Readers.

// Product is a listing with its stock summed over its active variants.
type Product struct {
	ListingID int64        `json:"listing_id"`
	ShopID    int64        `json:"shop_id"`
	Title     string       `json:"title"`
	State     string       `json:"state"`
	URL       string       `json:"url"`
	Price     events.Money `json:"price"`
	Quantity  int64        `json:"quantity"`
	// VariantCount and LowStockVariants count active variants only.
	VariantCount     int64 `json:"variant_count"`
	LowStockVariants int64 `json:"low_stock_variants"`
	// LowStockThreshold is the listing-wide line, null when unset.
	LowStockThreshold *int64    `json:"low_stock_threshold"`
	Deleted           bool      `json:"deleted"`
	UpdatedAt         time.Time `json:"updated_at"`
}

// Variant is one purchasable variant with its ledger balance.
type Variant struct {
	VariantKey string       `json:"variant_key"`
	SKU        string       `json:"sku"`
	Properties string       `json:"properties"`
	Price      events.Money `json:"price"`
	Enabled    bool         `json:"enabled"`
	Active     bool         `json:"active"`
	Quantity   int64        `json:"quantity"`
	// LowStockThreshold is the line in force and ThresholdSource where it
	// comes from: variant, listing, shop or default (domain.Lines).
	LowStockThreshold int64      `json:"low_stock_threshold"`
	ThresholdSource   string     `json:"threshold_source"`
	LowStock          bool       `json:"low_stock"`
	ObservedQuantity  *int64     `json:"observed_quantity"`
	ObservedAt        *time.Time `json:"observed_at"`
	LastMovementAt    *time.Time `json:"last_movement_at"`
}

// ProductDetail is a product with all its variants, inactive ones too.
type ProductDetail struct {
	Product
	Variants []Variant `json:"variants"`
}

// ProductFilter selects products among Shops.
type ProductFilter struct {
	Shops  []int64
	ShopID int64
	State  string
	// LowStockOnly keeps listings with an active variant at or below its
	// line.
	LowStockOnly   bool
	Search         string // substring of the title or of a variant's SKU
	IncludeDeleted bool
	Sort           ProductSort
	After          *ProductCursor
	Limit          int
}

// ProductSort is a sort key and direction.
type ProductSort struct {
	Key  string // listing_id, title, quantity, updated_at
	Desc bool
}

// ProductCursor is the sort key of the last row of a page, and the sort it
// was made for: it means nothing under another.
type ProductCursor struct {
	ListingID int64     `json:"l"`
	Title     string    `json:"t,omitempty"`
	Quantity  int64     `json:"q,omitempty"`
	UpdatedAt time.Time `json:"u,omitzero"`
	// Sort is the sort parameter's value; empty is the default sort.
	Sort string `json:"o,omitempty"`
}

// productSQL builds the product and variant selects around the line in
// force for a variant row pv of product p in shop sh: domain.Lines.Resolve
// written in SQL, so that the low_stock filter and the counts are
// answered by the database. The default is a number the reader was
// configured with, written as a literal so that every query keeps one
// plan.
func productSQL(def int64) (products, variants string) {
	threshold := fmt.Sprintf(`coalesce(pv.low_stock_threshold, p.low_stock_threshold, sh.default_low_stock_threshold, %d)`, def)
	products = `
SELECT p.listing_id, p.shop_id, p.title, p.state, p.url, p.price_amount, p.price_currency,
       v.quantity, v.variants, v.low, p.low_stock_threshold, p.deleted, p.updated_at
FROM products p
LEFT JOIN shops sh ON sh.shop_id = p.shop_id
CROSS JOIN LATERAL (
    SELECT coalesce(sum(pv.quantity), 0)::bigint AS quantity, count(*) AS variants,
           count(*) FILTER (WHERE pv.quantity <= ` + threshold + `) AS low
    FROM product_variants pv
    WHERE pv.listing_id = p.listing_id AND pv.active
) v`
	variants = `
SELECT pv.variant_key, pv.sku, pv.properties, pv.price_amount, pv.price_currency, pv.enabled, pv.active, pv.quantity,
       pv.low_stock_threshold, p.low_stock_threshold, sh.default_low_stock_threshold,
       pv.observed_quantity, pv.observed_at, pv.last_movement_at
FROM product_variants pv
JOIN products p ON p.listing_id = pv.listing_id
LEFT JOIN shops sh ON sh.shop_id = p.shop_id
WHERE pv.listing_id = $1 AND pv.shop_id = $2
ORDER BY pv.variant_key`
	return products, variants
}

func scanProduct(row rowScanner) (Product, error) {
	var p Product
	err := row.Scan(&p.ListingID, &p.ShopID, &p.Title, &p.State, &p.URL, &p.Price.Amount, &p.Price.Currency,
		&p.Quantity, &p.VariantCount, &p.LowStockVariants, &p.LowStockThreshold, &p.Deleted, &p.UpdatedAt)
	p.UpdatedAt = utc(p.UpdatedAt)
	return p, err
}

// productOrder maps a sort key to its SQL expression. Keys come from an
// allow-list; nothing from the client reaches the SQL text.
var productOrder = map[string]string{
	"listing_id": "p.listing_id",
	// Byte order, so that pages come in the order a client's plain string
	// comparison expects, whatever the database's collation.
	"title":      `p.title COLLATE "C"`,
	"quantity":   "v.quantity",
	"updated_at": "p.updated_at",
}

// KnownProductSort reports whether key is a sort ListProducts knows.
func KnownProductSort(key string) bool {
	_, ok := productOrder[key]
	return ok
}

// likePattern escapes LIKE's wildcards so a search is a plain substring.
func likePattern(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(s) + "%"
}

// ListProducts pages products by the filter's sort key, then listing id.
func (r *Reader) ListProducts(ctx context.Context, f ProductFilter) ([]Product, error) {
	col, ok := productOrder[f.Sort.Key]
	if !ok {
		return nil, fmt.Errorf("list products: unknown sort %q", f.Sort.Key)
	}
	var w where
	shops := w.arg(f.Shops)
	w.conds = append(w.conds, "p.shop_id = ANY("+shops+")")
	if f.ShopID != 0 {
		w.add("p.shop_id = %s", f.ShopID)
	}
	if f.State != "" {
		w.add("p.state = %s", f.State)
	}
	if !f.IncludeDeleted {
		w.conds = append(w.conds, "NOT p.deleted")
	}
	if f.LowStockOnly {
		w.conds = append(w.conds, "v.low > 0")
	}
	if f.Search != "" {
		pat := w.arg(likePattern(f.Search))
		// The variants searched are the caller's shops' only: the planner
		// may read the SKUs once for all listings (a hashed subplan), and
		// then reads only these shops' rows.
		w.conds = append(w.conds, fmt.Sprintf(`(p.title ILIKE %[1]s OR EXISTS (
			SELECT 1 FROM product_variants sv WHERE sv.shop_id = ANY(%[2]s) AND sv.listing_id = p.listing_id AND sv.sku ILIKE %[1]s))`, pat, shops))
	}
	dir, cmp := "ASC", ">"
	if f.Sort.Desc {
		dir, cmp = "DESC", "<"
	}
	if c := f.After; c != nil {
		var key any
		switch f.Sort.Key {
		case "title":
			key = c.Title
		case "quantity":
			key = c.Quantity
		case "updated_at":
			key = c.UpdatedAt.UTC()
		}
		if key == nil {
			w.add("p.listing_id "+cmp+" %s", c.ListingID)
		} else {
			w.add("("+col+", p.listing_id) "+cmp+" (%s, %s)", key, c.ListingID)
		}
	}
	order := fmt.Sprintf("%s %s, p.listing_id %s", col, dir, dir)
	if f.Sort.Key == "listing_id" {
		order = "p.listing_id " + dir
	}
	return queryAll(ctx, r.db, "list products", scanProduct, r.productSelect+" WHERE "+w.sql()+" ORDER BY "+order+" LIMIT "+w.arg(f.Limit), w.args...)
}

// GetProduct returns a listing of shops with all its variants.
func (r *Reader) GetProduct(ctx context.Context, shops []int64, listingID int64) (ProductDetail, error) {
	p, err := scanProduct(r.db.QueryRowContext(ctx, r.productSelect+` WHERE p.listing_id = $2 AND p.shop_id = ANY($1)`, shops, listingID))
	if errors.Is(err, sql.ErrNoRows) {
		return ProductDetail{}, fmt.Errorf("get product %d: %w", listingID, ErrNotFound)
	}
	if err != nil {
		return ProductDetail{}, fmt.Errorf("get product %d: %w", listingID, err)
	}
	rows, err := r.db.QueryContext(ctx, r.variantSelect, listingID, p.ShopID)
	if err != nil {
		return ProductDetail{}, fmt.Errorf("get product %d variants: %w", listingID, err)
	}
	defer rows.Close()
	d := ProductDetail{Product: p, Variants: []Variant{}}
	for rows.Next() {
		var v Variant
		var lines domain.Lines
		if err := rows.Scan(&v.VariantKey, &v.SKU, &v.Properties, &v.Price.Amount, &v.Price.Currency, &v.Enabled, &v.Active, &v.Quantity,
			&lines.Variant, &lines.Listing, &lines.Shop, &v.ObservedQuantity, &v.ObservedAt, &v.LastMovementAt); err != nil {
			return ProductDetail{}, fmt.Errorf("get product %d variants: %w", listingID, err)
		}
		v.LowStockThreshold, v.ThresholdSource = lines.Resolve(r.cfg.DefaultThreshold)
		v.LowStock = v.Active && domain.LowStock(v.Quantity, v.LowStockThreshold)
		v.ObservedAt, v.LastMovementAt = utcPtr(v.ObservedAt), utcPtr(v.LastMovementAt)
		d.Variants = append(d.Variants, v)
	}
	return d, rows.Err()
}

// ProductShop returns the shop a listing belongs to, whoever's it is:
// operator tools name the owner when a listing is not the shop's they
// were told. Seller-facing code uses GetProduct.
func (r *Reader) ProductShop(ctx context.Context, listingID int64) (int64, error) {
	var shop int64
	err := r.db.QueryRowContext(ctx, `SELECT shop_id FROM products WHERE listing_id = $1`, listingID).Scan(&shop)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("shop of listing %d: %w", listingID, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("shop of listing %d: %w", listingID, err)
	}
	return shop, nil
}
