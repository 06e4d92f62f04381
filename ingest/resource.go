package ingest

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"strconv"
	"strings"
)

// ErrResourceURL means a webhook's resource_url is not one the fetcher may
// follow: another host, a userinfo or encoding trick, an unknown path, or
// another shop than the webhook's.
var ErrResourceURL = errors.New("resource url refused")

// ResourceKind says what a resource_url points at.
type ResourceKind int

const (
	ResourceReceipt ResourceKind = iota + 1
	ResourceListing
)

func (k ResourceKind) String() string {
	switch k {
	case ResourceReceipt:
		return "receipt"
	case ResourceListing:
		return "listing"
	}
	return "unknown"
}

// Resource is what a checked resource_url names. ShopID is 0 when the path
// does not carry one (listing URLs); the fetched listing's shop is then
// checked instead.
type Resource struct {
	Kind      ResourceKind
	ShopID    int64
	ReceiptID int64
	ListingID int64
}

// URLPolicy decides which resource_url values the fetcher follows.
type URLPolicy struct {
	// Hosts are the allowed hosts, with a port when not the scheme's
	// default (openapi.etsy.com, api.etsy.com; 127.0.0.1:8090 for the
	// simulator).
	Hosts []string
	// AllowHTTP accepts plain http, for a local simulator only.
	AllowHTTP bool
}

// Check parses raw and accepts it only if it is an absolute https URL on
// an allowed host, without userinfo, with a clean, unencoded path of a
// known Etsy shape whose shop (if it names one) is shopID. The fetcher
// never requests raw itself: it calls the API with the ids found here.
func (p URLPolicy) Check(raw string, shopID int64) (Resource, error) {
	refuse := func(why string) (Resource, error) {
		return Resource{}, fmt.Errorf("resource url %q: %s: %w", raw, why, ErrResourceURL)
	}
	if shopID <= 0 {
		return refuse("webhook names no shop")
	}
	if len(raw) > 2048 {
		return refuse("too long")
	}
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c <= ' ' || c >= 0x7f || c == '\\' {
			return refuse("control, space, backslash or non-ASCII character")
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return refuse("unparseable")
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && p.AllowHTTP:
	default:
		return refuse("scheme " + strconv.Quote(u.Scheme))
	}
	if u.Opaque != "" || u.User != nil || strings.Contains(u.Host, "@") {
		return refuse("userinfo or opaque form")
	}
	if u.Fragment != "" || u.RawFragment != "" {
		return refuse("fragment")
	}
	if !p.hostAllowed(u) {
		return refuse("host " + strconv.Quote(u.Host) + " not allowed")
	}
	if u.RawPath != "" || strings.Contains(u.Path, "%") || path.Clean(u.Path) != u.Path {
		return refuse("encoded or unclean path")
	}
	res, ok := matchPath(u.Path)
	if !ok {
		return refuse("path " + strconv.Quote(u.Path) + " is not an Etsy receipt or listing")
	}
	if res.ShopID != 0 && res.ShopID != shopID {
		return refuse(fmt.Sprintf("shop %d in the url, webhook is for shop %d", res.ShopID, shopID))
	}
	return res, nil
}

func (p URLPolicy) hostAllowed(u *url.URL) bool {
	host := strings.ToLower(u.Host)
	// The scheme's default port is the same host.
	if h, port, err := net.SplitHostPort(host); err == nil &&
		((u.Scheme == "https" && port == "443") || (u.Scheme == "http" && port == "80")) {
		host = h
	}
	if host == "" {
		return false
	}
	for _, allowed := range p.Hosts {
		if host == strings.ToLower(allowed) {
			return true
		}
	}
	return false
}

// matchPath recognises the resource paths Etsy's webhooks point at.
func matchPath(p string) (Resource, bool) {
	seg := strings.Split(strings.TrimPrefix(p, "/"), "/")
	if len(seg) < 4 || seg[0] != "v3" || seg[1] != "application" {
		return Resource{}, false
	}
	seg = seg[2:]
	ids := func(idx ...int) ([]int64, bool) {
		out := make([]int64, len(idx))
		for i, j := range idx {
			n, ok := parseID(seg[j])
			if !ok {
				return nil, false
			}
			out[i] = n
		}
		return out, true
	}
	switch {
	// shops/{shop}/receipts/{receipt}[/transactions]
	case (len(seg) == 4 || len(seg) == 5 && seg[4] == "transactions") && seg[0] == "shops" && seg[2] == "receipts":
		if n, ok := ids(1, 3); ok {
			return Resource{Kind: ResourceReceipt, ShopID: n[0], ReceiptID: n[1]}, true
		}
	// shops/{shop}/listings/{listing}
	case len(seg) == 4 && seg[0] == "shops" && seg[2] == "listings":
		if n, ok := ids(1, 3); ok {
			return Resource{Kind: ResourceListing, ShopID: n[0], ListingID: n[1]}, true
		}
	// listings/{listing}/inventory[/products/{product}]
	case (len(seg) == 3 || len(seg) == 5 && seg[3] == "products") && seg[0] == "listings" && seg[2] == "inventory":
		want := []int{1}
		if len(seg) == 5 {
			want = append(want, 4)
		}
		if n, ok := ids(want...); ok {
			return Resource{Kind: ResourceListing, ListingID: n[0]}, true
		}
	}
	// listings/{listing}
	if len(seg) == 2 && seg[0] == "listings" {
		if n, ok := parseID(seg[1]); ok {
			return Resource{Kind: ResourceListing, ListingID: n}, true
		}
	}
	return Resource{}, false
}

// parseID accepts a positive decimal id without sign, spaces or leading
// zeros.
func parseID(s string) (int64, bool) {
	if s == "" || len(s) > 19 || s[0] == '0' {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n > 0
}
