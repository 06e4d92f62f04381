package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"

	"github.com/shopledger/shopledger/alerts"
	"github.com/shopledger/shopledger/domain"
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/projections"
	"github.com/shopledger/shopledger/service"
	"github.com/shopledger/shopledger/shops"
)

func init() {
	commands["thresholds"] = command{
		summary: "set or clear low-stock thresholds (shop default, listing, variant)",
		usage:   thresholdsUsage,
		subs:    map[string]func(context.Context, *cli, []string) error{"set": thresholdsSet, "clear": thresholdsClear, "show": thresholdsShow},
	}
	alertChannelSubs := map[string]func(context.Context, *cli, []string) error{}
	for _, sub := range []string{"add", "list", "remove", "secret"} {
		alertChannelSubs[sub] = func(ctx context.Context, c *cli, args []string) error {
			return runAlertChannels(ctx, c, sub, args)
		}
	}
	commands["alert-channels"] = command{
		summary: "configure where a shop's low-stock alerts go, and its webhook secret",
		usage:   alertChannelsUsage,
		subs:    alertChannelSubs,
	}
}

const thresholdsUsage = `ledger thresholds set --shop <shop id> [--listing <listing id> [--variant <variant key>]] <threshold> --actor <who>
ledger thresholds clear --shop <shop id> [--listing <listing id> [--variant <variant key>]] --actor <who> [--reason text]
ledger thresholds show --shop <shop id> [--listing <listing id>]

  set    Without --listing it sets the shop default (the configured
         default unless set); with --listing the listing's line; with
         --variant that variant's own. An alert is raised when a
         variant's balance is at or below its line.
  clear  takes a line set before back: a variant falls back to its
         listing's line, a listing to the shop default, a shop to the
         configured default. It is how a threshold set by mistake is
         undone: the log keeps both facts (see docs/operations.md).
  show   lists the line in force for each variant of the shop (or of one
         listing), where it comes from (variant, listing, shop, default),
         the balance and whether it is low, as the read models and the
         query API show them.

  A threshold is a whole number from 0 to 1000000. The configured default
  is SHOPLEDGER_DEFAULT_LOW_STOCK_THRESHOLD (default 5); give ledger, the
  projector and the query service the same value.

  Both refuse shops, listings and variants the ledger does not know (a
  connected shop; a listing and variant Etsy described to it, as the read
  models show them), say which they found, and write nothing then. --actor
  (required) names who asked; it is recorded in the event.
` + usageEnv

// thresholdTarget is the line a thresholds command is about.
type thresholdTarget struct {
	domain.ThresholdTarget
	actor string
}

func thresholdFlags(name string) (*flag.FlagSet, *thresholdTarget) {
	var t thresholdTarget
	fs := newFlags(name)
	fs.Int64Var(&t.ShopID, "shop", 0, "shop id (required)")
	fs.Int64Var(&t.ListingID, "listing", 0, "listing id: the listing's line")
	fs.StringVar(&t.VariantKey, "variant", "", "variant key (with --listing): the variant's own line")
	fs.StringVar(&t.actor, "actor", "", "who asks for the change, recorded in the event (required)")
	return fs, &t
}

// validate names the flag a person got wrong; domain.SetThreshold and
// domain.ClearThreshold check the same rules again on the command.
func (t *thresholdTarget) validate() error {
	t.actor = strings.TrimSpace(t.actor)
	if t.ShopID <= 0 {
		return fmt.Errorf("%w: --shop <shop id> is required", errUsage)
	}
	if t.actor == "" {
		return fmt.Errorf("%w: --actor <who> is required: every threshold change names who made it", errUsage)
	}
	if t.VariantKey != "" && t.ListingID <= 0 {
		return fmt.Errorf("%w: --variant needs --listing", errUsage)
	}
	return nil
}

// checkKnown looks the target up and prints what it found.
func (t *thresholdTarget) checkKnown(ctx context.Context, c *cli, db *sql.DB) error {
	k, err := newKnowledge(db, c)
	if err != nil {
		return err
	}
	var chk check
	what, ok, err := k.shop(ctx, t.ShopID)
	if err != nil {
		return err
	}
	chk.add(what, ok)
	if t.ListingID > 0 {
		what, ok, err := k.listing(ctx, t.ShopID, t.ListingID)
		if err != nil {
			return err
		}
		chk.add(what, ok)
		if ok && t.VariantKey != "" {
			what, ok, err := k.variant(ctx, t.ShopID, t.ListingID, t.VariantKey)
			if err != nil {
				return err
			}
			chk.add(what, ok)
		}
	}
	if err := chk.err(); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "found %s\n", strings.Join(chk.found, ", "))
	return nil
}

