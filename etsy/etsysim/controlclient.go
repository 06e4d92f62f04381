package etsysim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/shopledger/shopledger/etsy"
)

// Control is an HTTP client for a simulator's control API, for tests that
// run cmd/etsysim as a separate process. Its methods mirror Sim's; errors
// match ErrNotFound and ErrInvalid the same way.
type Control struct {
	BaseURL    string       // the simulator's address, e.g. http://127.0.0.1:8090
	HTTPClient *http.Client // default http.DefaultClient
}

func (c *Control) do(ctx context.Context, method, path string, q url.Values, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("etsysim control %s %s: encode: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	u := strings.TrimSuffix(c.BaseURL, "/") + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fmt.Errorf("etsysim control %s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("etsysim control %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("etsysim control %s %s: read: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(data, &e)
		kind := ErrInvalid
		switch resp.StatusCode {
		case http.StatusNotFound:
			kind = ErrNotFound
		case http.StatusBadRequest:
		default:
			return fmt.Errorf("etsysim control %s %s: status %d: %s", method, path, resp.StatusCode, e.Error)
		}
		return fmt.Errorf("etsysim control %s %s: %s: %w", method, path, e.Error, kind)
	}
	if out != nil && resp.StatusCode != http.StatusNoContent {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("etsysim control %s %s: decode: %w", method, path, err)
		}
	}
	return nil
}

