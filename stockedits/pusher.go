package stockedits

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/shopledger/shopledger/domain"
	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/internal/defaults"
)

// EtsyAPI is what a push needs from Etsy; *etsy.Client is one. Its
// GetShopTransactions must call the function of etsy.WithSending before it
// sends, as *etsy.Client does: pushes share count reads up to that moment.
type EtsyAPI interface {
	GetListingInventory(ctx context.Context, ts etsy.TokenSource, listingID int64) (etsy.Inventory, error)
	UpdateListingInventory(ctx context.Context, ts etsy.TokenSource, listingID int64, u etsy.InventoryUpdate) (etsy.Inventory, error)
	GetShopTransactions(ctx context.Context, ts etsy.TokenSource, shopID int64, limit, offset int) (etsy.TransactionsPage, error)
}

// Tokens hands out a shop's Etsy credentials; *shops.Store is one. It
// fails for a shop that is not connected or must be connected again.
type Tokens interface {
	ForShop(ctx context.Context, shopID int64) (etsy.TokenSource, error)
}

// PusherConfig configures a Pusher.
type PusherConfig struct {
	DB     *sql.DB
	Events *eventstore.Store
	Etsy   EtsyAPI
	Tokens Tokens
	Logger *slog.Logger
	Now    func() time.Time
	// Lease is how long a claimed listing stays with one pusher (default
	// 2 minutes); a pusher that dies loses it after that.
	Lease time.Duration
	// Poll is the pause when nothing is due (default 500 ms).
	Poll time.Duration
	// Workers is how many listings are pushed at once (default 8). Most
	// of a push is waiting for Etsy's rate budget; at Etsy's default 10
	// requests a second, 8 keep requests queued for every free slot, and
	// more pushes at once share more reads of the transaction count.
	Workers int
	// MinBackoff and MaxBackoff bound the wait before retrying a
	// retryable failure (defaults 2 s and 5 minutes).
	MinBackoff, MaxBackoff time.Duration
	// ReauthWait is how long a shop that must be connected again waits
	// before its queue is looked at again (default 1 minute).
	ReauthWait time.Duration
}

// Pusher claims listings with queued commands and pushes them to Etsy.
type Pusher struct {
	cfg    PusherConfig
	owner  string
	counts *shopCounts
}

