package main

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/service"
	"github.com/shopledger/shopledger/tokens"
)

func TestTokensCreateListRevoke(t *testing.T) {
	db := pgtest.New(t)
	for _, shop := range []int64{7, 8, 9} {
		seedShop(t, db.DB, shop, 4242, "Books")
	}
	env := service.MapEnv(map[string]string{"SHOPLEDGER_DATABASE_URL": db.URL})
	ctx := context.Background()
	ledger := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(ctx, args, env, &out)
		return out.String(), err
	}

	out, err := ledger("tokens", "create", "--seller", "4242", "--role", "auditor", "--shop", "7,8", "--shop", "9", "--label", "books")
	if err != nil {
		t.Fatalf("create: %v\n%s", err, out)
	}
	secret := regexp.MustCompile(`slt_[A-Za-z0-9_-]{43}`).FindString(out)
	id := regexp.MustCompile(`token id: (\S+)`).FindStringSubmatch(out)
	if secret == "" || id == nil {
		t.Fatalf("create printed no token or id:\n%s", out)
	}
	tok, err := tokens.NewStore(db.DB).Authenticate(ctx, secret)
	if err != nil {
		t.Fatalf("printed token does not authenticate: %v", err)
	}
	if tok.SellerID != 4242 || tok.Role != tokens.RoleAuditor || len(tok.ShopIDs) != 3 || tok.Label != "books" {
		t.Errorf("stored token %+v", tok)
	}

	list, err := ledger("tokens", "list", "--seller", "4242")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(list, secret) || !strings.Contains(list, secret[:10]) || !strings.Contains(list, "7,8,9") {
		t.Errorf("list must show the prefix and scope, never the token:\n%s", list)
	}

	if out, err := ledger("tokens", "revoke", id[1]); err != nil {
		t.Fatalf("revoke: %v\n%s", err, out)
	}
	if _, err := tokens.NewStore(db.DB).Authenticate(ctx, secret); !errors.Is(err, tokens.ErrBadToken) {
		t.Errorf("revoked token authenticates: %v", err)
	}
	if _, err := ledger("tokens", "revoke", "0194a3b2-8000-7000-8000-0000000000aa"); !errors.Is(err, tokens.ErrNotFound) {
		t.Errorf("revoking an unknown id: %v, want not found", err)
	}
	for _, bad := range [][]string{
		{"tokens", "create"},
		{"tokens", "create", "--seller", "1", "--role", "admin"},
		{"tokens", "create", "--seller", "1", "--shop", "x"},
		{"tokens", "revoke", "not-a-uuid"},
		{"tokens", "frob"},
	} {
		if _, err := ledger(bad...); !errors.Is(err, errUsage) {
			t.Errorf("%v: %v, want usage error", bad, err)
		}
	}
}

func TestTokensCreateRefusesUnknownSellersAndOthersShops(t *testing.T) {
	db := pgtest.New(t)
	seedShop(t, db.DB, 7, 4242, "Books")
	seedShop(t, db.DB, 8, 5353, "Other")
	env := service.MapEnv(map[string]string{"SHOPLEDGER_DATABASE_URL": db.URL})
	for args, names := range map[string][]string{
		"--seller 99999":           {"Etsy user 99999"},
		"--seller 4242 --shop 8":   {"shop 8 (not one of seller 4242's: 7)"},
		"--seller 4242 --shop 7,9": {"shop 9 (not one of seller 4242's: 7)", "found: shop 7"},
	} {
		var out bytes.Buffer
		err := run(context.Background(), append([]string{"tokens", "create"}, strings.Fields(args)...), env, &out)
		if !errors.Is(err, errUnknown) {
			t.Errorf("tokens create %s: err = %v, want errUnknown", args, err)
			continue
		}
		for _, n := range names {
			if !strings.Contains(err.Error(), n) {
				t.Errorf("tokens create %s: %q does not name %s", args, err, n)
			}
		}
	}
	var n int
	if err := db.DB.QueryRow(`SELECT count(*) FROM api_tokens`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d tokens stored, want none", n)
	}
}
