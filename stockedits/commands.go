// Package stockedits records a seller's stock commands (counts, goods
// received, corrections, price changes, enabling and disabling a variant)
// as facts in the log, queues them in an outbox, and pushes them to Etsy
// exactly once: read Etsy's inventory, apply the change as a delta on
// Etsy's current quantity, write the whole product set back, and record
// Etsy's answer. See docs/stock-edits.md.
package stockedits

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/shopledger/shopledger/domain"
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
)

var (
	// ErrNotFound means the listing or variant is unknown or belongs to a
	// shop the caller may not see: callers answer 404 either way.
	ErrNotFound = errors.New("stock edit: no such variant")
	// ErrForbidden means the caller's role may not edit stock.
	ErrForbidden = errors.New("stock edit: role may not edit stock")
	// ErrRequestReused means the request id was used before for another
	// command.
	ErrRequestReused = errors.New("stock edit: request id already used for another command")
)

// Actor is who submits a command and what they may touch: the
// principal's name for the log, the shops of their organisation (or
// token), and whether their role may write.
type Actor struct {
	Name    string
	Shops   []int64
	CanEdit bool
}

func (a Actor) owns(shopID int64) bool {
	for _, s := range a.Shops {
		if s == shopID {
			return true
		}
	}
	return false
}

// Recorded is a command as the log holds it.
type Recorded struct {
	EventID   uuid.UUID
	Command   events.StockEditRequested
	State     string // queued, pushed, failed
	Duplicate bool   // the request id was seen before: nothing new was recorded
}

// Service records commands. It is what the API and the product page
// call.
type Service struct {
	db  *sql.DB
	es  *eventstore.Store
	now func() time.Time
}

// NewService returns a service over db. now defaults to time.Now.
func NewService(db *sql.DB, es *eventstore.Store, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{db: db, es: es, now: now}
}

// Submit checks a command on one variant of listingID against the
// ledger and records it: stock.edit_requested on the listing's stream
// and its outbox row, in one transaction. requestID makes it idempotent:
// the same request id for the same shop returns the first command. Errors:
// ErrForbidden, ErrNotFound (another organisation's variant too), a
// *domain.EditError (field and reason), ErrRequestReused.
func (s *Service) Submit(ctx context.Context, a Actor, listingID int64, c domain.EditCommand, requestID string) (Recorded, error) {
	if !a.CanEdit {
		return Recorded{}, ErrForbidden
	}
	if err := domain.CheckEdit(c); err != nil {
		return Recorded{}, err
	}
	requestID = strings.TrimSpace(requestID)
	if requestID == "" {
		requestID = uuid.NewString()
	}
	if len(requestID) > 200 {
		return Recorded{}, &domain.EditError{Field: "request_id", Msg: "at most 200 characters", Err: domain.ErrInvalidEdit}
	}
	stream := events.ListingStream(listingID)
	for range 5 {
		past, err := s.es.ReadStream(ctx, stream, 0)
		if err != nil {
			return Recorded{}, fmt.Errorf("submit stock edit: %w", err)
		}
		l := domain.ReplayListing(listingID, past)
		if len(past) == 0 || !a.owns(l.ShopID()) {
			return Recorded{}, ErrNotFound
		}
		if prev, ok, err := s.byRequest(ctx, l.ShopID(), requestID); err != nil {
			return Recorded{}, err
		} else if ok {
			if prev.Command.ListingID != listingID || prev.Command.VariantKey != c.VariantKey || prev.Command.Kind != c.Kind {
				return Recorded{}, ErrRequestReused
			}
			prev.Duplicate = true
			return prev, nil
		}
		cmdID := uuid.Must(uuid.NewV7()).String()
		ev, err := l.RequestEdit(c, domain.EditMeta{CommandID: cmdID, Actor: a.Name, RequestID: requestID, At: s.now()})
		if err != nil {
			if errors.Is(err, domain.ErrUnknownVariant) {
				return Recorded{}, ErrNotFound
			}
			return Recorded{}, err
		}
		ev = ev.WithMetadata(events.Metadata{Source: "stock-edit", Actor: a.Name, RequestID: requestID, CorrelationID: cmdID})
		rec, err := s.record(ctx, stream, past[len(past)-1].StreamVersion, ev)
		if errors.Is(err, eventstore.ErrConcurrency) {
			continue // the listing moved (a sale, an observation): decide again
		}
		return rec, err
	}
	return Recorded{}, fmt.Errorf("submit stock edit on listing %d: %w", listingID, eventstore.ErrConcurrency)
}

func (s *Service) record(ctx context.Context, stream string, version int64, ev events.Event) (Recorded, error) {
	req := ev.Data.(events.StockEditRequested)
	tx, err := eventstore.BeginAppend(ctx, s.db)
	if err != nil {
		return Recorded{}, fmt.Errorf("submit stock edit: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	res, err := s.es.AppendIn(ctx, tx, stream, eventstore.Exact(version), ev)
	if err != nil {
		return Recorded{}, fmt.Errorf("submit stock edit: %w", err)
	}
	if res.Events[0].Duplicate {
		// A concurrent request with the same id won; report its command.
		tx.Rollback() //nolint:errcheck // nothing to keep
		prev, ok, err := s.byRequest(ctx, req.ShopID, req.RequestID)
		if err != nil || !ok {
			return Recorded{}, fmt.Errorf("submit stock edit: duplicate request %q not found: %w", req.RequestID, err)
		}
		prev.Duplicate = true
		return prev, nil
	}
	_, err = tx.ExecContext(ctx, `
INSERT INTO stock_edit_outbox (command_id, shop_id, listing_id, variant_key, kind, actor, request_id, requested_at, next_attempt_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)`,
		req.CommandID, req.ShopID, req.ListingID, req.VariantKey, req.Kind, req.Actor, req.RequestID, ev.OccurredAt)
	if err != nil {
		return Recorded{}, fmt.Errorf("submit stock edit: queue: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return Recorded{}, fmt.Errorf("submit stock edit: %w", err)
	}
	return Recorded{EventID: res.Events[0].EventID, Command: req, State: StateQueued}, nil
}

// Outbox states.
const (
	StateQueued = "queued"
	StatePushed = "pushed"
	StateFailed = "failed"
)

// byRequest finds the command a shop recorded under a request id: the
// outbox row names it, the listing's stream holds it.
func (s *Service) byRequest(ctx context.Context, shopID int64, requestID string) (Recorded, bool, error) {
	var cmdID, state string
	var listingID int64
	err := s.db.QueryRowContext(ctx, `SELECT command_id::text, state, listing_id FROM stock_edit_outbox WHERE shop_id = $1 AND request_id = $2`,
		shopID, requestID).Scan(&cmdID, &state, &listingID)
	if errors.Is(err, sql.ErrNoRows) {
		return Recorded{}, false, nil
	}
	if err != nil {
		return Recorded{}, false, fmt.Errorf("stock edit by request id: %w", err)
	}
	past, err := s.es.ReadStream(ctx, events.ListingStream(listingID), 0)
	if err != nil {
		return Recorded{}, false, fmt.Errorf("stock edit by request id: %w", err)
	}
	for _, r := range past {
		if req, ok := r.Data.(events.StockEditRequested); ok && req.CommandID == cmdID {
			return Recorded{EventID: r.ID, Command: req, State: state}, true, nil
		}
	}
	return Recorded{}, false, fmt.Errorf("stock edit by request id: command %s is not in listing %d's stream", cmdID, listingID)
}
