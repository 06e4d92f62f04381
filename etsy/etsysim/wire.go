package etsysim

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/etsy/internal/wire"
)

// The simulator answers with package wire's structs, which mirror Etsy's
// OpenAPI schemas field for field (see testdata/openapi-subset.json), so
// its answers have Etsy's shape, names and JSON types.

// money writes minor units with divisor 100 where the currency allows it
// (Etsy's documented examples all use 100), so a yen amount arrives as
// hundredths and clients must really normalise.
func money(minor int64, currency string) wire.Money {
	exp := etsy.MinorUnitExponent(currency)
	div := int64(1)
	for range exp {
		div *= 10
	}
	if div < 100 {
		return wireMoney(minor*(100/div), 100, currency)
	}
	return wireMoney(minor, div, currency)
}

func wireMoney(amount, divisor int64, currency string) wire.Money {
	return wire.Money{Amount: json.Number(strconv.FormatInt(amount, 10)), Divisor: json.Number(strconv.FormatInt(divisor, 10)), CurrencyCode: currency}
}

func unix(t time.Time) int64 { return t.Unix() }

func unixPtr(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	v := t.Unix()
	return &v
}

func ptr[T any](v T) *T { return &v }

func (s *Sim) wireShopLocked(sh *shop) wire.Shop {
	active, sold := 0, 0
	for _, id := range sh.listingIDs {
		if l := s.listing[id]; !l.deleted && l.state == etsy.ListingActive {
			active++
		}
	}
	for _, id := range sh.receiptIDs {
		for _, tx := range s.receipt[id].txs {
			sold += tx.quantity
		}
	}
	return wire.Shop{
		CreateDate: unix(sh.created), CreatedTimestamp: ptr(unix(sh.created)), CurrencyCode: sh.currency,
		IsDirectCheckoutOnboarded: true, IsEtsyPaymentsOnboarded: true, IsShopUSBased: true,
		Languages: []string{"en-US"}, ListingActiveCount: active, LoginName: strings.ToLower(sh.name),
		PolicyUpdateDate: unix(sh.created), ShippingFromCountryISO: ptr("US"), ShopID: sh.id,
		ShopLocationCountryISO: ptr("US"), ShopName: sh.name, Title: ptr(sh.name + " — handmade"),
		TransactionSoldCount: sold, UpdateDate: unix(sh.updated), UpdatedTimestamp: ptr(unix(sh.updated)),
		URL: "https://www.etsy.com/shop/" + sh.name, UserID: sh.userID,
	}
}

// wireListingLocked renders a listing. withAssoc adds the
// ShopListingWithAssociations fields (skus, views, production_partners)
// that getListing and getListingsByShop return. Etsy shows SKUs to the
// listing's owner only; others get no skus and blank product SKUs.
func (s *Sim) wireListingLocked(l *listing, withAssoc, withInventory, owner bool) wire.Listing {
	cur := s.shops[l.shopID].currency
	w := wire.Listing{
		CreatedTimestamp: ptr(unix(l.created)), CreationTimestamp: unix(l.created), Description: l.description,
		EndingTimestamp: unix(l.created.AddDate(0, 4, 0)), FileData: "", HasVariations: l.hasVariations(),
		IsSupply: ptr(false), IsTaxable: true, Language: ptr("en-US"),
		LastModifiedTimestamp: ptr(unix(l.updated)), ListingID: l.id, ListingType: "physical",
		Materials: []string{}, OriginalCreationTimestamp: unix(l.created),
		Price: money(l.price(), cur), ProcessingMax: ptr(5), ProcessingMin: ptr(1),
		Quantity: l.quantity(), ShippingProfileID: ptr(int64(190000000 + l.shopID%1000)), ShopID: l.shopID,
		ShouldAutoRenew: true, State: l.state, StateTimestamp: ptr(unix(l.stateTS)), Style: []string{},
		Tags: nonNil(l.tags), TaxonomyID: ptr(int64(1)), Title: l.title, UpdatedTimestamp: ptr(unix(l.updated)),
		URL: fmt.Sprintf("https://www.etsy.com/listing/%d/%s", l.id, slug(l.title)), UserID: l.userID,
		WhenMade: ptr("made_to_order"), WhoMade: ptr("i_did"),
	}
	if withAssoc && owner {
		w.SKUs = ptr(l.skus())
	}
	if withAssoc {
		w.Views = ptr(0)
		w.ProductionPartners = &[]struct{}{}
	}
	if withInventory {
		inv := s.wireInventoryLocked(l)
		if !owner {
			for i := range inv.Products {
				inv.Products[i].SKU = ptr("")
			}
		}
		w.Inventory = &inv
	}
	return w
}

func slug(title string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(title) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}

// wireInventoryWithListing is getListingInventory's answer: listing is
// null unless includes=Listing.
type wireInventoryWithListing struct {
	wire.Inventory
	Listing *wire.Listing `json:"listing"`
}

func wireValues(vs []propValue) []wire.PropertyValue {
	out := []wire.PropertyValue{}
	for _, v := range vs {
		w := wire.PropertyValue{PropertyID: v.propertyID, ScaleID: v.scaleID, ValueIDs: nonNil(v.valueIDs), Values: nonNil(v.values)}
		if v.propertyName != "" {
			w.PropertyName = ptr(v.propertyName)
		}
		out = append(out, w)
	}
	return out
}

