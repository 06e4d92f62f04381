package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"

	"github.com/shopledger/shopledger/tokens"
)

func init() {
	commands["tokens"] = command{
		summary: "create, list and revoke query API tokens",
		usage:   tokensUsage,
		subs:    map[string]func(context.Context, *cli, []string) error{"create": tokensCreate, "list": tokensList, "revoke": tokensRevoke},
	}
}

const tokensUsage = `ledger tokens create --seller <etsy user id> [--role seller|auditor] [--shop <shop id>]... [--label text] [--ttl 720h]
ledger tokens list [--seller <etsy user id>]
ledger tokens revoke <token id>

  create  issues a token for a seller the ledger knows (one of its
          connected shops belongs to them) and prints it once. --shop
          (repeatable or comma-separated) limits it to some of the
          seller's shops; default all of them. --ttl 0 never expires.
  list    shows tokens by id and prefix, never the token itself.
  revoke  stops a token at once (see list for ids).
` + usageEnv

// shopList collects --shop, repeated or comma-separated.
type shopList []int64

func (s *shopList) String() string { return fmt.Sprint(*s) }
func (s *shopList) Set(v string) error {
	for _, part := range strings.Split(v, ",") {
		id, err := strconv.ParseInt(strings.TrimSpace(part), 10, 64)
		if err != nil || id <= 0 {
			return fmt.Errorf("shop id %q is not a positive integer", part)
		}
		*s = append(*s, id)
	}
	return nil
}

func tokensCreate(ctx context.Context, c *cli, args []string) error {
	fs := newFlags("tokens create")
	seller := fs.Int64("seller", 0, "Etsy user id of the seller the token reads for (required)")
	role := fs.String("role", "seller", "seller or auditor")
	label := fs.String("label", "", "a note to tell tokens apart")
	ttl := fs.Duration("ttl", 0, "lifetime, for example 720h; 0 never expires")
	var shops shopList
	fs.Var(&shops, "shop", "limit the token to this shop id (repeatable); default all the seller's shops")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *seller <= 0 {
		return fmt.Errorf("%w: --seller <etsy user id> is required", errUsage)
	}
	r, err := tokens.ParseRole(*role)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if *ttl < 0 {
		return fmt.Errorf("%w: --ttl must not be negative", errUsage)
	}
	db, closeDB, err := c.openDB(ctx)
	if err != nil {
		return err
	}
	defer closeDB()
	k, err := newKnowledge(db, c)
	if err != nil {
		return err
	}
	owned, err := k.sellerShops(ctx, *seller)
	if err != nil {
		return err
	}
	if len(owned) == 0 {
		return fmt.Errorf("%w: no shop of Etsy user %d was ever connected; nothing was written", errUnknown, *seller)
	}
	var chk check
	for _, id := range shops {
		if slices.Contains(owned, id) {
			chk.add(fmt.Sprintf("shop %d", id), true)
		} else {
			chk.add(fmt.Sprintf("shop %d (not one of seller %d's: %s)", id, *seller, shopScope(owned)), false)
		}
	}
	if err := chk.err(); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "found seller %d with shops %s\n", *seller, shopScope(owned))
	secret, tok, err := tokens.NewStore(db).Create(ctx, tokens.NewToken{SellerID: *seller, Role: r, ShopIDs: shops, Label: *label, TTL: *ttl})
	if err != nil {
		return err
	}
	// The secret goes to stdout only, never to the log.
	c.logger.Info("token created", "token_id", tok.ID, "seller_id", tok.SellerID, "role", tok.Role)
	fmt.Fprintf(c.stdout, "token id: %s\nseller:   %d\nrole:     %s\nshops:    %s\n", tok.ID, tok.SellerID, tok.Role, shopScope(tok.ShopIDs))
	if tok.ExpiresAt != nil {
		fmt.Fprintf(c.stdout, "expires:  %s\n", tok.ExpiresAt.Format(time.RFC3339))
	}
	fmt.Fprintf(c.stdout, "\n%s\n\nThis token is shown once. Send it as: Authorization: Bearer <token>\n", secret)
	return nil
}

func tokensList(ctx context.Context, c *cli, args []string) error {
	fs := newFlags("tokens list")
	seller := fs.Int64("seller", 0, "only this seller's tokens")
	db, closeDB, err := c.parseThenOpenDB(ctx, fs, args)
	if err != nil {
		return err
	}
	defer closeDB()
	toks, err := tokens.NewStore(db).List(ctx, *seller)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPREFIX\tSELLER\tROLE\tSHOPS\tCREATED\tEXPIRES\tREVOKED\tLABEL")
	for _, t := range toks {
		fmt.Fprintf(tw, "%s\t%s…\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Prefix, t.SellerID, t.Role, shopScope(t.ShopIDs),
			t.CreatedAt.Format(time.RFC3339), optTime(t.ExpiresAt), optTime(t.RevokedAt), t.Label)
	}
	return tw.Flush()
}

func tokensRevoke(ctx context.Context, c *cli, args []string) error {
	pos, err := parseInterleaved(newFlags("tokens revoke"), args)
	if err != nil {
		return fmt.Errorf("%w: tokens revoke: %v", errUsage, err)
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: tokens revoke takes one token id", errUsage)
	}
	id, err := uuid.Parse(pos[0])
	if err != nil {
		return fmt.Errorf("%w: token id %q is not a uuid (see ledger tokens list)", errUsage, pos[0])
	}
	db, closeDB, err := c.openDB(ctx)
	if err != nil {
		return err
	}
	defer closeDB()
	if err := tokens.NewStore(db).Revoke(ctx, id); err != nil {
		return err
	}
	c.logger.Info("token revoked", "token_id", id)
	fmt.Fprintf(c.stdout, "revoked %s\n", id)
	return nil
}

func shopScope(ids []int64) string {
	if len(ids) == 0 {
		return "all"
	}
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.FormatInt(id, 10)
	}
	return strings.Join(parts, ",")
}

func optTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format(time.RFC3339)
}
