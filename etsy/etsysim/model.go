package etsysim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shopledger/shopledger/etsy"
)

// Property ids: 200 is Etsy's "Primary color"; 513 and 514 are the ids
// Etsy gives custom variation properties.
const (
	propertyColor   = 200
	propertyCustom1 = 513
	propertyCustom2 = 514
	maxQuantity     = 999
	minPrice        = 20 // 0.20 in minor units, Etsy's minimum listing price
	maxPrice        = 5000000
)

// idGen hands out Etsy-sized ids with random gaps, so tests cannot lean on
// ids being consecutive.
type idGen struct {
	rng    *rand.Rand
	last   map[string]int64
	offset int64 // added to order-side ids (Options.OrderIDOffset)
}

var idBases = map[string]int64{
	"user":        58000000,
	"shop":        31000000,
	"listing":     1500000000,
	"product":     10000000000,
	"offering":    20000000000,
	"receipt":     3300000000,
	"transaction": 4100000000,
	"value":       1200000000,
	"shipment":    900000000,
	"buyer":       70000000,
}

func newIDGen(rng *rand.Rand) idGen { return idGen{rng: rng, last: make(map[string]int64)} }

func (g *idGen) next(kind string) int64 {
	if _, ok := g.last[kind]; !ok {
		g.last[kind] = idBases[kind]
		switch kind {
		case "receipt", "transaction", "shipment":
			g.last[kind] += g.offset
		}
	}
	g.last[kind] += 1 + g.rng.Int64N(23)
	return g.last[kind]
}

type user struct {
	id        int64
	shopID    int64
	firstName string
	lastName  string
	email     string
}

type shop struct {
	id         int64
	userID     int64
	name       string
	currency   string
	created    time.Time
	updated    time.Time
	listingIDs []int64 // creation order
	receiptIDs []int64 // creation order
}

type listing struct {
	id           int64
	shopID       int64
	userID       int64
	title        string
	description  string
	state        string
	created      time.Time
	updated      time.Time
	stateTS      time.Time
	deleted      bool
	shippingCost int64
	tags         []string
	inv          inventory
}

type inventory struct {
	products           []*product
	priceOnProperty    []int64
	quantityOnProperty []int64
	skuOnProperty      []int64
}

type product struct {
	id     int64
	sku    string
	values []propValue
	offer  offering
}

type propValue struct {
	propertyID   int64
	propertyName string
	scaleID      *int64
	valueIDs     []int64
	values       []string
}

type offering struct {
	id       int64
	price    int64
	quantity int
	enabled  bool
}

type valueKey struct {
	propertyID int64
	value      string
}

func (p *product) valueIDs() []int64 {
	var ids []int64
	for _, v := range p.values {
		ids = append(ids, v.valueIDs...)
	}
	return ids
}

// key is the variant identity shopledger uses; computed with the etsy
// package's own function so the two cannot drift apart.
func (p *product) key(listingID int64) string {
	return p.etsyProduct().VariantKey(listingID)
}

func (p *product) etsyProduct() etsy.Product {
	ep := etsy.Product{ProductID: p.id, SKU: p.sku}
	for _, v := range p.values {
		ep.PropertyValues = append(ep.PropertyValues, etsy.PropertyValue{PropertyID: v.propertyID, ValueIDs: v.valueIDs, Values: v.values})
	}
	return ep
}

func (p *product) available() int {
	if !p.offer.enabled {
		return 0
	}
	return p.offer.quantity
}

func (p *product) displayed() string {
	var parts []string
	for _, v := range p.values {
		parts = append(parts, strings.Join(v.values, "/"))
	}
	return strings.Join(parts, ", ")
}

// quantity is Etsy's listing quantity: the sum of available offerings.
func (l *listing) quantity() int {
	n := 0
	for _, p := range l.inv.products {
		n += p.available()
	}
	return n
}

