package ingest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/shopledger/shopledger/domain"
	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/etsymap"
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/internal/defaults"
	"github.com/shopledger/shopledger/telemetry"
)

// FetcherGroup is the fetcher's consumer group on the log.
const FetcherGroup = "ingest-fetcher"

// TokenSources gives the fetcher the token of a connected shop. The
// credentials store (encrypted OAuth tokens per shop) implements it.
type TokenSources interface {
	// ForShop returns the shop's token source, or an error wrapping
	// etsy.ErrShopNotConnected.
	ForShop(ctx context.Context, shopID int64) (etsy.TokenSource, error)
}

// EtsyAPI is what the fetcher calls at Etsy; *etsy.Client implements it.
type EtsyAPI interface {
	GetShopReceipt(ctx context.Context, ts etsy.TokenSource, shopID, receiptID int64) (etsy.Receipt, error)
	GetShopReceiptTransactionsByReceipt(ctx context.Context, ts etsy.TokenSource, shopID, receiptID int64) ([]etsy.Transaction, error)
	GetShopReceipts(ctx context.Context, ts etsy.TokenSource, shopID int64, q etsy.ReceiptsQuery) (etsy.ReceiptsPage, error)
	GetListing(ctx context.Context, ts etsy.TokenSource, listingID int64, withInventory bool) (etsy.Listing, error)
	GetListingInventory(ctx context.Context, ts etsy.TokenSource, listingID int64) (etsy.Inventory, error)
}

// Applier turns fetched objects into domain events; *Translator is the
// one implementation, shared with reconciliation.
type Applier interface {
	ApplyReceipt(ctx context.Context, shopID int64, r etsy.Receipt, cause etsymap.Cause) (etsymap.Applied, error)
	ApplyListing(ctx context.Context, shopID int64, l etsy.Listing, cause etsymap.Cause) (etsymap.Applied, error)
	ApplyListingDeleted(ctx context.Context, shopID, listingID int64, cause etsymap.Cause) (etsymap.Applied, error)
}

// FetcherConfig tunes a Fetcher.
type FetcherConfig struct {
	Policy URLPolicy
	// MaxAttempts bounds the tries of one fetch that fails in a way
	// worth repeating (5xx, 429, network). Default 3.
	MaxAttempts int
	// Backoff is the first pause between attempts, doubled each time
	// with jitter up to MaxBackoff. Defaults 500 ms and 10 s.
	Backoff    time.Duration
	MaxBackoff time.Duration
	// SettleWindow: before comparing a listing's stock with the ledger,
	// receipts modified this recently are applied, so a sale whose
	// order webhook has not arrived yet is not mistaken for a change at
	// Etsy. Default 30 min; negative turns it off.
	SettleWindow time.Duration
	// SettleMaxReceipts bounds that look-back (newest first). The sales it
	// settles early are ones the fetcher would fetch one by one later,
	// so a generous bound costs little. Default 5000 (50 calls).
	SettleMaxReceipts int
	// StoreRetries is how often one piece of evidence is redelivered
	// after a storage error before the fetcher records it as failed and
	// moves on. Default 5.
	StoreRetries int
	// BatchSize is how many events of the log one read takes. Default 50.
	BatchSize int
	// PollInterval is the pause between reads of a log with nothing new,
	// and after a failed read or commit. Default 200 ms.
	PollInterval time.Duration
	Now          func() time.Time
	Logger       *slog.Logger
}

// Fetcher follows each webhook's resource_url and hands what Etsy returns
// to the Applier. It consumes the log as its own group; Etsy failures end
// in an etsy.fetch_failed event so one bad message never stalls the rest.
//
// It never holds a transaction id while it waits for Etsy: every consumer
// in the cluster reads the log only below the oldest open transaction, so
// a transaction kept open across a slow or rate-limited Etsy would stall
// stock, alerts and the seal for everyone. It reads a batch with plain
// statements, calls Etsy, lets the Applier append (each stream in a short
// transaction of its own), and then moves the group's offset past the
// evidence in one short transaction, together with the etsy.fetch_failed
// or parked record that ends it, if any. A crash in between handles the
// evidence again; the dedupe keys and the domain's comparisons with the
// log make that add nothing.
type Fetcher struct {
	db     *sql.DB
	store  *eventstore.Store
	api    EtsyAPI
	tokens TokenSources
	apply  Applier
	cfg    FetcherConfig
	log    *slog.Logger

	mu       sync.Mutex
	failures map[string]int // storage failures per evidence event

	// decode turns a message of the log into its record; tests stand in
	// an older binary that cannot decode some evidence.
	decode func(*message.Message) (events.Record, error)

	outcomes *prometheus.CounterVec
	lag      prometheus.Gauge
	duration prometheus.Histogram
	parked   prometheus.Gauge
}

