package shops_test

import (
	"context"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shopledger/shopledger/shops"
)

// A ciphertext moved to another seller's row, or to the other
// column, does not decrypt.
func TestCiphertextIsBoundToSellerShopAndColumn(t *testing.T) {
	tests := map[string]string{
		"another seller's refresh token": `UPDATE shop_credentials SET refresh_token = (SELECT refresh_token FROM shop_credentials WHERE shop_id = $1), refresh_token_key = (SELECT refresh_token_key FROM shop_credentials WHERE shop_id = $1) WHERE shop_id = $2`,
		"another seller's access token":  `UPDATE shop_credentials SET access_token = (SELECT access_token FROM shop_credentials WHERE shop_id = $1), expires_at = now() + interval '1 year' WHERE shop_id = $2`,
		"own access token as refresh":    `UPDATE shop_credentials SET refresh_token = access_token WHERE shop_id = $2 AND $1::bigint IS NOT NULL`,
	}
	for name, swap := range tests {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			victim, _ := e.connectShop("Victim")
			thief, _ := e.connectShop("Thief")
			if _, err := e.db.DB.Exec(swap, victim.ShopID, thief.ShopID); err != nil {
				t.Fatal(err)
			}
			// Another process, so nothing is cached.
			s := e.newStore(e.db.DB, e.keys, e.oauth, nil)
			e.sim.Advance(2 * time.Hour) // the access token is refreshed only with the refresh token
			ts, err := s.ForShop(context.Background(), thief.ShopID)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ts.Token(context.Background()); !errors.Is(err, shops.ErrDecrypt) {
				t.Fatalf("Token = %v, want ErrDecrypt", err)
			}
			if n := e.refreshCalls(); n != 0 {
				t.Errorf("refresh calls = %d: a foreign token reached Etsy", n)
			}
		})
	}
}

// Old ciphertexts decrypt, new writes use the new key id, and
// rotation converges.
func TestRotateKeysConverges(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a, tokA := e.connectShop("A")
	b, tokB := e.connectShop("B")
	c, err := shops.NewConnector(shops.ConnectorConfig{Store: e.store, OAuth: e.oauth, Client: e.client})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Begin(ctx); err != nil { // a pending authorization under k1
		t.Fatal(err)
	}

	k2 := mustKey(t, "k2")
	both := mustKeyring(t, k2, e.key)
	s2 := e.newStore(e.db.DB, both, e.oauth, nil)
	// Before rotation, old ciphertexts still decrypt under the new ring.
	for _, x := range []struct {
		id   int64
		want string
	}{{a.ShopID, tokA.AccessToken}, {b.ShopID, tokB.AccessToken}} {
		ts, err := s2.ForShop(ctx, x.id)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := ts.Token(ctx); err != nil || got != x.want {
			t.Fatalf("shop %d before rotation: %v", x.id, err)
		}
	}
	// New writes use k2: connect a third shop.
	e.store = s2
	cShop, _ := e.connectShop("C")
	if sh, _ := s2.Get(ctx, cShop.ShopID); !cmp.Equal(sh.KeyIDs, []string{"k2"}) {
		t.Errorf("new connection sealed with %v, want [k2]", sh.KeyIDs)
	}

	res, err := s2.RotateKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(shops.RotateResult{Credentials: 2, PendingAuths: 1}, res); diff != "" {
		t.Errorf("first rotation (-want +got):\n%s", diff)
	}
	res, err = s2.RotateKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(shops.RotateResult{}, res); diff != "" {
		t.Errorf("second rotation (-want +got):\n%s", diff)
	}
	var left int
	if err := e.db.DB.QueryRow(`SELECT (SELECT count(*) FROM shop_credentials WHERE access_token_key <> 'k2' OR refresh_token_key <> 'k2') + (SELECT count(*) FROM oauth_pending WHERE verifier_key <> 'k2')`).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("%d rows still under k1", left)
	}

	// k1 can now go: a ring with only k2 reads everything, refreshes too.
	only := mustKeyring(t, k2)
	s3 := e.newStore(e.db.DB, only, e.oauth, nil)
	ts, err := s3.ForShop(ctx, a.ShopID)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ts.Token(ctx); err != nil || got != tokA.AccessToken {
		t.Fatalf("after dropping k1: %v", err)
	}
	e.sim.Advance(2 * time.Hour)
	if got, err := ts.Token(ctx); err != nil {
		t.Fatalf("refresh after dropping k1: %v", err)
	} else {
		e.secret(got)
	}
}