// price is the lowest enabled offering price, as Etsy shows for a listing
// with variations.
func (l *listing) price() int64 {
	var lowest int64
	for _, p := range l.inv.products {
		if !p.offer.enabled {
			continue
		}
		if lowest == 0 || p.offer.price < lowest {
			lowest = p.offer.price
		}
	}
	if lowest == 0 && len(l.inv.products) > 0 {
		lowest = l.inv.products[0].offer.price
	}
	return lowest
}

func (l *listing) hasVariations() bool {
	for _, p := range l.inv.products {
		if len(p.values) > 0 {
			return true
		}
	}
	return false
}

func (l *listing) skus() []string {
	skus := []string{}
	for _, p := range l.inv.products {
		if p.sku != "" && !slices.Contains(skus, p.sku) {
			skus = append(skus, p.sku)
		}
	}
	return skus
}

func (l *listing) findVariant(variantKey, sku string, valueIDs []int64) (*product, error) {
	switch {
	case variantKey != "":
		for _, p := range l.inv.products {
			if p.key(l.id) == variantKey {
				return p, nil
			}
		}
		return nil, fmt.Errorf("listing %d has no variant %q: %w", l.id, variantKey, ErrNotFound)
	case sku != "":
		for _, p := range l.inv.products {
			if p.sku == sku {
				return p, nil
			}
		}
		return nil, fmt.Errorf("listing %d has no sku %q: %w", l.id, sku, ErrNotFound)
	case len(valueIDs) > 0:
		want := slices.Sorted(slices.Values(valueIDs))
		for _, p := range l.inv.products {
			if slices.Equal(slices.Sorted(slices.Values(p.valueIDs())), want) {
				return p, nil
			}
		}
		return nil, fmt.Errorf("listing %d has no variant with values %v: %w", l.id, valueIDs, ErrNotFound)
	}
	if len(l.inv.products) == 1 {
		return l.inv.products[0], nil
	}
	return nil, fmt.Errorf("listing %d has %d variants, say which: %w", l.id, len(l.inv.products), ErrInvalid)
}

// inventoryInput is a whole product set to write, already in minor units.
type inventoryInput struct {
	products           []productInput
	priceOnProperty    []int64
	quantityOnProperty []int64
	skuOnProperty      []int64
}

type productInput struct {
	sku      string
	values   []propValue // value ids may be missing: assigned from the text
	price    int64
	quantity int
	enabled  bool
	// offerings counts the offerings sent; Etsy wants exactly one.
	offerings int
}

// inventoryError is an Etsy-worded 400.
type inventoryError struct{ msg string }

func (e *inventoryError) Error() string { return e.msg }
func (e *inventoryError) Is(target error) bool {
	return target == ErrInvalid
}

func invalidf(format string, args ...any) error {
	return &inventoryError{msg: fmt.Sprintf(format, args...)}
}

// writeInventoryLocked applies Etsy's inventory rules: the write replaces
// the whole product set, every product and offering gets a new id, and a
// set with no stock at all is refused.
func (s *Sim) writeInventoryLocked(l *listing, in inventoryInput, now time.Time) error {
	return s.applyInventoryLocked(l, in, now, true)
}

