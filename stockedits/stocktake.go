package stockedits

import (
	"cmp"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/google/uuid"

	"github.com/shopledger/shopledger/domain"
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/eventstore"
)

// MaxStocktakeLines bounds one stocktake file.
const MaxStocktakeLines = 20000

// ErrBadStocktake is a file that is not a stocktake at all (no header,
// wrong columns, too long); a line's own problem is in its Error.
var ErrBadStocktake = errors.New("not a stocktake file")

// StocktakeLine is one line of a stocktake file and what it would do.
type StocktakeLine struct {
	Line       int    `json:"line"` // 1-based, the header is line 1
	SKU        string `json:"sku"`
	Counted    *int64 `json:"counted,omitempty"`
	ListingID  int64  `json:"listing_id,omitempty"`
	VariantKey string `json:"variant_key,omitempty"`
	// Balance is the ledger's stock the count is compared with (pushed
	// movements plus commands still on their way).
	Balance int64 `json:"balance"`
	Delta   int64 `json:"delta"`
	// Error says why the line is refused; empty when it is fine.
	Error string `json:"error,omitempty"`
	// CommandID is the count recorded when the stocktake was applied.
	CommandID string `json:"command_id,omitempty"`
}

// Stocktake is a previewed or applied stocktake.
type Stocktake struct {
	ShopID  int64           `json:"shop_id"`
	Applied bool            `json:"applied"`
	Lines   []StocktakeLine `json:"lines"`
	Errors  int             `json:"errors"`
	// Changes counts lines whose count differs from the balance: the
	// counts applying records.
	Changes int `json:"changes"`
}

// PreviewStocktake reads a stocktake CSV (header "sku,counted"; one SKU
// and its counted quantity a line) and says, line by line, what applying
// it would record, or why a line is refused: an unknown SKU, a SKU on
// several listings, a SKU listed twice, a count that is negative, not an
// integer or above 999, or a count Etsy would refuse (no stock left on
// the listing). Nothing is recorded. Anyone who may see the shop may
// preview.
func (s *Service) PreviewStocktake(ctx context.Context, a Actor, shopID int64, file io.Reader) (Stocktake, error) {
	if !a.owns(shopID) {
		return Stocktake{}, ErrNotFound
	}
	st := Stocktake{ShopID: shopID, Lines: []StocktakeLine{}}
	rows, err := readStocktake(file)
	if err != nil {
		return st, err
	}
	if rows != nil {
		st.Lines = rows
	}
	skus := make([]string, 0, len(rows))
	for _, l := range rows {
		if l.Error == "" {
			skus = append(skus, l.SKU)
		}
	}
	where, err := s.locate(ctx, shopID, skus)
	if err != nil {
		return st, err
	}
	var ids []int64
	seen := map[int64]bool{}
	for _, l := range st.Lines {
		if locs := where[l.SKU]; l.Error == "" && len(locs) == 1 && !seen[locs[0].listingID] {
			seen[locs[0].listingID] = true
			ids = append(ids, locs[0].listingID)
		}
	}
	listings, err := s.replayListings(ctx, ids)
	if err != nil {
		return st, fmt.Errorf("preview stocktake: %w", err)
	}
	for i := range st.Lines {
		l := &st.Lines[i]
		if l.Error != "" {
			continue
		}
		locs := where[l.SKU]
		switch len(locs) {
		case 0:
			l.Error = "unknown SKU: no variant of this shop has it"
			continue
		case 1:
		default:
			l.Error = fmt.Sprintf("the SKU is on %d listings; count it on each product page", len(locs))
			continue
		}
		l.ListingID, l.VariantKey = locs[0].listingID, locs[0].key
		lst := listings[l.ListingID]
		// Deciding on the in-memory listing applies each line's count
		// to it, so lines of one listing are checked together (the last
		// variant with stock cannot be counted to zero).
		ev, err := lst.RequestEdit(domain.EditCommand{Kind: events.EditCount, VariantKey: l.VariantKey, Quantity: *l.Counted},
			domain.EditMeta{CommandID: fmt.Sprintf("preview-%d", l.Line), Actor: cmp.Or(strings.TrimSpace(a.Name), "preview"), RequestID: "preview"})
		var ee *domain.EditError
		switch {
		case errors.As(err, &ee):
			l.Error = ee.Msg
		case err != nil:
			return st, fmt.Errorf("preview stocktake: %w", err)
		default:
			req := ev.Data.(events.StockEditRequested)
			l.Balance, l.Delta = req.BalanceAtCommand, req.Delta
		}
	}
	for _, l := range st.Lines {
		switch {
		case l.Error != "":
			st.Errors++
		case l.Delta != 0:
			st.Changes++
		}
	}
	return st, nil
}

