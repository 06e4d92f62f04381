package etsy

import (
	"math/bits"
	"slices"
	"strconv"
	"strings"
)

// FitOnProperty makes the *_on_property arrays agree with the products,
// which Etsy requires of an inventory write: each array
// names the properties its field varies on, so products whose values agree
// on every listed property must carry the same price, quantity or SKU, and
// a field whose array is empty is the same on every product. An array the
// products contradict (a quantity changed on one variant of a listing whose
// quantities vary on colour only, say) is widened by the fewest properties
// that make it hold, keeping those it names. Ids that are no property of
// the products are dropped. It returns the names of the arrays it changed.
//
// The readiness_state_on_property array is left alone: shopledger never
// changes an offering's processing profile.
func (u *InventoryUpdate) FitOnProperty() []string {
	props := u.propertyIDs()
	var changed []string
	for _, f := range []struct {
		name string
		arr  *[]int64
		of   func(ProductUpdate) string
	}{
		{"price_on_property", &u.PriceOnProperty, func(p ProductUpdate) string {
			var b strings.Builder
			for _, o := range p.Offerings {
				b.WriteString(strconv.FormatInt(o.Price.Amount, 10) + ";")
			}
			return b.String()
		}},
		{"quantity_on_property", &u.QuantityOnProperty, func(p ProductUpdate) string {
			var b strings.Builder
			for _, o := range p.Offerings {
				b.WriteString(strconv.Itoa(o.Quantity) + ";")
			}
			return b.String()
		}},
		{"sku_on_property", &u.SKUOnProperty, func(p ProductUpdate) string { return p.SKU }},
	} {
		kept := slices.DeleteFunc(slices.Clone(*f.arr), func(id int64) bool { return !slices.Contains(props, id) })
		fitted := kept
		if !u.variesOnlyOn(kept, f.of) {
			fitted = u.widen(props, kept, f.of)
		}
		if !slices.Equal(fitted, *f.arr) {
			*f.arr = fitted
			changed = append(changed, f.name)
		}
	}
	return changed
}

// propertyIDs are the properties of the products, in the order of the
// first product (Etsy wants every product to have the same ones).
func (u *InventoryUpdate) propertyIDs() []int64 {
	var ids []int64
	for _, p := range u.Products {
		for _, pv := range p.PropertyValues {
			if !slices.Contains(ids, pv.PropertyID) {
				ids = append(ids, pv.PropertyID)
			}
		}
	}
	return ids
}

// widen returns the smallest superset of kept, among the products'
// properties, that the field varies only on, in the products' property
// order; with none (products that share every value), kept.
func (u *InventoryUpdate) widen(props, kept []int64, of func(ProductUpdate) string) []int64 {
	var extra []int64
	for _, id := range props {
		if !slices.Contains(kept, id) {
			extra = append(extra, id)
		}
	}
	best := -1
	for mask := 1; mask < 1<<len(extra); mask++ {
		if best >= 0 && bits.OnesCount(uint(mask)) >= bits.OnesCount(uint(best)) {
			continue
		}
		try := slices.Clone(kept)
		for i, id := range extra {
			if mask&(1<<i) != 0 {
				try = append(try, id)
			}
		}
		if u.variesOnlyOn(try, of) {
			best = mask
		}
	}
	if best < 0 {
		return kept
	}
	var out []int64
	for _, id := range props {
		i := slices.Index(extra, id)
		if slices.Contains(kept, id) || (i >= 0 && best&(1<<i) != 0) {
			out = append(out, id)
		}
	}
	return out
}

// variesOnlyOn reports whether products that agree on every property in
// on carry the same value of the field.
func (u *InventoryUpdate) variesOnlyOn(on []int64, of func(ProductUpdate) string) bool {
	seen := make(map[string]string, len(u.Products))
	for _, p := range u.Products {
		k := valuesOn(p, on)
		v := of(p)
		if was, ok := seen[k]; ok && was != v {
			return false
		}
		seen[k] = v
	}
	return true
}

// valuesOn is a product's values of the given properties, by value id
// where Etsy gave one, else by text.
func valuesOn(p ProductUpdate, on []int64) string {
	var b strings.Builder
	for _, id := range on {
		for _, pv := range p.PropertyValues {
			if pv.PropertyID != id {
				continue
			}
			b.WriteString(strconv.FormatInt(id, 10) + "=")
			if len(pv.ValueIDs) > 0 {
				for _, v := range pv.ValueIDs {
					b.WriteString(strconv.FormatInt(v, 10) + ",")
				}
			} else {
				for _, v := range pv.Values {
					b.WriteString(strconv.Quote(strings.ToLower(strings.TrimSpace(v))) + ",")
				}
			}
			b.WriteByte(';')
		}
	}
	return b.String()
}
