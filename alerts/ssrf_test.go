package alerts_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/shopledger/shopledger/alerts"
)

// lastAddr is the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr()
	b := a.AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	out, _ := netip.AddrFromSlice(b)
	return out
}

func TestCheckAddressRefusesEveryReservedRange(t *testing.T) {
	denied := []string{
		"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
		"192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
		"203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32",
		"::/128", "::1/128", "::/96", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32",
		"2002::/16", "3fff::/20", "5f00::/16", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
	}
	for _, s := range denied {
		p := netip.MustParsePrefix(s)
		probes := []netip.Addr{p.Masked().Addr(), lastAddr(p)}
		if p.Addr().Is4() {
			// The same address in its IPv4-mapped IPv6 form.
			for _, a := range probes[:2] {
				probes = append(probes, netip.AddrFrom16(a.As16()))
			}
		}
		for _, a := range probes {
			if err := alerts.CheckAddress(a); !errors.Is(err, alerts.ErrForbiddenAddress) {
				t.Errorf("CheckAddress(%s) in %s = %v, want ErrForbiddenAddress", a, s, err)
			}
		}
	}
	for _, s := range []string{"fe80::1%eth0", "ff02::1%lo"} {
		if err := alerts.CheckAddress(netip.MustParseAddr(s)); !errors.Is(err, alerts.ErrForbiddenAddress) {
			t.Errorf("CheckAddress(%s) = %v, want ErrForbiddenAddress", s, err)
		}
	}
	// Public addresses, some right beside a denied range.
	for _, s := range []string{
		"8.8.8.8", "1.1.1.1", "9.255.255.255", "11.0.0.0", "100.63.255.255", "100.128.0.0", "172.32.0.0",
		"192.0.1.0", "198.17.255.255", "198.20.0.0", "203.0.114.0", "223.255.255.255", "::ffff:8.8.8.8",
		"2606:4700:4700::1111", "2a00:1450:4001::200e", "2001:200::1", "64:ff9a::1",
	} {
		if err := alerts.CheckAddress(netip.MustParseAddr(s)); err != nil {
			t.Errorf("CheckAddress(%s) = %v, want allowed", s, err)
		}
	}
}

// fakeNet answers DNS from a script and connects every allowed dial to
// one local receiver, recording the addresses dialled.
type fakeNet struct {
	mu      sync.Mutex
	answers [][]netip.Addr
	dialled []string
	target  string
}

func (f *fakeNet) lookup(_ context.Context, host string) ([]netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.answers) == 0 {
		return nil, fmt.Errorf("no answer scripted for %s", host)
	}
	a := f.answers[0]
	if len(f.answers) > 1 {
		f.answers = f.answers[1:]
	}
	return a, nil
}

func (f *fakeNet) dial(ctx context.Context, network, address string) (net.Conn, error) {
	f.mu.Lock()
	f.dialled = append(f.dialled, address)
	f.mu.Unlock()
	var d net.Dialer
	return d.DialContext(ctx, network, f.target)
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func slackTo(client *http.Client, target string) error {
	return alerts.NewSlackSender(client, alerts.Links{}).Send(context.Background(), alerts.Outgoing{
		Kind: alerts.KindSlack, Target: target, Message: alerts.Message{AlertID: uuid.NewString(), ShopID: 1},
	})
}

func TestEachDeliveryChecksTheAddressDNSGivesThen(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	t.Cleanup(srv.Close)
	f := &fakeNet{target: srv.Listener.Addr().String(), answers: [][]netip.Addr{
		addrs("93.184.215.14"),
		addrs("10.1.2.3"),                         // the name now points inside
		addrs("93.184.215.14", "169.254.169.254"), // one bad answer among good ones
		addrs("::ffff:100.64.0.7"),
	}}
	client := alerts.GuardedClient(f.lookup, f.dial)
	// A fresh connection for each delivery: no keep-alive hides a dial.
	client.Transport.(*http.Transport).DisableKeepAlives = true
	if err := slackTo(client, "http://hooks.example.test/services/x"); err != nil {
		t.Fatalf("first delivery, public address: %v", err)
	}
	for i := range 3 {
		err := slackTo(client, "http://hooks.example.test/services/x")
		if !errors.Is(err, alerts.ErrForbiddenAddress) || !alerts.IsPermanent(err) {
			t.Errorf("delivery %d after the answer changed = %v, want a permanent ErrForbiddenAddress", i+2, err)
		}
	}
	if diff := cmp.Diff([]string{"93.184.215.14:80"}, f.dialled); diff != "" {
		t.Errorf("addresses dialled (-want +got):\n%s", diff)
	}
}

func TestRedirectToAForbiddenAddressIsNotFollowed(t *testing.T) {
	var mu sync.Mutex
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(srv.Close)
	f := &fakeNet{target: srv.Listener.Addr().String(), answers: [][]netip.Addr{addrs("93.184.215.14")}}
	err := slackTo(alerts.GuardedClient(f.lookup, f.dial), "http://hooks.example.test/services/x")
	if err == nil || !strings.Contains(err.Error(), "307") {
		t.Errorf("delivery answered by a redirect = %v, want a failure naming the 307", err)
	}
	if diff := cmp.Diff([]string{"93.184.215.14:80"}, f.dialled); diff != "" {
		t.Errorf("addresses dialled (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"/services/x"}, paths); diff != "" {
		t.Errorf("requests received (-want +got):\n%s", diff)
	}
}

// TestRealDialsRefuseLocalSpellings goes through the real resolver and
// sockets: other spellings of this machine are refused too.
func TestRealDialsRefuseLocalSpellings(t *testing.T) {
	var hits int
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		hits++
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	client := alerts.NewHTTPClient(0, false)
	for _, host := range []string{"127.0.0.1", "0.0.0.0", "[::ffff:127.0.0.1]", "localhost", "[::1]"} {
		target := "http://" + host + ":" + port + "/hook"
		if err := slackTo(client, target); !errors.Is(err, alerts.ErrForbiddenAddress) {
			t.Errorf("delivery to %s = %v, want ErrForbiddenAddress", target, err)
		}
	}
	if hits != 0 {
		t.Errorf("the local receiver got %d requests", hits)
	}
}