// previewReaders is how many listing streams a preview reads at once: a
// stocktake spans many listings, and the first count reaches Etsy only
// after the whole file is previewed.
const previewReaders = 4

// replayListings reads and replays the listings' streams, a few at once.
func (s *Service) replayListings(ctx context.Context, ids []int64) (map[int64]*domain.Listing, error) {
	out := make(map[int64]*domain.Listing, len(ids))
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	next := make(chan int64)
	for range min(previewReaders, len(ids)) {
		wg.Go(func() {
			for id := range next {
				past, err := s.es.ReadStream(ctx, events.ListingStream(id), 0)
				var l *domain.Listing
				if err == nil {
					l = domain.ReplayListing(id, past)
				}
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				out[id] = l
				mu.Unlock()
			}
		})
	}
	for _, id := range ids {
		next <- id
	}
	close(next)
	wg.Wait()
	return out, firstErr
}

// ApplyStocktake previews the file and, only when no line is refused,
// records a count for every line whose number differs from the balance.
// requestID makes it idempotent: line i's count is recorded under
// "<requestID>:<sku>", so applying the same file again records nothing
// new. With refused lines it returns the preview and records nothing.
func (s *Service) ApplyStocktake(ctx context.Context, a Actor, shopID int64, file io.Reader, requestID string) (Stocktake, error) {
	if !a.CanEdit {
		return Stocktake{}, ErrForbidden
	}
	requestID = strings.TrimSpace(requestID)
	if requestID == "" || len(requestID) > 100 {
		return Stocktake{}, &domain.EditError{Field: "request_id", Msg: "a stocktake needs a request id of 1 to 100 characters", Err: domain.ErrInvalidEdit}
	}
	st, err := s.PreviewStocktake(ctx, a, shopID, file)
	if err != nil || st.Errors > 0 {
		return st, err
	}
	// One transaction per listing: its counts are decided together on
	// its stream and queued together, so one push carries them.
	byListing := map[int64][]int{}
	var order []int64
	for i, l := range st.Lines {
		if l.Delta == 0 {
			continue
		}
		if _, ok := byListing[l.ListingID]; !ok {
			order = append(order, l.ListingID)
		}
		byListing[l.ListingID] = append(byListing[l.ListingID], i)
	}
	for _, listingID := range order {
		if err := s.applyListing(ctx, a, listingID, requestID, st.Lines, byListing[listingID]); err != nil {
			return st, err
		}
	}
	for _, l := range st.Lines {
		if l.Error != "" {
			st.Errors++
		}
	}
	st.Applied = true
	return st, nil
}

// applyListing records the counts of one listing's lines, retrying when
// the stream moved; a line the ledger now refuses says why and the others
// stand.
func (s *Service) applyListing(ctx context.Context, a Actor, listingID int64, requestID string, lines []StocktakeLine, idx []int) error {
	stream := events.ListingStream(listingID)
	for range 5 {
		past, err := s.es.ReadStream(ctx, stream, 0)
		if err != nil {
			return fmt.Errorf("apply stocktake: %w", err)
		}
		lst := domain.ReplayListing(listingID, past)
		var evs []events.Event
		for _, i := range idx {
			l := &lines[i]
			l.Error, l.CommandID = "", ""
			cmdID := uuid.Must(uuid.NewV7()).String()
			rid := requestID + ":" + l.SKU
			ev, err := lst.RequestEdit(domain.EditCommand{Kind: events.EditCount, VariantKey: l.VariantKey, Quantity: *l.Counted,
				Note: "stocktake " + requestID}, domain.EditMeta{CommandID: cmdID, Actor: a.Name, RequestID: rid, At: s.now()})
			var ee *domain.EditError
			switch {
			case errors.As(err, &ee):
				l.Error = ee.Msg
				continue
			case err != nil:
				return fmt.Errorf("apply stocktake line %d: %w", l.Line, err)
			}
			l.CommandID = cmdID
			evs = append(evs, ev.WithMetadata(events.Metadata{Source: "stocktake", Actor: a.Name, RequestID: rid, CorrelationID: cmdID}))
		}
		if len(evs) == 0 {
			return nil
		}
		err = s.recordAll(ctx, stream, past[len(past)-1].StreamVersion, evs)
		if errors.Is(err, eventstore.ErrConcurrency) {
			continue
		}
		return err
	}
	return fmt.Errorf("apply stocktake on listing %d: %w", listingID, eventstore.ErrConcurrency)
}