func (s *Sim) wireInventoryLocked(l *listing) wire.Inventory {
	cur := s.shops[l.shopID].currency
	w := wire.Inventory{
		Products:           []wire.Product{},
		PriceOnProperty:    nonNil(l.inv.priceOnProperty),
		QuantityOnProperty: nonNil(l.inv.quantityOnProperty),
		SKUOnProperty:      nonNil(l.inv.skuOnProperty),
	}
	for _, p := range l.inv.products {
		w.Products = append(w.Products, wire.Product{
			ProductID: p.id, SKU: ptr(p.sku),
			Offerings: []wire.Offering{{
				OfferingID: p.offer.id, Quantity: p.offer.quantity, IsEnabled: p.offer.enabled,
				Price: money(p.offer.price, cur),
			}},
			PropertyValues: wireValues(p.values),
		})
	}
	return w
}

func (s *Sim) wireReceiptLocked(r *receipt) wire.Receipt {
	cur := r.currency
	w := wire.Receipt{
		BuyerUserID: r.buyerID, City: r.buyer.city, CountryISO: ptr(r.buyer.country),
		CreateTimestamp: unix(r.created), CreatedTimestamp: ptr(unix(r.created)),
		DiscountAmt: money(r.discount, cur), FirstLine: r.buyer.firstLine,
		FormattedAddress: strings.Join(nonEmpty(r.buyer.name, r.buyer.firstLine, strings.TrimSpace(r.buyer.city+" "+r.buyer.state+" "+r.buyer.zip), r.buyer.country), "\n"),
		GiftWrapPrice:    money(0, cur), Grandtotal: money(r.grandtotal(), cur),
		IsPaid: r.paid, IsShipped: r.shipped, Name: r.buyer.name, PaymentMethod: r.paymentType,
		ReceiptID: r.id, ReceiptType: 0, Refunds: []wire.Refund{}, SellerUserID: r.sellerID,
		Shipments: []wire.Shipment{}, Status: r.status, Subtotal: money(r.subtotal(), cur),
		TotalPrice: money(r.totalPrice, cur), TotalShippingCost: money(r.shipping, cur),
		TotalTaxCost: money(r.tax, cur), TotalVATCost: money(0, cur), Transactions: []wire.Transaction{},
		UpdateTimestamp: unix(r.updated), UpdatedTimestamp: ptr(unix(r.updated)), Zip: r.buyer.zip,
	}
	if r.buyer.state != "" {
		w.State = ptr(r.buyer.state)
	}
	for _, f := range r.refunds {
		w.Refunds = append(w.Refunds, wire.Refund{
			Amount: money(f.amount, cur), CreatedTimestamp: ptr(unix(f.created)), Reason: ptr(f.reason), Status: ptr("completed"),
		})
	}
	for _, sh := range r.shipments {
		w.Shipments = append(w.Shipments, wire.Shipment{
			CarrierName: sh.carrier, ReceiptShippingID: ptr(sh.id),
			ShipmentNotificationTimestamp: ptr(unix(sh.notified)), TrackingCode: sh.tracking,
		})
	}
	for _, tx := range r.txs {
		w.Transactions = append(w.Transactions, wireTx(r, tx))
	}
	return w
}

func wireTx(r *receipt, tx *transaction) wire.Transaction {
	cur := r.currency
	w := wire.Transaction{
		BuyerUserID: r.buyerID, CreateTimestamp: unix(tx.created), CreatedTimestamp: ptr(unix(tx.created)),
		Description: ptr(""), ExpectedShipDate: ptr(unix(tx.created.Add(5 * 24 * time.Hour))),
		ListingID: ptr(tx.listingID), MaxProcessingDays: ptr(5), MinProcessingDays: ptr(1),
		PaidTimestamp: unixPtr(tx.paid), Price: money(tx.price, cur), ProductData: wireValues(tx.values),
		ProductID: ptr(tx.productID), Quantity: tx.quantity, ReceiptID: r.id, SellerUserID: r.sellerID,
		ShippedTimestamp: unixPtr(tx.shipped), ShippingCost: money(tx.shippingCost, cur),
		ShippingMethod: ptr("Standard"), Title: ptr(tx.title), TransactionID: tx.id,
		TransactionType: "listing", Variations: []wire.Variation{},
	}
	if tx.sku != "" {
		w.SKU = ptr(tx.sku)
	}
	for _, v := range tx.values {
		for i, id := range v.valueIDs {
			val := ""
			if i < len(v.values) {
				val = v.values[i]
			}
			name := v.propertyName
			if name == "" {
				name = fmt.Sprintf("Property %d", v.propertyID)
			}
			w.Variations = append(w.Variations, wire.Variation{
				FormattedName: name, FormattedValue: val, PropertyID: v.propertyID, ValueID: ptr(id),
			})
		}
	}
	return w
}

func nonEmpty(parts ...string) []string {
	var out []string
	for _, p := range parts {
		if strings.TrimSpace(p) != "" {
			out = append(out, p)
		}
	}
	return out
}
