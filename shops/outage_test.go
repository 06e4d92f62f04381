package shops_test

import (
	"context"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/service/servicetest"
	"github.com/shopledger/shopledger/shops"
)

// cutProxy forwards TCP connections to PostgreSQL until it is cut: then it
// drops every open connection and refuses new ones, as a failover or a
// network partition does, until it is restored.
type cutProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]bool
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.cut()
	})
	return p
}

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.pipe(c)
	}
}

func (p *cutProxy) pipe(c net.Conn) {
	if !p.track(c) {
		return
	}
	s, err := net.Dial("tcp", p.target)
	if err != nil || !p.track(s) {
		c.Close()
		return
	}
	go func() {
		_, _ = io.Copy(s, c)
		s.Close()
		c.Close()
	}()
	_, _ = io.Copy(c, s)
	c.Close()
	s.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, s)
	p.mu.Unlock()
}

// track remembers c for the next cut, or closes it if the proxy is down.
func (p *cutProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		c.Close()
		return false
	}
	p.conns[c] = true
	return true
}

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *cutProxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

// cutAfterRefresh lets Etsy rotate the tokens, then takes the database
// away for outage before the refresh can store them.
type cutAfterRefresh struct {
	inner    shops.Refresher
	proxy    *cutProxy
	outage   time.Duration
	restored chan time.Time
}

func (c cutAfterRefresh) Refresh(ctx context.Context, rt string) (etsy.Token, error) {
	tok, err := c.inner.Refresh(ctx, rt)
	if err == nil {
		c.proxy.cut()
		time.AfterFunc(c.outage, func() {
			c.proxy.restore()
			c.restored <- time.Now()
		})
	}
	return tok, err
}

// PostgreSQL unreachable for 5 s right after Etsy rotated a shop's tokens:
// storing them keeps trying until the database is back, and the shop
// stays connected with the rotated grant.
func TestRotatedTokenSurvivesDatabaseOutage(t *testing.T) {
	e := newEnv(t)
	info, old := e.connectShop("Outage")
	u, err := url.Parse(e.db.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newCutProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	db := pgtest.Open(t, u.String(), 4)
	const outage = 5 * time.Second
	refresher := cutAfterRefresh{inner: e.oauth, proxy: proxy, outage: outage, restored: make(chan time.Time, 1)}
	reg := prometheus.NewRegistry()
	store := e.newStore(db, e.keys, refresher, reg)
	ts, err := store.ForShop(context.Background(), info.ShopID)
	if err != nil {
		t.Fatal(err)
	}
	e.sim.Advance(2 * time.Hour)

	got, err := ts.Token(context.Background())
	if err != nil {
		t.Fatalf("Token across a %v outage: %v", outage, err)
	}
	returned := time.Now()
	e.secret(got)
	if got == old.AccessToken {
		t.Fatal("the expired token was handed out")
	}
	select {
	case restored := <-refresher.restored:
		if returned.Before(restored) {
			t.Errorf("Token returned %v before the database came back", restored.Sub(returned))
		}
	default:
		t.Fatal("Token returned while the database was still unreachable")
	}
	if n := servicetest.Metric(t, reg, "shopledger_token_refreshes_total", map[string]string{"result": "ok"}); n != 1 {
		t.Errorf("ok refreshes = %v, want 1", n)
	}
	if n := servicetest.Metric(t, reg, "shopledger_token_refreshes_total", map[string]string{"result": "lost"}); n != 0 {
		t.Errorf("lost refreshes = %v, want 0", n)
	}

	// Another process finds the shop connected with the rotated grant: its
	// own refresh, with the stored refresh token, works.
	sh, err := e.store.Get(context.Background(), info.ShopID)
	if err != nil {
		t.Fatal(err)
	}
	if sh.Status != shops.StatusConnected {
		t.Fatalf("status after the outage = %q, want connected", sh.Status)
	}
	e.sim.Advance(2 * time.Hour)
	other, err := e.store.ForShop(context.Background(), info.ShopID)
	if err != nil {
		t.Fatal(err)
	}
	next, err := other.Token(context.Background())
	if err != nil {
		t.Fatalf("refresh with the stored (rotated) refresh token: %v", err)
	}
	e.secret(next)
	if n := e.refreshCalls(); n != 2 {
		t.Errorf("refresh calls = %d, want 2", n)
	}
	if e.sim.Stats().RefreshFailures != 0 {
		t.Errorf("Etsy refused %d refreshes, want none", e.sim.Stats().RefreshFailures)
	}
}

// lockProbe checks, while Etsy is being asked for a token, that nothing
// of the refresh holds the credentials row or a transaction open.
type lockProbe struct {
	inner shops.Refresher
	e     *env
	shop  int64
	found chan []string
}

func (p lockProbe) Refresh(ctx context.Context, rt string) (etsy.Token, error) {
	var problems []string
	tx, err := p.e.db.DB.BeginTx(ctx, nil)
	if err != nil {
		problems = append(problems, err.Error())
	} else {
		var id int64
		if err := tx.QueryRowContext(ctx, `SELECT shop_id FROM shop_credentials WHERE shop_id = $1 FOR UPDATE NOWAIT`, p.shop).Scan(&id); err != nil {
			problems = append(problems, "credentials row: "+err.Error())
		}
		_ = tx.Rollback()
	}
	rows, err := p.e.db.DB.QueryContext(ctx, `SELECT state || ' ' || coalesce(backend_xid::text, '-') || ': ' || left(query, 60)
		FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()
		AND (backend_xid IS NOT NULL OR state LIKE 'idle in transaction%')`, p.e.db.Name)
	if err != nil {
		problems = append(problems, err.Error())
	} else {
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err == nil {
				problems = append(problems, "open transaction: "+s)
			}
		}
		rows.Close()
	}
	p.found <- problems
	return p.inner.Refresh(ctx, rt)
}

// The call to Etsy's token endpoint runs outside any transaction: the
// credentials row is not locked and no session holds a transaction id
// (which would stall every consumer of the log for as long as Etsy
// takes).
func TestRefreshCallsEtsyOutsideAnyTransaction(t *testing.T) {
	e := newEnv(t)
	info, _ := e.connectShop("NoLocks")
	probe := lockProbe{inner: e.oauth, e: e, shop: info.ShopID, found: make(chan []string, 1)}
	store := e.newStore(e.db.DB, e.keys, probe, nil)
	e.sim.Advance(2 * time.Hour)
	ts, err := store.ForShop(context.Background(), info.ShopID)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ts.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	e.secret(tok)
	for _, p := range <-probe.found {
		t.Errorf("during the call to Etsy: %s", p)
	}
}
