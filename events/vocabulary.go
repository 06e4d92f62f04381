package events

import (
	"encoding/json"
	"time"
)

// Money is an amount in the currency's minor units (cents), never a float.
type Money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

// Stable event type names. Renaming one is a data migration, not a refactor.
const (
	TypeWebhookReceived       = "etsy.webhook.received"
	TypeFetchFailed           = "etsy.fetch_failed"
	TypeShopConnected         = "shop.connected"
	TypeShopDisconnected      = "shop.disconnected"
	TypeShopSettingsChanged   = "shop.settings_changed"
	TypeShopReauthRequired    = "shop.reauth_required"
	TypeReconciliationDone    = "reconciliation.completed"
	TypeListingImported       = "listing.imported"
	TypeListingUpdated        = "listing.updated"
	TypeListingStateChanged   = "listing.state_changed"
	TypeListingDeleted        = "listing.deleted"
	TypeStockSold             = "stock.sold"
	TypeStockAdjusted         = "stock.adjusted"
	TypeStockObserved         = "stock.observed"
	TypeStockDriftDetected    = "stock.drift_detected"
	TypeStockThresholdSet     = "stock.threshold_set"
	TypeStockThresholdCleared = "stock.threshold_cleared"
	TypeSaleRecorded          = "sale.recorded"
	TypeSalePaid              = "sale.paid"
	TypeSaleShipped           = "sale.shipped"
	TypeSaleDelivered         = "sale.delivered"
	TypeSaleCanceled          = "sale.canceled"
	TypeSaleRefunded          = "sale.refunded"
	TypeAlertLowStockRaised   = "alert.low_stock_raised"
	TypeAlertLowStockCleared  = "alert.low_stock_cleared"
)

// Reasons a stock adjustment can carry.
const (
	ReasonEtsyChange    = "etsy_change"
	ReasonInitialImport = "initial_import"
	ReasonRestock       = "restock"
	ReasonCancellation  = "cancellation"
	ReasonCorrection    = "correction"
)

// WebhookReceived is the evidence of one Etsy webhook, exactly as received.
type WebhookReceived struct {
	WebhookID     string            `json:"webhook_id"`
	Timestamp     int64             `json:"timestamp"`
	EtsyEventType string            `json:"event_type"`
	ResourceURL   string            `json:"resource_url"`
	ShopID        int64             `json:"shop_id"`
	Headers       map[string]string `json:"headers"`
	RawBody       []byte            `json:"raw_body"`
	ReceivedAt    time.Time         `json:"received_at"`
}

// FetchFailed records that following a webhook's resource_url failed for
// good; reconciliation repairs what it missed.
type FetchFailed struct {
	WebhookEventID string `json:"webhook_event_id"`
	WebhookID      string `json:"webhook_id"`
	ResourceURL    string `json:"resource_url"`
	Reason         string `json:"reason"`
	Attempts       int    `json:"attempts"`
}

// ShopConnected records a seller granting us access to a shop.
type ShopConnected struct {
	ShopID   int64    `json:"shop_id"`
	ShopName string   `json:"shop_name"`
	UserID   int64    `json:"user_id"`
	Currency string   `json:"currency,omitempty"`
	Scopes   []string `json:"scopes,omitempty"`
}

// ShopDisconnected records that a shop's access was withdrawn.
type ShopDisconnected struct {
	ShopID int64  `json:"shop_id"`
	Reason string `json:"reason,omitempty"`
}

// ShopSettingsChanged carries only the settings that changed.
type ShopSettingsChanged struct {
	ShopID                   int64          `json:"shop_id"`
	SyncEnabled              *bool          `json:"sync_enabled,omitempty"`
	SyncIntervalSeconds      *int64         `json:"sync_interval_seconds,omitempty"`
	DefaultLowStockThreshold *int64         `json:"default_low_stock_threshold,omitempty"`
	AlertChannels            []AlertChannel `json:"alert_channels,omitempty"`
}

// AlertChannel is where a shop's alerts go. Secrets are not stored here.
type AlertChannel struct {
	Kind   string `json:"kind"` // email, webhook, slack
	Target string `json:"target"`
}