func (s *Sim) applyInventoryLocked(l *listing, in inventoryInput, now time.Time, emit bool) error {
	if len(in.products) == 0 {
		return invalidf("Products can't be empty")
	}
	var propIDs []int64
	seenCombos := make(map[string]bool)
	anyStock := false
	skuQty := make(map[string]int)
	for i, p := range in.products {
		if p.offerings != 1 {
			return invalidf("Each product must have exactly one offering")
		}
		if p.price < minPrice || p.price > maxPrice {
			return invalidf("Price must be between 0.20 and 50000.00")
		}
		if p.quantity < 0 || p.quantity > maxQuantity {
			return invalidf("Quantity must be between 0 and %d", maxQuantity)
		}
		if len(p.values) > 2 {
			return invalidf("A listing can have at most 2 variation properties")
		}
		var ids []int64
		for j := range p.values {
			v := &p.values[j]
			if v.propertyID <= 0 {
				return invalidf("Invalid property_id")
			}
			if len(v.values) == 0 {
				return invalidf("Property values can't be empty")
			}
			if len(v.valueIDs) != 0 && len(v.valueIDs) != len(v.values) {
				return invalidf("value_ids and values must have the same length")
			}
			if len(v.valueIDs) == 0 {
				for _, text := range v.values {
					v.valueIDs = append(v.valueIDs, s.valueIDLocked(v.propertyID, text))
				}
			}
			ids = append(ids, v.propertyID)
		}
		slices.Sort(ids)
		if i == 0 {
			propIDs = ids
		} else if !slices.Equal(ids, propIDs) {
			return invalidf("All products must have the same properties")
		}
		var combo []string
		for _, v := range p.values {
			for _, id := range v.valueIDs {
				combo = append(combo, strconv.FormatInt(v.propertyID, 10)+":"+strconv.FormatInt(id, 10))
			}
		}
		slices.Sort(combo)
		c := strings.Join(combo, ",")
		if seenCombos[c] {
			return invalidf("Duplicate product property values")
		}
		seenCombos[c] = true
		if p.sku != "" {
			if q, ok := skuQty[p.sku]; ok && q != p.quantity {
				return invalidf("Products with the same SKU must have the same quantity")
			}
			skuQty[p.sku] = p.quantity
		}
		if p.enabled && p.quantity > 0 {
			anyStock = true
		}
	}
	if !anyStock {
		return invalidf("One offering must have quantity greater than 0")
	}
	for _, arr := range [][]int64{in.priceOnProperty, in.quantityOnProperty, in.skuOnProperty} {
		for _, id := range arr {
			if !slices.Contains(propIDs, id) {
				return invalidf("on_property ids must be properties of the products")
			}
		}
	}
	if err := checkOnProperty(in); err != nil {
		return err
	}

	before := make(map[string]int)
	for _, p := range l.inv.products {
		before[p.key(l.id)] = p.available()
	}
	newInv := inventory{
		priceOnProperty:    nonNil(in.priceOnProperty),
		quantityOnProperty: nonNil(in.quantityOnProperty),
		skuOnProperty:      nonNil(in.skuOnProperty),
	}
	for _, p := range in.products {
		newInv.products = append(newInv.products, &product{
			id: s.ids.next("product"), sku: p.sku, values: p.values,
			offer: offering{id: s.ids.next("offering"), price: p.price, quantity: p.quantity, enabled: p.enabled},
		})
	}
	l.inv = newInv
	l.updated = now
	if l.state == etsy.ListingSoldOut && l.quantity() > 0 {
		// On Etsy a seller renews a sold-out listing to sell it again;
		// the simulator treats restocking as that renewal.
		l.state, l.stateTS = etsy.ListingActive, now
	}
	if !emit {
		return nil
	}
	s.emitLocked(etsy.EventInventoryUpdated, l.shopID, s.listingURL(l.id)+"/inventory")
	for _, p := range l.inv.products {
		if was, ok := before[p.key(l.id)]; ok && was > 0 && p.available() == 0 {
			s.emitLocked(etsy.EventInventoryOutOfStock, l.shopID, s.listingURL(l.id)+"/inventory")
			break
		}
	}
	return nil
}

// checkOnProperty refuses a write whose prices, quantities or SKUs
// conflict with the *_on_property arrays, as Etsy does: each array
// names the properties that field varies on, so products whose values
// agree on every listed property must carry the same price, quantity or
// SKU, and a field whose array is empty is the same on every product.
// Value ids are assigned by the time it runs.
func checkOnProperty(in inventoryInput) error {
	for _, f := range []struct {
		name  string
		props []int64
		of    func(productInput) string
	}{
		{"price", in.priceOnProperty, func(p productInput) string { return strconv.FormatInt(p.price, 10) }},
		{"quantity", in.quantityOnProperty, func(p productInput) string { return strconv.Itoa(p.quantity) }},
		{"sku", in.skuOnProperty, func(p productInput) string { return p.sku }},
	} {
		seen := make(map[string]string, len(in.products))
		for _, p := range in.products {
			k := onPropertyKey(p.values, f.props)
			v := f.of(p)
			if was, ok := seen[k]; ok && was != v {
				return invalidf("%s_on_property: products with the same values for the listed properties must have the same %s", f.name, f.name)
			}
			seen[k] = v
		}
	}
	return nil
}

