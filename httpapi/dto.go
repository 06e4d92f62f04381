package httpapi

import (
	"strconv"
	"time"
)

// The response types below are the allow-list of what leaves the service:
// a field exists here only if a seller or auditor needs it. Read models may
// hold more (alert channel targets, tracking codes, scopes); it stays in.

// Money is an amount in minor units (cents) and its ISO currency.
type Money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

// Shop is one of the seller's shops.
type Shop struct {
	ShopID                   int64      `json:"shop_id"`
	Name                     string     `json:"name"`
	Currency                 string     `json:"currency"`
	ConnectionState          string     `json:"connection_state"`
	StateReason              string     `json:"state_reason"`
	SyncEnabled              bool       `json:"sync_enabled"`
	SyncIntervalSeconds      int64      `json:"sync_interval_seconds"`
	DefaultLowStockThreshold int64      `json:"default_low_stock_threshold"`
	ConnectedAt              *time.Time `json:"connected_at"`
	DisconnectedAt           *time.Time `json:"disconnected_at"`
	LastReconciledAt         *time.Time `json:"last_reconciled_at"`
	LastDriftFound           int64      `json:"last_drift_found"`
	UpdatedAt                time.Time  `json:"updated_at"`
}

type shopList struct {
	Items []Shop `json:"items"`
}

// Product is a listing with its stock summed over its active variants.
type Product struct {
	ListingID int64  `json:"listing_id"`
	ShopID    int64  `json:"shop_id"`
	Title     string `json:"title"`
	State     string `json:"state"`
	URL       string `json:"url"`
	Price     Money  `json:"price"`
	Quantity  int64  `json:"quantity"`
	// VariantCount and LowStockVariants count active variants only.
	VariantCount     int64 `json:"variant_count"`
	LowStockVariants int64 `json:"low_stock_variants"`
	// LowStockThreshold is the listing-wide line, null when unset.
	LowStockThreshold *int64    `json:"low_stock_threshold"`
	Deleted           bool      `json:"deleted"`
	UpdatedAt         time.Time `json:"updated_at"`
}

// Variant is one purchasable variant with its ledger balance.
type Variant struct {
	VariantKey string `json:"variant_key"`
	SKU        string `json:"sku"`
	Properties string `json:"properties"`
	Price      Money  `json:"price"`
	Enabled    bool   `json:"enabled"`
	Active     bool   `json:"active"`
	Quantity   int64  `json:"quantity"`
	// LowStockThreshold is the line in force and ThresholdSource where it
	// comes from: variant, listing, shop or default.
	LowStockThreshold int64      `json:"low_stock_threshold"`
	ThresholdSource   string     `json:"threshold_source"`
	LowStock          bool       `json:"low_stock"`
	ObservedQuantity  *int64     `json:"observed_quantity"`
	ObservedAt        *time.Time `json:"observed_at"`
	LastMovementAt    *time.Time `json:"last_movement_at"`
}

// ProductDetail is a product with all its variants.
type ProductDetail struct {
	Product
	Variants []Variant `json:"variants"`
}

type productPage struct {
	Items      []Product `json:"items"`
	NextCursor string    `json:"next_cursor"`
}

var productCSVHeader = []string{"listing_id", "shop_id", "title", "state", "url", "price_amount", "price_currency",
	"quantity", "variant_count", "low_stock_variants", "low_stock_threshold", "deleted", "updated_at"}

func (p productPage) csvHeader() []string { return productCSVHeader }
func (p productPage) csvRows() [][]string {
	rows := make([][]string, 0, len(p.Items))
	for _, x := range p.Items {
		rows = append(rows, []string{i64(x.ListingID), i64(x.ShopID), x.Title, x.State, x.URL, i64(x.Price.Amount), x.Price.Currency,
			i64(x.Quantity), i64(x.VariantCount), i64(x.LowStockVariants), optI64(x.LowStockThreshold), strconv.FormatBool(x.Deleted), ts(x.UpdatedAt)})
	}
	return rows
}

