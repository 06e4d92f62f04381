package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/shopledger/shopledger/shops"
)

func init() {
	commands["keys"] = command{summary: "generate token encryption keys; re-encrypt stored tokens under the current key", run: runKeys}
}

const keysUsage = `ledger keys generate --id ID
ledger keys rotate

Tokens are encrypted with the first key of SHOPLEDGER_TOKEN_KEYS
(id:base64key,...); the others only decrypt. To rotate: generate a key, put
it first in SHOPLEDGER_TOKEN_KEYS everywhere (ingest, ledger), restart, run
"ledger keys rotate" until it reports no failures, then drop the old key.`

func runKeys(ctx context.Context, c *cli, args []string) error {
	if len(args) == 0 {
		fmt.Fprintln(c.stdout, keysUsage)
		return fmt.Errorf("%w: keys needs generate or rotate", errUsage)
	}
	switch args[0] {
	case "generate":
		fs := flag.NewFlagSet("keys generate", flag.ContinueOnError)
		fs.SetOutput(c.stdout)
		id := fs.String("id", "", "the new key's id, e.g. k2")
		if err := fs.Parse(args[1:]); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
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
	case "rotate":
		cfg, err := loadEtsyConfig(c.getenv, false)
		if err != nil {
			return err
		}
		if cfg.TokenKeys == "" {
			return fmt.Errorf("config: SHOPLEDGER_TOKEN_KEYS is required")
		}
		store, _, closeDB, err := c.shopStore(ctx, cfg)
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
		return nil
	default:
		fmt.Fprintln(c.stdout, keysUsage)
		return fmt.Errorf("%w: unknown keys command %q", errUsage, args[0])
	}
}