// ShopReauthRequired records that Etsy refused our refresh token.
type ShopReauthRequired struct {
	ShopID int64  `json:"shop_id"`
	Reason string `json:"reason"`
}

// ReconciliationCompleted closes one polling pass over a shop.
type ReconciliationCompleted struct {
	ShopID         int64     `json:"shop_id"`
	StartedAt      time.Time `json:"started_at"`
	FinishedAt     time.Time `json:"finished_at"`
	Watermark      time.Time `json:"watermark"`
	ReceiptsSeen   int       `json:"receipts_seen"`
	ListingsSeen   int       `json:"listings_seen"`
	EventsAppended int       `json:"events_appended"`
	DriftFound     int       `json:"drift_found"`
	APICalls       int       `json:"api_calls"`
	DurationMillis int64     `json:"duration_ms"`
	Scope          string    `json:"scope,omitempty"` // all, products, sales
	// IntervalSeconds is the polling interval in force for the shop when
	// the run completed: its own setting, else the scheduler's default.
	// Zero when the reconciler was not told its default.
	IntervalSeconds int64 `json:"interval_seconds,omitempty"`
}

// Variant is one purchasable combination of a listing as Etsy describes it.
// Key is its identity in the ledger: the SKU when set, else the listing id
// and its sorted property value ids, because Etsy regenerates product ids on
// every inventory write.
type Variant struct {
	Key        string `json:"key"`
	SKU        string `json:"sku,omitempty"`
	ProductID  int64  `json:"product_id,omitempty"`
	Properties string `json:"properties,omitempty"` // "Color: Blue, Size: M"
	Price      Money  `json:"price"`
	Enabled    bool   `json:"enabled"`
}

// ListingImported records the first time the ledger sees a listing.
type ListingImported struct {
	ListingID     int64     `json:"listing_id"`
	ShopID        int64     `json:"shop_id"`
	Title         string    `json:"title"`
	State         string    `json:"state"`
	URL           string    `json:"url,omitempty"`
	Price         Money     `json:"price"`
	Variants      []Variant `json:"variants"`
	EtsyUpdatedAt time.Time `json:"etsy_updated_at"`
}

// ListingUpdated records a change to a listing's descriptive fields or
// variant set. It carries the listing's full new description.
type ListingUpdated struct {
	ListingID     int64     `json:"listing_id"`
	ShopID        int64     `json:"shop_id"`
	Title         string    `json:"title"`
	State         string    `json:"state"`
	URL           string    `json:"url,omitempty"`
	Price         Money     `json:"price"`
	Variants      []Variant `json:"variants"`
	EtsyUpdatedAt time.Time `json:"etsy_updated_at"`
}

// ListingStateChanged records a move between Etsy listing states.
type ListingStateChanged struct {
	ListingID int64  `json:"listing_id"`
	From      string `json:"from"`
	To        string `json:"to"`
}

// ListingDeleted records that the listing is gone from Etsy.
type ListingDeleted struct {
	ListingID int64 `json:"listing_id"`
}

// StockSold is units leaving stock because a buyer bought them.
type StockSold struct {
	ListingID     int64  `json:"listing_id"`
	VariantKey    string `json:"variant_key"`
	Quantity      int64  `json:"quantity"`
	ReceiptID     int64  `json:"receipt_id"`
	TransactionID int64  `json:"transaction_id"`
}

// StockAdjusted is any other movement, with its reason and cause.
type StockAdjusted struct {
	ListingID  int64  `json:"listing_id"`
	VariantKey string `json:"variant_key"`
	Delta      int64  `json:"delta"`
	Reason     string `json:"reason"`
	// Cause names what made the movement: "webhook:<id>", "reconciliation",
	// "receipt:<id>", "actor:<who>".
	Cause string `json:"cause,omitempty"`
}

// StockObserved is Etsy's number for a variant at a time.
type StockObserved struct {
	ListingID  int64     `json:"listing_id"`
	VariantKey string    `json:"variant_key"`
	Quantity   int64     `json:"quantity"`
	ObservedAt time.Time `json:"observed_at"`
	Source     string    `json:"source"` // webhook, reconciliation
}

