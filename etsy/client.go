package etsy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopledger/shopledger/etsy/internal/wire"
	"github.com/shopledger/shopledger/internal/defaults"
	"github.com/shopledger/shopledger/telemetry"
)

// DefaultBaseURL is Etsy's Open API host; api.etsy.com is equivalent.
const DefaultBaseURL = "https://openapi.etsy.com"

// Etsy's paging limits.
const (
	MaxLimit  = 100
	MaxOffset = 12000
)

// Include names for the includes parameter.
const IncludeInventory = "Inventory"

// maxResponseBytes bounds what one answer may make us buffer.
const maxResponseBytes = 32 << 20

// TokenSource gives the client the bearer value "<user_id>.<token>" of one
// shop's OAuth grant. Implementations must be safe for concurrent use.
type TokenSource interface {
	// Token returns a current access token, refreshing first if it is
	// about to expire.
	Token(ctx context.Context) (string, error)
	// Refresh forces a refresh after Etsy answered 401 invalid_token for
	// stale, unless the current token already differs from stale (someone
	// else refreshed). Concurrent calls share one refresh.
	Refresh(ctx context.Context, stale string) (string, error)
}

// Config configures a Client.
type Config struct {
	// BaseURL is the API host, e.g. https://openapi.etsy.com or a
	// simulator's URL. Default DefaultBaseURL.
	BaseURL string
	// KeyString and SharedSecret form the x-api-key header
	// "<keystring>:<shared secret>".
	KeyString    string
	SharedSecret string
	// HTTPClient sends requests; default a client with a 30 s timeout.
	HTTPClient *http.Client
	// Limiter is the app key's rate limiter, shared by every client and
	// caller of that key. Default: a private limiter with Etsy's default
	// limits, which is only right if this client is the key's only user.
	Limiter *Limiter
	// Logger receives retry and refresh notices; default discards.
	Logger *slog.Logger
	// MaxRetries bounds retries after 429, 5xx and network errors.
	// Default 4; negative means none.
	MaxRetries int
	// MinBackoff and MaxBackoff bound the exponential backoff with full
	// jitter between retries. Defaults 250 ms and 10 s.
	MinBackoff, MaxBackoff time.Duration
	// MaxRetryAfter is the longest retry-after a request waits out before
	// returning the 429 to its caller. Default 1 minute.
	MaxRetryAfter time.Duration
	// UserAgent is sent with every request; default "shopledger".
	UserAgent string
}

