package etsy_test

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shopledger/shopledger/etsy"
)

func TestParseResourceURL(t *testing.T) {
	hosts := append([]string{"127.0.0.1:8090"}, etsy.DefaultResourceHosts...)
	good := []struct {
		url  string
		want etsy.Resource
	}{
		{"https://openapi.etsy.com/v3/application/shops/12345/receipts/54321", etsy.Resource{Kind: etsy.ResourceReceipt, ShopID: 12345, ReceiptID: 54321}},
		{"https://api.etsy.com/v3/application/listings/99", etsy.Resource{Kind: etsy.ResourceListing, ListingID: 99}},
		{"https://api.etsy.com/v3/application/listings/99/inventory", etsy.Resource{Kind: etsy.ResourceInventory, ListingID: 99}},
		{"http://127.0.0.1:8090/v3/application/shops/1/receipts/2", etsy.Resource{Kind: etsy.ResourceReceipt, ShopID: 1, ReceiptID: 2}},
	}
	for _, tt := range good {
		got, err := etsy.ParseResourceURL(tt.url, hosts)
		if err != nil {
			t.Errorf("%s: %v", tt.url, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.url, diff)
		}
	}
	for _, bad := range []string{
		"https://evil.example/v3/application/shops/1/receipts/2",
		"https://openapi.etsy.com.evil.example/v3/application/shops/1/receipts/2",
		"https://openapi.etsy.com@evil.example/v3/application/shops/1/receipts/2",
		"https://user:pw@openapi.etsy.com/v3/application/shops/1/receipts/2",
		"http://openapi.etsy.com/v3/application/shops/1/receipts/2",
		"https://openapi.etsy.com:444/v3/application/shops/1/receipts/2",
		"https://openapi.etsy.com/v3/application/shops/1/receipts/2?redirect=x",
		"https://openapi.etsy.com/v3/application/shops/1/receipts/2#f",
		"https://openapi.etsy.com/v3/application/shops/1/../../users/me",
		"https://openapi.etsy.com/v3/application/shops/1%2F2/receipts/2",
		"https://openapi.etsy.com/v3/application/shops/01/receipts/2",
		"https://openapi.etsy.com/v3/application/shops/-1/receipts/2",
		"https://openapi.etsy.com/v3/application/users/me",
		"https://openapi.etsy.com/v3/application/shops/1/receipts/2/transactions",
		"//openapi.etsy.com/v3/application/listings/1",
		"",
		":",
	} {
		if _, err := etsy.ParseResourceURL(bad, hosts); !errors.Is(err, etsy.ErrResourceURL) {
			t.Errorf("%q: %v, want ErrResourceURL", bad, err)
		}
	}
}
