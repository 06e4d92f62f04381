package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shopledger/shopledger/accounts"
	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/service"
)

func TestAccountsAddUserJoinsTheSellersOrganisation(t *testing.T) {
	db := pgtest.New(t)
	seedShop(t, db.DB, 77, 4242, "Books")
	env := service.MapEnv(map[string]string{"SHOPLEDGER_DATABASE_URL": db.URL})
	ctx := context.Background()
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("demo password 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run(ctx, []string{"accounts", "add-user", "--email", "demo@example.com", "--seller", "4242", "--password-file", pw}, env, &out); err != nil {
		t.Fatalf("add-user: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "created user demo@example.com") {
		t.Fatalf("add-user printed %q", out.String())
	}
	store, err := accounts.New(accounts.Config{DB: db.DB, BaseURL: "http://localhost"})
	if err != nil {
		t.Fatal(err)
	}
	u, err := store.Login(ctx, "demo@example.com", "demo password 1", accounts.Client{Address: "192.0.2.1"})
	if err != nil {
		t.Fatalf("the added user cannot log in: %v", err)
	}
	sid, err := store.NewSession(ctx, u.ID, 0, accounts.Client{})
	if err != nil {
		t.Fatal(err)
	}
	sess, err := store.Session(ctx, sid)
	if err != nil {
		t.Fatal(err)
	}
	shops, err := store.ShopIDs(ctx, sess.OrgID)
	if err != nil {
		t.Fatal(err)
	}
	if sess.Role != accounts.RoleOwner || len(shops) != 1 || shops[0] != 77 {
		t.Fatalf("the user is %q of an organisation with shops %v, want owner of the seller's shop 77", sess.Role, shops)
	}
	out.Reset()
	if err := run(ctx, []string{"accounts", "unlock", "--email", "demo@example.com"}, env, &out); err != nil {
		t.Fatalf("unlock: %v", err)
	}
}
