package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/events"
)

// ErrForbiddenAddress means a webhook URL resolved to an address alerts may
// not be sent to (loopback, private, link-local): sellers choose the URLs,
// and the ledger must not become their way into its own network.
var ErrForbiddenAddress = errors.New("webhook address not allowed")

// NewHTTPClient returns the client of webhook and Slack deliveries: a
// timeout (Standard Webhooks suggests 15–30 s), no redirects (a 3xx is a
// failure, as for Etsy's own deliveries) and, unless allowPrivate, no
// connections to loopback, private or link-local addresses.
func NewHTTPClient(timeout time.Duration, allowPrivate bool) *http.Client {
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	dialer := &net.Dialer{Timeout: timeout}
	if !allowPrivate {
		dialer.Control = func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			ip := net.ParseIP(host)
			if ip == nil || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
				ip.IsUnspecified() || ip.IsMulticast() {
				return fmt.Errorf("%s: %w", host, ErrForbiddenAddress)
			}
			return nil
		}
	}
	transport := &http.Transport{
		Proxy:               nil,
		DialContext:         dialer.DialContext,
		TLSHandshakeTimeout: timeout,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     90 * time.Second,
	}
	return &http.Client{
		Timeout:   timeout,
		Transport: transport,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// SecretSource hands out a shop's webhook signing secret.
type SecretSource interface {
	WebhookSecret(ctx context.Context, shopID int64) (string, error)
}

// WebhookSender posts alerts as JSON signed with the Standard Webhooks
// scheme and the shop's secret, the way Etsy signs what it sends us. The
// webhook-id is the alert id, so a receiver that dedupes on it sees each
// alert once however often it is retried.
type WebhookSender struct {
	client  *http.Client
	secrets SecretSource
	links   Links
	now     func() time.Time
}

// NewWebhookSender returns a webhook sender.
func NewWebhookSender(client *http.Client, secrets SecretSource, links Links, now func() time.Time) *WebhookSender {
	if now == nil {
		now = time.Now
	}
	return &WebhookSender{client: client, secrets: secrets, links: links, now: now}
}

// WebhookPayload is the JSON body of an alert webhook, in the Standard
// Webhooks shape (type, timestamp, data).
type WebhookPayload struct {
	Type      string      `json:"type"`
	Timestamp time.Time   `json:"timestamp"`
	Data      WebhookData `json:"data"`
}

// WebhookData is the alert in a webhook.
type WebhookData struct {
	Message
	Link string `json:"link,omitempty"`
}

// Send implements Sender.
func (s *WebhookSender) Send(ctx context.Context, o Outgoing) error {
	if err := checkURL(o.Target); err != nil {
		return Permanent(err)
	}
	secret, err := s.secrets.WebhookSecret(ctx, o.Message.ShopID)
	if err != nil {
		return fmt.Errorf("webhook secret of shop %d: %w", o.Message.ShopID, err)
	}
	now := s.now()
	body, err := json.Marshal(WebhookPayload{
		Type:      events.TypeAlertLowStockRaised,
		Timestamp: o.Message.RaisedAt,
		Data:      WebhookData{Message: o.Message, Link: s.links.Alert(o.Message.AlertID)},
	})
	if err != nil {
		return Permanent(fmt.Errorf("encode webhook: %w", err))
	}
	sig, err := etsy.Sign(secret, o.Message.AlertID, now, body)
	if err != nil {
		return fmt.Errorf("sign webhook: %w", err)
	}
	return post(ctx, s.client, o.Target, body, http.Header{
		etsy.HeaderWebhookID:        {o.Message.AlertID},
		etsy.HeaderWebhookTimestamp: {strconv.FormatInt(now.Unix(), 10)},
		etsy.HeaderWebhookSignature: {sig},
	}, func(code int) bool { return code == http.StatusGone })
}

// SlackSender posts alerts to Slack-compatible incoming webhooks. The URL
// is the credential, so it never appears in an error.
type SlackSender struct {
	client *http.Client
	links  Links
}

// NewSlackSender returns a Slack sender.
func NewSlackSender(client *http.Client, links Links) *SlackSender {
	return &SlackSender{client: client, links: links}
}

// SlackPayload is what an incoming webhook accepts.
type SlackPayload struct {
	Text string `json:"text"`
}

// slackEscape escapes the three characters Slack's mrkdwn reserves.
var slackEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// Send implements Sender.
func (s *SlackSender) Send(ctx context.Context, o Outgoing) error {
	if err := checkURL(o.Target); err != nil {
		return Permanent(errors.New("slack webhook URL is not an http(s) URL"))
	}
	m := o.Message
	var b strings.Builder
	fmt.Fprintf(&b, ":warning: *Low stock* in %s: *%s* — %s has *%d* left (threshold %d).",
		slackEscape.Replace(m.Shop()), slackEscape.Replace(m.Listing()), slackEscape.Replace(m.Variant()), m.Quantity, m.Threshold)
	if link := s.links.Alert(m.AlertID); link != "" {
		fmt.Fprintf(&b, " <%s|See the alert>", link)
	}
	if m.ListingURL != "" {
		fmt.Fprintf(&b, " <%s|Listing on Etsy>", m.ListingURL)
	}
	fmt.Fprintf(&b, "\nAlert %s", m.AlertID)
	body, err := json.Marshal(SlackPayload{Text: b.String()})
	if err != nil {
		return Permanent(fmt.Errorf("encode slack message: %w", err))
	}
	// Slack answers 403 invalid_token, 404 no_service and 410
	// channel_is_archived for hooks that will never work again.
	return post(ctx, s.client, o.Target, body, nil, func(code int) bool {
		return code == http.StatusBadRequest || code == http.StatusForbidden || code == http.StatusNotFound || code == http.StatusGone
	})
}

func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("webhook URL %q is not an http(s) URL", raw)
	}
	return nil
}

// post sends body and maps the answer: 2xx delivered, permanent(code)
// fails for good, anything else is retried. Errors never carry the URL.
func post(ctx context.Context, client *http.Client, target string, body []byte, h http.Header, permanent func(int) bool) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return Permanent(errors.New("cannot build request for the webhook URL"))
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "shopledger-alerts/1")
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if errors.Is(err, ErrForbiddenAddress) {
			return Permanent(fmt.Errorf("post: %w", err))
		}
		return fmt.Errorf("post: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	err = fmt.Errorf("receiver answered %s", resp.Status)
	if permanent(resp.StatusCode) {
		return Permanent(err)
	}
	return err
}