// Movement is one change of a variant's stock with what caused it.
type Movement struct {
	Seq           int64         `json:"seq"`
	OccurredAt    time.Time     `json:"occurred_at"`
	RecordedAt    time.Time     `json:"recorded_at"`
	Delta         int64         `json:"delta"`
	Balance       int64         `json:"balance"`
	Reason        string        `json:"reason"`
	Cause         string        `json:"cause"`
	ReceiptID     *int64        `json:"receipt_id"`
	TransactionID *int64        `json:"transaction_id"`
	WebhookID     *string       `json:"webhook_id"`
	Actor         string        `json:"actor"`
	EventID       string        `json:"event_id"`
	Links         MovementLinks `json:"links"`

	// webhookEvent is the id of the webhook evidence the movement
	// follows from, when it came by webhook.
	webhookEvent string
}

// MovementLinks point at the API resources behind a movement. A response
// carries only links its token may follow: event and webhook point into
// the event log, so they are set for auditor tokens and null for seller
// tokens (event_id and webhook_id name the same things for both).
type MovementLinks struct {
	Event   *string `json:"event"`
	Receipt *string `json:"receipt"`
	Webhook *string `json:"webhook"`
}

// linkMovements sets the links of movements that role may follow.
func linkMovements(ms []Movement, role Role) {
	for i := range ms {
		m := &ms[i]
		m.Links = MovementLinks{}
		if m.ReceiptID != nil {
			l := "/v1/sales/" + strconv.FormatInt(*m.ReceiptID, 10)
			m.Links.Receipt = &l
		}
		if role != RoleAuditor {
			continue
		}
		ev := "/v1/events/" + m.EventID
		m.Links.Event = &ev
		if m.webhookEvent != "" {
			wh := "/v1/events/" + m.webhookEvent
			m.Links.Webhook = &wh
		}
	}
}

type historyPage struct {
	ListingID  int64      `json:"listing_id"`
	VariantKey string     `json:"variant_key"`
	Items      []Movement `json:"items"`
	NextCursor string     `json:"next_cursor"`
}

var historyCSVHeader = []string{"seq", "occurred_at", "recorded_at", "delta", "balance", "reason", "cause",
	"receipt_id", "transaction_id", "webhook_id", "actor", "event_id"}

func (h historyPage) csvHeader() []string { return historyCSVHeader }
func (h historyPage) csvRows() [][]string {
	rows := make([][]string, 0, len(h.Items))
	for _, m := range h.Items {
		wh := ""
		if m.WebhookID != nil {
			wh = *m.WebhookID
		}
		rows = append(rows, []string{i64(m.Seq), ts(m.OccurredAt), ts(m.RecordedAt), i64(m.Delta), i64(m.Balance), m.Reason, m.Cause,
			optI64(m.ReceiptID), optI64(m.TransactionID), wh, m.Actor, m.EventID})
	}
	return rows
}

// VariantStock is a variant's balance as of an instant.
type VariantStock struct {
	ListingID  int64  `json:"listing_id"`
	VariantKey string `json:"variant_key"`
	SKU        string `json:"sku"`
	Quantity   int64  `json:"quantity"`
	// Movements counts the movements at or before the instant.
	Movements      int64      `json:"movements"`
	LastMovementAt *time.Time `json:"last_movement_at"`
}

type variantStockAt struct {
	AsOf time.Time `json:"as_of"`
	VariantStock
}

type shopStockPage struct {
	ShopID     int64          `json:"shop_id"`
	AsOf       time.Time      `json:"as_of"`
	Items      []VariantStock `json:"items"`
	NextCursor string         `json:"next_cursor"`
}

