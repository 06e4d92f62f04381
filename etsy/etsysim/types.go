package etsysim

import "time"

// ShopSpec describes a shop to create.
type ShopSpec struct {
	Name     string `json:"shop_name,omitempty"`     // default generated
	Currency string `json:"currency_code,omitempty"` // default USD
}

// ShopInfo is a shop and the user who owns it.
type ShopInfo struct {
	ShopID       int64     `json:"shop_id"`
	UserID       int64     `json:"user_id"`
	Name         string    `json:"shop_name"`
	Currency     string    `json:"currency_code"`
	ListingCount int       `json:"listing_count"`
	CreatedAt    time.Time `json:"created_at"`
}

// PropertyValueSpec is one property value of a product.
type PropertyValueSpec struct {
	PropertyID   int64  `json:"property_id,omitempty"` // default: a custom property by name
	PropertyName string `json:"property_name"`
	Value        string `json:"value"`
}

// ProductSpec is one variant of a listing to create.
type ProductSpec struct {
	SKU            string              `json:"sku,omitempty"`
	PropertyValues []PropertyValueSpec `json:"property_values,omitempty"`
	Price          int64               `json:"price"` // minor units; default the listing's price
	Quantity       int                 `json:"quantity"`
	Disabled       bool                `json:"disabled,omitempty"`
}

// ListingSpec describes a listing to create. Without Products it has one
// product with Price, Quantity and SKU.
type ListingSpec struct {
	Title        string        `json:"title,omitempty"` // default generated
	Description  string        `json:"description,omitempty"`
	State        string        `json:"state,omitempty"` // default active
	Price        int64         `json:"price,omitempty"` // minor units; default 1500
	Quantity     int           `json:"quantity,omitempty"`
	SKU          string        `json:"sku,omitempty"`
	Products     []ProductSpec `json:"products,omitempty"`
	ShippingCost int64         `json:"shipping_cost,omitempty"` // per order line, minor units
}

// ListingEdit changes a listing the way a seller editing it on Etsy would.
// Nil fields stay as they are.
type ListingEdit struct {
	Title *string `json:"title,omitempty"`
	State *string `json:"state,omitempty"` // active or inactive
	Price *int64  `json:"price,omitempty"` // every enabled variant, minor units; an inventory write
}

// Restock adds (or with Set, sets) stock through an inventory write, as a
// seller restocking on Etsy does, so product and offering ids change.
// VariantKey or SKU picks one variant; neither means every variant.
type Restock struct {
	VariantKey string `json:"variant_key,omitempty"`
	SKU        string `json:"sku,omitempty"`
	Delta      int    `json:"delta,omitempty"`
	Set        *int   `json:"set,omitempty"`
}

// OrderItem is one line of an order. The variant is picked by VariantKey,
// SKU or ValueIDs; with none of them the listing must have one product
// (or, for random orders, any variant with stock is taken).
type OrderItem struct {
	ListingID  int64   `json:"listing_id"`
	VariantKey string  `json:"variant_key,omitempty"`
	SKU        string  `json:"sku,omitempty"`
	ValueIDs   []int64 `json:"value_ids,omitempty"`
	Quantity   int     `json:"quantity"`
}

// OrderSpec is a buyer's order, paid at once (order.paid fires).
type OrderSpec struct {
	Items        []OrderItem `json:"items"`
	Discount     int64       `json:"discount,omitempty"`      // minor units off the items
	ShippingCost *int64      `json:"shipping_cost,omitempty"` // default the listings' shipping costs
	TaxCost      int64       `json:"tax_cost,omitempty"`
	BuyerName    string      `json:"buyer_name,omitempty"`
}

// VariantTruth is the simulator's truth about one product of a listing.
type VariantTruth struct {
	VariantKey     string   `json:"variant_key"`
	ProductID      int64    `json:"product_id"`
	OfferingID     int64    `json:"offering_id"`
	SKU            string   `json:"sku,omitempty"`
	PropertyIDs    []int64  `json:"property_ids,omitempty"`
	ValueIDs       []int64  `json:"value_ids,omitempty"`
	Values         []string `json:"values,omitempty"`
	Quantity       int      `json:"quantity"`
	Price          int64    `json:"price"`
	Enabled        bool     `json:"enabled"`
	DisplayedValue string   `json:"displayed_value,omitempty"`
}

// ListingTruth is the simulator's truth about a listing.
type ListingTruth struct {
	ListingID     int64          `json:"listing_id"`
	ShopID        int64          `json:"shop_id"`
	Title         string         `json:"title"`
	State         string         `json:"state"`
	Quantity      int            `json:"quantity"`
	Price         int64          `json:"price"`
	Currency      string         `json:"currency_code"`
	HasVariations bool           `json:"has_variations"`
	Deleted       bool           `json:"deleted,omitempty"`
	Variants      []VariantTruth `json:"variants"`
	CreatedAt     time.Time      `json:"created_at"`
	UpdatedAt     time.Time      `json:"updated_at"`
}

// ItemTruth is one transaction of a receipt.
type ItemTruth struct {
	TransactionID int64  `json:"transaction_id"`
	ListingID     int64  `json:"listing_id"`
	ProductID     int64  `json:"product_id"`
	VariantKey    string `json:"variant_key"`
	SKU           string `json:"sku,omitempty"`
	Quantity      int    `json:"quantity"`
	Price         int64  `json:"price"` // unit price, minor units
}

