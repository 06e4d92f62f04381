package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/projections"
)

func init() {
	commands["verify"] = command{summary: "recompute the log's hash chain and report the first mismatch", usage: verifyUsage, run: runVerify}
	commands["export"] = command{summary: "write the sealed log as JSON lines (seq, hashes, canonical event)", usage: exportUsage, run: runExport}
}

const verifyUsage = `ledger verify [--json]

Recomputes the seal's hash chain over the log and reports the first row
that does not match; exits 1 on a mismatch. --json prints the report as
JSON.
` + usageEnv

const exportUsage = `ledger export [--after SEQ] [--shop ID]

Writes the sealed log to stdout as JSON lines {seq, hash, prev_hash,
canonical}: hash = sha256(prev_hash || canonical) can be checked offline.
--after starts after a seq; --shop keeps one shop's events (the chain still
needs the whole log to verify).
` + usageEnv

// errMismatch makes ledger verify exit non-zero when the chain is broken.
var errMismatch = errors.New("the log does not match its seal")

func runVerify(ctx context.Context, c *cli, args []string) error {
	fs := newFlags("verify")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	db, closeDB, err := c.parseThenOpenDB(ctx, fs, args)
	if err != nil {
		return err
	}
	defer closeDB()
	keys, err := c.sealKeys()
	if err != nil {
		return err
	}
	rep, err := projections.VerifySealWith(ctx, db, keys)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else if rep.OK() {
		fmt.Fprintf(c.stdout, "ok: %d events sealed, chain head %s, %d not sealed yet\n", rep.Sealed, rep.Head, rep.Pending)
		fmt.Fprintln(c.stdout, anchorLine(rep, keys != nil))
	} else {
		fmt.Fprintf(c.stdout, "MISMATCH: %s\n%d seal rows verified before it\n", rep.First, rep.Sealed)
	}
	if !rep.OK() {
		return fmt.Errorf("verify: %w: %s", errMismatch, rep.First)
	}
	return nil
}

// sealKeys reads SHOPLEDGER_SEAL_KEYS; nil when unset.
func (c *cli) sealKeys() (*projections.SealKeys, error) {
	spec := c.getenv("SHOPLEDGER_SEAL_KEYS")
	if spec == "" {
		return nil, nil
	}
	keys, err := projections.ParseSealKeys(spec)
	if err != nil {
		return nil, fmt.Errorf("SHOPLEDGER_SEAL_KEYS: %w", err)
	}
	return keys, nil
}

// anchorLine says how far the chain is covered by signed heads.
func anchorLine(rep projections.VerifyReport, withKeys bool) string {
	switch {
	case rep.Anchors == 0:
		return "signed heads: none (set SHOPLEDGER_SEAL_KEYS on the projector to sign the seal's head)"
	case !withKeys:
		return fmt.Sprintf("signed heads: %d, the last at seq %d (%d sealed after it); signatures NOT checked: set SHOPLEDGER_SEAL_KEYS", rep.Anchors, rep.AnchoredSeq, rep.Sealed-rep.AnchoredSeq)
	default:
		return fmt.Sprintf("signed heads: %d, all signatures valid, the last at seq %d (%d sealed after it)", rep.Anchors, rep.AnchoredSeq, rep.Sealed-rep.AnchoredSeq)
	}
}

// runExport writes the sealed log as JSON lines (eventstore.SealedLine).
// Canonical is the exact text the seal hashed, so hash =
// sha256(prev_hash || canonical) can be checked offline.
func runExport(ctx context.Context, c *cli, args []string) error {
	fs := newFlags("export")
	after := fs.Int64("after", 0, "start after this seq")
	shop := fs.Int64("shop", 0, "only this shop's events (the chain still needs the whole log to verify)")
	db, closeDB, err := c.parseThenOpenDB(ctx, fs, args)
	if err != nil {
		return err
	}
	defer closeDB()
	w := bufio.NewWriterSize(c.stdout, 1<<16)
	enc := json.NewEncoder(w)
	err = eventstore.New(db).EachSealed(ctx, *after, *shop, func(l eventstore.SealedLine) error { return enc.Encode(l) })
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return w.Flush()
}
