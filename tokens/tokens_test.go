package tokens_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/shopledger/shopledger/pgtest"
	"github.com/shopledger/shopledger/tokens"
)

// A principal sees its organisation's shops by the one tenancy rule: the
// shops the organisation connected, and its Etsy seller's shops that no
// other organisation connected; a token that names shops sees only those
// of them its organisation owns. Token and shops come from one query, so
// every refusal of Authenticate holds for ResolvePrincipal too.
func TestResolvePrincipalSeesTheOrganisationsShops(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	store := tokens.NewStore(db.DB)
	create := func(nt tokens.NewToken) (string, tokens.Token) {
		t.Helper()
		if nt.Role == "" {
			nt.Role = tokens.RoleSeller
		}
		secret, tok, err := store.Create(ctx, nt)
		if err != nil {
			t.Fatal(err)
		}
		return secret, tok
	}
	whole, wholeTok := create(tokens.NewToken{SellerID: 77})
	narrow, _ := create(tokens.NewToken{SellerID: 77, ShopIDs: []int64{12, 13, 99}})
	other, otherTok := create(tokens.NewToken{SellerID: 88, Role: tokens.RoleAuditor})
	revoked, revokedTok := create(tokens.NewToken{SellerID: 77})

	// Seller 77's Etsy shops are 11 and 13; its organisation connected 12
	// itself, and seller 88's organisation connected 13.
	if _, err := db.DB.ExecContext(ctx, `INSERT INTO shops (shop_id, user_id, name, currency, connection_state, updated_at, last_position)
		VALUES (11, 77, 'Eleven', 'EUR', 'connected', now(), 0), (13, 77, 'Thirteen', 'EUR', 'connected', now(), 0)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.DB.ExecContext(ctx, `INSERT INTO organisation_shops (shop_id, org_id) VALUES (12, $1), (13, $2)`, wholeTok.OrgID, otherTok.OrgID); err != nil {
		t.Fatal(err)
	}
	if err := store.Revoke(ctx, revokedTok.ID); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name   string
		secret string
		role   tokens.Role
		org    int64
		shops  []int64
	}{
		{"whole organisation", whole, tokens.RoleSeller, wholeTok.OrgID, []int64{11, 12}},
		{"token naming shops", narrow, tokens.RoleSeller, wholeTok.OrgID, []int64{12}},
		{"other organisation", other, tokens.RoleAuditor, otherTok.OrgID, []int64{13}},
	} {
		p, err := store.ResolvePrincipal(ctx, c.secret)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if p.OrgID != c.org || p.Role != c.role || !slices.Equal(p.Shops, c.shops) {
			t.Errorf("%s: principal %+v, want organisation %d, role %s, shops %v", c.name, p, c.org, c.role, c.shops)
		}
		tok, err := store.Authenticate(ctx, c.secret)
		if err != nil || tok.ID != p.TokenID {
			t.Errorf("%s: Authenticate gave %s, %v; ResolvePrincipal %s", c.name, tok.ID, err, p.TokenID)
		}
	}

	// An organisation without shops sees none, as an empty list.
	empty, _ := create(tokens.NewToken{SellerID: 99})
	if p, err := store.ResolvePrincipal(ctx, empty); err != nil || p.Shops == nil || len(p.Shops) != 0 {
		t.Errorf("organisation without shops: %+v, %v", p, err)
	}
	for name, secret := range map[string]string{"revoked": revoked, "unknown": "slt_" + strings.Repeat("A", 43), "malformed": "Bearer nonsense"} {
		if _, err := store.ResolvePrincipal(ctx, secret); !errors.Is(err, tokens.ErrBadToken) {
			t.Errorf("%s token: %v, want ErrBadToken", name, err)
		}
	}
}