// doAs is do for a call whose answer decodes into a T.
func doAs[T any](ctx context.Context, c *Control, method, path string, q url.Values, in any) (T, error) {
	var out T
	return out, c.do(ctx, method, path, q, in, &out)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// Health reports whether the simulator answers.
func (c *Control) Health(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/_sim/health", nil, nil, nil)
}

// Apps returns the registered apps' credentials.
func (c *Control) Apps(ctx context.Context) ([]AppInfo, error) {
	return doAs[[]AppInfo](ctx, c, http.MethodGet, "/_sim/apps", nil, nil)
}

// CreateShop adds a shop.
func (c *Control) CreateShop(ctx context.Context, spec ShopSpec) (ShopInfo, error) {
	return doAs[ShopInfo](ctx, c, http.MethodPost, "/_sim/shops", nil, spec)
}

// Shops lists shops.
func (c *Control) Shops(ctx context.Context) ([]ShopInfo, error) {
	return doAs[[]ShopInfo](ctx, c, http.MethodGet, "/_sim/shops", nil, nil)
}

// CreateListing adds a listing.
func (c *Control) CreateListing(ctx context.Context, shopID int64, spec ListingSpec) (ListingTruth, error) {
	return doAs[ListingTruth](ctx, c, http.MethodPost, "/_sim/shops/"+itoa(shopID)+"/listings", nil, spec)
}

// GenerateCatalogue adds n demo listings.
func (c *Control) GenerateCatalogue(ctx context.Context, shopID int64, n int) ([]ListingTruth, error) {
	return doAs[[]ListingTruth](ctx, c, http.MethodPost, "/_sim/shops/"+itoa(shopID)+"/catalogue", nil, map[string]int{"listings": n})
}

// Listing returns the truth about a listing.
func (c *Control) Listing(ctx context.Context, listingID int64) (ListingTruth, error) {
	return doAs[ListingTruth](ctx, c, http.MethodGet, "/_sim/listings/"+itoa(listingID), nil, nil)
}

// Listings returns the truth about a shop's listings.
func (c *Control) Listings(ctx context.Context, shopID int64) ([]ListingTruth, error) {
	return doAs[[]ListingTruth](ctx, c, http.MethodGet, "/_sim/shops/"+itoa(shopID)+"/listings", nil, nil)
}

// EditListing changes a listing.
func (c *Control) EditListing(ctx context.Context, listingID int64, e ListingEdit) (ListingTruth, error) {
	return doAs[ListingTruth](ctx, c, http.MethodPatch, "/_sim/listings/"+itoa(listingID), nil, e)
}

// RestockListing changes stock through an inventory write.
func (c *Control) RestockListing(ctx context.Context, listingID int64, r Restock) (ListingTruth, error) {
	return doAs[ListingTruth](ctx, c, http.MethodPost, "/_sim/listings/"+itoa(listingID)+"/restock", nil, r)
}

// DeleteListing deletes a listing.
func (c *Control) DeleteListing(ctx context.Context, listingID int64) error {
	return c.do(ctx, http.MethodDelete, "/_sim/listings/"+itoa(listingID), nil, nil, nil)
}

// CreateOrder places and pays an order.
func (c *Control) CreateOrder(ctx context.Context, shopID int64, spec OrderSpec) (ReceiptTruth, error) {
	return doAs[ReceiptTruth](ctx, c, http.MethodPost, "/_sim/shops/"+itoa(shopID)+"/orders", nil, spec)
}

// RandomOrder places a random order.
func (c *Control) RandomOrder(ctx context.Context, shopID int64) (ReceiptTruth, error) {
	return doAs[ReceiptTruth](ctx, c, http.MethodPost, "/_sim/shops/"+itoa(shopID)+"/orders/random", nil, nil)
}

// Receipt returns the truth about a receipt.
func (c *Control) Receipt(ctx context.Context, receiptID int64) (ReceiptTruth, error) {
	return doAs[ReceiptTruth](ctx, c, http.MethodGet, "/_sim/receipts/"+itoa(receiptID), nil, nil)
}

// Receipts returns the truth about a shop's receipts.
func (c *Control) Receipts(ctx context.Context, shopID int64) ([]ReceiptTruth, error) {
	return doAs[[]ReceiptTruth](ctx, c, http.MethodGet, "/_sim/shops/"+itoa(shopID)+"/receipts", nil, nil)
}

// CancelOrder cancels an order.
func (c *Control) CancelOrder(ctx context.Context, receiptID int64, restock bool) (ReceiptTruth, error) {
	return doAs[ReceiptTruth](ctx, c, http.MethodPost, "/_sim/receipts/"+itoa(receiptID)+"/cancel", nil, map[string]bool{"restock": restock})
}

// ShipOrder ships an order.
func (c *Control) ShipOrder(ctx context.Context, receiptID int64, carrier, tracking string) (ReceiptTruth, error) {
	return doAs[ReceiptTruth](ctx, c, http.MethodPost, "/_sim/receipts/"+itoa(receiptID)+"/ship", nil,
		map[string]string{"carrier_name": carrier, "tracking_code": tracking})
}

// DeliverOrder marks an order delivered.
func (c *Control) DeliverOrder(ctx context.Context, receiptID int64) (ReceiptTruth, error) {
	return doAs[ReceiptTruth](ctx, c, http.MethodPost, "/_sim/receipts/"+itoa(receiptID)+"/deliver", nil, nil)
}

// RefundOrder refunds part of an order.
func (c *Control) RefundOrder(ctx context.Context, receiptID, amount int64, reason string) (ReceiptTruth, error) {
	return doAs[ReceiptTruth](ctx, c, http.MethodPost, "/_sim/receipts/"+itoa(receiptID)+"/refund", nil,
		map[string]any{"amount": amount, "reason": reason})
}

// Truth returns everything about one shop (0: all).
func (c *Control) Truth(ctx context.Context, shopID int64) (Truth, error) {
	var out Truth
	q := url.Values{}
	if shopID != 0 {
		q.Set("shop_id", itoa(shopID))
	}
	return out, c.do(ctx, http.MethodGet, "/_sim/truth", q, nil, &out)
}

// AddWebhook registers an endpoint.
func (c *Control) AddWebhook(ctx context.Context, spec WebhookSpec) (WebhookEndpoint, error) {
	return doAs[WebhookEndpoint](ctx, c, http.MethodPost, "/_sim/webhooks", nil, spec)
}

// Webhooks lists endpoints.
func (c *Control) Webhooks(ctx context.Context) ([]WebhookEndpoint, error) {
	return doAs[[]WebhookEndpoint](ctx, c, http.MethodGet, "/_sim/webhooks", nil, nil)
}

// RotateWebhookSecret gives an endpoint a new secret; keepPrevious signs
// with both until the next rotation.
func (c *Control) RotateWebhookSecret(ctx context.Context, id, secret string, keepPrevious bool) (WebhookEndpoint, error) {
	return doAs[WebhookEndpoint](ctx, c, http.MethodPost, "/_sim/webhooks/"+url.PathEscape(id)+"/rotate", nil,
		map[string]any{"secret": secret, "keep_previous": keepPrevious})
}

// RemoveWebhook deletes an endpoint.
func (c *Control) RemoveWebhook(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/_sim/webhooks/"+url.PathEscape(id), nil, nil, nil)
}

// Deliveries lists deliveries matching f.
func (c *Control) Deliveries(ctx context.Context, f DeliveryFilter) ([]Delivery, error) {
	q := url.Values{}
	if f.EventType != "" {
		q.Set("event_type", f.EventType)
	}
	if f.ShopID != 0 {
		q.Set("shop_id", itoa(f.ShopID))
	}
	if f.State != "" {
		q.Set("state", f.State)
	}
	if f.EndpointID != "" {
		q.Set("endpoint_id", f.EndpointID)
	}
	return doAs[[]Delivery](ctx, c, http.MethodGet, "/_sim/deliveries", q, nil)
}

// WaitDeliveries waits until nothing is due or in flight, at most timeout.
func (c *Control) WaitDeliveries(ctx context.Context, timeout time.Duration) error {
	return c.do(ctx, http.MethodPost, "/_sim/deliveries/wait", url.Values{"timeout": {timeout.String()}}, nil, nil)
}

// Redeliver sends a message again.
func (c *Control) Redeliver(ctx context.Context, messageID string) error {
	return c.do(ctx, http.MethodPost, "/_sim/deliveries/"+url.PathEscape(messageID)+"/redeliver", nil, nil, nil)
}

// Faults returns the fault fractions.
func (c *Control) Faults(ctx context.Context) (Faults, error) {
	return doAs[Faults](ctx, c, http.MethodGet, "/_sim/faults", nil, nil)
}

// SetFaults changes the fault fractions.
func (c *Control) SetFaults(ctx context.Context, f Faults) error {
	return c.do(ctx, http.MethodPut, "/_sim/faults", nil, f, nil)
}

// APIFaults returns the API faults in force.
func (c *Control) APIFaults(ctx context.Context) (APIFaults, error) {
	return doAs[APIFaults](ctx, c, http.MethodGet, "/_sim/api-faults", nil, nil)
}

// SetAPIFaults slows down or rate-limits resource fetches.
func (c *Control) SetAPIFaults(ctx context.Context, f APIFaults) error {
	return c.do(ctx, http.MethodPut, "/_sim/api-faults", nil, f, nil)
}

// Stats returns the counters.
func (c *Control) Stats(ctx context.Context) (Stats, error) {
	return doAs[Stats](ctx, c, http.MethodGet, "/_sim/stats", nil, nil)
}

// IssueToken grants a token to a shop's owner without OAuth.
func (c *Control) IssueToken(ctx context.Context, shopID int64, scopes []string) (etsy.Token, error) {
	var g TokenGrant
	if err := c.do(ctx, http.MethodPost, "/_sim/tokens", nil, map[string]any{"shop_id": shopID, "scopes": scopes}, &g); err != nil {
		return etsy.Token{}, err
	}
	return etsy.Token{AccessToken: g.AccessToken, RefreshToken: g.RefreshToken, ExpiresAt: g.ExpiresAt, UserID: g.UserID}, nil
}

// RevokeTokens revokes a user's tokens.
func (c *Control) RevokeTokens(ctx context.Context, userID int64) error {
	return c.do(ctx, http.MethodPost, "/_sim/users/"+itoa(userID)+"/revoke", nil, nil, nil)
}

// ExpireAccessTokens expires a user's access tokens now.
func (c *Control) ExpireAccessTokens(ctx context.Context, userID int64) error {
	return c.do(ctx, http.MethodPost, "/_sim/users/"+itoa(userID)+"/expire-tokens", nil, nil, nil)
}

// Now returns the simulated time.
func (c *Control) Now(ctx context.Context) (time.Time, error) {
	var out clockJSON
	err := c.do(ctx, http.MethodGet, "/_sim/clock", nil, nil, &out)
	return out.Now, err
}

// Advance moves the simulated clock forward.
func (c *Control) Advance(ctx context.Context, d time.Duration) (time.Time, error) {
	var out clockJSON
	err := c.do(ctx, http.MethodPost, "/_sim/clock/advance", nil, map[string]float64{"seconds": d.Seconds()}, &out)
	return out.Now, err
}

// ScenarioStep runs count steps of a kind; it returns what was done and
// how many steps found nothing to do.
func (c *Control) ScenarioStep(ctx context.Context, kind string, count int, sc Scenario) (done []string, skipped int, err error) {
	var out stepResult
	err = c.do(ctx, http.MethodPost, "/_sim/scenario/step", nil, stepJSON{Kind: kind, Count: count, Scenario: sc}, &out)
	return out.Done, out.Skipped, err
}
