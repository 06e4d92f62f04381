package etsy_test

import (
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shopledger/shopledger/etsy"
)

func TestMoneyFromEtsy(t *testing.T) {
	tests := []struct {
		json string
		want etsy.Money
		err  error
	}{
		{`{"amount":2200,"divisor":100,"currency_code":"EUR"}`, etsy.Money{Amount: 2200, Currency: "EUR"}, nil},
		{`{"amount":500,"divisor":100,"currency_code":"usd"}`, etsy.Money{Amount: 500, Currency: "USD"}, nil},
		{`{"amount":150000,"divisor":100,"currency_code":"JPY"}`, etsy.Money{Amount: 1500, Currency: "JPY"}, nil},
		{`{"amount":1500,"divisor":1,"currency_code":"JPY"}`, etsy.Money{Amount: 1500, Currency: "JPY"}, nil},
		{`{"amount":12345,"divisor":1000,"currency_code":"KWD"}`, etsy.Money{Amount: 12345, Currency: "KWD"}, nil},
		{`{"amount":1234,"divisor":100,"currency_code":"KWD"}`, etsy.Money{Amount: 12340, Currency: "KWD"}, nil},
		{`{"amount":25,"divisor":10,"currency_code":"USD"}`, etsy.Money{Amount: 250, Currency: "USD"}, nil},
		{`{"amount":2200.0,"divisor":100,"currency_code":"EUR"}`, etsy.Money{Amount: 2200, Currency: "EUR"}, nil},
		{`{"amount":0,"divisor":0,"currency_code":"USD"}`, etsy.Money{Currency: "USD"}, nil},
		{`{"amount":-150,"divisor":100,"currency_code":"USD"}`, etsy.Money{Amount: -150, Currency: "USD"}, nil},
		{`{"amount":12345,"divisor":1000,"currency_code":"USD"}`, etsy.Money{}, etsy.ErrInexactMoney},
		{`{"amount":150,"divisor":100,"currency_code":"JPY"}`, etsy.Money{}, etsy.ErrInexactMoney},
		{`{"amount":5,"divisor":0,"currency_code":"USD"}`, etsy.Money{}, etsy.ErrInexactMoney},
		{`{"amount":22.5,"divisor":100,"currency_code":"USD"}`, etsy.Money{}, nil},
	}
	for _, tt := range tests {
		var got etsy.Money
		err := json.Unmarshal([]byte(tt.json), &got)
		switch {
		case tt.err != nil:
			if !errors.Is(err, tt.err) {
				t.Errorf("%s: err %v, want %v", tt.json, err, tt.err)
			}
		case tt.want == (etsy.Money{}):
			if err == nil {
				t.Errorf("%s: decoded %v, want an error", tt.json, got)
			}
		default:
			if err != nil {
				t.Errorf("%s: %v", tt.json, err)
			} else if got != tt.want {
				t.Errorf("%s: got %v, want %v", tt.json, got, tt.want)
			}
		}
	}
}

func TestMoneyText(t *testing.T) {
	for _, tt := range []struct {
		m    etsy.Money
		want string
	}{
		{etsy.Money{Amount: 1234, Currency: "USD"}, "12.34 USD"},
		{etsy.Money{Amount: 5, Currency: "USD"}, "0.05 USD"},
		{etsy.Money{Amount: -5, Currency: "EUR"}, "-0.05 EUR"},
		{etsy.Money{Amount: 1500, Currency: "JPY"}, "1500 JPY"},
		{etsy.Money{Amount: 1, Currency: "KWD"}, "0.001 KWD"},
		{etsy.Money{Amount: -9223372036854775808, Currency: "USD"}, "-92233720368547758.08 USD"},
	} {
		if got := tt.m.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.m, got, tt.want)
		}
	}
	// MarshalJSON round-trips.
	m := etsy.Money{Amount: 1500, Currency: "JPY"}
	b, _ := json.Marshal(m)
	var back etsy.Money
	if err := json.Unmarshal(b, &back); err != nil || back != m {
		t.Errorf("round trip %s → %v, %v", b, back, err)
	}
}

func TestDecodeEtsyInventorySample(t *testing.T) {
	b, err := os.ReadFile("testdata/inventory-issue134.json")
	if err != nil {
		t.Fatal(err)
	}
	var inv etsy.Inventory
	if err := json.Unmarshal(b, &inv); err != nil {
		t.Fatal(err)
	}
	want := etsy.Inventory{
		Products: []etsy.Product{{
			ProductID: 7341796967, SKU: "731737",
			Offerings: []etsy.Offering{{OfferingID: 7572681242, Quantity: 1, IsEnabled: true, Price: etsy.Money{Amount: 2200, Currency: "EUR"}}},
		}},
		PriceOnProperty: []int64{1}, QuantityOnProperty: []int64{1}, SKUOnProperty: []int64{1},
	}
	if diff := cmp.Diff(want, inv); diff != "" {
		t.Errorf("decoded (-want +got):\n%s", diff)
	}
	if got := inv.Products[0].VariantKey(99); got != "sku:731737" {
		t.Errorf("VariantKey = %q", got)
	}
	// Writing it back drops the ids and sends the price as a decimal.
	body, err := json.Marshal(inv.Update())
	if err != nil {
		t.Fatal(err)
	}
	const wantBody = `{"products":[{"sku":"731737","property_values":[],"offerings":[{"price":22.00,"quantity":1,"is_enabled":true}]}],"price_on_property":[1],"quantity_on_property":[1],"sku_on_property":[1]}`
	if string(body) != wantBody {
		t.Errorf("update body\n got %s\nwant %s", body, wantBody)
	}
}

func TestVariantKey(t *testing.T) {
	pv := func(prop int64, ids ...int64) etsy.PropertyValue {
		return etsy.PropertyValue{PropertyID: prop, ValueIDs: ids}
	}
	for _, tt := range []struct {
		name string
		p    etsy.Product
		want string
	}{
		{"sku wins", etsy.Product{ProductID: 1, SKU: "MUG-1", PropertyValues: []etsy.PropertyValue{pv(200, 5)}}, "sku:MUG-1"},
		{"values sorted", etsy.Product{ProductID: 2, PropertyValues: []etsy.PropertyValue{pv(513, 90), pv(200, 7)}}, "listing:42:values:7,90"},
		{"order does not matter", etsy.Product{ProductID: 3, PropertyValues: []etsy.PropertyValue{pv(200, 7), pv(513, 90)}}, "listing:42:values:7,90"},
		{"single product", etsy.Product{ProductID: 4}, "listing:42"},
		{"blank sku ignored", etsy.Product{SKU: "  ", PropertyValues: []etsy.PropertyValue{pv(200, 7)}}, "listing:42:values:7"},
	} {
		if got := tt.p.VariantKey(42); got != tt.want {
			t.Errorf("%s: VariantKey = %q, want %q", tt.name, got, tt.want)
		}
	}
	tx := etsy.Transaction{ListingID: 42, Variations: []etsy.Variation{{PropertyID: 513, ValueID: 90}, {PropertyID: 200, ValueID: 7}}}
	if got := tx.VariantKey(); got != "listing:42:values:7,90" {
		t.Errorf("transaction VariantKey = %q", got)
	}
}