// ReceiptTruth is the simulator's truth about a receipt. Money is in minor
// units of Currency.
type ReceiptTruth struct {
	ReceiptID    int64       `json:"receipt_id"`
	ShopID       int64       `json:"shop_id"`
	BuyerUserID  int64       `json:"buyer_user_id"`
	Status       string      `json:"status"`
	IsPaid       bool        `json:"is_paid"`
	IsShipped    bool        `json:"is_shipped"`
	IsDelivered  bool        `json:"is_delivered"`
	IsCanceled   bool        `json:"is_canceled"`
	Currency     string      `json:"currency_code"`
	TotalPrice   int64       `json:"total_price"`
	Discount     int64       `json:"discount_amt"`
	Subtotal     int64       `json:"subtotal"`
	ShippingCost int64       `json:"total_shipping_cost"`
	TaxCost      int64       `json:"total_tax_cost"`
	GrandTotal   int64       `json:"grandtotal"`
	Refunded     int64       `json:"refunded"`
	Items        []ItemTruth `json:"items"`
	CreatedAt    time.Time   `json:"created_at"`
	UpdatedAt    time.Time   `json:"updated_at"`
}

// Truth is everything the simulator holds for one shop (or all shops).
type Truth struct {
	Shops    []ShopInfo     `json:"shops"`
	Listings []ListingTruth `json:"listings"`
	Receipts []ReceiptTruth `json:"receipts"`
}

// WebhookSpec registers a webhook endpoint, as Etsy's portal does.
type WebhookSpec struct {
	URL        string   `json:"url"`
	Secret     string   `json:"secret,omitempty"`      // whsec_…; default generated
	EventTypes []string `json:"event_types,omitempty"` // default every event
	ShopIDs    []int64  `json:"shop_ids,omitempty"`    // default every shop
}

// WebhookEndpoint is a registered endpoint.
type WebhookEndpoint struct {
	ID         string   `json:"id"`
	URL        string   `json:"url"`
	Secret     string   `json:"secret"`
	EventTypes []string `json:"event_types,omitempty"`
	ShopIDs    []int64  `json:"shop_ids,omitempty"`
	Disabled   bool     `json:"disabled"`
	// PreviousSecret, while set, signs every delivery too, as a sender
	// does during secret rotation.
	PreviousSecret string `json:"previous_secret,omitempty"`
}

// Delivery states.
const (
	DeliveryPending   = "pending"
	DeliverySucceeded = "succeeded"
	DeliveryFailed    = "failed" // every attempt of Etsy's schedule failed
	DeliveryDropped   = "dropped"
)

// Attempt is one POST of a webhook message.
type Attempt struct {
	At        time.Time `json:"at"`        // simulated time
	Timestamp int64     `json:"timestamp"` // the webhook-timestamp sent
	Status    int       `json:"status,omitempty"`
	Error     string    `json:"error,omitempty"`
	Duplicate bool      `json:"duplicate,omitempty"`
}

// Delivery is one webhook message to one endpoint and what became of it.
type Delivery struct {
	MessageID   string    `json:"message_id"`
	EndpointID  string    `json:"endpoint_id"`
	EventType   string    `json:"event_type"`
	ShopID      int64     `json:"shop_id"`
	ResourceURL string    `json:"resource_url"`
	Body        string    `json:"body"`
	State       string    `json:"state"`
	Faults      []string  `json:"faults,omitempty"`
	Attempts    []Attempt `json:"attempts"`
	CreatedAt   time.Time `json:"created_at"`
	NextAttempt time.Time `json:"next_attempt,omitzero"`
}

// DeliveryFilter selects deliveries; zero fields match everything.
type DeliveryFilter struct {
	EventType  string `json:"event_type,omitempty"`
	ShopID     int64  `json:"shop_id,omitempty"`
	State      string `json:"state,omitempty"`
	EndpointID string `json:"endpoint_id,omitempty"`
}

// KeyStats counts what one app key asked for.
type KeyStats struct {
	Served      int64 `json:"served"`
	RateLimited int64 `json:"rate_limited"`
	// MaxQPS is the most requests that arrived within any one real
	// second (a sliding window), refused ones included.
	MaxQPS int `json:"max_qps"`
	// DayUsed is the rolling day's count so far.
	DayUsed int `json:"day_used"`
}

// Stats are the simulator's counters.
type Stats struct {
	RequestsServed   int64               `json:"requests_served"`
	RateLimited      int64               `json:"rate_limited"`
	Keys             map[string]KeyStats `json:"keys"`
	TokenExchanges   int64               `json:"token_exchanges"`
	RefreshCalls     int64               `json:"refresh_calls"`
	RefreshFailures  int64               `json:"refresh_failures"`
	Authorizations   int64               `json:"authorizations"`
	Orders           int64               `json:"orders"`
	WebhookMessages  int64               `json:"webhook_messages"`
	WebhookAttempts  int64               `json:"webhook_attempts"`
	WebhookSucceeded int64               `json:"webhook_succeeded"`
	WebhookFailed    int64               `json:"webhook_failed"`
	WebhookDropped   int64               `json:"webhook_dropped"`
	WebhookPending   int                 `json:"webhook_pending"`
	// ResourceDelayed and ResourceThrottled count resource fetches held
	// back or answered 429 by APIFaults.
	ResourceDelayed   int64 `json:"resource_delayed"`
	ResourceThrottled int64 `json:"resource_throttled"`
}