// Fetch outcomes, the label of ingest_fetch_total.
const (
	OutcomeApplied = "applied"
	OutcomeIgnored = "ignored"
	OutcomeFailed  = "failed"
	OutcomeRetried = "retried"
	// OutcomeParked counts evidence this binary cannot decode, recorded in
	// ingest_parked_evidence and retried when a fetcher starts.
	OutcomeParked = "parked"
	// OutcomeUnparked counts parked evidence that a later start decoded
	// and handled.
	OutcomeUnparked = "unparked"
)

// NewFetcher returns a fetcher over store, whose database db also holds
// the fetcher's lease and its parked evidence. It registers
// ingest_fetch_total{outcome},
// ingest_fetcher_lag_seconds, ingest_fetch_duration_seconds and
// ingest_fetcher_parked_evidence on reg.
func NewFetcher(db *sql.DB, store *eventstore.Store, api EtsyAPI, tokens TokenSources, apply Applier, cfg FetcherConfig, reg prometheus.Registerer) (*Fetcher, error) {
	defaults.Positive(&cfg.MaxAttempts, 3)
	defaults.Positive(&cfg.Backoff, 500*time.Millisecond)
	defaults.Positive(&cfg.MaxBackoff, 10*time.Second)
	if cfg.SettleWindow == 0 {
		cfg.SettleWindow = 30 * time.Minute
	}
	defaults.Positive(&cfg.SettleMaxReceipts, 5000)
	defaults.Positive(&cfg.StoreRetries, 5)
	defaults.Positive(&cfg.BatchSize, 50)
	defaults.Positive(&cfg.PollInterval, 200*time.Millisecond)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	f := &Fetcher{
		db: db, store: store, api: api, tokens: tokens, apply: apply, cfg: cfg, log: cfg.Logger,
		failures: map[string]int{},
		decode:   eventstore.RecordFromMessage,
		outcomes: telemetry.CounterVec("ingest_fetch_total",
			"Webhook evidence handled by the fetcher, by outcome (applied, ignored, failed, retried, parked, unparked).", "outcome"),
		lag: telemetry.Gauge("ingest_fetcher_lag_seconds",
			"Age of the evidence the fetcher handled last, from when it was stored."),
		duration: telemetry.Histogram("ingest_fetch_duration_seconds",
			"Time to fetch and translate one piece of evidence.", prometheus.DefBuckets),
		parked: telemetry.Gauge("ingest_fetcher_parked_evidence",
			"Evidence in ingest_parked_evidence: stored webhooks this fetcher could not decode, waiting for a binary that can."),
	}
	for _, o := range []string{OutcomeApplied, OutcomeIgnored, OutcomeFailed, OutcomeRetried, OutcomeParked, OutcomeUnparked} {
		f.outcomes.WithLabelValues(o) // so alerts see 0, not nothing
	}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	if err := telemetry.Register(reg, f.outcomes, f.lag, f.duration, f.parked); err != nil {
		return nil, fmt.Errorf("new fetcher: %w", err)
	}
	return f, nil
}