func TestRotateKeysReportsUnreadableRows(t *testing.T) {
	e := newEnv(t)
	a, _ := e.connectShop("Lost")
	// The operator dropped k1 before rotating.
	s := e.newStore(e.db.DB, mustKeyring(t, mustKey(t, "k2")), e.oauth, nil)
	res, err := s.RotateKeys(context.Background())
	if !errors.Is(err, shops.ErrUnknownKey) {
		t.Fatalf("RotateKeys = %v, want ErrUnknownKey", err)
	}
	if diff := cmp.Diff([]int64{a.ShopID}, res.Failed); diff != "" {
		t.Errorf("failed shops (-want +got):\n%s", diff)
	}
}

// Neither tokens nor the key are
// anywhere in the database, as pg_dump sees it.
func TestNoPlaintextSecretsInDatabaseDump(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	info, _ := e.connectShop("Dumped")
	e.connectShop("Dumped2")
	ts, err := e.store.ForShop(ctx, info.ShopID)
	if err != nil {
		t.Fatal(err)
	}
	e.sim.Advance(2 * time.Hour)
	tok, err := ts.Token(ctx) // a refreshed token, stored by the refresh path
	if err != nil {
		t.Fatal(err)
	}
	e.secret(tok)
	c, err := shops.NewConnector(shops.ConnectorConfig{Store: e.store, OAuth: e.oauth, Client: e.client})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Begin(ctx); err != nil {
		t.Fatal(err)
	}

	pgDump, err := exec.LookPath("pg_dump")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("pg_dump is not installed")
		}
		t.Skip("pg_dump is not installed")
	}
	dump, err := exec.CommandContext(ctx, pgDump, "--data-only", "--dbname="+e.db.URL).Output()
	if err != nil {
		t.Fatalf("pg_dump: %v", err)
	}
	if !strings.Contains(string(dump), "COPY public.shop_credentials") {
		t.Fatal("the dump does not contain shop_credentials; the test would prove nothing")
	}
	for _, s := range e.knownSecrets() {
		for _, form := range []string{secretPart(s), hex.EncodeToString([]byte(secretPart(s)))} {
			if strings.Contains(string(dump), form) {
				t.Errorf("a secret appears in the database dump")
			}
		}
	}
}

// The schema has no column where a key or a plaintext token
// could live; token columns hold ciphertext next to a key id.
func TestCredentialsSchemaHoldsOnlyCiphertext(t *testing.T) {
	e := newEnv(t)
	rows, err := e.db.DB.Query(`SELECT table_name, column_name, data_type FROM information_schema.columns
WHERE table_name IN ('shop_credentials', 'oauth_pending') ORDER BY table_name, ordinal_position`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var tbl, col, typ string
		if err := rows.Scan(&tbl, &col, &typ); err != nil {
			t.Fatal(err)
		}
		got = append(got, tbl+"."+col+" "+typ)
	}
	want := []string{
		"oauth_pending.state_hash bytea",
		"oauth_pending.verifier_key text",
		"oauth_pending.verifier bytea",
		"oauth_pending.created_at timestamp with time zone",
		"oauth_pending.expires_at timestamp with time zone",
		// The app's binding: an organisation, a member and the SHA-256 of
		// a session id, which is no secret (the id cannot be recovered).
		"oauth_pending.org_id bigint", "oauth_pending.user_id uuid", "oauth_pending.session_hash bytea",
		"shop_credentials.shop_id bigint",
		"shop_credentials.user_id bigint",
		"shop_credentials.access_token_key text",
		"shop_credentials.access_token bytea",
		"shop_credentials.refresh_token_key text",
		"shop_credentials.refresh_token bytea",
		"shop_credentials.expires_at timestamp with time zone",
		"shop_credentials.generation bigint",
		"shop_credentials.updated_at timestamp with time zone",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("credential columns (-want +got):\n%s\nA new column here must hold ciphertext, never a key or a plaintext token.", diff)
	}
	e.connectShop("Schema")
	var keyIDs string
	if err := e.db.DB.QueryRow(`SELECT access_token_key || ',' || refresh_token_key FROM shop_credentials`).Scan(&keyIDs); err != nil {
		t.Fatal(err)
	}
	if keyIDs != "k1,k1" {
		t.Errorf("key id columns hold %q, want the key ids only", keyIDs)
	}
}
