package etsy

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// ErrResourceURL means a webhook's resource_url is not one the ledger
// should follow: another host, userinfo, an unexpected path.
var ErrResourceURL = errors.New("etsy: resource url not allowed")

// Resource kinds a webhook's resource_url can point at.
const (
	ResourceReceipt   = "receipt"   // /v3/application/shops/{shop_id}/receipts/{receipt_id}
	ResourceListing   = "listing"   // /v3/application/listings/{listing_id}
	ResourceInventory = "inventory" // /v3/application/listings/{listing_id}/inventory
)

// Resource is what a resource_url names.
type Resource struct {
	Kind      string
	ShopID    int64 // receipts only
	ReceiptID int64
	ListingID int64
}

// DefaultResourceHosts are Etsy's two equivalent API hosts.
var DefaultResourceHosts = []string{"openapi.etsy.com", "api.etsy.com"}

// ParseResourceURL checks a webhook's resource_url before anything
// follows it — the URL arrives in a body anyone could have sent until the
// signature is checked, and even then must not steer requests elsewhere.
// The host (with port, if any) must be one of allowedHosts exactly, https
// unless the host is a loopback simulator; no userinfo, query or fragment;
// the path one of Etsy's resource shapes with positive ids. Callers must
// still check that a receipt's shop is the webhook's shop_id.
func ParseResourceURL(raw string, allowedHosts []string) (Resource, error) {
	fail := func(why string) (Resource, error) {
		return Resource{}, fmt.Errorf("parse resource url %q: %s: %w", raw, why, ErrResourceURL)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fail("not a url")
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" || u.RawPath != "" {
		return fail("userinfo, query, fragment or escaped path")
	}
	if !slices.Contains(allowedHosts, u.Host) {
		return fail("host not allowed")
	}
	local := u.Hostname() == "127.0.0.1" || u.Hostname() == "localhost" || u.Hostname() == "::1"
	if u.Scheme != "https" && !(u.Scheme == "http" && local) {
		return fail("scheme must be https")
	}
	parts := strings.Split(strings.TrimPrefix(u.Path, "/v3/application/"), "/")
	if !strings.HasPrefix(u.Path, "/v3/application/") {
		return fail("not under /v3/application/")
	}
	ids := func(ss ...string) ([]int64, bool) {
		var out []int64
		for _, s := range ss {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || n <= 0 || strconv.FormatInt(n, 10) != s {
				return nil, false
			}
			out = append(out, n)
		}
		return out, true
	}
	switch {
	case len(parts) == 4 && parts[0] == "shops" && parts[2] == "receipts":
		if n, ok := ids(parts[1], parts[3]); ok {
			return Resource{Kind: ResourceReceipt, ShopID: n[0], ReceiptID: n[1]}, nil
		}
	case len(parts) == 2 && parts[0] == "listings":
		if n, ok := ids(parts[1]); ok {
			return Resource{Kind: ResourceListing, ListingID: n[0]}, nil
		}
	case len(parts) == 3 && parts[0] == "listings" && parts[2] == "inventory":
		if n, ok := ids(parts[1]); ok {
			return Resource{Kind: ResourceInventory, ListingID: n[0]}, nil
		}
	}
	return fail("unknown path")
}