// Run follows the log as the consumer group FetcherGroup until ctx ends.
// One fetcher of the group works at a time (a session advisory lock,
// which holds no transaction id); another waits. On start, the active
// fetcher first retries the evidence that was parked as undecodable.
func (f *Fetcher) Run(ctx context.Context) error {
	g := eventstore.NewGroup(f.db, FetcherGroup, f.cfg.BatchSize)
	lease := &groupLease{db: f.db, key: FetcherGroup}
	defer lease.release()
	ready, parkedRetried := false, false
	for ctx.Err() == nil {
		if !ready {
			if err := g.Init(ctx); err != nil {
				f.log.Warn("fetcher: cannot start the consumer group, retrying", "err", err)
				f.pause(ctx, f.cfg.PollInterval)
				continue
			}
			ready = true
		}
		if !lease.hold(ctx) {
			f.log.Debug("fetcher: another fetcher of the group is active; waiting")
			f.pause(ctx, 5*f.cfg.PollInterval)
			continue
		}
		if !parkedRetried {
			parkedRetried = f.retryParked(ctx) == nil
		}
		n, err := f.step(ctx, g)
		switch {
		case ctx.Err() != nil:
		case err != nil:
			f.log.Warn("fetcher: evidence will be read again", "err", err)
			f.pause(ctx, f.cfg.PollInterval)
		case n < f.cfg.BatchSize:
			f.pause(ctx, f.cfg.PollInterval)
		}
	}
	return nil
}

func (f *Fetcher) pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// commitTimeout bounds the transaction that moves the fetcher's offset.
const commitTimeout = 10 * time.Second

// step handles one batch of the log and returns how many events it read.
// The offset moves past each piece of evidence once its outcome is
// stored, and past the events that are not evidence at the end; an error
// leaves the offset at the last evidence fully handled, so the rest is
// read again.
func (f *Fetcher) step(ctx context.Context, g *eventstore.Group) (int, error) {
	at, batch, err := g.Read(ctx)
	if err != nil || len(batch) == 0 {
		return 0, err
	}
	read := at // the last event read; at is the last one committed
	for _, m := range batch {
		if m.Type != events.TypeWebhookReceived {
			read = m.Cursor
			continue
		}
		rec, decodeErr := f.decode(m.Msg)
		if decodeErr != nil {
			// A newer binary wrote it (or it is damaged): record it where
			// an operator sees it and a later start retries it, never
			// acknowledge and forget it.
			park := func(ctx context.Context, tx *sql.Tx) error { return f.park(ctx, tx, m, decodeErr) }
			if err := f.commit(ctx, g, at, m.Cursor, park); err != nil {
				return len(batch), err
			}
			f.outcomes.WithLabelValues(OutcomeParked).Inc()
			f.log.Error("fetcher: evidence parked: this binary cannot decode it", "event_id", m.Msg.UUID,
				"schema_version", m.SchemaVersion, "err", decodeErr)
			f.countParked(ctx)
			at, read = m.Cursor, m.Cursor
			continue
		}
		failed, err := f.handle(ctx, rec)
		if err != nil {
			if read != at {
				if cerr := f.commit(ctx, g, at, read, nil); cerr != nil {
					err = errors.Join(err, cerr)
				}
			}
			return len(batch), fmt.Errorf("evidence %s: %w", rec.ID, err)
		}
		var record func(context.Context, *sql.Tx) error
		if failed != nil {
			record = func(ctx context.Context, tx *sql.Tx) error { return f.appendFailure(ctx, tx, *failed) }
		}
		if err := f.commit(ctx, g, at, m.Cursor, record); err != nil {
			return len(batch), fmt.Errorf("evidence %s: %w", rec.ID, err)
		}
		at, read = m.Cursor, m.Cursor
	}
	if read != at {
		if err := f.commit(ctx, g, at, read, nil); err != nil {
			return len(batch), err
		}
	}
	return len(batch), nil
}

