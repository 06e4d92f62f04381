package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/shopledger/shopledger/etsy"
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
	"github.com/shopledger/shopledger/projections"
)

// EventLog is what the auditor endpoints read: the log itself, filtered to
// the caller's shops.
type EventLog interface {
	ListEvents(ctx context.Context, f projections.EventFilter) ([]eventstore.LoggedEvent, error)
	GetEvent(ctx context.Context, shops []int64, id uuid.UUID) (eventstore.LoggedEvent, error)
	// Causation returns the events that led to id (oldest first) and the
	// events it led to (in log order), both limited to shops.
	Causation(ctx context.Context, shops []int64, id uuid.UUID) (causes, effects []eventstore.LoggedEvent, err error)
	ChainStatus(ctx context.Context, shops []int64) (projections.ChainStatus, error)
}

type eventPage struct {
	Items      []eventstore.LoggedEvent `json:"items"`
	NextCursor string                   `json:"next_cursor"`
}

type eventDetail struct {
	Event    eventstore.LoggedEvent   `json:"event"`
	CausedBy []eventstore.LoggedEvent `json:"caused_by"`
	Caused   []eventstore.LoggedEvent `json:"caused"`
}

type seqCursor struct {
	Seq int64 `json:"s"`
}

func (s *server) auditorRoutes(r chi.Router) {
	r.Group(func(r chi.Router) {
		r.Use(s.timeout)
		r.Get("/events", s.handle(s.listEvents))
		r.Get("/events/{eventID}", s.handle(s.getEvent))
		r.Get("/chain", s.handle(s.chainStatus))
	})
	// The export bounds each batch, not the whole stream: a range of
	// millions of events takes longer than any one query should.
	r.Get("/events/export", s.handle(s.exportEvents))
}

func eventFilterOf(q url.Values, p Principal) (projections.EventFilter, error) {
	f := projections.EventFilter{Shops: p.Shops, Stream: q.Get("stream")}
	var err error
	if f.Type, err = optEnum(q, "type", eventTypes); err != nil {
		return f, err
	}
	f.ShopID, f.From, f.To, err = shopAndRange(q, p)
	return f, err
}

// shopAndRange reads shop_id, from and to, by which most lists filter.
func shopAndRange(q url.Values, p Principal) (shopID int64, from, to time.Time, err error) {
	if shopID, err = optShop(q, p); err != nil {
		return shopID, from, to, err
	}
	from, to, err = timeRange(q, "from", "to")
	return shopID, from, to, err
}

func (s *server) listEvents(w http.ResponseWriter, r *http.Request, p Principal) error {
	return listPage(w, r, p, "", EventFilterOf,
		func(ctx context.Context, f projections.EventFilter) ([]eventstore.LoggedEvent, string, error) {
			return EventPage(ctx, s.cfg.Data.Events, f)
		},
		func(items []eventstore.LoggedEvent, next string) any {
			return eventPage{Items: items, NextCursor: next}
		})
}

func (s *server) getEvent(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := uuid.Parse(chi.URLParam(r, "eventID"))
	if err != nil {
		return ErrNotFound // not a uuid names no event
	}
	ev, err := s.cfg.Data.Events.GetEvent(r.Context(), p.Shops, id)
	if err != nil {
		return err
	}
	causes, effects, err := s.cfg.Data.Events.Causation(r.Context(), p.Shops, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, eventDetail{Event: ev, CausedBy: nonNil(causes), Caused: nonNil(effects)})
	return nil
}

