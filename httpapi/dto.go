package httpapi

import (
	"strconv"
	"time"

	"github.com/shopledger/shopledger/projections"
)

// The pages below wrap what the readers return (projections, whose read
// types are the allow-list of what leaves the service: read models hold
// more, such as alert channel targets, tracking codes and scopes, and it
// stays in) with cursors, links and their CSV form.

type shopList struct {
	Items []projections.Shop `json:"items"`
}

type productPage struct {
	Items      []projections.Product `json:"items"`
	NextCursor string                `json:"next_cursor"`
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

// MovementLinks point at the API resources behind a movement. A response
// carries only links its token may follow: event and webhook point into
// the event log, so they are set for auditor tokens and null for seller
// tokens (event_id and webhook_id name the same things for both).
type MovementLinks struct {
	Event   *string `json:"event"`
	Receipt *string `json:"receipt"`
	Webhook *string `json:"webhook"`
}

// movement is a movement with the links its reader may follow.
type movement struct {
	projections.Movement
	Links MovementLinks `json:"links"`
}

// linkMovements adds to movements the links that role may follow.
func linkMovements(ms []projections.Movement, role Role) []movement {
	out := make([]movement, len(ms))
	for i, m := range ms {
		out[i] = movement{Movement: m}
		l := &out[i].Links
		if m.ReceiptID != nil {
			sale := "/v1/sales/" + strconv.FormatInt(*m.ReceiptID, 10)
			l.Receipt = &sale
		}
		if role != RoleAuditor {
			continue
		}
		ev := "/v1/events/" + m.EventID
		l.Event = &ev
		if m.WebhookEventID != "" {
			wh := "/v1/events/" + m.WebhookEventID
			l.Webhook = &wh
		}
	}
	return out
}

type historyPage struct {
	ListingID  int64      `json:"listing_id"`
	VariantKey string     `json:"variant_key"`
	Items      []movement `json:"items"`
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

type variantStockAt struct {
	AsOf time.Time `json:"as_of"`
	projections.VariantStock
}

type shopStockPage struct {
	ShopID     int64                      `json:"shop_id"`
	AsOf       time.Time                  `json:"as_of"`
	Items      []projections.VariantStock `json:"items"`
	NextCursor string                     `json:"next_cursor"`
}

type salePage struct {
	Items      []projections.Sale `json:"items"`
	NextCursor string             `json:"next_cursor"`
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

type dailySeries struct {
	ShopID int64                    `json:"shop_id"`
	From   string                   `json:"from"`
	To     string                   `json:"to"`
	TZ     string                   `json:"tz"` // the zone the days are in (UTC unless asked)
	Days   []projections.DailySales `json:"days"`
}

type topProducts struct {
	ShopID int64                    `json:"shop_id"`
	By     string                   `json:"by"`
	From   time.Time                `json:"from"`
	To     time.Time                `json:"to"`
	Items  []projections.TopProduct `json:"items"`
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