// commit moves the group's offset from from to to in one short
// transaction, with record's writes (if any) in it. It outlives ctx by a
// few seconds, so evidence handled just before a shutdown is not handled
// again after it.
func (f *Fetcher) commit(ctx context.Context, g *eventstore.Group, from, to eventstore.Cursor, record func(context.Context, *sql.Tx) error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	defer cancel()
	tx, err := eventstore.BeginAppend(ctx, f.db)
	if err != nil {
		return fmt.Errorf("commit fetcher offset: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	if record != nil {
		if err := record(ctx, tx); err != nil {
			return fmt.Errorf("commit fetcher offset: %w", err)
		}
	}
	if err := g.AdvanceIn(ctx, tx, from, to); err != nil {
		return fmt.Errorf("commit fetcher offset: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit fetcher offset: %w", err)
	}
	return nil
}

// Handle processes one etsy.webhook.received record, storing its
// etsy.fetch_failed if it fails for good. It returns an error only when
// the outcome could not be stored; the caller retries then.
func (f *Fetcher) Handle(ctx context.Context, rec events.Record) error {
	failed, err := f.handle(ctx, rec)
	if err != nil || failed == nil {
		return err
	}
	if _, err := f.store.Append(ctx, failed.StreamID, eventstore.Any, *failed); err != nil {
		return fmt.Errorf("record fetch failure of %s: %w", failed.StreamID, err)
	}
	return nil
}

// handle follows one piece of evidence. It returns the etsy.fetch_failed
// to store when the evidence failed for good, or an error when a storage
// failure is worth another try.
func (f *Fetcher) handle(ctx context.Context, rec events.Record) (*events.Event, error) {
	ev, ok := rec.Data.(events.WebhookReceived)
	if !ok {
		return nil, nil
	}
	start := time.Now()
	f.lag.Set(f.cfg.Now().Sub(rec.RecordedAt).Seconds())
	defer func() { f.duration.Observe(time.Since(start).Seconds()) }()

	// The trace of the webhook's request goes on here.
	ctx, span := telemetry.Tracer().Start(telemetry.FromTraceParent(ctx, rec.Metadata.TraceParent), "fetcher follow",
		trace.WithAttributes(attribute.String("etsy.webhook_id", ev.WebhookID), attribute.String("etsy.event_type", ev.EtsyEventType), attribute.Int64("etsy.shop_id", ev.ShopID)))
	defer span.End()
	attempts, err := f.follow(ctx, rec, ev)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	switch {
	case err == nil:
		f.forget(rec)
		return nil, nil
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case isStorageError(err) && f.countFailure(rec) <= f.cfg.StoreRetries:
		f.outcomes.WithLabelValues(OutcomeRetried).Inc()
		return nil, err
	}
	f.forget(rec)
	failed := f.failure(rec, ev, attempts, err)
	return &failed, nil
}

// follow checks, fetches and applies; it returns how many fetch attempts
// were made and why it gave up.
func (f *Fetcher) follow(ctx context.Context, rec events.Record, ev events.WebhookReceived) (int, error) {
	kind := eventKind(ev.EtsyEventType)
	if kind == 0 {
		f.outcomes.WithLabelValues(OutcomeIgnored).Inc()
		f.log.Debug("fetcher: event type not followed", "event_type", ev.EtsyEventType, "webhook_id", ev.WebhookID)
		return 0, nil
	}
	res, err := f.cfg.Policy.Check(ev.ResourceURL, ev.ShopID)
	if err != nil {
		return 0, err
	}
	if res.Kind != kind {
		return 0, fmt.Errorf("%s webhook points at a %s: %w", ev.EtsyEventType, res.Kind, ErrResourceURL)
	}
	ts, err := f.tokens.ForShop(ctx, ev.ShopID)
	if err != nil {
		return 0, fmt.Errorf("token for shop %d: %w", ev.ShopID, err)
	}
	if f.api == nil {
		return 0, fmt.Errorf("shop %d: no Etsy app key configured: %w", ev.ShopID, etsy.ErrShopNotConnected)
	}
	cause := etsymap.WebhookCause(rec)
	cause.TraceParent = telemetry.TraceParent(ctx)
	var attempts int
	switch kind {
	case ResourceReceipt:
		var r etsy.Receipt
		attempts, err = f.retry(ctx, func() error {
			var err error
			if r, err = f.api.GetShopReceipt(ctx, ts, ev.ShopID, res.ReceiptID); err != nil {
				return err
			}
			if len(r.Transactions) == 0 {
				r.Transactions, err = f.api.GetShopReceiptTransactionsByReceipt(ctx, ts, ev.ShopID, res.ReceiptID)
			}
			return err
		})
		if err != nil {
			return attempts, err
		}
		if _, err := f.apply.ApplyReceipt(ctx, ev.ShopID, r, cause); err != nil {
			return attempts, err
		}
	case ResourceListing:
		var l etsy.Listing
		var gone bool
		attempts, err = f.retry(ctx, func() error {
			var err error
			l, err = f.api.GetListing(ctx, ts, res.ListingID, true)
			if errors.Is(err, etsy.ErrNotFound) && ev.EtsyEventType == etsy.EventListingDeleted {
				gone = true
				return nil
			}
			if err == nil && l.Inventory == nil {
				var inv etsy.Inventory
				if inv, err = f.api.GetListingInventory(ctx, ts, res.ListingID); err == nil {
					l.Inventory = &inv
				}
			}
			return err
		})
		if err != nil {
			return attempts, err
		}
		if gone {
			if _, err := f.apply.ApplyListingDeleted(ctx, ev.ShopID, res.ListingID, cause); err != nil {
				return attempts, err
			}
			break
		}
		if l.ShopID != ev.ShopID {
			return attempts, fmt.Errorf("listing %d belongs to shop %d, webhook is for shop %d: %w", l.ListingID, l.ShopID, ev.ShopID, ErrResourceURL)
		}
		// Etsy's listing already reflects every sale made before it was
		// read; settle those sales first so they are not taken for a
		// seller's edit.
		if err := f.settle(ctx, ts, ev.ShopID, cause); err != nil {
			return attempts, err
		}
		if _, err := f.apply.ApplyListing(ctx, ev.ShopID, l, cause); err != nil {
			return attempts, err
		}
	}
	f.outcomes.WithLabelValues(OutcomeApplied).Inc()
	return attempts, nil
}

// settle applies the shop's recently modified receipts that hold a sale
// the log lacks. It reads newest first, so SettleMaxReceipts cuts off the
// oldest.
func (f *Fetcher) settle(ctx context.Context, ts etsy.TokenSource, shopID int64, cause etsymap.Cause) error {
	if f.cfg.SettleWindow < 0 {
		return nil
	}
	since := f.cfg.Now().Add(-f.cfg.SettleWindow)
	var receipts []etsy.Receipt
	for offset := 0; len(receipts) < f.cfg.SettleMaxReceipts; offset += etsy.MaxLimit {
		var page etsy.ReceiptsPage
		_, err := f.retry(ctx, func() error {
			var err error
			page, err = f.api.GetShopReceipts(ctx, ts, shopID, etsy.ReceiptsQuery{
				MinLastModified: since, Limit: etsy.MaxLimit, Offset: offset, SortOn: "updated", SortOrder: "desc",
			})
			return err
		})
		if err != nil {
			return fmt.Errorf("settle recent receipts: %w", err)
		}
		receipts = append(receipts, page.Results...)
		if len(page.Results) < etsy.MaxLimit || offset+etsy.MaxLimit >= page.Count {
			break
		}
	}
	missing, err := f.unrecordedSales(ctx, receipts)
	if err != nil {
		return err
	}
	// The settle is about stock only: receipts whose every sale is
	// recorded are left to their own webhooks.
	c := cause
	c.EtsyEvent = ""
	for _, r := range missing {
		if _, err := f.apply.ApplyReceipt(ctx, shopID, r, c); err != nil {
			return err
		}
	}
	return nil
}

// unrecordedSales returns the receipts with a transaction whose stock.sold
// the log does not hold yet.
func (f *Fetcher) unrecordedSales(ctx context.Context, receipts []etsy.Receipt) ([]etsy.Receipt, error) {
	var keys []string
	for _, r := range receipts {
		for _, t := range r.Transactions {
			keys = append(keys, domain.SoldKey(t.TransactionID))
		}
	}
	if len(keys) == 0 {
		return nil, nil
	}
	have, err := f.store.Recorded(ctx, keys)
	if err != nil {
		return nil, fmt.Errorf("look up recorded sales: %w", err)
	}
	var out []etsy.Receipt
	for _, r := range receipts {
		for _, t := range r.Transactions {
			if _, ok := have[domain.SoldKey(t.TransactionID)]; !ok {
				out = append(out, r)
				break
			}
		}
	}
	return out, nil
}

// retry runs fetch until it succeeds, fails for good, or MaxAttempts ran
// out, pausing with jittered exponential backoff.
func (f *Fetcher) retry(ctx context.Context, fetch func() error) (int, error) {
	pause := f.cfg.Backoff
	for attempt := 1; ; attempt++ {
		err := fetch()
		if err == nil {
			return attempt, nil
		}
		if !transient(err) || attempt >= f.cfg.MaxAttempts {
			return attempt, etsyFailure{err}
		}
		d := pause/2 + time.Duration(rand.Int64N(int64(pause/2)+1))
		f.log.Warn("fetcher: etsy call failed, retrying", "attempt", attempt, "pause", d, "err", err)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return attempt, etsyFailure{ctx.Err()}
		case <-t.C:
		}
		pause = min(pause*2, f.cfg.MaxBackoff)
	}
}

