// Package wire declares Etsy's JSON objects field for field, in the order
// of Etsy's OpenAPI schemas, so the client decodes and the simulator
// writes the same structs. Nullable fields are pointers; timestamps the
// client must tolerate as null are pointers too.
package wire

import "encoding/json"

// Money is Etsy's Money object. json.Number keeps the literal text, so
// decoding forms no float.
type Money struct {
	Amount       json.Number `json:"amount"`
	Divisor      json.Number `json:"divisor"`
	CurrencyCode string      `json:"currency_code"`
}

// Page is one page of a list endpoint; Count is the number of matching
// objects, ignoring limit and offset.
type Page[T any] struct {
	Count   int `json:"count"`
	Results []T `json:"results"`
}

// Self is getMe's answer.
type Self struct {
	UserID int64 `json:"user_id"`
	ShopID int64 `json:"shop_id"`
}

// Shop is Etsy's Shop.
type Shop struct {
	AcceptsCustomRequests          bool     `json:"accepts_custom_requests"`
	Announcement                   *string  `json:"announcement"`
	CreateDate                     int64    `json:"create_date"`
	CreatedTimestamp               *int64   `json:"created_timestamp"`
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
	UpdatedTimestamp               *int64   `json:"updated_timestamp"`
	URL                            string   `json:"url"`
	UserID                         int64    `json:"user_id"`
	VacationAutoreply              *string  `json:"vacation_autoreply"`
	VacationMessage                *string  `json:"vacation_message"`
}

// Listing is Etsy's ShopListing; SKUs, Views and ProductionPartners
// belong to ShopListingWithAssociations, Inventory to includes=Inventory.
type Listing struct {
	CreatedTimestamp            *int64      `json:"created_timestamp"`
	CreationTimestamp           int64       `json:"creation_timestamp"`
	Description                 string      `json:"description"`
	EndingTimestamp             int64       `json:"ending_timestamp"`
	FeaturedRank                int         `json:"featured_rank"`
	FileData                    string      `json:"file_data"`
	HasVariations               bool        `json:"has_variations"`
	Inventory                   *Inventory  `json:"inventory,omitempty"`
	IsCustomizable              bool        `json:"is_customizable"`
	IsPersonalizable            bool        `json:"is_personalizable"`
	IsPrivate                   bool        `json:"is_private"`
	IsSupply                    *bool       `json:"is_supply"`
	IsTaxable                   bool        `json:"is_taxable"`
	ItemDimensionsUnit          *string     `json:"item_dimensions_unit"`
	ItemHeight                  *float64    `json:"item_height"`
	ItemLength                  *float64    `json:"item_length"`
	ItemWeight                  *float64    `json:"item_weight"`
	ItemWeightUnit              *string     `json:"item_weight_unit"`
	ItemWidth                   *float64    `json:"item_width"`
	Language                    *string     `json:"language"`
	LastModifiedTimestamp       *int64      `json:"last_modified_timestamp"`
	ListingID                   int64       `json:"listing_id"`
	ListingType                 string      `json:"listing_type"`
	Materials                   []string    `json:"materials"`
	NonTaxable                  bool        `json:"non_taxable"`
	NumFavorers                 int         `json:"num_favorers"`
	OriginalCreationTimestamp   int64       `json:"original_creation_timestamp"`
	PersonalizationCharCountMax *int        `json:"personalization_char_count_max"`
	PersonalizationInstructions *string     `json:"personalization_instructions"`
	PersonalizationIsRequired   bool        `json:"personalization_is_required"`
	Price                       Money       `json:"price"`
	ProcessingMax               *int        `json:"processing_max"`
	ProcessingMin               *int        `json:"processing_min"`
	ProductionPartners          *[]struct{} `json:"production_partners,omitempty"`
	Quantity                    int         `json:"quantity"`
	ReturnPolicyID              *int64      `json:"return_policy_id"`
	ShippingProfileID           *int64      `json:"shipping_profile_id"`
	ShopID                      int64       `json:"shop_id"`
	ShopSectionID               *int64      `json:"shop_section_id"`
	ShouldAutoRenew             bool        `json:"should_auto_renew"`
	SKUs                        *[]string   `json:"skus,omitempty"`
	State                       string      `json:"state"`
	StateTimestamp              *int64      `json:"state_timestamp"`
	Style                       []string    `json:"style"`
	Tags                        []string    `json:"tags"`
	TaxonomyID                  *int64      `json:"taxonomy_id"`
	Title                       string      `json:"title"`
	UpdatedTimestamp            *int64      `json:"updated_timestamp"`
	URL                         string      `json:"url"`
	UserID                      int64       `json:"user_id"`
	Views                       *int        `json:"views,omitempty"`
	WhenMade                    *string     `json:"when_made"`
	WhoMade                     *string     `json:"who_made"`
}

