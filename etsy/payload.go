package etsy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	segjson "github.com/segmentio/encoding/json"
)

// Webhook event types Etsy documents. Receivers must still accept types not
// listed here: Etsy adds events over time.
const (
	EventOrderPaid           = "order.paid"
	EventOrderCanceled       = "order.canceled"
	EventOrderShipped        = "order.shipped"
	EventOrderDelivered      = "order.delivered"
	EventInventoryCreated    = "inventory.created"
	EventInventoryUpdated    = "inventory.updated"
	EventInventoryDeleted    = "inventory.deleted"
	EventInventoryOutOfStock = "inventory.out_of_stock"
	EventListingCreated      = "listing.created"
	EventListingUpdated      = "listing.updated"
	EventListingDeleted      = "listing.deleted"
)

// ErrInvalidPayload means a webhook body is not Etsy's flat
// {event_type, resource_url, shop_id} object.
var ErrInvalidPayload = errors.New("invalid webhook payload")

// WebhookPayload is Etsy's current, flat webhook body. It is thin on
// purpose: the receiver fetches ResourceURL for the facts.
type WebhookPayload struct {
	EventType   string `json:"event_type"`
	ResourceURL string `json:"resource_url"`
	ShopID      int64  `json:"shop_id"`
}

// ParseWebhookPayload decodes a webhook body. shop_id may be a JSON number
// (as Etsy sends it) or a decimal string (as a third-party schema types
// it); unknown fields are ignored because Etsy adds fields. It does not
// check the signature: call Verify on the same raw bytes first.
func ParseWebhookPayload(body []byte) (WebhookPayload, error) {
	var raw struct {
		EventType   *string         `json:"event_type"`
		ResourceURL *string         `json:"resource_url"`
		ShopID      json.RawMessage `json:"shop_id"`
	}
	// segmentio's decoder, several times cheaper than encoding/json's on
	// this hot path (every webhook); a test fuzzes the two against each
	// other. Like json.Decoder, it reads the first value and leaves the
	// rest, which may only be white space or, as json.Decoder.More
	// allows, a closing bracket.
	rest, err := segjson.Parse(body, &raw, 0)
	if err != nil {
		return WebhookPayload{}, fmt.Errorf("parse webhook payload: %w", errors.Join(ErrInvalidPayload, err))
	}
	if rest = bytes.TrimLeft(rest, " \t\r\n"); len(rest) > 0 && rest[0] != ']' && rest[0] != '}' {
		return WebhookPayload{}, fmt.Errorf("parse webhook payload: trailing data: %w", ErrInvalidPayload)
	}
	if raw.EventType == nil || *raw.EventType == "" {
		return WebhookPayload{}, fmt.Errorf("parse webhook payload: no event_type: %w", ErrInvalidPayload)
	}
	shopID, err := parseFlexibleID(raw.ShopID)
	if err != nil {
		return WebhookPayload{}, fmt.Errorf("parse webhook payload: shop_id: %w", errors.Join(ErrInvalidPayload, err))
	}
	p := WebhookPayload{EventType: *raw.EventType, ShopID: shopID}
	if raw.ResourceURL != nil {
		p.ResourceURL = *raw.ResourceURL
	}
	return p, nil
}

// parseFlexibleID reads a positive integer id given as a JSON number or a
// JSON string holding decimal digits.
func parseFlexibleID(raw json.RawMessage) (int64, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, errors.New("missing")
	}
	text := string(raw)
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, err
		}
		text = s
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("not an integer: %q", text)
	}
	if n <= 0 {
		return 0, fmt.Errorf("not positive: %d", n)
	}
	return n, nil
}