func thresholdsSet(ctx context.Context, c *cli, args []string) error {
	fs, t := thresholdFlags("thresholds set")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: exactly one threshold is required", errUsage)
	}
	n, err := strconv.ParseInt(pos[0], 10, 64)
	if err != nil {
		return fmt.Errorf("%w: threshold %q is not a whole number", errUsage, pos[0])
	}
	if err := t.validate(); err != nil {
		return err
	}
	p, err := domain.SetThreshold(t.ThresholdTarget, n, t.actor)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	ev, err := t.record(ctx, c, "set threshold", p)
	if err != nil {
		return err
	}
	c.logger.Info("threshold set", "event_id", ev.ID, "shop_id", t.ShopID, "scope", p.Scope, "threshold", n, "actor", p.Actor)
	fmt.Fprintf(c.stdout, "low-stock threshold of %s set to %d by %s (event %s)\n", t.ThresholdTarget, n, p.Actor, ev.ID)
	return nil
}

func thresholdsClear(ctx context.Context, c *cli, args []string) error {
	fs, t := thresholdFlags("thresholds clear")
	reason := fs.String("reason", "", "why, recorded in the event (for example: set on the wrong listing)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := t.validate(); err != nil {
		return err
	}
	p, err := domain.ClearThreshold(t.ThresholdTarget, t.actor, *reason)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	ev, err := t.record(ctx, c, "clear threshold", p)
	if err != nil {
		return err
	}
	c.logger.Info("threshold cleared", "event_id", ev.ID, "shop_id", t.ShopID, "scope", p.Scope, "actor", p.Actor)
	fmt.Fprintf(c.stdout, "low-stock threshold of %s cleared by %s (event %s)\n", t.ThresholdTarget, p.Actor, ev.ID)
	return nil
}

// record checks that the ledger knows the target, then appends p, the
// actor's decision, to the target's stream. A person's decision happens
// now: its business time is the clock.
func (t *thresholdTarget) record(ctx context.Context, c *cli, op string, p events.Payload) (events.Event, error) {
	stream := t.Stream()
	db, closeDB, err := c.openDB(ctx)
	if err != nil {
		return events.Event{}, err
	}
	defer closeDB()
	if err := t.checkKnown(ctx, c, db); err != nil {
		return events.Event{}, err
	}
	ev := events.New(stream, t.ShopID, time.Now(), p).WithMetadata(events.Metadata{Actor: t.actor, Source: "ledger"})
	if _, err := eventstore.New(db).Append(ctx, stream, eventstore.Any, ev); err != nil {
		return events.Event{}, fmt.Errorf("%s: %w", op, err)
	}
	return ev, nil
}

// parseInterleaved parses flags that may come before and after positional
// arguments ("--shop 1 3 --actor ann"); the flag package stops at the
// first positional one.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

const alertChannelsUsage = `ledger alert-channels add --shop <shop id> --kind email|webhook|slack --target <address or URL>
ledger alert-channels list [--shop <shop id>]
ledger alert-channels remove --shop <shop id> <channel id>
ledger alert-channels secret --shop <shop id> [--rotate]

  Channels set here add to those of the shop's settings; add refuses a
  shop the ledger never connected. A Slack incoming
  webhook URL is a secret: it is stored here, never in the event log, and
  listed masked. "secret" prints the key our alert webhooks are signed with
  (Standard Webhooks, "whsec_…"); sellers verify webhook-signature with it.
  With SHOPLEDGER_TOKEN_KEYS set (as the projector and query have it) the
  secret is stored sealed under the first key.
` + usageEnv

