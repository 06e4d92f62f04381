package shops_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/service/servicetest"
	"github.com/shopledger/shopledger/shops"
)

func TestTokenIsServedFromStorageUntilItNearsExpiry(t *testing.T) {
	e := newEnv(t)
	info, tok := e.connectShop("Fresh")
	// A new store is a process that starts after the connect.
	other := e.newStore(e.db.DB, e.keys, e.oauth, nil)
	ts, err := other.ForShop(context.Background(), info.ShopID)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ts.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got != tok.AccessToken {
		t.Error("a fresh stored token was not handed out as is")
	}
	e.sim.Advance(56 * time.Minute) // inside the 5-minute skew
	got, err = ts.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got == tok.AccessToken {
		t.Error("a token expiring within the skew was not refreshed")
	}
	if n := e.refreshCalls(); n != 1 {
		t.Errorf("refresh calls = %d, want 1", n)
	}
	e.secret(got)
}

// 20 goroutines with an expired token cause one refresh, also
// when they are spread over two processes.
func TestRefreshIsSingleFlight(t *testing.T) {
	e := newEnv(t)
	info, old := e.connectShop("Busy")
	// The second process has its own connection pool.
	db2 := openSecondPool(t, e)
	stores := []*shops.Store{e.store, e.newStore(db2, e.keys, e.oauth, nil)}
	e.sim.Advance(2 * time.Hour)

	var wg sync.WaitGroup
	got := make([]string, 20)
	errs := make([]error, 20)
	start := make(chan struct{})
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ts, err := stores[i%2].ForShop(context.Background(), info.ShopID)
			if err != nil {
				errs[i] = err
				return
			}
			got[i], errs[i] = ts.Token(context.Background())
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("goroutine %d: %v", i, err)
		}
	}
	for i := range got {
		if got[i] != got[0] || got[i] == old.AccessToken {
			t.Fatalf("goroutine %d got a different or stale token", i)
		}
	}
	if n := e.refreshCalls(); n != 1 {
		t.Errorf("etsy saw %d refresh calls, want 1", n)
	}
	e.secret(got[0])

	// And the answer is usable at Etsy.
	ts, _ := e.store.ForShop(context.Background(), info.ShopID)
	if _, err := e.client.GetMe(context.Background(), ts); err != nil {
		t.Fatalf("getMe with the refreshed token: %v", err)
	}
}