// transient reports Etsy failures that another try may cure.
func transient(err error) bool {
	var api *etsy.APIError
	switch {
	case errors.Is(err, etsy.ErrRateLimited):
		return true
	case errors.As(err, &api):
		return api.Status >= 500
	case errors.Is(err, etsy.ErrNotFound), errors.Is(err, etsy.ErrForbidden), errors.Is(err, etsy.ErrBadRequest),
		errors.Is(err, etsy.ErrInvalidGrant), errors.Is(err, etsy.ErrInvalidToken), errors.Is(err, etsy.ErrShopNotConnected):
		return false
	case errors.Is(err, context.Canceled):
		return false
	}
	// Network errors and timeouts.
	return true
}

// isStorageError tells a failure to store (worth redelivering) from a
// failure of Etsy's data or of the request (recorded as fetch_failed).
func isStorageError(err error) bool {
	for _, permanent := range []error{
		ErrResourceURL, etsy.ErrShopNotConnected, etsymap.ErrNoInventory,
		domain.ErrWrongShop, domain.ErrWrongListing, domain.ErrWrongReceipt, domain.ErrInvalidView,
		eventstore.ErrInvalidEvent,
	} {
		if errors.Is(err, permanent) {
			return false
		}
	}
	var ef etsyFailure
	return !errors.As(err, &ef)
}

