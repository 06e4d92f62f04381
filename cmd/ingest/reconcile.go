package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopledger/shopledger/reconcile"
	"github.com/shopledger/shopledger/service"
)

const reconcileUsage = `ingest reconcile [--shop ID] [--products-only | --sales-only]

Runs one reconciliation pass now, for one shop or every connected shop, and
prints what it found. It shares nothing with a running ingest except the
database; both draw on the same Etsy key, so keep SHOPLEDGER_ETSY_QPS low
enough for the two together. It needs SHOPLEDGER_DATABASE_URL,
SHOPLEDGER_TOKEN_KEYS, SHOPLEDGER_ETSY_KEYSTRING and
SHOPLEDGER_ETSY_SHARED_SECRET, as ingest does.

Flags:
`

type reconcileOptions struct {
	shopID                  int64
	productsOnly, salesOnly bool
}

func reconcileFlags() (*flag.FlagSet, *reconcileOptions) {
	var o reconcileOptions
	fs := flag.NewFlagSet("reconcile", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Int64Var(&o.shopID, "shop", 0, "reconcile only this shop (default: every connected shop)")
	fs.BoolVar(&o.productsOnly, "products-only", false, "only listings and stock")
	fs.BoolVar(&o.salesOnly, "sales-only", false, "only receipts")
	return fs, &o
}

// reconcileHelp is the usage text with each flag described.
func reconcileHelp() string {
	fs, _ := reconcileFlags()
	return service.FlagUsage(reconcileUsage, fs)
}

// runReconcile is the one-shot command: one pass, a summary per shop.
func runReconcile(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs, o := reconcileFlags()
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: reconcile: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: reconcile takes no argument %q", errUsage, fs.Arg(0))
	}
	if o.productsOnly && o.salesOnly {
		return fmt.Errorf("%w: --products-only and --sales-only exclude each other", errUsage)
	}
	shopID := &o.shopID
	scope := reconcile.ScopeAll
	switch {
	case o.productsOnly:
		scope = reconcile.ScopeProducts
	case o.salesOnly:
		scope = reconcile.ScopeSales
	}

	env := service.NewEnv(getenv)
	dbURL := env.String("SHOPLEDGER_DATABASE_URL", service.DefaultDatabaseURL)
	logLevel := env.String("SHOPLEDGER_LOG_LEVEL", "info")
	allowNonDurable := env.Bool(service.AllowNonDurableEnv, false)
	allowPrivileged := env.Bool(service.AllowPrivilegedEnv, false)
	cfg := loadShopsConfig(env, env.String("SHOPLEDGER_INGEST_ADDR", "127.0.0.1:8081"))
	if err := env.Err(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if !cfg.enabled() {
		return errors.New("config: reconciling needs SHOPLEDGER_TOKEN_KEYS, SHOPLEDGER_ETSY_KEYSTRING and SHOPLEDGER_ETSY_SHARED_SECRET")
	}
	logger := service.NewLogger(logLevel, os.Stderr).With("service", "ingest", "command", "reconcile")
	db, pool, err := service.OpenDB(ctx, dbURL, 8, logger, service.AllowNonDurable(allowNonDurable), service.AsService(allowPrivileged))
	if err != nil {
		return err
	}
	defer pool.Close()
	defer db.Close()
	w, err := wireShops(cfg, db, nil, nil, prometheus.NewRegistry(), logger)
	if err != nil {
		return err
	}

	ids := []int64{*shopID}
	if *shopID == 0 {
		if ids, err = w.store.Connected(ctx); err != nil {
			return err
		}
		if len(ids) == 0 {
			fmt.Fprintln(stdout, "no connected shops")
			return nil
		}
	}
	var failed int
	var total reconcile.Summary
	for _, id := range ids {
		sum, err := w.reconciler.Run(ctx, id, scope)
		if err != nil {
			failed++
			fmt.Fprintf(stdout, "shop %d: failed: %v\n", id, err)
			continue
		}
		fmt.Fprintln(stdout, sum)
		total.ReceiptsSeen += sum.ReceiptsSeen
		total.ListingsSeen += sum.ListingsSeen
		total.Appended += sum.Appended
		total.DriftFound += sum.DriftFound
		total.APICalls += sum.APICalls
	}
	fmt.Fprintf(stdout, "reconciled %d of %d shops: %d receipts, %d listings, %d events appended, %d drift, %d API calls\n",
		len(ids)-failed, len(ids), total.ReceiptsSeen, total.ListingsSeen, total.Appended, total.DriftFound, total.APICalls)
	if failed > 0 {
		return fmt.Errorf("%d of %d shops failed", failed, len(ids))
	}
	return nil
}