// Sale is a receipt with integer-money totals. Buyer details stay at Etsy.
type Sale struct {
	ReceiptID   int64      `json:"receipt_id"`
	ShopID      int64      `json:"shop_id"`
	Status      string     `json:"status"`
	CreatedAt   time.Time  `json:"created_at"`
	Currency    string     `json:"currency"`
	Subtotal    int64      `json:"subtotal"`
	Shipping    int64      `json:"shipping"`
	Tax         int64      `json:"tax"`
	Discount    int64      `json:"discount"`
	GrandTotal  int64      `json:"grand_total"`
	Refunded    int64      `json:"refunded"`
	ItemCount   int64      `json:"item_count"`
	Units       int64      `json:"units"`
	PaidAt      *time.Time `json:"paid_at"`
	ShippedAt   *time.Time `json:"shipped_at"`
	Carrier     string     `json:"carrier"`
	DeliveredAt *time.Time `json:"delivered_at"`
	CanceledAt  *time.Time `json:"canceled_at"`
	RefundedAt  *time.Time `json:"refunded_at"`
}

// SaleItem is one line of a receipt.
type SaleItem struct {
	TransactionID int64  `json:"transaction_id"`
	ListingID     int64  `json:"listing_id"`
	VariantKey    string `json:"variant_key"`
	SKU           string `json:"sku"`
	Title         string `json:"title"`
	Quantity      int64  `json:"quantity"`
	UnitPrice     Money  `json:"unit_price"`
}

// SaleDetail is a sale with its items.
type SaleDetail struct {
	Sale
	Items []SaleItem `json:"items"`
}

type salePage struct {
	Items      []Sale `json:"items"`
	NextCursor string `json:"next_cursor"`
}

var saleCSVHeader = []string{"receipt_id", "shop_id", "status", "created_at", "currency", "subtotal", "shipping", "tax",
	"discount", "grand_total", "refunded", "item_count", "units", "paid_at", "shipped_at", "carrier", "delivered_at", "canceled_at", "refunded_at"}

func (p salePage) csvHeader() []string { return saleCSVHeader }
func (p salePage) csvRows() [][]string {
	rows := make([][]string, 0, len(p.Items))
	for _, s := range p.Items {
		rows = append(rows, []string{i64(s.ReceiptID), i64(s.ShopID), s.Status, ts(s.CreatedAt), s.Currency, i64(s.Subtotal),
			i64(s.Shipping), i64(s.Tax), i64(s.Discount), i64(s.GrandTotal), i64(s.Refunded), i64(s.ItemCount), i64(s.Units),
			optTS(s.PaidAt), optTS(s.ShippedAt), s.Carrier, optTS(s.DeliveredAt), optTS(s.CanceledAt), optTS(s.RefundedAt)})
	}
	return rows
}

// DailySales is one point of the daily series of a shop in one currency.
type DailySales struct {
	Day            string `json:"day"` // YYYY-MM-DD, UTC
	Currency       string `json:"currency"`
	Orders         int64  `json:"orders"`
	Units          int64  `json:"units"`
	Gross          int64  `json:"gross"`
	CanceledOrders int64  `json:"canceled_orders"`
	Refunded       int64  `json:"refunded"`
}

type dailySeries struct {
	ShopID int64        `json:"shop_id"`
	From   string       `json:"from"`
	To     string       `json:"to"`
	Days   []DailySales `json:"days"`
}

// TopProduct is a listing's sales over a period in one currency.
type TopProduct struct {
	ListingID int64  `json:"listing_id"`
	Title     string `json:"title"`
	Units     int64  `json:"units"`
	Revenue   Money  `json:"revenue"`
	Orders    int64  `json:"orders"`
}

type topProducts struct {
	ShopID int64        `json:"shop_id"`
	By     string       `json:"by"`
	From   time.Time    `json:"from"`
	To     time.Time    `json:"to"`
	Items  []TopProduct `json:"items"`
}

// thresholdSet is the answer to a threshold PUT: the event appended.
type thresholdSet struct {
	EventID    string `json:"event_id"`
	Scope      string `json:"scope"`
	ShopID     int64  `json:"shop_id"`
	ListingID  *int64 `json:"listing_id"`
	VariantKey string `json:"variant_key"`
	Threshold  int64  `json:"threshold"`
}

func i64(n int64) string { return strconv.FormatInt(n, 10) }

func optI64(n *int64) string {
	if n == nil {
		return ""
	}
	return i64(*n)
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func optTS(t *time.Time) string {
	if t == nil {
		return ""
	}
	return ts(*t)
}