// etsyFailure marks an error as Etsy's answer (or its absence) after the
// retries, as opposed to a failure to store what Etsy said.
type etsyFailure struct{ err error }

func (e etsyFailure) Error() string { return e.err.Error() }
func (e etsyFailure) Unwrap() error { return e.err }

func (f *Fetcher) countFailure(rec events.Record) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures[rec.ID.String()]++
	return f.failures[rec.ID.String()]
}

func (f *Fetcher) forget(rec events.Record) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.failures, rec.ID.String())
}

// FetchFailedKey is the natural key of a webhook's failure record.
func FetchFailedKey(webhookID string) string { return WebhookDedupeKey(webhookID) + ":fetch_failed" }

// failure is the etsy.fetch_failed that ends a piece of evidence.
func (f *Fetcher) failure(rec events.Record, ev events.WebhookReceived, attempts int, cause error) events.Event {
	f.outcomes.WithLabelValues(OutcomeFailed).Inc()
	f.log.Warn("fetcher: giving up on webhook", "webhook_id", ev.WebhookID, "event_type", ev.EtsyEventType,
		"shop_id", ev.ShopID, "attempts", attempts, "err", cause)
	return events.New(events.WebhookStream(ev.WebhookID), ev.ShopID, f.cfg.Now(), events.FetchFailed{
		WebhookEventID: rec.ID.String(), WebhookID: ev.WebhookID, ResourceURL: ev.ResourceURL,
		Reason: cause.Error(), Attempts: attempts,
	}).WithDedupe(FetchFailedKey(ev.WebhookID)).WithMetadata(etsymap.WebhookCause(rec).Metadata())
}

func (f *Fetcher) appendFailure(ctx context.Context, tx *sql.Tx, failed events.Event) error {
	if _, err := f.store.AppendIn(ctx, tx, failed.StreamID, eventstore.Any, failed); err != nil {
		return fmt.Errorf("record fetch failure of %s: %w", failed.StreamID, err)
	}
	return nil
}

// eventKind maps Etsy's webhook event types to what they point at; 0 for
// types the fetcher does not follow.
func eventKind(eventType string) ResourceKind {
	switch {
	case strings.HasPrefix(eventType, "order."):
		return ResourceReceipt
	case strings.HasPrefix(eventType, "inventory."), strings.HasPrefix(eventType, "listing."):
		return ResourceListing
	}
	return 0
}

// EtsyHTTPClient is the HTTP client for Etsy calls: it never follows a
// redirect (a 3xx comes back as an error answer), so an answer pointing
// elsewhere cannot make the fetcher call a host nobody allowed.
func EtsyHTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout:   timeout,
		Transport: telemetry.ClientTransport(nil),
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