// StockDriftDetected records that Etsy's number differed from what the
// ledger expected without a fact to explain it.
type StockDriftDetected struct {
	ListingID  int64  `json:"listing_id"`
	VariantKey string `json:"variant_key"`
	Expected   int64  `json:"expected"`
	Observed   int64  `json:"observed"`
}

// Threshold scopes.
const (
	ScopeVariant = "variant"
	ScopeListing = "listing"
	ScopeShop    = "shop"
)

// StockThresholdSet changes the low-stock line of a variant, a listing or
// a shop's default. Schema v2 added Scope; v1 payloads were per variant.
type StockThresholdSet struct {
	Scope      string `json:"scope"`
	ShopID     int64  `json:"shop_id"`
	ListingID  int64  `json:"listing_id,omitempty"`
	VariantKey string `json:"variant_key,omitempty"`
	Threshold  int64  `json:"threshold"`
	Actor      string `json:"actor"`
}

// StockThresholdCleared takes back the low-stock line of a variant, a
// listing or a shop's default set before: the variant or listing falls
// back to the line above it, the shop to the built-in default. It is the
// compensating fact for a threshold set by mistake.
type StockThresholdCleared struct {
	Scope      string `json:"scope"`
	ShopID     int64  `json:"shop_id"`
	ListingID  int64  `json:"listing_id,omitempty"`
	VariantKey string `json:"variant_key,omitempty"`
	Actor      string `json:"actor"`
	// Reason says why, for whoever reads the log later.
	Reason string `json:"reason,omitempty"`
}

// SaleItem is one line of a receipt.
type SaleItem struct {
	TransactionID int64  `json:"transaction_id"`
	ListingID     int64  `json:"listing_id"`
	VariantKey    string `json:"variant_key"`
	SKU           string `json:"sku,omitempty"`
	Title         string `json:"title,omitempty"`
	Quantity      int64  `json:"quantity"`
	UnitPrice     Money  `json:"unit_price"`
}

// SaleRecorded is a receipt as first recorded, with its line items and
// totals. Buyer details stay at Etsy.
type SaleRecorded struct {
	ReceiptID     int64      `json:"receipt_id"`
	ShopID        int64      `json:"shop_id"`
	Status        string     `json:"status"`
	Items         []SaleItem `json:"items"`
	Subtotal      Money      `json:"subtotal"`
	Shipping      Money      `json:"shipping"`
	Tax           Money      `json:"tax"`
	Discount      Money      `json:"discount"`
	GrandTotal    Money      `json:"grand_total"`
	CreatedAt     time.Time  `json:"created_at"`
	EtsyUpdatedAt time.Time  `json:"etsy_updated_at"`
}

// SalePaid, SaleShipped, SaleDelivered and SaleCanceled are receipt status
// facts.
type SalePaid struct {
	ReceiptID int64 `json:"receipt_id"`
}

type SaleShipped struct {
	ReceiptID    int64  `json:"receipt_id"`
	Carrier      string `json:"carrier,omitempty"`
	TrackingCode string `json:"tracking_code,omitempty"`
}

type SaleDelivered struct {
	ReceiptID int64 `json:"receipt_id"`
}

type SaleCanceled struct {
	ReceiptID int64  `json:"receipt_id"`
	Reason    string `json:"reason,omitempty"`
}

// SaleRefunded is money returned to the buyer.
type SaleRefunded struct {
	ReceiptID int64  `json:"receipt_id"`
	Amount    Money  `json:"amount"`
	Reason    string `json:"reason,omitempty"`
	// RefundKey identifies the refund at Etsy (its creation time) so the
	// same refund is recorded once.
	RefundKey string `json:"refund_key,omitempty"`
}

