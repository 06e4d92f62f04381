package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"

	"github.com/shopledger/shopledger/alerts"
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
)

func init() {
	commands["thresholds"] = command{
		summary: "set low-stock thresholds (shop default, listing, variant)",
		usage:   thresholdsUsage,
		subs:    map[string]func(context.Context, *cli, []string) error{"set": thresholdsSet},
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

  Without --listing it sets the shop default (5 unless set); with --listing
  the listing's line; with --variant that variant's own. An alert is raised
  when a variant's balance is at or below its line. --actor (required)
  names who asked; it is recorded in the event.
` + usageEnv

func thresholdsSet(ctx context.Context, c *cli, args []string) error {
	fs := newFlags("thresholds set")
	shop := fs.Int64("shop", 0, "shop id (required)")
	listing := fs.Int64("listing", 0, "listing id: set the listing's threshold")
	variant := fs.String("variant", "", "variant key (with --listing): set the variant's threshold")
	actor := fs.String("actor", "", "who asks for the change, recorded in the event (required)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: exactly one threshold is required", errUsage)
	}
	n, err := strconv.ParseInt(pos[0], 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("%w: threshold %q is not a whole number >= 0", errUsage, pos[0])
	}
	if *shop <= 0 {
		return fmt.Errorf("%w: --shop <shop id> is required", errUsage)
	}
	if strings.TrimSpace(*actor) == "" {
		return fmt.Errorf("%w: --actor <who> is required: every threshold change names who made it", errUsage)
	}
	if *variant != "" && *listing <= 0 {
		return fmt.Errorf("%w: --variant needs --listing", errUsage)
	}
	p := events.StockThresholdSet{Scope: events.ScopeShop, ShopID: *shop, Threshold: n, Actor: strings.TrimSpace(*actor)}
	stream := events.ShopStream(*shop)
	what := fmt.Sprintf("default of shop %d", *shop)
	switch {
	case *variant != "":
		p.Scope, p.ListingID, p.VariantKey = events.ScopeVariant, *listing, *variant
		stream = events.ListingStream(*listing)
		what = fmt.Sprintf("variant %q of listing %d", *variant, *listing)
	case *listing > 0:
		p.Scope, p.ListingID = events.ScopeListing, *listing
		stream = events.ListingStream(*listing)
		what = fmt.Sprintf("listing %d", *listing)
	}

	db, closeDB, err := c.openDB(ctx)
	if err != nil {
		return err
	}
	defer closeDB()
	// A person's decision happens now: its business time is the clock.
	ev := events.New(stream, *shop, time.Now(), p).WithMetadata(events.Metadata{Actor: p.Actor, Source: "ledger"})
	if _, err := eventstore.New(db).Append(ctx, stream, eventstore.Any, ev); err != nil {
		return fmt.Errorf("set threshold: %w", err)
	}
	c.logger.Info("threshold set", "event_id", ev.ID, "shop_id", *shop, "scope", p.Scope, "threshold", n, "actor", p.Actor)
	fmt.Fprintf(c.stdout, "low-stock threshold of %s set to %d by %s (event %s)\n", what, n, p.Actor, ev.ID)
	return nil
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

  Channels set here add to those of the shop's settings. A Slack incoming
  webhook URL is a secret: it is stored here, never in the event log, and
  listed masked. "secret" prints the key our alert webhooks are signed with
  (Standard Webhooks, "whsec_…"); sellers verify webhook-signature with it.
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
	switch sub {
	case "add":
		ch, err := chans.Add(ctx, *shop, *kind, *target)
		if errors.Is(err, alerts.ErrInvalidChannel) {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		if err != nil {
			return err
		}
		c.logger.Info("alert channel added", "channel_id", ch.ChannelID, "shop_id", ch.ShopID, "kind", ch.Kind)
		fmt.Fprintf(c.stdout, "added %s channel %s for shop %d\n", ch.Kind, ch.ChannelID, ch.ShopID)
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
