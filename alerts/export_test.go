package alerts

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"time"
)

// GuardedClient is the client NewHTTPClient(timeout, false) builds, with
// its resolver and its socket dialer replaced, so that tests can make DNS
// answer anything and still reach a local receiver.
func GuardedClient(lookup func(ctx context.Context, host string) ([]netip.Addr, error),
	dial func(ctx context.Context, network, address string) (net.Conn, error)) *http.Client {
	return newHTTPClient(5*time.Second, (&guardedDialer{lookup: lookup, dial: dial}).DialContext)
}