func (s *server) chainStatus(w http.ResponseWriter, r *http.Request, p Principal) error {
	st, err := s.cfg.Data.Events.ChainStatus(r.Context(), p.Shops)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

// exportEvents streams any range of the sealed log as NDJSON, one event a
// line, in sequence order, then one trailer line (see ExportTrailer). It
// reads in batches so that memory stays flat whatever the range, and each
// batch has the usual query timeout.
func (s *server) exportEvents(w http.ResponseWriter, r *http.Request, p Principal) error {
	f, err := ExportFilterOf(r.URL.Query(), p.Shops)
	if err != nil {
		return err
	}
	return exportEvents(w, r, s.cfg.Data.Events, f, ExportOptions{Batch: s.cfg.ExportBatch, Timeout: s.cfg.QueryTimeout, Logger: s.cfg.Logger})
}

// exportEvents streams f; see exportEvents (the handler) and ExportEvents.
func exportEvents(w http.ResponseWriter, r *http.Request, rd EventLog, f projections.EventFilter, o ExportOptions) error {
	f.Limit = o.Batch
	rc := http.NewResponseController(w)
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	started := false
	var tr ExportTrailer
	for {
		ctx, cancel := context.WithTimeout(r.Context(), o.Timeout)
		evs, err := rd.ListEvents(ctx, f)
		cancel()
		if err != nil {
			if !started {
				return err
			}
			// Headers are gone: the status cannot change any more, so the
			// trailer says the export is short and where to resume.
			o.Logger.Error("export interrupted", "after_seq", f.AfterSeq, "err", err)
			tr.Error = fmt.Sprintf("the export stopped early; resume with after_seq=%d", tr.LastSeq)
			_ = enc.Encode(exportTrailerLine{Trailer: tr})
			_ = bw.Flush()
			return nil
		}
		if !started {
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.Header().Set("Content-Disposition", `attachment; filename="events.ndjson"`)
			w.WriteHeader(http.StatusOK)
			started = true
		}
		for i := range evs {
			if err := enc.Encode(&evs[i]); err != nil {
				return nil // the client went away
			}
			tr.Count++
			tr.LastSeq, tr.HeadHash = evs[i].Seq, evs[i].Hash
		}
		if len(evs) < f.Limit {
			break
		}
		f.AfterSeq = evs[len(evs)-1].Seq
		// A slow reader may take long over a large range; keep extending
		// the write deadline batch by batch instead of one fixed limit.
		_ = rc.SetWriteDeadline(time.Now().Add(time.Minute))
		if err := bw.Flush(); err != nil {
			return nil
		}
		_ = rc.Flush()
	}
	tr.Complete = true
	_ = enc.Encode(exportTrailerLine{Trailer: tr})
	_ = bw.Flush()
	return nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// Query parameter helpers shared by the handlers.

// optShop reads ?shop_id=; a shop outside the caller's set is not found.
func optShop(q url.Values, p Principal) (int64, error) {
	s := q.Get("shop_id")
	if s == "" {
		return 0, nil
	}
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, badInput("shop_id", "want a positive integer")
	}
	if !p.Owns(id) {
		return 0, ErrNotFound
	}
	return id, nil
}

// The values the enum filters accept, from their sources of truth: Etsy's
// listing states, the sales projection's statuses, the event registry.
var (
	listingStates = etsy.ListingStates()
	saleStatuses  = projections.SaleStatuses()
	eventTypes    = events.Types()
)

// optEnum reads a parameter that, when given, must be one of known. An
// unknown value is an error rather than a filter that matches nothing,
// so that a typo does not read as "there are none".
func optEnum(q url.Values, name string, known []string) (string, error) {
	v := q.Get(name)
	if v == "" || slices.Contains(known, v) {
		return v, nil
	}
	return "", badInput(name, "want one of: %s", strings.Join(known, ", "))
}

func optInt(q url.Values, name string) (int64, error) {
	s := q.Get(name)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, badInput(name, "want a non-negative integer")
	}
	return n, nil
}

// parseInstant accepts RFC 3339 times and plain dates (midnight UTC).
func parseInstant(name, s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, badInput(name, "want an RFC 3339 time (2026-01-31T12:00:00Z) or a date (2026-01-31)")
}

func optTime(q url.Values, name string) (time.Time, error) {
	s := q.Get(name)
	if s == "" {
		return time.Time{}, nil
	}
	return parseInstant(name, s)
}

// timeRange reads a half-open [from, to) range; either end may be open.
func timeRange(q url.Values, fromName, toName string) (from, to time.Time, err error) {
	if from, err = optTime(q, fromName); err != nil {
		return
	}
	if to, err = optTime(q, toName); err != nil {
		return
	}
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		err = badInput(toName, "must be after %s", fromName)
	}
	return
}
