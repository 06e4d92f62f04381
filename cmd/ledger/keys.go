package main

import (
	"context"
	"fmt"

	"github.com/shopledger/shopledger/alerts"
	"github.com/shopledger/shopledger/shops"
)

func init() {
	commands["keys"] = command{
		summary: "generate token encryption keys; re-encrypt stored tokens under the current key",
		usage:   keysUsage,
		subs:    map[string]func(context.Context, *cli, []string) error{"generate": keysGenerate, "rotate": keysRotate},
	}
}

const keysUsage = `ledger keys generate --id ID
ledger keys rotate

  generate  prints a new key as id:base64key (--id names it, e.g. k2);
            it touches neither the database nor the environment.
  rotate    re-encrypts every stored token under the first key of
            SHOPLEDGER_TOKEN_KEYS (required).

Tokens are encrypted with the first key of SHOPLEDGER_TOKEN_KEYS
(id:base64key,...); the others only decrypt. To rotate: generate a key, put
it first in SHOPLEDGER_TOKEN_KEYS everywhere (ingest, ledger), restart, run
"ledger keys rotate" until it reports no failures, then drop the old key.
`

func keysGenerate(_ context.Context, c *cli, args []string) error {
	fs := newFlags("keys generate")
	id := fs.String("id", "", "the new key's id, e.g. k2")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	k, err := shops.GenerateKey(*id)
	if err != nil {
		return err
	}
	if _, err := shops.NewKeyring(k); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	// The one place a key is printed: the operator asked for it.
	fmt.Fprintln(c.stdout, k.Spec())
	return nil
}

func keysRotate(ctx context.Context, c *cli, args []string) error {
	if err := parseFlags(newFlags("keys rotate"), args); err != nil {
		return err
	}
	cfg, err := loadEtsyConfig(c.getenv, false)
	if err != nil {
		return err
	}
	if cfg.TokenKeys == "" {
		return fmt.Errorf("config: SHOPLEDGER_TOKEN_KEYS is required")
	}
	store, db, closeDB, err := c.shopStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeDB()
	res, err := store.RotateKeys(ctx)
	fmt.Fprintf(c.stdout, "re-encrypted %d shops' tokens and %d pending authorizations under the current key\n", res.Credentials, res.PendingAuths)
	if err != nil {
		fmt.Fprintf(c.stdout, "could not re-encrypt shops %v; keep their old key configured\n", res.Failed)
		return err
	}
	keys, err := shops.ParseKeyring(cfg.TokenKeys)
	if err != nil {
		return fmt.Errorf("config: SHOPLEDGER_TOKEN_KEYS: %w", err)
	}
	n, err := alerts.NewChannels(db).WithSecretBox(keys).ResealSecrets(ctx)
	fmt.Fprintf(c.stdout, "re-sealed %d shops' alert webhook secrets under the current key\n", n)
	if err != nil {
		fmt.Fprintln(c.stdout, "could not re-seal every alert webhook secret; keep the old key configured")
		return err
	}
	return nil
}