// LowStockRaised and LowStockCleared are the alerter's decisions.
type LowStockRaised struct {
	AlertID    string `json:"alert_id"`
	ShopID     int64  `json:"shop_id"`
	ListingID  int64  `json:"listing_id"`
	VariantKey string `json:"variant_key"`
	Quantity   int64  `json:"quantity"`
	Threshold  int64  `json:"threshold"`
	// Muted is true when the seller was already paged about this variant
	// less than the alert cooldown (in business time) before: the alert
	// is open but not delivered again, so an oscillating quantity does
	// not page every time it dips.
	Muted bool `json:"muted,omitempty"`
}

// Reasons an alert clears.
const (
	ClearedStockAbove     = "stock_above_threshold"
	ClearedThresholdMoved = "threshold_changed"
	ClearedListingDeleted = "listing_deleted"
)

type LowStockCleared struct {
	AlertID    string `json:"alert_id"`
	ShopID     int64  `json:"shop_id"`
	ListingID  int64  `json:"listing_id"`
	VariantKey string `json:"variant_key"`
	Quantity   int64  `json:"quantity"`
	Threshold  int64  `json:"threshold"`
	Reason     string `json:"reason,omitempty"`
}

func (WebhookReceived) EventType() string         { return TypeWebhookReceived }
func (FetchFailed) EventType() string             { return TypeFetchFailed }
func (ShopConnected) EventType() string           { return TypeShopConnected }
func (ShopDisconnected) EventType() string        { return TypeShopDisconnected }
func (ShopSettingsChanged) EventType() string     { return TypeShopSettingsChanged }
func (ShopReauthRequired) EventType() string      { return TypeShopReauthRequired }
func (ReconciliationCompleted) EventType() string { return TypeReconciliationDone }
func (ListingImported) EventType() string         { return TypeListingImported }
func (ListingUpdated) EventType() string          { return TypeListingUpdated }
func (ListingStateChanged) EventType() string     { return TypeListingStateChanged }
func (ListingDeleted) EventType() string          { return TypeListingDeleted }
func (StockSold) EventType() string               { return TypeStockSold }
func (StockAdjusted) EventType() string           { return TypeStockAdjusted }
func (StockObserved) EventType() string           { return TypeStockObserved }
func (StockDriftDetected) EventType() string      { return TypeStockDriftDetected }
func (StockThresholdSet) EventType() string       { return TypeStockThresholdSet }
func (StockThresholdCleared) EventType() string   { return TypeStockThresholdCleared }
func (SaleRecorded) EventType() string            { return TypeSaleRecorded }
func (SalePaid) EventType() string                { return TypeSalePaid }
func (SaleShipped) EventType() string             { return TypeSaleShipped }
func (SaleDelivered) EventType() string           { return TypeSaleDelivered }
func (SaleCanceled) EventType() string            { return TypeSaleCanceled }
func (SaleRefunded) EventType() string            { return TypeSaleRefunded }
func (LowStockRaised) EventType() string          { return TypeAlertLowStockRaised }
func (LowStockCleared) EventType() string         { return TypeAlertLowStockCleared }

func init() {
	register(1, WebhookReceived{})
	register(1, FetchFailed{})
	register(1, ShopConnected{})
	register(1, ShopDisconnected{})
	register(1, ShopSettingsChanged{})
	register(1, ShopReauthRequired{})
	register(1, ReconciliationCompleted{})
	register(1, ListingImported{})
	register(1, ListingUpdated{})
	register(1, ListingStateChanged{})
	register(1, ListingDeleted{})
	register(1, StockSold{})
	register(1, StockAdjusted{})
	register(1, StockObserved{})
	register(1, StockDriftDetected{})
	register(2, StockThresholdSet{})
	register(1, StockThresholdCleared{})
	register(1, SaleRecorded{})
	register(1, SalePaid{})
	register(1, SaleShipped{})
	register(1, SaleDelivered{})
	register(1, SaleCanceled{})
	register(1, SaleRefunded{})
	register(1, LowStockRaised{})
	register(1, LowStockCleared{})

	// v1 thresholds were always per variant and had no scope field.
	registerUpcaster(TypeStockThresholdSet, 1, func(data json.RawMessage) (json.RawMessage, error) {
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			return nil, err
		}
		if _, ok := m["scope"]; !ok {
			m["scope"] = ScopeVariant
		}
		return json.Marshal(m)
	})
}
