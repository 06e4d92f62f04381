package main

import (
	"context"
	"time"

	"github.com/shopledger/shopledger/projections"
	"github.com/shopledger/shopledger/projections/engine"
	"github.com/shopledger/shopledger/telemetry"
)

// The anchor plugin signs the seal's head with SHOPLEDGER_SEAL_KEYS, a key
// the database never holds, every SHOPLEDGER_SEAL_ANCHOR_INTERVAL, so that
// `ledger verify` catches a log rewritten and re-sealed by someone who
// could disable its triggers.
func init() {
	plugins = append(plugins, plugin{name: "anchor", setup: setupAnchor})
}

func setupAnchor(d deps) ([]engine.Projection, []func(context.Context) error, error) {
	spec := d.env.String("SHOPLEDGER_SEAL_KEYS", "")
	interval := d.env.Duration("SHOPLEDGER_SEAL_ANCHOR_INTERVAL", 2*time.Second)
	if interval <= 0 {
		d.env.Fail("SHOPLEDGER_SEAL_ANCHOR_INTERVAL: must be positive")
	}
	if spec == "" {
		d.logger.Warn("SHOPLEDGER_SEAL_KEYS is unset: seal heads are not signed, so a database superuser could rewrite and re-seal the log unnoticed")
		return nil, nil, nil
	}
	keys, err := projections.ParseSealKeys(spec)
	if err != nil {
		d.env.Fail("SHOPLEDGER_SEAL_KEYS: %v", err)
		return nil, nil, nil
	}
	anchored := telemetry.Gauge("shopledger_seal_anchored_seq",
		"The last seal seq whose head is signed with the seal key.")
	d.reg.MustRegister(anchored)
	work := func(ctx context.Context) error {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			head, fresh, err := projections.Anchor(ctx, d.db, keys)
			switch {
			case err != nil && ctx.Err() == nil:
				d.logger.Warn("sign the seal head", "err", err)
			case fresh:
				anchored.Set(float64(head.Seq))
				d.logger.Debug("seal head signed", "seq", head.Seq, "key_id", head.KeyID)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
		}
	}
	return nil, []func(context.Context) error{work}, nil
}