// Client calls Etsy's Open API v3. It is safe for concurrent use.
type Client struct {
	base     *url.URL
	apiKey   string
	http     *http.Client
	limiter  *Limiter
	log      *slog.Logger
	retries  int
	minBack  time.Duration
	maxBack  time.Duration
	maxRA    time.Duration
	ua       string
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewClient checks cfg and registers the client's metrics on reg (nil: not
// registered): etsy_requests_total{endpoint,status} and
// etsy_request_duration_seconds{endpoint}. Several clients may share reg.
func NewClient(cfg Config, reg prometheus.Registerer) (*Client, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	base, err := url.Parse(strings.TrimSuffix(cfg.BaseURL, "/"))
	if err != nil || (base.Scheme != "https" && base.Scheme != "http") || base.Host == "" {
		return nil, fmt.Errorf("new etsy client: base url %q is not an http(s) url", cfg.BaseURL)
	}
	if cfg.KeyString == "" || cfg.SharedSecret == "" {
		return nil, errors.New("new etsy client: key string and shared secret are required")
	}
	c := &Client{
		base:    base,
		apiKey:  cfg.KeyString + ":" + cfg.SharedSecret,
		http:    cfg.HTTPClient,
		limiter: cfg.Limiter,
		log:     cfg.Logger,
		retries: cfg.MaxRetries,
		minBack: cfg.MinBackoff,
		maxBack: cfg.MaxBackoff,
		maxRA:   cfg.MaxRetryAfter,
		ua:      cfg.UserAgent,
	}
	if c.http == nil {
		c.http = &http.Client{Timeout: 30 * time.Second}
	}
	if c.limiter == nil {
		if c.limiter, err = NewLimiter(LimiterConfig{}, nil); err != nil {
			return nil, fmt.Errorf("new etsy client: %w", err)
		}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	switch {
	case c.retries == 0:
		c.retries = 4
	case c.retries < 0:
		c.retries = 0
	}
	defaults.Positive(&c.minBack, 250*time.Millisecond)
	defaults.Positive(&c.maxBack, 10*time.Second)
	defaults.Positive(&c.maxRA, time.Minute)
	if c.ua == "" {
		c.ua = "shopledger"
	}
	c.requests = telemetry.CounterVec("etsy_requests_total",
		"Requests sent to Etsy by endpoint and HTTP status (\"error\" when no response).", "endpoint", "status")
	c.duration = telemetry.HistogramVec("etsy_request_duration_seconds",
		"Time from sending a request to Etsy to reading its whole answer.", prometheus.DefBuckets, "endpoint")
	if reg != nil {
		if c.requests, err = registerOrReuse(reg, c.requests); err != nil {
			return nil, fmt.Errorf("new etsy client: %w", err)
		}
		if c.duration, err = registerOrReuse(reg, c.duration); err != nil {
			return nil, fmt.Errorf("new etsy client: %w", err)
		}
	}
	return c, nil
}

func registerOrReuse[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, fmt.Errorf("register metrics: %w", err)
	}
	return c, nil
}

// Limiter returns the limiter the client draws on.
func (c *Client) Limiter() *Limiter { return c.limiter }

type sendingKey struct{}

// WithSending returns a context whose requests call f each time one is
// about to be sent, after its wait for the rate budget. Etsy receives the
// request after f returns, so its answer holds everything Etsy had done
// when f was called: callers that share one read's answer use it to know
// until when a newcomer may still join.
func WithSending(ctx context.Context, f func()) context.Context {
	return context.WithValue(ctx, sendingKey{}, f)
}

type call struct {
	op         string // Etsy's operationId, used as the endpoint label
	method     string
	path       string
	query      url.Values
	body       []byte
	ts         TokenSource
	idempotent bool
}

// get sends a read, which do may repeat.
func (c *Client) get(ctx context.Context, ts TokenSource, op, path string, query url.Values, out any) error {
	return c.do(ctx, call{op: op, method: http.MethodGet, path: path, query: query, ts: ts, idempotent: true}, out)
}

// do sends one logical request with Etsy's retry rules: one refresh and
// retry on 401 invalid_token; 429 waits out retry-after (for every caller,
// through the limiter); 5xx and network errors are retried with backoff
// only when repeating the request is harmless.
func (c *Client) do(ctx context.Context, cl call, out any) error {
	refreshed := false
	retries := 0
	for {
		var bearer string
		if cl.ts != nil {
			var err error
			if bearer, err = cl.ts.Token(ctx); err != nil {
				return fmt.Errorf("etsy %s: token: %w", cl.op, err)
			}
		}
		p, err := c.limiter.acquire(ctx)
		if err != nil {
			return fmt.Errorf("etsy %s: %w", cl.op, err)
		}
		if f, ok := ctx.Value(sendingKey{}).(func()); ok {
			f()
		}
		resp, body, err := c.send(ctx, cl, bearer)
		if err != nil {
			p.release(nil)
			c.requests.WithLabelValues(cl.op, "error").Inc()
			if ctx.Err() != nil {
				return fmt.Errorf("etsy %s: %w", cl.op, ctx.Err())
			}
			if (cl.idempotent || notSent(err)) && retries < c.retries {
				retries++
				c.log.WarnContext(ctx, "etsy request failed, retrying", "endpoint", cl.op, "attempt", retries, "err", err)
				if err := sleep(ctx, c.backoff(retries)); err != nil {
					return fmt.Errorf("etsy %s: %w", cl.op, err)
				}
				continue
			}
			return fmt.Errorf("etsy %s: %w", cl.op, err)
		}
		p.release(resp.Header)
		c.requests.WithLabelValues(cl.op, strconv.Itoa(resp.StatusCode)).Inc()

		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			if out == nil {
				return nil
			}
			if err := json.Unmarshal(body, out); err != nil {
				return fmt.Errorf("etsy %s: decode response: %w", cl.op, err)
			}
			return nil
		}
		apiErr := newAPIError(cl.op, resp, body)
		switch {
		case resp.StatusCode == http.StatusUnauthorized && apiErr.Code == "invalid_token" && cl.ts != nil && !refreshed:
			refreshed = true
			c.log.InfoContext(ctx, "etsy access token refused, refreshing", "endpoint", cl.op, "reason", apiErr.Description)
			if _, err := cl.ts.Refresh(ctx, bearer); err != nil {
				return fmt.Errorf("etsy %s: refresh token: %w", cl.op, err)
			}
			continue
		case resp.StatusCode == http.StatusTooManyRequests:
			// A 429 was refused before any processing, so even a
			// write may be repeated.
			wait := apiErr.RetryAfter
			if wait <= 0 {
				wait = c.backoff(retries + 1)
			}
			// Every caller of the key holds back, whether or not this
			// one waits for its retry.
			c.limiter.pause(min(wait, c.maxRA))
			if wait > c.maxRA || retries >= c.retries {
				return apiErr
			}
			retries++
			c.log.WarnContext(ctx, "etsy rate limited, waiting", "endpoint", cl.op, "retry_after", wait, "reason", apiErr.Code)
			continue
		case resp.StatusCode >= 500 && cl.idempotent && retries < c.retries:
			retries++
			c.log.WarnContext(ctx, "etsy server error, retrying", "endpoint", cl.op, "status", resp.StatusCode, "attempt", retries)
			if err := sleep(ctx, c.backoff(retries)); err != nil {
				return fmt.Errorf("etsy %s: %w", cl.op, err)
			}
			continue
		}
		return apiErr
	}
}

