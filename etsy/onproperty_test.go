package etsy_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shopledger/shopledger/etsy"
)

// grid builds a write of colour × size products (property 200 and 513,
// value ids 1-2 and 11-12) with the given quantity, price and SKU per
// cell, in the order Navy/S, Navy/L, Red/S, Red/L.
func grid(qty []int, price []int64, sku []string) etsy.InventoryUpdate {
	var u etsy.InventoryUpdate
	i := 0
	for c, colour := range []string{"Navy", "Red"} {
		for s, size := range []string{"S", "L"} {
			u.Products = append(u.Products, etsy.ProductUpdate{
				SKU: sku[i],
				PropertyValues: []etsy.PropertyValue{
					{PropertyID: 200, ValueIDs: []int64{int64(1 + c)}, Values: []string{colour}},
					{PropertyID: 513, ValueIDs: []int64{int64(11 + s)}, Values: []string{size}},
				},
				Offerings: []etsy.OfferingUpdate{{Price: etsy.Money{Amount: price[i], Currency: "EUR"}, Quantity: qty[i], IsEnabled: true}},
			})
			i++
		}
	}
	return u
}

func TestFitOnProperty(t *testing.T) {
	samePrice := []int64{1500, 1500, 1500, 1500}
	bySize := []int64{1500, 1800, 1500, 1800}
	cellSKUs := []string{"NS", "NL", "RS", "RL"}
	type arrays struct{ Price, Quantity, SKU []int64 }
	for _, tt := range []struct {
		name    string
		u       etsy.InventoryUpdate
		in      arrays
		want    arrays
		changed []string
	}{
		{
			name: "consistent arrays stay as they are",
			u:    grid([]int{4, 4, 6, 6}, bySize, cellSKUs),
			in:   arrays{[]int64{513}, []int64{200}, []int64{513, 200}},
			want: arrays{[]int64{513}, []int64{200}, []int64{513, 200}},
		},
		{
			name:    "one variant's quantity changed where quantities varied on colour only",
			u:       grid([]int{1, 4, 6, 6}, bySize, cellSKUs),
			in:      arrays{[]int64{513}, []int64{200}, []int64{200, 513}},
			want:    arrays{[]int64{513}, []int64{200, 513}, []int64{200, 513}},
			changed: []string{"quantity_on_property"},
		},
		{
			name:    "quantities that vary on size only widen an empty array by size alone",
			u:       grid([]int{3, 5, 3, 5}, samePrice, cellSKUs),
			in:      arrays{nil, nil, []int64{200, 513}},
			want:    arrays{nil, []int64{513}, []int64{200, 513}},
			changed: []string{"quantity_on_property"},
		},
		{
			name:    "one variant's price set where prices did not vary",
			u:       grid([]int{3, 3, 3, 3}, []int64{2500, 1500, 1500, 1500}, cellSKUs),
			in:      arrays{[]int64{}, []int64{}, []int64{200, 513}},
			want:    arrays{[]int64{200, 513}, []int64{}, []int64{200, 513}},
			changed: []string{"price_on_property"},
		},
		{
			name:    "SKUs per cell with sku_on_property on colour",
			u:       grid([]int{3, 3, 3, 3}, samePrice, cellSKUs),
			in:      arrays{nil, nil, []int64{200}},
			want:    arrays{nil, nil, []int64{200, 513}},
			changed: []string{"sku_on_property"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u := tt.u
			u.PriceOnProperty, u.QuantityOnProperty, u.SKUOnProperty = tt.in.Price, tt.in.Quantity, tt.in.SKU
			changed := u.FitOnProperty()
			if diff := cmp.Diff(tt.want, arrays{u.PriceOnProperty, u.QuantityOnProperty, u.SKUOnProperty}); diff != "" {
				t.Errorf("arrays (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.changed, changed); diff != "" {
				t.Errorf("changed (-want +got):\n%s", diff)
			}
		})
	}
}

// A listing without variations whose arrays name a property no product
// has (as Etsy has been seen to answer) writes them empty; text values
// without ids are compared by text.
func TestFitOnPropertyDropsUnknownPropertiesAndReadsText(t *testing.T) {
	u := etsy.InventoryUpdate{
		Products:           []etsy.ProductUpdate{{SKU: "731737", Offerings: []etsy.OfferingUpdate{{Price: etsy.Money{Amount: 2200, Currency: "EUR"}, Quantity: 1, IsEnabled: true}}}},
		PriceOnProperty:    []int64{1},
		QuantityOnProperty: []int64{1},
		SKUOnProperty:      []int64{1},
	}
	u.FitOnProperty()
	if len(u.PriceOnProperty)+len(u.QuantityOnProperty)+len(u.SKUOnProperty) != 0 {
		t.Errorf("arrays %v %v %v, want all empty", u.PriceOnProperty, u.QuantityOnProperty, u.SKUOnProperty)
	}

	size := func(s string, q int) etsy.ProductUpdate {
		return etsy.ProductUpdate{
			PropertyValues: []etsy.PropertyValue{{PropertyID: 513, ValueIDs: []int64{}, Values: []string{s}}},
			Offerings:      []etsy.OfferingUpdate{{Price: etsy.Money{Amount: 900, Currency: "EUR"}, Quantity: q, IsEnabled: true}},
		}
	}
	u = etsy.InventoryUpdate{Products: []etsy.ProductUpdate{size("S", 2), size("M", 3)}}
	if changed := u.FitOnProperty(); !cmp.Equal(changed, []string{"quantity_on_property"}) || !cmp.Equal(u.QuantityOnProperty, []int64{513}) {
		t.Errorf("changed %v, quantity_on_property %v; want [quantity_on_property] and [513]", changed, u.QuantityOnProperty)
	}
}