// Inventory is Etsy's ListingInventory.
type Inventory struct {
	Products           []Product `json:"products"`
	PriceOnProperty    []int64   `json:"price_on_property"`
	QuantityOnProperty []int64   `json:"quantity_on_property"`
	SKUOnProperty      []int64   `json:"sku_on_property"`
	// ReadinessStateOnProperty is absent for listings without processing
	// profiles.
	ReadinessStateOnProperty []int64 `json:"readiness_state_on_property,omitempty"`
}

// Product is Etsy's ListingInventoryProduct.
type Product struct {
	ProductID      int64           `json:"product_id"`
	SKU            *string         `json:"sku"`
	IsDeleted      bool            `json:"is_deleted"`
	Offerings      []Offering      `json:"offerings"`
	PropertyValues []PropertyValue `json:"property_values"`
}

// Offering is Etsy's ListingInventoryProductOffering.
type Offering struct {
	OfferingID int64 `json:"offering_id"`
	Quantity   int   `json:"quantity"`
	IsEnabled  bool  `json:"is_enabled"`
	IsDeleted  bool  `json:"is_deleted"`
	Price      Money `json:"price"`
	// ReadinessStateID is null or absent for listings without
	// processing profiles.
	ReadinessStateID *int64 `json:"readiness_state_id,omitempty"`
}

// PropertyValue is Etsy's ListingPropertyValue.
type PropertyValue struct {
	PropertyID   int64    `json:"property_id"`
	PropertyName *string  `json:"property_name"`
	ScaleID      *int64   `json:"scale_id"`
	ScaleName    *string  `json:"scale_name"`
	ValueIDs     []int64  `json:"value_ids"`
	Values       []string `json:"values"`
}

// Receipt is Etsy's ShopReceipt.
type Receipt struct {
	BuyerEmail         *string       `json:"buyer_email"`
	BuyerUserID        int64         `json:"buyer_user_id"`
	City               string        `json:"city"`
	CountryISO         *string       `json:"country_iso"`
	CreateTimestamp    int64         `json:"create_timestamp"`
	CreatedTimestamp   *int64        `json:"created_timestamp"`
	DiscountAmt        Money         `json:"discount_amt"`
	FirstLine          string        `json:"first_line"`
	FormattedAddress   string        `json:"formatted_address"`
	GiftMessage        string        `json:"gift_message"`
	GiftWrapPrice      Money         `json:"gift_wrap_price"`
	Grandtotal         Money         `json:"grandtotal"`
	IsGift             bool          `json:"is_gift"`
	IsPaid             bool          `json:"is_paid"`
	IsShipped          bool          `json:"is_shipped"`
	MessageFromBuyer   *string       `json:"message_from_buyer"`
	MessageFromPayment *string       `json:"message_from_payment"`
	MessageFromSeller  *string       `json:"message_from_seller"`
	Name               string        `json:"name"`
	PaymentEmail       string        `json:"payment_email"`
	PaymentMethod      string        `json:"payment_method"`
	ReceiptID          int64         `json:"receipt_id"`
	ReceiptType        int           `json:"receipt_type"`
	Refunds            []Refund      `json:"refunds"`
	SecondLine         *string       `json:"second_line"`
	SellerEmail        *string       `json:"seller_email"`
	SellerUserID       int64         `json:"seller_user_id"`
	Shipments          []Shipment    `json:"shipments"`
	State              *string       `json:"state"`
	Status             string        `json:"status"`
	Subtotal           Money         `json:"subtotal"`
	TotalPrice         Money         `json:"total_price"`
	TotalShippingCost  Money         `json:"total_shipping_cost"`
	TotalTaxCost       Money         `json:"total_tax_cost"`
	TotalVATCost       Money         `json:"total_vat_cost"`
	Transactions       []Transaction `json:"transactions"`
	UpdateTimestamp    int64         `json:"update_timestamp"`
	UpdatedTimestamp   *int64        `json:"updated_timestamp"`
	Zip                string        `json:"zip"`
}