// NewPusher checks cfg.
func NewPusher(cfg PusherConfig) (*Pusher, error) {
	if cfg.DB == nil || cfg.Events == nil || cfg.Etsy == nil || cfg.Tokens == nil {
		return nil, errors.New("new pusher: DB, Events, Etsy and Tokens are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	defaults.Positive(&cfg.Lease, 2*time.Minute)
	defaults.Positive(&cfg.Poll, 500*time.Millisecond)
	defaults.Positive(&cfg.Workers, 8)
	defaults.Positive(&cfg.MinBackoff, 2*time.Second)
	defaults.Positive(&cfg.MaxBackoff, 5*time.Minute)
	defaults.Positive(&cfg.ReauthWait, time.Minute)
	return &Pusher{cfg: cfg, owner: "pusher-" + uuid.NewString(), counts: newShopCounts(cfg.Etsy)}, nil
}

// Run pushes until ctx ends.
func (p *Pusher) Run(ctx context.Context) error {
	done := make(chan struct{})
	for range p.cfg.Workers {
		go func() {
			defer func() { done <- struct{}{} }()
			for ctx.Err() == nil {
				worked, err := p.PushOnce(ctx)
				if err != nil && ctx.Err() == nil {
					p.cfg.Logger.ErrorContext(ctx, "stock edit push", "err", err)
				}
				if !worked || err != nil {
					_ = sleepCtx(ctx, p.cfg.Poll)
				}
			}
		}()
	}
	for range p.cfg.Workers {
		<-done
	}
	return ctx.Err()
}

// PushOnce claims one listing with due commands and pushes them; it
// reports whether there was one.
func (p *Pusher) PushOnce(ctx context.Context) (bool, error) {
	listingID, shopID, ok, err := p.claim(ctx)
	if err != nil || !ok {
		return false, err
	}
	defer p.release(listingID)
	return true, p.push(ctx, shopID, listingID)
}

// claim takes the lease of the listing whose queued command is due
// soonest and not leased by another pusher.
func (p *Pusher) claim(ctx context.Context) (listingID, shopID int64, ok bool, err error) {
	now := p.cfg.Now()
	tx, err := p.cfg.DB.BeginTx(ctx, nil)
	if err != nil {
		return 0, 0, false, fmt.Errorf("claim stock edits: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	err = tx.QueryRowContext(ctx, `
SELECT o.listing_id, o.shop_id FROM stock_edit_outbox o
WHERE o.state = 'queued' AND o.next_attempt_at <= $1
  AND NOT EXISTS (SELECT 1 FROM stock_edit_leases l WHERE l.listing_id = o.listing_id AND l.lease_until > $1)
ORDER BY o.next_attempt_at, o.requested_at
LIMIT 1 FOR UPDATE OF o SKIP LOCKED`, now).Scan(&listingID, &shopID)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, false, nil
	}
	if err != nil {
		return 0, 0, false, fmt.Errorf("claim stock edits: %w", err)
	}
	var got int64
	err = tx.QueryRowContext(ctx, `
INSERT INTO stock_edit_leases (listing_id, owner, lease_until) VALUES ($1, $2, $3)
ON CONFLICT (listing_id) DO UPDATE SET owner = EXCLUDED.owner, lease_until = EXCLUDED.lease_until
WHERE stock_edit_leases.lease_until <= $4
RETURNING listing_id`, listingID, p.owner, now.Add(p.cfg.Lease), now).Scan(&got)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, false, nil // another pusher took it meanwhile
	}
	if err != nil {
		return 0, 0, false, fmt.Errorf("claim stock edits: lease: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, 0, false, fmt.Errorf("claim stock edits: %w", err)
	}
	return listingID, shopID, true, nil
}

func (p *Pusher) release(listingID int64) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := p.cfg.DB.ExecContext(ctx, `DELETE FROM stock_edit_leases WHERE listing_id = $1 AND owner = $2`, listingID, p.owner); err != nil {
		p.cfg.Logger.Warn("release stock edit lease", "listing_id", listingID, "err", err)
	}
}

// push brings the listing's pending commands to Etsy.
func (p *Pusher) push(ctx context.Context, shopID, listingID int64) error {
	stream := events.ListingStream(listingID)
	past, err := p.cfg.Events.ReadStream(ctx, stream, 0)
	if err != nil {
		return fmt.Errorf("push listing %d: %w", listingID, err)
	}
	l := domain.ReplayListing(listingID, past)
	pending := l.PendingEdits()
	if len(pending) == 0 {
		// The log says every queued command has its outcome (a crash
		// between the two writes cannot happen: they share a
		// transaction), so this is a row another pusher just finished.
		return nil
	}
	ids := commandIDs(pending)
	ts, err := p.cfg.Tokens.ForShop(ctx, shopID)
	if err != nil {
		p.cfg.Logger.InfoContext(ctx, "stock edits wait for the shop", "shop_id", shopID, "listing_id", listingID, "err", err)
		if l.OpenPush() != nil {
			// A write whose outcome is unknown must be resolved from
			// Etsy before anything else: recording a failure here would
			// let the next attempt apply it a second time.
			p.reschedule(ctx, ids, "reauth_required: "+err.Error(), p.cfg.ReauthWait)
			return nil
		}
		return p.fail(ctx, listingID, ids, attemptOf(l), "reauth_required",
			"the shop must be connected again before its stock edits reach Etsy: "+err.Error(), 0, true, p.cfg.ReauthWait)
	}
	if open := l.OpenPush(); open != nil {
		return p.verify(ctx, ts, shopID, *open, true)
	}
	return p.attempt(ctx, ts, shopID, l, pending)
}

func attemptOf(l *domain.Listing) int {
	if o := l.OpenPush(); o != nil {
		return o.Attempt
	}
	return 0
}

func commandIDs(rs []events.StockEditRequested) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.CommandID
	}
	return out
}

// attempt writes the pending commands on top of Etsy's current inventory.
func (p *Pusher) attempt(ctx context.Context, ts etsy.TokenSource, shopID int64, l *domain.Listing, pending []events.StockEditRequested) error {
	listingID := l.ID()
	attempt := p.attempts(ctx, commandIDs(pending)) + 1
	inv, count, err := p.stableRead(ctx, ts, shopID, listingID)
	if err != nil {
		return p.etsyFailure(ctx, listingID, commandIDs(pending), attempt, err)
	}
	plan, refused := planWrite(listingID, inv, pending)
	for _, r := range refused {
		if err := p.fail(ctx, listingID, []string{r.CommandID}, attempt, "variant_gone",
			"Etsy's inventory has no variant "+r.VariantKey, 0, false, 0); err != nil {
			return err
		}
	}
	if len(plan.commands) == 0 {
		return nil
	}
	started := events.StockEditPushStarted{
		CommandIDs: plan.commands, Attempt: attempt, ListingID: listingID, VariantKeys: plan.keys,
		ProductIDsBefore: productIDs(listingID, inv), QuantitiesBefore: plan.before, Expected: plan.expected,
		CommandDeltas: plan.deltas, TransactionCount: count,
	}
	if err := p.append(ctx, listingID, nil, events.New(events.ListingStream(listingID), shopID, p.cfg.Now(), started)); err != nil {
		return err
	}
	if _, err := p.cfg.DB.ExecContext(ctx, `UPDATE stock_edit_outbox SET attempts = $2 WHERE command_id = ANY($1::uuid[])`,
		pgArray(plan.commands), attempt); err != nil {
		return fmt.Errorf("push listing %d: %w", listingID, err)
	}
	out, err := p.cfg.Etsy.UpdateListingInventory(ctx, ts, listingID, plan.update)
	var apiErr *etsy.APIError
	var rlErr *etsy.RateLimitError
	switch {
	case err == nil:
		after, err := p.counts.after(ctx, ts, shopID)
		if err == nil && after == count {
			// No sale since the read the write was built on: Etsy's
			// answer is the state it holds.
			return p.pushedWith(ctx, shopID, started, out, false, nil)
		}
		return p.verify(ctx, ts, shopID, started, false)
	case errors.As(err, &apiErr) && apiErr.Status >= 500:
		// Etsy failed while handling the write: it may have applied it.
		p.cfg.Logger.WarnContext(ctx, "stock edit push answered with a server error", "listing_id", listingID, "attempt", attempt, "err", err)
		return p.verify(ctx, ts, shopID, started, true)
	case errors.As(err, &apiErr), errors.As(err, &rlErr), errors.Is(err, etsy.ErrInvalidGrant):
		// Etsy answered (or the request was never sent): the write did
		// not land.
		return p.etsyFailure(ctx, listingID, plan.commands, attempt, err)
	default:
		// No answer: the write may have landed. The next look decides,
		// from Etsy's product ids, and never writes it twice.
		p.cfg.Logger.WarnContext(ctx, "stock edit push lost its answer", "listing_id", listingID, "attempt", attempt, "err", err)
		return p.verify(ctx, ts, shopID, started, true)
	}
}

// verify reads Etsy again after a write. If the write did not land, it
// records the attempt as failed (retryable) so that the next one starts
// from a fresh read. If it landed, sales Etsy took between the read and
// the write (which the write overwrote) are found from the shop's
// transaction count and taken off again, then the push is recorded.
func (p *Pusher) verify(ctx context.Context, ts etsy.TokenSource, shopID int64, started events.StockEditPushStarted, recovered bool) error {
	listingID := started.ListingID
	inv, count, err := p.stableRead(ctx, ts, shopID, listingID)
	if err != nil {
		// Still unknown: try again soon, the push stays open.
		p.reschedule(ctx, started.CommandIDs, "verify: "+err.Error(), p.cfg.MinBackoff)
		return nil
	}
	if !landed(listingID, started, inv) {
		return p.fail(ctx, listingID, started.CommandIDs, started.Attempt, "not_applied",
			"the write got no clear answer and Etsy's inventory shows it did not land; it is sent again", 0, true, 0)
	}
	lostTotal := map[string]int64{}
	base, baseCount, expected := inv, count, started.Expected
	prevCount := started.TransactionCount
	// Each restoring write has its own short window in which a sale can be
	// overwritten again, so under a stream of sales it takes rounds until
	// one passes without a sale. They go on until then, within restoreFor;
	// a request refused before Etsy applied anything is tried again after
	// a pause instead of ending the rounds.
	pause := max(p.cfg.MinBackoff, 100*time.Millisecond)
	for deadline := time.Now().Add(restoreFor); time.Now().Before(deadline); {
		lost, err := p.lostSales(ctx, ts, shopID, listingID, prevCount, baseCount, expected, base)
		if err != nil {
			p.cfg.Logger.WarnContext(ctx, "stock edit: cannot check for overwritten sales yet", "listing_id", listingID, "err", err)
			if sleepCtx(ctx, pause) != nil {
				break
			}
			continue
		}
		if len(lost) == 0 {
			break
		}
		upd, exp := restore(listingID, base, lost)
		out, err := p.cfg.Etsy.UpdateListingInventory(ctx, ts, listingID, upd)
		if err != nil {
			var apiErr *etsy.APIError
			var rlErr *etsy.RateLimitError
			if (errors.As(err, &apiErr) && apiErr.Status < 500) || errors.As(err, &rlErr) {
				// Refused before anything changed: the same restore again.
				p.cfg.Logger.WarnContext(ctx, "stock edit: restoring overwritten sales refused, retrying", "listing_id", listingID, "err", err)
				if sleepCtx(ctx, pause) != nil {
					break
				}
				continue
			}
			// The restore may or may not have landed: writing it again
			// could count the sales twice. Reconciliation shows any
			// difference left as drift.
			p.cfg.Logger.WarnContext(ctx, "stock edit: restoring overwritten sales failed", "listing_id", listingID, "err", err)
			break
		}
		for k, n := range lost {
			lostTotal[k] += n
		}
		after, err := p.counts.after(ctx, ts, shopID)
		if err == nil && after == baseCount {
			base = out
			break
		}
		prevCount, expected = baseCount, exp
		var next etsy.Inventory
		var nextCount int64
		for {
			if next, nextCount, err = p.stableRead(ctx, ts, shopID, listingID); err == nil || !time.Now().Before(deadline) {
				break
			}
			if sleepCtx(ctx, pause) != nil {
				break
			}
		}
		if err != nil {
			// What the restore wrote is the best known state.
			p.cfg.Logger.WarnContext(ctx, "stock edit: cannot read Etsy after restoring overwritten sales", "listing_id", listingID, "err", err)
			base = out
			break
		}
		base, baseCount = next, nextCount
	}
	return p.pushedWith(ctx, shopID, started, base, recovered, lostTotal)
}

// restoreFor bounds the rounds of follow-up writes that take overwritten
// sales off again (see verify).
const restoreFor = 3 * time.Minute

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// landed reports whether Etsy's inventory is no longer the one the write
// was built on: Etsy regenerates every product id on a write.
func landed(listingID int64, started events.StockEditPushStarted, inv etsy.Inventory) bool {
	now := productIDs(listingID, inv)
	for k, id := range started.ProductIDsBefore {
		if now[k] != id {
			return true
		}
	}
	return false
}

// pushedWith records the outcome: stock.edit_pushed with Etsy's
// quantities and product ids, and one stock.adjusted per command that
// moved stock, then marks the outbox rows, in one transaction.
func (p *Pusher) pushedWith(ctx context.Context, shopID int64, started events.StockEditPushStarted, inv etsy.Inventory, recovered bool, lost map[string]int64) error {
	listingID := started.ListingID
	stream := events.ListingStream(listingID)
	past, err := p.cfg.Events.ReadStream(ctx, stream, 0)
	if err != nil {
		return fmt.Errorf("record push of listing %d: %w", listingID, err)
	}
	byID := map[string]events.StockEditRequested{}
	for _, r := range domain.ReplayListing(listingID, past).PendingEdits() {
		byID[r.CommandID] = r
	}
	now := p.cfg.Now()
	deltas := map[string]int64{}
	for k, e := range started.Expected {
		if d := e - started.QuantitiesBefore[k]; d != 0 {
			deltas[k] = d
		}
	}
	if len(lost) == 0 {
		lost = nil
	}
	pushed := events.StockEditPushed{
		CommandIDs: started.CommandIDs, Attempt: started.Attempt, ListingID: listingID,
		Quantities: quantities(listingID, inv), ProductIDs: productIDs(listingID, inv), Deltas: deltas,
		Recovered: recovered, LostSalesRestored: lost,
	}
	evs := []events.Event{events.New(stream, shopID, now, pushed).WithDedupe(domain.EditPushedKey(started.CommandIDs[0]))}
	for _, id := range started.CommandIDs {
		r, ok := byID[id]
		d := started.CommandDeltas[id]
		if !ok || d == 0 {
			continue
		}
		evs = append(evs, events.New(stream, shopID, now, events.StockAdjusted{
			ListingID: listingID, VariantKey: r.VariantKey, Delta: d, Reason: domain.EditReason(r), Cause: "edit:" + id,
		}).WithDedupe("stock-edit:"+id+":moved").WithMetadata(events.Metadata{
			Source: "stock-edit", Actor: r.Actor, RequestID: r.RequestID, CorrelationID: id,
		}))
	}
	if err := p.append(ctx, listingID, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE stock_edit_outbox SET state = 'pushed', last_error = '', finished_at = $2
WHERE command_id = ANY($1::uuid[])`, pgArray(started.CommandIDs), now)
		return err
	}, evs...); err != nil {
		return err
	}
	p.cfg.Logger.InfoContext(ctx, "stock edits pushed", "listing_id", listingID, "commands", len(started.CommandIDs),
		"attempt", started.Attempt, "recovered", recovered)
	return nil
}

// etsyFailure records a failed attempt from Etsy's error.
func (p *Pusher) etsyFailure(ctx context.Context, listingID int64, ids []string, attempt int, err error) error {
	var apiErr *etsy.APIError
	switch {
	case errors.Is(err, etsy.ErrInvalidGrant), errors.Is(err, etsy.ErrInvalidToken):
		return p.fail(ctx, listingID, ids, attempt, "reauth_required", err.Error(), 401, true, p.cfg.ReauthWait)
	case errors.Is(err, etsy.ErrRateLimited):
		return p.fail(ctx, listingID, ids, attempt, "rate_limited", err.Error(), 429, true, 0)
	case errors.As(err, &apiErr) && apiErr.Status >= 500:
		return p.fail(ctx, listingID, ids, attempt, "etsy_unavailable", apiErr.Code, apiErr.Status, true, 0)
	case errors.As(err, &apiErr):
		msg := apiErr.Code
		if apiErr.Description != "" {
			msg += ": " + apiErr.Description
		}
		return p.fail(ctx, listingID, ids, attempt, "etsy_refused", msg, apiErr.Status, false, 0)
	}
	return p.fail(ctx, listingID, ids, attempt, "etsy_unreachable", err.Error(), 0, true, 0)
}

// fail records stock.edit_failed for the commands (once per attempt and
// code) and marks them: final failures leave the queue, retryable ones
// wait with backoff (or wait, when positive).
func (p *Pusher) fail(ctx context.Context, listingID int64, ids []string, attempt int, code, msg string, status int, retryable bool, wait time.Duration) error {
	now := p.cfg.Now()
	var shopID int64
	var lastErr string
	var attempts int
	err := p.cfg.DB.QueryRowContext(ctx, `SELECT shop_id, last_error, attempts FROM stock_edit_outbox WHERE command_id = $1`, ids[0]).
		Scan(&shopID, &lastErr, &attempts)
	if err != nil {
		return fmt.Errorf("record failed push of listing %d: %w", listingID, err)
	}
	if wait <= 0 {
		wait = p.backoff(max(attempts, attempt, 1))
	}
	state := StateQueued
	if !retryable {
		state = StateFailed
	}
	var finished *time.Time
	if !retryable {
		finished = &now
	}
	mark := func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE stock_edit_outbox SET state = $2, last_error = $3, next_attempt_at = $4, finished_at = $5
WHERE command_id = ANY($1::uuid[])`, pgArray(ids), state, code+": "+msg, now.Add(wait), finished)
		return err
	}
	if retryable && lastErr == code+": "+msg && code == "reauth_required" {
		// Said once already; keep waiting without repeating it.
		tx, err := p.cfg.DB.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
		if err := mark(tx); err != nil {
			return err
		}
		return tx.Commit()
	}
	ev := events.New(events.ListingStream(listingID), shopID, now, events.StockEditFailed{
		CommandIDs: ids, Attempt: attempt, ListingID: listingID, Code: code, Message: msg, Status: status, Retryable: retryable,
	}).WithDedupe(domain.EditFailedKey(ids[0], attempt) + ":" + code)
	return p.append(ctx, listingID, mark, ev)
}

// reschedule leaves the commands queued, due after wait, with a note.
func (p *Pusher) reschedule(ctx context.Context, ids []string, note string, wait time.Duration) {
	if _, err := p.cfg.DB.ExecContext(ctx, `UPDATE stock_edit_outbox SET last_error = $2, next_attempt_at = $3 WHERE command_id = ANY($1::uuid[])`,
		pgArray(ids), note, p.cfg.Now().Add(wait)); err != nil {
		p.cfg.Logger.WarnContext(ctx, "reschedule stock edits", "err", err)
	}
}

// append stores evs on the listing's stream and runs mark in the same
// transaction.
func (p *Pusher) append(ctx context.Context, listingID int64, mark func(*sql.Tx) error, evs ...events.Event) error {
	tx, err := eventstore.BeginAppend(ctx, p.cfg.DB)
	if err != nil {
		return fmt.Errorf("record push of listing %d: %w", listingID, err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	if _, err := p.cfg.Events.AppendIn(ctx, tx, events.ListingStream(listingID), eventstore.Any, evs...); err != nil {
		return fmt.Errorf("record push of listing %d: %w", listingID, err)
	}
	if mark != nil {
		if err := mark(tx); err != nil {
			return fmt.Errorf("record push of listing %d: outbox: %w", listingID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("record push of listing %d: %w", listingID, err)
	}
	return nil
}

func (p *Pusher) attempts(ctx context.Context, ids []string) int {
	var n sql.NullInt64
	_ = p.cfg.DB.QueryRowContext(ctx, `SELECT max(attempts) FROM stock_edit_outbox WHERE command_id = ANY($1::uuid[])`, pgArray(ids)).Scan(&n)
	return int(n.Int64)
}

func (p *Pusher) backoff(attempt int) time.Duration {
	d := p.cfg.MinBackoff << min(attempt-1, 20)
	if d <= 0 || d > p.cfg.MaxBackoff {
		d = p.cfg.MaxBackoff
	}
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// stableRead reads the listing's inventory between two reads of the
// shop's transaction count that agree, so the count says exactly which
// sales the inventory already holds. The first may be a recent count
// another push read; the second is read after the inventory, shared with
// the pushes that need one at the same time (see shopCounts).
func (p *Pusher) stableRead(ctx context.Context, ts etsy.TokenSource, shopID, listingID int64) (etsy.Inventory, int64, error) {
	first, err := p.counts.before(ctx, ts, shopID)
	if err != nil {
		return etsy.Inventory{}, 0, err
	}
	for range 8 {
		inv, err := p.cfg.Etsy.GetListingInventory(ctx, ts, listingID)
		if err != nil {
			return etsy.Inventory{}, 0, err
		}
		second, err := p.counts.after(ctx, ts, shopID)
		if err != nil {
			return etsy.Inventory{}, 0, err
		}
		if second == first {
			return inv, second, nil
		}
		first = second
	}
	return etsy.Inventory{}, 0, &etsy.APIError{Operation: "stable read", Status: 503, Code: "sales keep arriving; read again later"}
}

// lostSales finds the sales among the shop's transactions (from, to]
// that the write overwrote: for each variant the write changed, Etsy
// should hold expected minus the sales after the write; a higher
// quantity means some of those sales fell between the read and the
// write.
func (p *Pusher) lostSales(ctx context.Context, ts etsy.TokenSource, shopID, listingID, from, to int64, expected map[string]int64, inv etsy.Inventory) (map[string]int64, error) {
	if to <= from {
		return nil, nil
	}
	sold := map[string]int64{}
	need := to - from
	var seen int64
	offset := 0
	for seen < need {
		page, err := p.cfg.Etsy.GetShopTransactions(ctx, ts, shopID, etsy.MaxLimit, offset)
		if err != nil {
			return nil, err
		}
		// Transactions newer than "to" sit at the head of the list.
		skip := int64(page.Count) - to - int64(offset)
		for i, tx := range page.Results {
			if int64(i) < skip {
				continue
			}
			if seen == need {
				break
			}
			seen++
			if tx.ListingID == listingID {
				sold[tx.VariantKey()] += int64(tx.Quantity)
			}
		}
		if len(page.Results) < etsy.MaxLimit {
			break
		}
		offset += etsy.MaxLimit
	}
	now := quantities(listingID, inv)
	lost := map[string]int64{}
	for k, e := range expected {
		afterWrite := e - now[k] // sales Etsy counted on top of the write
		if n := sold[k] - afterWrite; n > 0 && now[k] > 0 {
			lost[k] = min(n, now[k])
		}
	}
	return lost, nil
}

// pgArray writes command ids (UUIDs, so nothing to quote) as a
// PostgreSQL array literal.
func pgArray(ids []string) string {
	return "{" + strings.Join(ids, ",") + "}"
}