func runAlertChannels(ctx context.Context, c *cli, sub string, args []string) error {
	fs := newFlags("alert-channels " + sub)
	shop := fs.Int64("shop", 0, "shop id")
	var kind, target *string
	var rotate *bool
	switch sub {
	case "add":
		kind = fs.String("kind", "", "email, webhook or slack")
		target = fs.String("target", "", "email address or URL")
	case "secret":
		rotate = fs.Bool("rotate", false, "replace the signing secret")
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if sub != "remove" && len(pos) > 0 {
		return fmt.Errorf("%w: alert-channels %s takes no argument %q", errUsage, sub, pos[0])
	}
	if sub != "list" && *shop <= 0 {
		return fmt.Errorf("%w: --shop <shop id> is required", errUsage)
	}
	db, closeDB, err := c.openDB(ctx)
	if err != nil {
		return err
	}
	defer closeDB()
	chans := alerts.NewChannels(db)
	if spec := c.getenv("SHOPLEDGER_TOKEN_KEYS"); spec != "" {
		keys, err := shops.ParseKeyring(spec)
		if err != nil {
			return fmt.Errorf("config: SHOPLEDGER_TOKEN_KEYS: %w", err)
		}
		chans = chans.WithSecretBox(keys)
	}
	switch sub {
	case "add":
		k, err := newKnowledge(db, c)
		if err != nil {
			return err
		}
		what, ok, err := k.shop(ctx, *shop)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: %s was never connected; nothing was written", errUnknown, what)
		}
		ch, err := chans.Add(ctx, *shop, *kind, *target)
		if errors.Is(err, alerts.ErrInvalidChannel) {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		if err != nil {
			return err
		}
		c.logger.Info("alert channel added", "channel_id", ch.ChannelID, "shop_id", ch.ShopID, "kind", ch.Kind)
		fmt.Fprintf(c.stdout, "added %s channel %s for %s\n", ch.Kind, ch.ChannelID, what)
	case "list":
		list, err := chans.List(ctx, *shop)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSHOP\tKIND\tTARGET\tCREATED")
		for _, ch := range list {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", ch.ChannelID, ch.ShopID, ch.Kind, ch.Target, ch.CreatedAt.Format(time.RFC3339))
		}
		return tw.Flush()
	case "remove":
		if len(pos) != 1 {
			return fmt.Errorf("%w: alert-channels remove --shop <shop id> <channel id>", errUsage)
		}
		id, err := uuid.Parse(pos[0])
		if err != nil {
			return fmt.Errorf("%w: channel id %q is not a uuid (see ledger alert-channels list)", errUsage, pos[0])
		}
		if err := chans.Remove(ctx, *shop, id); err != nil {
			return err
		}
		c.logger.Info("alert channel removed", "channel_id", id, "shop_id", *shop)
		fmt.Fprintf(c.stdout, "removed %s\n", id)
	case "secret":
		get := chans.WebhookSecret
		if *rotate {
			get = chans.RotateWebhookSecret
		}
		secret, err := get(ctx, *shop)
		if err != nil {
			return err
		}
		// The secret goes to stdout only, never to the log.
		c.logger.Info("alert webhook secret shown", "shop_id", *shop, "rotated", *rotate)
		fmt.Fprintln(c.stdout, secret)
	}
	return nil
}

// defaultThreshold is the configured low-stock default, the one the
// projector's alerter and the query service read.
func (c *cli) defaultThreshold() (int64, error) {
	env := service.NewEnv(c.getenv)
	def := env.Int("SHOPLEDGER_DEFAULT_LOW_STOCK_THRESHOLD", domain.DefaultLowStockThreshold)
	if def < 0 {
		env.Fail("SHOPLEDGER_DEFAULT_LOW_STOCK_THRESHOLD: %d is negative", def)
	}
	return def, env.Err()
}

// thresholdsShow prints every variant's line in force through the same
// readers the query API uses.
func thresholdsShow(ctx context.Context, c *cli, args []string) error {
	fs := newFlags("thresholds show")
	shop := fs.Int64("shop", 0, "shop id (required)")
	listing := fs.Int64("listing", 0, "only this listing")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *shop <= 0 {
		return fmt.Errorf("%w: --shop <shop id> is required", errUsage)
	}
	def, err := c.defaultThreshold()
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	db, closeDB, err := c.openDB(ctx)
	if err != nil {
		return err
	}
	defer closeDB()
	read := projections.NewReader(db, projections.ReaderConfig{DefaultThreshold: def})
	scope := []int64{*shop}
	sh, err := read.GetShop(ctx, scope, *shop)
	if errors.Is(err, projections.ErrNotFound) {
		return fmt.Errorf("%w: shop %d is not in the read models", errUnknown, *shop)
	}
	if err != nil {
		return err
	}
	var listings []int64
	if *listing > 0 {
		listings = []int64{*listing}
	} else {
		const page = 500
		f := projections.ProductFilter{Shops: scope, Sort: projections.ProductSort{Key: "listing_id"}, Limit: page}
		for {
			ps, err := read.ListProducts(ctx, f)
			if err != nil {
				return err
			}
			for _, p := range ps {
				listings = append(listings, p.ListingID)
			}
			if len(ps) < page {
				break
			}
			f.After = &projections.ProductCursor{ListingID: ps[len(ps)-1].ListingID}
		}
	}
	fmt.Fprintf(c.stdout, "shop %d (%s): default line %d\n", sh.ShopID, sh.Name, sh.DefaultLowStockThreshold)
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LISTING\tVARIANT\tQUANTITY\tTHRESHOLD\tSOURCE\tLOW")
	for _, id := range listings {
		p, err := read.GetProduct(ctx, scope, id)
		if errors.Is(err, projections.ErrNotFound) {
			return fmt.Errorf("%w: listing %d is not one of shop %d's", errUnknown, id, *shop)
		}
		if err != nil {
			return err
		}
		for _, v := range p.Variants {
			if !v.Active {
				continue
			}
			fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%s\t%v\n", id, v.VariantKey, v.Quantity, v.LowStockThreshold, v.ThresholdSource, v.LowStock)
		}
	}
	return tw.Flush()
}
