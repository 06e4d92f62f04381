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
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/internal/defaults"
	"github.com/shopledger/shopledger/stdwebhooks"
)

// ErrForbiddenAddress means a webhook URL resolved to an address alerts may
// not be sent to (loopback, private, link-local, shared, reserved…):
// sellers choose the URLs, and the ledger must not become their way into
// its own network or its provider's.
var ErrForbiddenAddress = errors.New("webhook address not allowed")

// deniedPrefixes are the special-purpose ranges (IANA's IPv4 and IPv6
// special-purpose address registries) that no seller's receiver lives in,
// beyond what netip's predicates already cover (loopback, private,
// link-local, multicast, unspecified). IPv4-mapped IPv6 addresses are
// checked as the IPv4 address they carry.
var deniedPrefixes = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8",       // "this network"
		"10.0.0.0/8",      // private
		"100.64.0.0/10",   // shared address space (carrier-grade NAT)
		"127.0.0.0/8",     // loopback
		"169.254.0.0/16",  // link-local, cloud metadata services
		"172.16.0.0/12",   // private
		"192.0.0.0/24",    // IETF protocol assignments
		"192.0.2.0/24",    // documentation (TEST-NET-1)
		"192.88.99.0/24",  // 6to4 relay anycast
		"192.168.0.0/16",  // private
		"198.18.0.0/15",   // benchmarking
		"198.51.100.0/24", // documentation (TEST-NET-2)
		"203.0.113.0/24",  // documentation (TEST-NET-3)
		"224.0.0.0/4",     // multicast
		"240.0.0.0/4",     // reserved, and 255.255.255.255 broadcast
		"::/128",          // unspecified
		"::1/128",         // loopback
		"::/96",           // IPv4-compatible (deprecated)
		"64:ff9b::/96",    // NAT64: would reach any IPv4 address through the translator
		"64:ff9b:1::/48",  // local-use NAT64
		"100::/64",        // discard-only
		"2001::/23",       // IETF protocol assignments, Teredo among them
		"2001:db8::/32",   // documentation
		"2002::/16",       // 6to4: embeds any IPv4 address
		"3fff::/20",       // documentation
		"5f00::/16",       // segment routing SIDs
		"fc00::/7",        // unique local
		"fe80::/10",       // link-local
		"fec0::/10",       // site-local (deprecated)
		"ff00::/8",        // multicast
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// CheckAddress reports, as ErrForbiddenAddress, whether alert deliveries
// may not connect to ip.
func CheckAddress(ip netip.Addr) error {
	ip = ip.WithZone("").Unmap()
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() {
		return fmt.Errorf("%s: %w", ip, ErrForbiddenAddress)
	}
	for _, p := range deniedPrefixes {
		if p.Contains(ip) {
			return fmt.Errorf("%s (in %s): %w", ip, p, ErrForbiddenAddress)
		}
	}
	return nil
}

// guardedDialer resolves a host itself, refuses it if any of its
// addresses is forbidden, and connects to the checked address: the check
// happens on every connection, so a DNS answer that changes after a
// channel was added (or between two deliveries) is judged as it is then.
// Redirects are never followed (see NewHTTPClient), so a receiver cannot
// bounce a delivery elsewhere either.
type guardedDialer struct {
	lookup func(ctx context.Context, host string) ([]netip.Addr, error)
	dial   func(ctx context.Context, network, address string) (net.Conn, error)
}

func (g *guardedDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	var addrs []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{ip}
	} else if addrs, err = g.lookup(ctx, host); err != nil {
		return nil, err
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("%s has no address", host)
	}
	// One forbidden answer refuses the host: a name that resolves both
	// inside and outside is not a receiver to trust with either.
	for _, ip := range addrs {
		if err := CheckAddress(ip); err != nil {
			return nil, err
		}
	}
	var errs []error
	for _, ip := range addrs {
		conn, err := g.dial(ctx, network, net.JoinHostPort(ip.Unmap().String(), port))
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// NewHTTPClient returns the client of webhook and Slack deliveries: a
// timeout (Standard Webhooks suggests 15–30 s), no redirects (a 3xx is a
// failure, as for Etsy's own deliveries) and, unless allowPrivate, no
// connections to any address CheckAddress refuses.
func NewHTTPClient(timeout time.Duration, allowPrivate bool) *http.Client {
	defaults.Positive(&timeout, 15*time.Second)
	dialer := &net.Dialer{Timeout: timeout}
	dial := dialer.DialContext
	if !allowPrivate {
		// Checked again at the socket: whatever resolved the address.
		dialer.Control = func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("%s: %w", address, ErrForbiddenAddress)
			}
			return CheckAddress(ap.Addr())
		}
		dial = (&guardedDialer{lookup: lookupNetIP, dial: dialer.DialContext}).DialContext
	}
	return newHTTPClient(timeout, dial)
}

func lookupNetIP(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

func newHTTPClient(timeout time.Duration, dial func(ctx context.Context, network, address string) (net.Conn, error)) *http.Client {
	transport := &http.Transport{
		Proxy:               nil,
		DialContext:         dial,
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
		Data:      WebhookData{Message: o.Message, Link: s.links.Of(o.Message)},
	})
	if err != nil {
		return Permanent(fmt.Errorf("encode webhook: %w", err))
	}
	sig, err := stdwebhooks.Sign(secret, o.Message.AlertID, now, body)
	if err != nil {
		return fmt.Errorf("sign webhook: %w", err)
	}
	return post(ctx, s.client, o.Target, body, http.Header{
		stdwebhooks.HeaderID:        {o.Message.AlertID},
		stdwebhooks.HeaderTimestamp: {strconv.FormatInt(now.Unix(), 10)},
		stdwebhooks.HeaderSignature: {sig},
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
	if link := s.links.Of(m); link != "" {
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