// recordAll appends commands and queues them in one transaction; those
// whose request id was recorded before are left as they are.
func (s *Service) recordAll(ctx context.Context, stream string, version int64, evs []events.Event) error {
	tx, err := eventstore.BeginAppend(ctx, s.db)
	if err != nil {
		return fmt.Errorf("apply stocktake: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	res, err := s.es.AppendIn(ctx, tx, stream, eventstore.Exact(version), evs...)
	if err != nil {
		return fmt.Errorf("apply stocktake: %w", err)
	}
	for i, ev := range evs {
		if res.Events[i].Duplicate {
			continue
		}
		req := ev.Data.(events.StockEditRequested)
		if _, err := tx.ExecContext(ctx, `
INSERT INTO stock_edit_outbox (command_id, shop_id, listing_id, variant_key, kind, actor, request_id, requested_at, next_attempt_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)`,
			req.CommandID, req.ShopID, req.ListingID, req.VariantKey, req.Kind, req.Actor, req.RequestID, ev.OccurredAt); err != nil {
			return fmt.Errorf("apply stocktake: queue: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("apply stocktake: %w", err)
	}
	return nil
}

// readStocktake parses the file; problems of one line are kept on it.
func readStocktake(file io.Reader) ([]StocktakeLine, error) {
	r := csv.NewReader(file)
	r.FieldsPerRecord = -1
	r.TrimLeadingSpace = true
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("%w: no header line \"sku,counted\"", ErrBadStocktake)
	}
	for i := range header {
		header[i] = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(header[i], "\ufeff")))
	}
	if len(header) != 2 || header[0] != "sku" || (header[1] != "counted" && header[1] != "quantity") {
		return nil, fmt.Errorf("%w: the header must be \"sku,counted\"", ErrBadStocktake)
	}
	var out []StocktakeLine
	first := map[string]int{}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		line, _ := r.FieldPos(0)
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				out = append(out, StocktakeLine{Line: pe.StartLine, Error: "not valid CSV: " + pe.Err.Error()})
				continue
			}
			return nil, fmt.Errorf("%w: %w", ErrBadStocktake, err)
		}
		if len(out) >= MaxStocktakeLines {
			return nil, fmt.Errorf("%w: more than %d lines", ErrBadStocktake, MaxStocktakeLines)
		}
		l := StocktakeLine{Line: line}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue // a blank line
		}
		if len(rec) != 2 {
			l.Error = fmt.Sprintf("want 2 fields (sku, counted), got %d", len(rec))
			out = append(out, l)
			continue
		}
		l.SKU = strings.TrimSpace(rec[0])
		text := strings.TrimSpace(rec[1])
		n, perr := strconv.ParseInt(text, 10, 64)
		switch {
		case l.SKU == "":
			l.Error = "no SKU"
		case perr != nil:
			l.Error = fmt.Sprintf("counted %q is not a whole number", text)
		case n < 0:
			l.Error = fmt.Sprintf("counted %d is negative", n)
		case n > domain.MaxEditQuantity:
			l.Error = fmt.Sprintf("counted %d is above Etsy's %d", n, domain.MaxEditQuantity)
		default:
			l.Counted = &n
		}
		if l.SKU != "" {
			if at, dup := first[l.SKU]; dup {
				l.Error = fmt.Sprintf("SKU listed twice (first on line %d)", at)
				for i := range out {
					if out[i].Line == at && out[i].Error == "" {
						out[i].Error = fmt.Sprintf("SKU listed twice (again on line %d)", line)
					}
				}
			} else {
				first[l.SKU] = line
			}
		}
		out = append(out, l)
	}
	return out, nil
}

type location struct {
	listingID int64
	key       string
}

// locate finds each SKU's variants among the shop's current listings.
func (s *Service) locate(ctx context.Context, shopID int64, skus []string) (map[string][]location, error) {
	out := map[string][]location{}
	if len(skus) == 0 {
		return out, nil
	}
	rows, err := s.db.QueryContext(ctx, `
SELECT v.sku, v.listing_id, v.variant_key FROM product_variants v JOIN products p USING (shop_id, listing_id)
WHERE v.shop_id = $1 AND v.sku = ANY($2) AND v.active AND NOT p.deleted
ORDER BY v.listing_id`, shopID, skus)
	if err != nil {
		return nil, fmt.Errorf("locate stocktake skus: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var sku string
		var loc location
		if err := rows.Scan(&sku, &loc.listingID, &loc.key); err != nil {
			return nil, fmt.Errorf("locate stocktake skus: %w", err)
		}
		out[sku] = append(out[sku], loc)
	}
	return out, rows.Err()
}