func (c *Client) send(ctx context.Context, cl call, bearer string) (*http.Response, []byte, error) {
	u := *c.base
	u.Path = c.base.Path + cl.path
	u.RawQuery = cl.query.Encode()
	var body io.Reader
	if cl.body != nil {
		body = bytes.NewReader(cl.body)
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, u.String(), body)
	if err != nil {
		return nil, nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("x-api-key", c.apiKey)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.ua)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if cl.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	c.duration.WithLabelValues(cl.op).Observe(time.Since(start).Seconds())
	if err != nil {
		return nil, nil, fmt.Errorf("read response: %w", err)
	}
	return resp, data, nil
}

// notSent reports errors where the request certainly never reached Etsy,
// so repeating even a write is safe.
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// backoff is exponential with full jitter, bounded by MaxBackoff.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.minBack << min(attempt-1, 16)
	if d <= 0 || d > c.maxBack {
		d = c.maxBack
	}
	return time.Duration(rand.Int64N(int64(d)) + 1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func id(n int64) string { return strconv.FormatInt(n, 10) }

// Ping calls openapi-ping, which needs only the API key: a cheap check of
// the key and of connectivity. It returns Etsy's application id.
func (c *Client) Ping(ctx context.Context) (int64, error) {
	var out struct {
		ApplicationID int64 `json:"application_id"`
	}
	err := c.get(ctx, nil, "ping", "/v3/application/openapi-ping", nil, &out)
	return out.ApplicationID, err
}

// GetMe returns the user and shop the token belongs to.
func (c *Client) GetMe(ctx context.Context, ts TokenSource) (Me, error) {
	var w wire.Self
	err := c.get(ctx, ts, "getMe", "/v3/application/users/me", nil, &w)
	return Me(w), err
}

// GetShop returns a shop. ts may be nil: the endpoint needs only the key.
func (c *Client) GetShop(ctx context.Context, ts TokenSource, shopID int64) (Shop, error) {
	var w wire.Shop
	err := c.get(ctx, ts, "getShop", "/v3/application/shops/"+id(shopID), nil, &w)
	return shopFromWire(w), err
}

// ListingsQuery holds getListingsByShop's parameters; zero values are left
// to Etsy's defaults (state active, limit 25).
type ListingsQuery struct {
	State     string
	Limit     int
	Offset    int
	SortOn    string // created, price, updated, score
	SortOrder string // asc, desc
	Includes  []string
}

// setPaging sets the paging and sort parameters of Etsy's list
// endpoints, leaving zero values to Etsy's defaults.
func setPaging(v url.Values, limit, offset int, sortOn, sortOrder string) {
	if limit > 0 {
		v.Set("limit", strconv.Itoa(limit))
	}
	if offset > 0 {
		v.Set("offset", strconv.Itoa(offset))
	}
	if sortOn != "" {
		v.Set("sort_on", sortOn)
	}
	if sortOrder != "" {
		v.Set("sort_order", sortOrder)
	}
}

func (q ListingsQuery) values() url.Values {
	v := url.Values{}
	if q.State != "" {
		v.Set("state", q.State)
	}
	setPaging(v, q.Limit, q.Offset, q.SortOn, q.SortOrder)
	if len(q.Includes) > 0 {
		v.Set("includes", strings.Join(q.Includes, ","))
	}
	return v
}

// ListingsPage is one page of getListingsByShop; Count is the number of
// matching listings, ignoring limit and offset.
type ListingsPage struct {
	Count   int
	Results []Listing
}

// GetListingsByShop returns one page of a shop's listings.
func (c *Client) GetListingsByShop(ctx context.Context, ts TokenSource, shopID int64, q ListingsQuery) (ListingsPage, error) {
	var out wire.Page[Listing]
	err := c.get(ctx, ts, "getListingsByShop", "/v3/application/shops/"+id(shopID)+"/listings", q.values(), &out)
	return ListingsPage(out), err
}

// GetListing returns one listing, with its inventory when withInventory.
// ts may be nil, but SKUs are shown only to the owner's token.
func (c *Client) GetListing(ctx context.Context, ts TokenSource, listingID int64, withInventory bool) (Listing, error) {
	q := url.Values{}
	if withInventory {
		q.Set("includes", IncludeInventory)
	}
	var l Listing
	err := c.get(ctx, ts, "getListing", "/v3/application/listings/"+id(listingID), q, &l)
	return l, err
}

// GetListingInventory returns a listing's product set.
func (c *Client) GetListingInventory(ctx context.Context, ts TokenSource, listingID int64) (Inventory, error) {
	var inv Inventory
	err := c.get(ctx, ts, "getListingInventory", "/v3/application/listings/"+id(listingID)+"/inventory", nil, &inv)
	return inv, err
}

// UpdateListingInventory replaces a listing's whole product set and
// returns the new one, with new product and offering ids. It is not
// retried after a 5xx or a broken connection: a sale between two attempts
// would be overwritten by the repeat. The *_on_property arrays are fitted
// to the products first (see InventoryUpdate.FitOnProperty), so a write
// that changes one variant of a listing whose quantities, prices or SKUs
// varied on fewer properties is not refused for it.
func (c *Client) UpdateListingInventory(ctx context.Context, ts TokenSource, listingID int64, u InventoryUpdate) (Inventory, error) {
	if changed := u.FitOnProperty(); len(changed) > 0 {
		c.log.InfoContext(ctx, "etsy inventory write: on_property arrays fitted to the products", "listing_id", listingID,
			"arrays", changed, "price_on_property", u.PriceOnProperty, "quantity_on_property", u.QuantityOnProperty, "sku_on_property", u.SKUOnProperty)
	}
	body, err := json.Marshal(u)
	if err != nil {
		return Inventory{}, fmt.Errorf("etsy updateListingInventory: encode: %w", err)
	}
	var inv Inventory
	err = c.do(ctx, call{
		op: "updateListingInventory", method: http.MethodPut,
		path: "/v3/application/listings/" + id(listingID) + "/inventory", body: body, ts: ts,
	}, &inv)
	return inv, err
}

// ReceiptsQuery holds getShopReceipts' parameters; zero values are left
// out. Times are sent as epoch seconds.
type ReceiptsQuery struct {
	MinCreated      time.Time
	MaxCreated      time.Time
	MinLastModified time.Time
	MaxLastModified time.Time
	Limit           int
	Offset          int
	SortOn          string // created, updated, receipt_id
	SortOrder       string // asc, desc
	WasPaid         *bool
	WasShipped      *bool
	WasDelivered    *bool
	WasCanceled     *bool
}

// etsyEpochMin is the smallest timestamp Etsy's parameters accept.
const etsyEpochMin = 946684800

func (q ReceiptsQuery) values() url.Values {
	v := url.Values{}
	setTime := func(name string, t time.Time, isMin bool) {
		if t.IsZero() {
			return
		}
		s := t.Unix()
		if isMin && s < etsyEpochMin {
			// Etsy refuses earlier values and holds no older data.
			s = etsyEpochMin
		}
		v.Set(name, strconv.FormatInt(s, 10))
	}
	setTime("min_created", q.MinCreated, true)
	setTime("max_created", q.MaxCreated, false)
	setTime("min_last_modified", q.MinLastModified, true)
	setTime("max_last_modified", q.MaxLastModified, false)
	setPaging(v, q.Limit, q.Offset, q.SortOn, q.SortOrder)
	setBool := func(name string, b *bool) {
		if b != nil {
			v.Set(name, strconv.FormatBool(*b))
		}
	}
	setBool("was_paid", q.WasPaid)
	setBool("was_shipped", q.WasShipped)
	setBool("was_delivered", q.WasDelivered)
	setBool("was_canceled", q.WasCanceled)
	return v
}

// ReceiptsPage is one page of getShopReceipts.
type ReceiptsPage struct {
	Count   int
	Results []Receipt
}

// GetShopReceipts returns one page of a shop's receipts.
func (c *Client) GetShopReceipts(ctx context.Context, ts TokenSource, shopID int64, q ReceiptsQuery) (ReceiptsPage, error) {
	var out wire.Page[wire.Receipt]
	err := c.get(ctx, ts, "getShopReceipts", "/v3/application/shops/"+id(shopID)+"/receipts", q.values(), &out)
	if err != nil {
		return ReceiptsPage{}, err
	}
	page := ReceiptsPage{Count: out.Count, Results: make([]Receipt, 0, len(out.Results))}
	for _, w := range out.Results {
		r, err := receiptFromWire(w, shopID)
		if err != nil {
			return ReceiptsPage{}, fmt.Errorf("etsy getShopReceipts: %w", err)
		}
		page.Results = append(page.Results, r)
	}
	return page, nil
}

// GetShopReceipt returns one receipt.
func (c *Client) GetShopReceipt(ctx context.Context, ts TokenSource, shopID, receiptID int64) (Receipt, error) {
	var w wire.Receipt
	err := c.get(ctx, ts, "getShopReceipt", "/v3/application/shops/"+id(shopID)+"/receipts/"+id(receiptID), nil, &w)
	if err != nil {
		return Receipt{}, err
	}
	r, err := receiptFromWire(w, shopID)
	if err != nil {
		return Receipt{}, fmt.Errorf("etsy getShopReceipt: %w", err)
	}
	return r, nil
}

// GetShopReceiptTransactionsByReceipt returns a receipt's transactions.
func (c *Client) GetShopReceiptTransactionsByReceipt(ctx context.Context, ts TokenSource, shopID, receiptID int64) ([]Transaction, error) {
	var out wire.Page[wire.Transaction]
	err := c.get(ctx, ts, "getShopReceiptTransactionsByReceipt", "/v3/application/shops/"+id(shopID)+"/receipts/"+id(receiptID)+"/transactions", nil, &out)
	if err != nil {
		return nil, err
	}
	txs, err := transactionsFromWire(out.Results)
	if err != nil {
		return nil, fmt.Errorf("etsy getShopReceiptTransactionsByReceipt: %w", err)
	}
	return txs, nil
}