func TestRejectedAccessTokenIsRefreshedOnce(t *testing.T) {
	e := newEnv(t)
	info, _ := e.connectShop("Rejected")
	ts, err := e.store.ForShop(context.Background(), info.ShopID)
	if err != nil {
		t.Fatal(err)
	}
	// Etsy expires the token early; our clock says it is fine. The
	// client gets 401 invalid_token and asks for one refresh.
	if err := e.sim.ExpireAccessTokens(info.UserID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.GetMe(context.Background(), ts); err != nil {
		t.Fatalf("getMe: %v", err)
	}
	if n := e.refreshCalls(); n != 1 {
		t.Errorf("refresh calls = %d, want 1", n)
	}
	tok, _ := ts.Token(context.Background())
	e.secret(tok)
}

func TestInvalidGrantRequiresReauth(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	info, _ := e.connectShop("Revoked")
	keep, _ := e.connectShop("Unaffected")
	ts, err := e.store.ForShop(ctx, info.ShopID)
	if err != nil {
		t.Fatal(err)
	}
	// The seller changed their Etsy password.
	if err := e.sim.RevokeTokens(info.UserID); err != nil {
		t.Fatal(err)
	}
	e.sim.Advance(2 * time.Hour)
	_, err = ts.Token(ctx)
	for _, want := range []error{shops.ErrReauthRequired, shops.ErrNotConnected, etsy.ErrInvalidGrant} {
		if !errors.Is(err, want) {
			t.Errorf("Token = %v, want it to match %v", err, want)
		}
	}
	// Later calls fail at once, without asking Etsy again.
	for range 3 {
		if _, err := ts.Token(ctx); !errors.Is(err, shops.ErrReauthRequired) {
			t.Errorf("Token = %v, want ErrReauthRequired", err)
		}
	}
	if _, err := e.store.ForShop(ctx, info.ShopID); !errors.Is(err, shops.ErrReauthRequired) {
		t.Errorf("ForShop = %v, want ErrReauthRequired", err)
	}
	if n := e.refreshCalls(); n != 1 {
		t.Errorf("refresh calls = %d, want 1", n)
	}
	got, err := e.store.Get(ctx, info.ShopID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != shops.StatusReauthRequired || !strings.HasPrefix(got.StatusReason, "invalid_grant") {
		t.Errorf("status %q reason %q, want reauth_required for invalid_grant", got.Status, got.StatusReason)
	}
	var reauth []events.ShopReauthRequired
	for _, r := range e.events(events.ShopStream(info.ShopID)) {
		if p, ok := r.Data.(events.ShopReauthRequired); ok {
			reauth = append(reauth, p)
		}
	}
	if diff := cmp.Diff([]events.ShopReauthRequired{{ShopID: info.ShopID, Reason: got.StatusReason}}, reauth); diff != "" {
		t.Errorf("reauth events (-want +got):\n%s", diff)
	}
	connected, err := e.store.Connected(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int64{keep.ShopID}, connected); diff != "" {
		t.Errorf("connected shops (-want +got):\n%s", diff)
	}
	for status, want := range map[string]float64{"reauth_required": 1, "connected": 1, "disconnected": 0} {
		if got := servicetest.Metric(t, e.reg, "shopledger_shops", map[string]string{"status": status}); got != want {
			t.Errorf("shopledger_shops{status=%q} = %v, want %v", status, got, want)
		}
	}
	if got := servicetest.Metric(t, e.reg, "shopledger_token_refreshes_total", map[string]string{"result": "invalid_grant"}); got != 1 {
		t.Errorf("refreshes{invalid_grant} = %v, want 1", got)
	}

	// Connecting again repairs it.
	tok, err := e.sim.IssueToken(info.ShopID, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.secret(tok.AccessToken, tok.RefreshToken)
	if _, err := e.store.Connect(ctx, shops.Grant{
		Shop: etsy.Shop{ShopID: info.ShopID, UserID: info.UserID, ShopName: info.Name}, Token: tok,
	}, events.Metadata{}); err != nil {
		t.Fatal(err)
	}
	ts, err = e.store.ForShop(ctx, info.ShopID)
	if err != nil {
		t.Fatalf("ForShop after reconnect: %v", err)
	}
	if got, err := ts.Token(ctx); err != nil || got != tok.AccessToken {
		t.Errorf("Token after reconnect: %v", err)
	}
}

// The process dies after Etsy rotated the refresh token and
// before the new one was committed. The stored refresh token is spent;
// the next refresh gets invalid_grant and the shop goes to
// reauth_required once, instead of looping.
func TestCrashBetweenRefreshAndCommit(t *testing.T) {
	e := newEnv(t)
	info, old := e.connectShop("Crashy")
	e.sim.Advance(2 * time.Hour)

	child := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v")
	child.Env = append(os.Environ(),
		"SHOPS_CRASH_CHILD=1",
		"SHOPS_CRASH_DB="+e.db.URL,
		"SHOPS_CRASH_TOKEN_URL="+e.oauth.TokenURL,
		"SHOPS_CRASH_KEYS="+e.key.Spec(),
		"SHOPS_CRASH_NOW="+e.sim.Now().Format(time.RFC3339Nano),
		fmt.Sprintf("SHOPS_CRASH_SHOP=%d", info.ShopID),
	)
	out, err := child.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != crashExitCode {
		t.Fatalf("child did not crash as planned (%v):\n%s", err, out)
	}
	e.logs.Write(out) // the child's logs are checked for secrets too
	if n := e.refreshCalls(); n != 1 {
		t.Fatalf("refresh calls after the crash = %d, want 1", n)
	}
	var gen int64
	if err := e.db.DB.QueryRow(`SELECT generation FROM shop_credentials WHERE shop_id = $1`, info.ShopID).Scan(&gen); err != nil {
		t.Fatal(err)
	}
	if gen != 1 {
		t.Fatalf("credentials generation = %d, want 1: the crashed refresh must not have committed", gen)
	}

	ts, err := e.store.ForShop(context.Background(), info.ShopID)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := ts.Token(context.Background()); !errors.Is(err, shops.ErrReauthRequired) {
			t.Fatalf("Token = %v, want ErrReauthRequired", err)
		}
	}
	if n := e.refreshCalls(); n != 2 {
		t.Errorf("refresh calls = %d, want 2 (the lost one and one invalid_grant)", n)
	}
	sh, err := e.store.Get(context.Background(), info.ShopID)
	if err != nil {
		t.Fatal(err)
	}
	if sh.Status != shops.StatusReauthRequired {
		t.Errorf("status = %q, want reauth_required", sh.Status)
	}
	_ = old
}

const crashExitCode = 42

// TestCrashChild is the process that dies; it only runs when
// TestCrashBetweenRefreshAndCommit starts it.
func TestCrashChild(t *testing.T) {
	if os.Getenv("SHOPS_CRASH_CHILD") != "1" {
		t.Skip("runs only as the child of TestCrashBetweenRefreshAndCommit")
	}
	ctx := context.Background()
	db := pgtest.Open(t, os.Getenv("SHOPS_CRASH_DB"), 2)
	keys, err := shops.ParseKeyring(os.Getenv("SHOPS_CRASH_KEYS"))
	if err != nil {
		t.Fatal(err)
	}
	now, err := time.Parse(time.RFC3339Nano, os.Getenv("SHOPS_CRASH_NOW"))
	if err != nil {
		t.Fatal(err)
	}
	var shopID int64
	fmt.Sscan(os.Getenv("SHOPS_CRASH_SHOP"), &shopID)
	oauth := etsy.OAuthConfig{ClientID: "simkeystring00000000000", TokenURL: os.Getenv("SHOPS_CRASH_TOKEN_URL"), Now: func() time.Time { return now }}
	// A short call and store window keep the refresh lease the crash
	// leaves behind short, so the parent does not wait long for it.
	store, err := shops.NewStore(shops.Config{
		DB: db, Events: eventstore.New(db), Keys: keys, Now: func() time.Time { return now },
		OAuth: crashAfterRefresh{oauth}, RefreshTimeout: time.Second, RefreshStoreWindow: time.Second,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := store.ForShop(ctx, shopID)
	if err != nil {
		t.Fatal(err)
	}
	_, err = ts.Token(ctx)
	t.Fatalf("Token returned (%v) instead of the process dying", err)
}

// crashAfterRefresh lets Etsy rotate the refresh token and then kills the
// process before the answer can be stored.
type crashAfterRefresh struct{ inner shops.Refresher }

func (c crashAfterRefresh) Refresh(ctx context.Context, rt string) (etsy.Token, error) {
	if _, err := c.inner.Refresh(ctx, rt); err != nil {
		fmt.Fprintln(os.Stderr, "refresh failed before the planned crash:", err)
		os.Exit(1)
	}
	os.Exit(crashExitCode)
	return etsy.Token{}, nil
}
