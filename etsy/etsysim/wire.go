package etsysim

import (
	"fmt"
	"strings"
	"time"

	"github.com/shopledger/shopledger/etsy"
)

// The structs below mirror Etsy's OpenAPI schemas field for field (see
// testdata/openapi-subset.json), so the simulator's answers have Etsy's
// shape, names and JSON types. Nullable fields are pointers.

type wireMoney struct {
	Amount       int64  `json:"amount"`
	Divisor      int64  `json:"divisor"`
	CurrencyCode string `json:"currency_code"`
}

// money writes minor units with divisor 100 where the currency allows it
// (Etsy's documented examples all use 100), so a yen amount arrives as
// hundredths and clients must really normalise.
func money(minor int64, currency string) wireMoney {
	exp := etsy.MinorUnitExponent(currency)
	div := int64(1)
	for range exp {
		div *= 10
	}
	if div < 100 {
		return wireMoney{Amount: minor * (100 / div), Divisor: 100, CurrencyCode: currency}
	}
	return wireMoney{Amount: minor, Divisor: div, CurrencyCode: currency}
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

type wireSelf struct {
	UserID int64 `json:"user_id"`
	ShopID int64 `json:"shop_id"`
}

type wireShop struct {
	AcceptsCustomRequests          bool     `json:"accepts_custom_requests"`
	Announcement                   *string  `json:"announcement"`
	CreateDate                     int64    `json:"create_date"`
	CreatedTimestamp               int64    `json:"created_timestamp"`
	CurrencyCode                   string   `json:"currency_code"`
	DigitalListingCount            int      `json:"digital_listing_count"`
	DigitalSaleMessage             *string  `json:"digital_sale_message"`
	HasOnboardedStructuredPolicies bool     `json:"has_onboarded_structured_policies"`
	HasUnstructuredPolicies        bool     `json:"has_unstructured_policies"`
	IconURLFullxfull               *string  `json:"icon_url_fullxfull"`
	ImageURL760x100                *string  `json:"image_url_760x100"`
	IncludeDisputeFormLink         bool     `json:"include_dispute_form_link"`
	IsCalculatedEligible           bool     `json:"is_calculated_eligible"`
	IsDirectCheckoutOnboarded      bool     `json:"is_direct_checkout_onboarded"`
	IsEtsyPaymentsOnboarded        bool     `json:"is_etsy_payments_onboarded"`
	IsOptedInToBuyerPromise        bool     `json:"is_opted_in_to_buyer_promise"`
	IsShopUSBased                  bool     `json:"is_shop_us_based"`
	IsUsingStructuredPolicies      bool     `json:"is_using_structured_policies"`
	IsVacation                     bool     `json:"is_vacation"`
	Languages                      []string `json:"languages"`
	ListingActiveCount             int      `json:"listing_active_count"`
	LoginName                      string   `json:"login_name"`
	NumFavorers                    int      `json:"num_favorers"`
	PolicyAdditional               *string  `json:"policy_additional"`
	PolicyHasPrivateReceiptInfo    bool     `json:"policy_has_private_receipt_info"`
	PolicyPayment                  *string  `json:"policy_payment"`
	PolicyPrivacy                  *string  `json:"policy_privacy"`
	PolicyRefunds                  *string  `json:"policy_refunds"`
	PolicySellerInfo               *string  `json:"policy_seller_info"`
	PolicyShipping                 *string  `json:"policy_shipping"`
	PolicyUpdateDate               int64    `json:"policy_update_date"`
	PolicyWelcome                  *string  `json:"policy_welcome"`
	ReviewAverage                  *float64 `json:"review_average"`
	ReviewCount                    *int     `json:"review_count"`
	SaleMessage                    *string  `json:"sale_message"`
	ShippingFromCountryISO         *string  `json:"shipping_from_country_iso"`
	ShopID                         int64    `json:"shop_id"`
	ShopLocationCountryISO         *string  `json:"shop_location_country_iso"`
	ShopName                       string   `json:"shop_name"`
	Title                          *string  `json:"title"`
	TransactionSoldCount           int      `json:"transaction_sold_count"`
	UpdateDate                     int64    `json:"update_date"`
	UpdatedTimestamp               int64    `json:"updated_timestamp"`
	URL                            string   `json:"url"`
	UserID                         int64    `json:"user_id"`
	VacationAutoreply              *string  `json:"vacation_autoreply"`
	VacationMessage                *string  `json:"vacation_message"`
}

func (s *Sim) wireShopLocked(sh *shop) wireShop {
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
	return wireShop{
		CreateDate: unix(sh.created), CreatedTimestamp: unix(sh.created), CurrencyCode: sh.currency,
		IsDirectCheckoutOnboarded: true, IsEtsyPaymentsOnboarded: true, IsShopUSBased: true,
		Languages: []string{"en-US"}, ListingActiveCount: active, LoginName: strings.ToLower(sh.name),
		PolicyUpdateDate: unix(sh.created), ShippingFromCountryISO: ptr("US"), ShopID: sh.id,
		ShopLocationCountryISO: ptr("US"), ShopName: sh.name, Title: ptr(sh.name + " — handmade"),
		TransactionSoldCount: sold, UpdateDate: unix(sh.updated), UpdatedTimestamp: unix(sh.updated),
		URL: "https://www.etsy.com/shop/" + sh.name, UserID: sh.userID,
	}
}

type wireListing struct {
	CreatedTimestamp            int64          `json:"created_timestamp"`
	CreationTimestamp           int64          `json:"creation_timestamp"`
	Description                 string         `json:"description"`
	EndingTimestamp             int64          `json:"ending_timestamp"`
	FeaturedRank                int            `json:"featured_rank"`
	FileData                    string         `json:"file_data"`
	HasVariations               bool           `json:"has_variations"`
	Inventory                   *wireInventory `json:"inventory,omitempty"`
	IsCustomizable              bool           `json:"is_customizable"`
	IsPersonalizable            bool           `json:"is_personalizable"`
	IsPrivate                   bool           `json:"is_private"`
	IsSupply                    *bool          `json:"is_supply"`
	IsTaxable                   bool           `json:"is_taxable"`
	ItemDimensionsUnit          *string        `json:"item_dimensions_unit"`
	ItemHeight                  *float64       `json:"item_height"`
	ItemLength                  *float64       `json:"item_length"`
	ItemWeight                  *float64       `json:"item_weight"`
	ItemWeightUnit              *string        `json:"item_weight_unit"`
	ItemWidth                   *float64       `json:"item_width"`
	Language                    *string        `json:"language"`
	LastModifiedTimestamp       int64          `json:"last_modified_timestamp"`
	ListingID                   int64          `json:"listing_id"`
	ListingType                 string         `json:"listing_type"`
	Materials                   []string       `json:"materials"`
	NonTaxable                  bool           `json:"non_taxable"`
	NumFavorers                 int            `json:"num_favorers"`
	OriginalCreationTimestamp   int64          `json:"original_creation_timestamp"`
	PersonalizationCharCountMax *int           `json:"personalization_char_count_max"`
	PersonalizationInstructions *string        `json:"personalization_instructions"`
	PersonalizationIsRequired   bool           `json:"personalization_is_required"`
	Price                       wireMoney      `json:"price"`
	ProcessingMax               *int           `json:"processing_max"`
	ProcessingMin               *int           `json:"processing_min"`
	ProductionPartners          *[]struct{}    `json:"production_partners,omitempty"`
	Quantity                    int            `json:"quantity"`
	ReturnPolicyID              *int64         `json:"return_policy_id"`
	ShippingProfileID           *int64         `json:"shipping_profile_id"`
	ShopID                      int64          `json:"shop_id"`
	ShopSectionID               *int64         `json:"shop_section_id"`
	ShouldAutoRenew             bool           `json:"should_auto_renew"`
	SKUs                        *[]string      `json:"skus,omitempty"`
	State                       string         `json:"state"`
	StateTimestamp              int64          `json:"state_timestamp"`
	Style                       []string       `json:"style"`
	Tags                        []string       `json:"tags"`
	TaxonomyID                  *int64         `json:"taxonomy_id"`
	Title                       string         `json:"title"`
	UpdatedTimestamp            int64          `json:"updated_timestamp"`
	URL                         string         `json:"url"`
	UserID                      int64          `json:"user_id"`
	Views                       *int           `json:"views,omitempty"`
	WhenMade                    *string        `json:"when_made"`
	WhoMade                     *string        `json:"who_made"`
}

// wireListingLocked renders a listing. withAssoc adds the
// ShopListingWithAssociations fields (skus, views, production_partners)
// that getListing and getListingsByShop return. Etsy shows SKUs to the
// listing's owner only; others get no skus and blank product SKUs.
func (s *Sim) wireListingLocked(l *listing, withAssoc, withInventory, owner bool) wireListing {
	cur := s.shops[l.shopID].currency
	w := wireListing{
		CreatedTimestamp: unix(l.created), CreationTimestamp: unix(l.created), Description: l.description,
		EndingTimestamp: unix(l.created.AddDate(0, 4, 0)), FileData: "", HasVariations: l.hasVariations(),
		IsSupply: ptr(false), IsTaxable: true, Language: ptr("en-US"),
		LastModifiedTimestamp: unix(l.updated), ListingID: l.id, ListingType: "physical",
		Materials: []string{}, OriginalCreationTimestamp: unix(l.created),
		Price: money(l.price(), cur), ProcessingMax: ptr(5), ProcessingMin: ptr(1),
		Quantity: l.quantity(), ShippingProfileID: ptr(int64(190000000 + l.shopID%1000)), ShopID: l.shopID,
		ShouldAutoRenew: true, State: l.state, StateTimestamp: unix(l.stateTS), Style: []string{},
		Tags: nonNil(l.tags), TaxonomyID: ptr(int64(1)), Title: l.title, UpdatedTimestamp: unix(l.updated),
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
				inv.Products[i].SKU = ""
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

type wireInventory struct {
	Products           []wireProduct `json:"products"`
	PriceOnProperty    []int64       `json:"price_on_property"`
	QuantityOnProperty []int64       `json:"quantity_on_property"`
	SKUOnProperty      []int64       `json:"sku_on_property"`
}

// wireInventoryWithListing is getListingInventory's answer: listing is
// null unless includes=Listing.
type wireInventoryWithListing struct {
	wireInventory
	Listing *wireListing `json:"listing"`
}

type wireProduct struct {
	ProductID      int64               `json:"product_id"`
	SKU            string              `json:"sku"`
	IsDeleted      bool                `json:"is_deleted"`
	Offerings      []wireOffering      `json:"offerings"`
	PropertyValues []wirePropertyValue `json:"property_values"`
}

type wireOffering struct {
	OfferingID int64     `json:"offering_id"`
	Quantity   int       `json:"quantity"`
	IsEnabled  bool      `json:"is_enabled"`
	IsDeleted  bool      `json:"is_deleted"`
	Price      wireMoney `json:"price"`
}

type wirePropertyValue struct {
	PropertyID   int64    `json:"property_id"`
	PropertyName *string  `json:"property_name"`
	ScaleID      *int64   `json:"scale_id"`
	ScaleName    *string  `json:"scale_name"`
	ValueIDs     []int64  `json:"value_ids"`
	Values       []string `json:"values"`
}

func wireValues(vs []propValue) []wirePropertyValue {
	out := []wirePropertyValue{}
	for _, v := range vs {
		w := wirePropertyValue{PropertyID: v.propertyID, ScaleID: v.scaleID, ValueIDs: nonNil(v.valueIDs), Values: nonNil(v.values)}
		if v.propertyName != "" {
			w.PropertyName = ptr(v.propertyName)
		}
		out = append(out, w)
	}
	return out
}

func (s *Sim) wireInventoryLocked(l *listing) wireInventory {
	cur := s.shops[l.shopID].currency
	w := wireInventory{
		Products:           []wireProduct{},
		PriceOnProperty:    nonNil(l.inv.priceOnProperty),
		QuantityOnProperty: nonNil(l.inv.quantityOnProperty),
		SKUOnProperty:      nonNil(l.inv.skuOnProperty),
	}
	for _, p := range l.inv.products {
		w.Products = append(w.Products, wireProduct{
			ProductID: p.id, SKU: p.sku,
			Offerings: []wireOffering{{
				OfferingID: p.offer.id, Quantity: p.offer.quantity, IsEnabled: p.offer.enabled,
				Price: money(p.offer.price, cur),
			}},
			PropertyValues: wireValues(p.values),
		})
	}
	return w
}

type wireReceipt struct {
	BuyerEmail         *string           `json:"buyer_email"`
	BuyerUserID        int64             `json:"buyer_user_id"`
	City               string            `json:"city"`
	CountryISO         string            `json:"country_iso"`
	CreateTimestamp    int64             `json:"create_timestamp"`
	CreatedTimestamp   int64             `json:"created_timestamp"`
	DiscountAmt        wireMoney         `json:"discount_amt"`
	FirstLine          string            `json:"first_line"`
	FormattedAddress   string            `json:"formatted_address"`
	GiftMessage        string            `json:"gift_message"`
	GiftWrapPrice      wireMoney         `json:"gift_wrap_price"`
	Grandtotal         wireMoney         `json:"grandtotal"`
	IsGift             bool              `json:"is_gift"`
	IsPaid             bool              `json:"is_paid"`
	IsShipped          bool              `json:"is_shipped"`
	MessageFromBuyer   *string           `json:"message_from_buyer"`
	MessageFromPayment *string           `json:"message_from_payment"`
	MessageFromSeller  *string           `json:"message_from_seller"`
	Name               string            `json:"name"`
	PaymentEmail       string            `json:"payment_email"`
	PaymentMethod      string            `json:"payment_method"`
	ReceiptID          int64             `json:"receipt_id"`
	ReceiptType        int               `json:"receipt_type"`
	Refunds            []wireRefund      `json:"refunds"`
	SecondLine         *string           `json:"second_line"`
	SellerEmail        *string           `json:"seller_email"`
	SellerUserID       int64             `json:"seller_user_id"`
	Shipments          []wireShipment    `json:"shipments"`
	State              *string           `json:"state"`
	Status             string            `json:"status"`
	Subtotal           wireMoney         `json:"subtotal"`
	TotalPrice         wireMoney         `json:"total_price"`
	TotalShippingCost  wireMoney         `json:"total_shipping_cost"`
	TotalTaxCost       wireMoney         `json:"total_tax_cost"`
	TotalVATCost       wireMoney         `json:"total_vat_cost"`
	Transactions       []wireTransaction `json:"transactions"`
	UpdateTimestamp    int64             `json:"update_timestamp"`
	UpdatedTimestamp   int64             `json:"updated_timestamp"`
	Zip                string            `json:"zip"`
}

type wireRefund struct {
	Amount           wireMoney `json:"amount"`
	CreatedTimestamp int64     `json:"created_timestamp"`
	NoteFromIssuer   *string   `json:"note_from_issuer"`
	Reason           *string   `json:"reason"`
	Status           *string   `json:"status"`
}

type wireShipment struct {
	CarrierName                   string `json:"carrier_name"`
	ReceiptShippingID             *int64 `json:"receipt_shipping_id"`
	ShipmentNotificationTimestamp int64  `json:"shipment_notification_timestamp"`
	TrackingCode                  string `json:"tracking_code"`
}

type wireTransaction struct {
	BuyerCoupon       float64             `json:"buyer_coupon"`
	BuyerUserID       int64               `json:"buyer_user_id"`
	CreateTimestamp   int64               `json:"create_timestamp"`
	CreatedTimestamp  int64               `json:"created_timestamp"`
	Description       *string             `json:"description"`
	ExpectedShipDate  *int64              `json:"expected_ship_date"`
	FileData          string              `json:"file_data"`
	IsDigital         bool                `json:"is_digital"`
	ListingID         *int64              `json:"listing_id"`
	ListingImageID    *int64              `json:"listing_image_id"`
	MaxProcessingDays *int                `json:"max_processing_days"`
	MinProcessingDays *int                `json:"min_processing_days"`
	PaidTimestamp     *int64              `json:"paid_timestamp"`
	Price             wireMoney           `json:"price"`
	ProductData       []wirePropertyValue `json:"product_data"`
	ProductID         *int64              `json:"product_id"`
	Quantity          int                 `json:"quantity"`
	ReceiptID         int64               `json:"receipt_id"`
	SellerUserID      int64               `json:"seller_user_id"`
	ShippedTimestamp  *int64              `json:"shipped_timestamp"`
	ShippingCost      wireMoney           `json:"shipping_cost"`
	ShippingMethod    *string             `json:"shipping_method"`
	ShippingProfileID *int64              `json:"shipping_profile_id"`
	ShippingUpgrade   *string             `json:"shipping_upgrade"`
	ShopCoupon        float64             `json:"shop_coupon"`
	SKU               *string             `json:"sku"`
	Title             *string             `json:"title"`
	TransactionID     int64               `json:"transaction_id"`
	TransactionType   string              `json:"transaction_type"`
	Variations        []wireVariation     `json:"variations"`
}

type wireVariation struct {
	FormattedName  string `json:"formatted_name"`
	FormattedValue string `json:"formatted_value"`
	PropertyID     int64  `json:"property_id"`
	ValueID        *int64 `json:"value_id"`
}

func (s *Sim) wireReceiptLocked(r *receipt) wireReceipt {
	cur := r.currency
	w := wireReceipt{
		BuyerUserID: r.buyerID, City: r.buyer.city, CountryISO: r.buyer.country,
		CreateTimestamp: unix(r.created), CreatedTimestamp: unix(r.created),
		DiscountAmt: money(r.discount, cur), FirstLine: r.buyer.firstLine,
		FormattedAddress: strings.Join(nonEmpty(r.buyer.name, r.buyer.firstLine, strings.TrimSpace(r.buyer.city+" "+r.buyer.state+" "+r.buyer.zip), r.buyer.country), "\n"),
		GiftWrapPrice:    money(0, cur), Grandtotal: money(r.grandtotal(), cur),
		IsPaid: r.paid, IsShipped: r.shipped, Name: r.buyer.name, PaymentMethod: r.paymentType,
		ReceiptID: r.id, ReceiptType: 0, Refunds: []wireRefund{}, SellerUserID: r.sellerID,
		Shipments: []wireShipment{}, Status: r.status, Subtotal: money(r.subtotal(), cur),
		TotalPrice: money(r.totalPrice, cur), TotalShippingCost: money(r.shipping, cur),
		TotalTaxCost: money(r.tax, cur), TotalVATCost: money(0, cur), Transactions: []wireTransaction{},
		UpdateTimestamp: unix(r.updated), UpdatedTimestamp: unix(r.updated), Zip: r.buyer.zip,
	}
	if r.buyer.state != "" {
		w.State = ptr(r.buyer.state)
	}
	for _, f := range r.refunds {
		w.Refunds = append(w.Refunds, wireRefund{
			Amount: money(f.amount, cur), CreatedTimestamp: unix(f.created), Reason: ptr(f.reason), Status: ptr("completed"),
		})
	}
	for _, sh := range r.shipments {
		w.Shipments = append(w.Shipments, wireShipment{
			CarrierName: sh.carrier, ReceiptShippingID: ptr(sh.id),
			ShipmentNotificationTimestamp: unix(sh.notified), TrackingCode: sh.tracking,
		})
	}
	for _, tx := range r.txs {
		w.Transactions = append(w.Transactions, wireTx(r, tx))
	}
	return w
}

func wireTx(r *receipt, tx *transaction) wireTransaction {
	cur := r.currency
	w := wireTransaction{
		BuyerUserID: r.buyerID, CreateTimestamp: unix(tx.created), CreatedTimestamp: unix(tx.created),
		Description: ptr(""), ExpectedShipDate: ptr(unix(tx.created.Add(5 * 24 * time.Hour))),
		ListingID: ptr(tx.listingID), MaxProcessingDays: ptr(5), MinProcessingDays: ptr(1),
		PaidTimestamp: unixPtr(tx.paid), Price: money(tx.price, cur), ProductData: wireValues(tx.values),
		ProductID: ptr(tx.productID), Quantity: tx.quantity, ReceiptID: r.id, SellerUserID: r.sellerID,
		ShippedTimestamp: unixPtr(tx.shipped), ShippingCost: money(tx.shippingCost, cur),
		ShippingMethod: ptr("Standard"), Title: ptr(tx.title), TransactionID: tx.id,
		TransactionType: "listing", Variations: []wireVariation{},
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
			w.Variations = append(w.Variations, wireVariation{
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
