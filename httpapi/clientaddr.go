package httpapi

import (
	"net/http"
	"net/netip"
)

// ClientAddress is the client's address as the API's limits see it (see
// clientAddr): the web pages throttle and audit by the same rule.
func ClientAddress(r *http.Request, proxies []netip.Prefix, header ProxyHeader) string {
	s := server{cfg: Config{TrustedProxies: proxies, ProxyHeader: header}}
	return s.clientAddr(r)
}
