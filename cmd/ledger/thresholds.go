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
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
)

func init() {
	commands["thresholds"] = command{
		summary: "set or clear low-stock thresholds (shop default, listing, variant)",
		usage:   thresholdsUsage,
		subs:    map[string]func(context.Context, *cli, []string) error{"set": thresholdsSet, "clear": thresholdsClear},
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

  set    Without --listing it sets the shop default (5 unless set); with
         --listing the listing's line; with --variant that variant's own.
         An alert is raised when a variant's balance is at or below its
         line.
  clear  takes a line set before back: a variant falls back to its
         listing's line, a listing to the shop default, a shop to 5. It is
         how a threshold set by mistake is undone: the log keeps both
         facts (see docs/operations.md).

  Both refuse shops, listings and variants the ledger does not know (a
  connected shop; a listing and variant Etsy described to it, as the read
  models show them), say which they found, and write nothing then. --actor
  (required) names who asked; it is recorded in the event.
` + usageEnv

// thresholdTarget is the line a thresholds command is about.
type thresholdTarget struct {
	shop, listing int64
	variant       string
	actor         string
}

func thresholdFlags(name string) (*flag.FlagSet, *thresholdTarget) {
	var t thresholdTarget
	fs := newFlags(name)
	fs.Int64Var(&t.shop, "shop", 0, "shop id (required)")
	fs.Int64Var(&t.listing, "listing", 0, "listing id: the listing's line")
	fs.StringVar(&t.variant, "variant", "", "variant key (with --listing): the variant's own line")
	fs.StringVar(&t.actor, "actor", "", "who asks for the change, recorded in the event (required)")
	return fs, &t
}

func (t *thresholdTarget) validate() error {
	t.actor = strings.TrimSpace(t.actor)
	if t.shop <= 0 {
		return fmt.Errorf("%w: --shop <shop id> is required", errUsage)
	}
	if t.actor == "" {
		return fmt.Errorf("%w: --actor <who> is required: every threshold change names who made it", errUsage)
	}
	if t.variant != "" && t.listing <= 0 {
		return fmt.Errorf("%w: --variant needs --listing", errUsage)
	}
	return nil
}

// scope returns the event scope, the stream it goes to and how to name it.
func (t *thresholdTarget) scope() (scope, stream, what string) {
	switch {
	case t.variant != "":
		return events.ScopeVariant, events.ListingStream(t.listing), fmt.Sprintf("variant %q of listing %d", t.variant, t.listing)
	case t.listing > 0:
		return events.ScopeListing, events.ListingStream(t.listing), fmt.Sprintf("listing %d", t.listing)
	}
	return events.ScopeShop, events.ShopStream(t.shop), fmt.Sprintf("default of shop %d", t.shop)
}

// checkKnown looks the target up and prints what it found.
func (t *thresholdTarget) checkKnown(ctx context.Context, c *cli, db *sql.DB) error {
	k, err := newKnowledge(db, c)
	if err != nil {
		return err
	}
	var chk check
	what, ok, err := k.shop(ctx, t.shop)
	if err != nil {
		return err
	}
	chk.add(what, ok)
	if t.listing > 0 {
		what, ok, err := k.listing(ctx, t.shop, t.listing)
		if err != nil {
			return err
		}
		chk.add(what, ok)
		if ok && t.variant != "" {
			what, ok, err := k.variant(ctx, t.shop, t.listing, t.variant)
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
	if err != nil || n < 0 {
		return fmt.Errorf("%w: threshold %q is not a whole number >= 0", errUsage, pos[0])
	}
	if err := t.validate(); err != nil {
		return err
	}
	scope, stream, what := t.scope()
	p := events.StockThresholdSet{Scope: scope, ShopID: t.shop, Threshold: n, Actor: t.actor}
	if scope != events.ScopeShop {
		p.ListingID, p.VariantKey = t.listing, t.variant
	}
	ev, err := t.record(ctx, c, "set threshold", stream, p)
	if err != nil {
		return err
	}
	c.logger.Info("threshold set", "event_id", ev.ID, "shop_id", t.shop, "scope", p.Scope, "threshold", n, "actor", p.Actor)
	fmt.Fprintf(c.stdout, "low-stock threshold of %s set to %d by %s (event %s)\n", what, n, p.Actor, ev.ID)
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
	scope, stream, what := t.scope()
	p := events.StockThresholdCleared{Scope: scope, ShopID: t.shop, Actor: t.actor, Reason: strings.TrimSpace(*reason)}
	if scope != events.ScopeShop {
		p.ListingID, p.VariantKey = t.listing, t.variant
	}
	ev, err := t.record(ctx, c, "clear threshold", stream, p)
	if err != nil {
		return err
	}
	c.logger.Info("threshold cleared", "event_id", ev.ID, "shop_id", t.shop, "scope", p.Scope, "actor", p.Actor)
	fmt.Fprintf(c.stdout, "low-stock threshold of %s cleared by %s (event %s)\n", what, p.Actor, ev.ID)
	return nil
}

// record checks that the ledger knows the target, then appends p, the
// actor's decision, to stream. A person's decision happens now: its
// business time is the clock.
func (t *thresholdTarget) record(ctx context.Context, c *cli, op, stream string, p events.Payload) (events.Event, error) {
	db, closeDB, err := c.openDB(ctx)
	if err != nil {
		return events.Event{}, err
	}
	defer closeDB()
	if err := t.checkKnown(ctx, c, db); err != nil {
		return events.Event{}, err
	}
	ev := events.New(stream, t.shop, time.Now(), p).WithMetadata(events.Metadata{Actor: t.actor, Source: "ledger"})
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