// onPropertyKey is a product's value ids for the given properties.
func onPropertyKey(values []propValue, props []int64) string {
	var b strings.Builder
	for _, id := range props {
		for _, v := range values {
			if v.propertyID != id {
				continue
			}
			b.WriteString(strconv.FormatInt(id, 10))
			for _, vid := range v.valueIDs {
				b.WriteByte(':')
				b.WriteString(strconv.FormatInt(vid, 10))
			}
			b.WriteByte(';')
		}
	}
	return b.String()
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// valueIDLocked gives a custom value text a stable id, as Etsy does when a
// seller types a new option.
func (s *Sim) valueIDLocked(propertyID int64, text string) int64 {
	k := valueKey{propertyID, strings.ToLower(strings.TrimSpace(text))}
	if id, ok := s.values[k]; ok {
		return id
	}
	id := s.ids.next("value")
	s.values[k] = id
	return id
}

// currentInput turns a listing's inventory back into a write, for the
// control API's restock and edit, which go through the same rules.
func currentInput(l *listing) inventoryInput {
	in := inventoryInput{
		priceOnProperty:    slices.Clone(l.inv.priceOnProperty),
		quantityOnProperty: slices.Clone(l.inv.quantityOnProperty),
		skuOnProperty:      slices.Clone(l.inv.skuOnProperty),
	}
	for _, p := range l.inv.products {
		values := make([]propValue, len(p.values))
		for i, v := range p.values {
			values[i] = propValue{
				propertyID: v.propertyID, propertyName: v.propertyName, scaleID: v.scaleID,
				valueIDs: slices.Clone(v.valueIDs), values: slices.Clone(v.values),
			}
		}
		in.products = append(in.products, productInput{
			sku: p.sku, values: values, price: p.offer.price, quantity: p.offer.quantity,
			enabled: p.offer.enabled, offerings: 1,
		})
	}
	return in
}

func (s *Sim) listingURL(id int64) string {
	return s.opts.PublicURL + "/v3/application/listings/" + strconv.FormatInt(id, 10)
}

func (s *Sim) receiptURL(shopID, receiptID int64) string {
	return s.opts.PublicURL + "/v3/application/shops/" + strconv.FormatInt(shopID, 10) + "/receipts/" + strconv.FormatInt(receiptID, 10)
}

func (s *Sim) listingTruthLocked(l *listing) ListingTruth {
	sh := s.shops[l.shopID]
	t := ListingTruth{
		ListingID: l.id, ShopID: l.shopID, Title: l.title, State: l.state,
		Quantity: l.quantity(), Price: l.price(), Currency: sh.currency,
		HasVariations: l.hasVariations(), Deleted: l.deleted,
		Variants: []VariantTruth{}, CreatedAt: l.created, UpdatedAt: l.updated,
	}
	for _, p := range l.inv.products {
		v := VariantTruth{
			VariantKey: p.key(l.id), ProductID: p.id, OfferingID: p.offer.id, SKU: p.sku,
			Quantity: p.offer.quantity, Price: p.offer.price, Enabled: p.offer.enabled,
			DisplayedValue: p.displayed(),
		}
		for _, pv := range p.values {
			v.PropertyIDs = append(v.PropertyIDs, pv.propertyID)
			v.ValueIDs = append(v.ValueIDs, pv.valueIDs...)
			v.Values = append(v.Values, pv.values...)
		}
		t.Variants = append(t.Variants, v)
	}
	return t
}