// Refund is Etsy's ShopRefund.
type Refund struct {
	Amount           Money   `json:"amount"`
	CreatedTimestamp *int64  `json:"created_timestamp"`
	NoteFromIssuer   *string `json:"note_from_issuer"`
	Reason           *string `json:"reason"`
	Status           *string `json:"status"`
}

// Shipment is Etsy's ShopReceiptShipment.
type Shipment struct {
	CarrierName                   string `json:"carrier_name"`
	ReceiptShippingID             *int64 `json:"receipt_shipping_id"`
	ShipmentNotificationTimestamp *int64 `json:"shipment_notification_timestamp"`
	TrackingCode                  string `json:"tracking_code"`
}

// Transaction is Etsy's ShopReceiptTransaction.
type Transaction struct {
	BuyerCoupon       float64         `json:"buyer_coupon"`
	BuyerUserID       int64           `json:"buyer_user_id"`
	CreateTimestamp   int64           `json:"create_timestamp"`
	CreatedTimestamp  *int64          `json:"created_timestamp"`
	Description       *string         `json:"description"`
	ExpectedShipDate  *int64          `json:"expected_ship_date"`
	FileData          string          `json:"file_data"`
	IsDigital         bool            `json:"is_digital"`
	ListingID         *int64          `json:"listing_id"`
	ListingImageID    *int64          `json:"listing_image_id"`
	MaxProcessingDays *int            `json:"max_processing_days"`
	MinProcessingDays *int            `json:"min_processing_days"`
	PaidTimestamp     *int64          `json:"paid_timestamp"`
	Price             Money           `json:"price"`
	ProductData       []PropertyValue `json:"product_data"`
	ProductID         *int64          `json:"product_id"`
	Quantity          int             `json:"quantity"`
	ReceiptID         int64           `json:"receipt_id"`
	SellerUserID      int64           `json:"seller_user_id"`
	ShippedTimestamp  *int64          `json:"shipped_timestamp"`
	ShippingCost      Money           `json:"shipping_cost"`
	ShippingMethod    *string         `json:"shipping_method"`
	ShippingProfileID *int64          `json:"shipping_profile_id"`
	ShippingUpgrade   *string         `json:"shipping_upgrade"`
	ShopCoupon        float64         `json:"shop_coupon"`
	SKU               *string         `json:"sku"`
	Title             *string         `json:"title"`
	TransactionID     int64           `json:"transaction_id"`
	TransactionType   string          `json:"transaction_type"`
	Variations        []Variation     `json:"variations"`
}

// Variation is Etsy's TransactionVariations entry.
type Variation struct {
	FormattedName  string `json:"formatted_name"`
	FormattedValue string `json:"formatted_value"`
	PropertyID     int64  `json:"property_id"`
	ValueID        *int64 `json:"value_id"`
}
