package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/shopledger/shopledger/domain"
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/stockedits"
)

// StockEditor records stock commands; *stockedits.Service is one.
type StockEditor interface {
	Submit(ctx context.Context, a stockedits.Actor, listingID int64, c domain.EditCommand, requestID string) (stockedits.Recorded, error)
	History(ctx context.Context, shops []int64, listingID int64, key string) ([]stockedits.Entry, error)
}

// listAdjustments is the variant's stock edits, newest first: each
// command with its actor and reason, its push attempts and Etsy's answer.
// It reads the listing's stream, like the commands do, so it answers as
// soon as a command is recorded; another organisation's listing is 404.
func (s *server) listAdjustments(w http.ResponseWriter, r *http.Request, p Principal) error {
	listingID, key, err := pathVariant(r)
	if err != nil {
		return err
	}
	if s.cfg.Data.StockEdits == nil {
		return fmt.Errorf("stock edits are not configured")
	}
	items, err := s.cfg.Data.StockEdits.History(r.Context(), p.Shops, listingID, key)
	if errors.Is(err, stockedits.ErrNotFound) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("stock edit history: %w", err)
	}
	writeJSON(w, http.StatusOK, struct {
		Items []stockedits.Entry `json:"items"`
	}{items})
	return nil
}

// adjustmentBody is what a client may send to .../adjustments: the shop,
// the actor and the delta come from the path, the token and the ledger.
type adjustmentBody struct {
	Kind        string `json:"kind"`
	Quantity    *int64 `json:"quantity"`
	Reason      string `json:"reason"`
	SupplierRef string `json:"supplier_ref"`
	Note        string `json:"note"`
	RequestID   string `json:"request_id"`
}

type priceBody struct {
	Amount    *int64 `json:"amount"`
	Currency  string `json:"currency"`
	Note      string `json:"note"`
	RequestID string `json:"request_id"`
}

// stockEditOut is the recorded command.
type stockEditOut struct {
	CommandID        string        `json:"command_id"`
	EventID          string        `json:"event_id"`
	Kind             string        `json:"kind"`
	ListingID        int64         `json:"listing_id"`
	VariantKey       string        `json:"variant_key"`
	Quantity         int64         `json:"quantity"`
	Delta            int64         `json:"delta"`
	BalanceAtCommand int64         `json:"balance_at_command"`
	Price            *events.Money `json:"price,omitempty"`
	Reason           string        `json:"reason,omitempty"`
	SupplierRef      string        `json:"supplier_ref,omitempty"`
	RequestID        string        `json:"request_id"`
	State            string        `json:"state"`
	Duplicate        bool          `json:"duplicate"`
}

// bodyWords are what the refusals of a JSON body say where bodies differ.
type bodyWords struct {
	wantType func(*json.UnmarshalTypeError) string // a field of the wrong JSON type
	unknown  string                                // after "unknown field; "
	invalid  string                                // any other body that does not decode
}

// decodeBody reads one JSON object of at most limit bytes into v, refusing
// unknown fields and anything after the object.
func decodeBody(w http.ResponseWriter, r *http.Request, limit int64, v any, words bodyWords) error {
	body, err := readJSONBody(w, r, limit)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		field, unknown := unknownField(err)
		switch {
		case errors.As(err, &typ):
			return badInput(typ.Field, "%s", words.wantType(typ))
		case errors.As(err, &syn), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return badInput("", "body is not a JSON object")
		case unknown:
			return badInput(field, "unknown field; %s", words.unknown)
		default:
			return badInput("", "%s", words.invalid)
		}
	}
	if dec.More() {
		return badInput("", "body holds more than one JSON value")
	}
	return nil
}

// unknownField is the field a decoder that disallows unknown fields
// refused, when that is what err says.
func unknownField(err error) (string, bool) {
	rest, ok := strings.CutPrefix(err.Error(), "json: unknown field ")
	return strings.Trim(rest, `"`), ok
}

// decodeStrict reads a write body of at most maxBody bytes; allowed lists
// its fields for the refusal of an unknown one.
func decodeStrict(w http.ResponseWriter, r *http.Request, v any, allowed string) error {
	return decodeBody(w, r, maxBody, v, bodyWords{
		wantType: func(typ *json.UnmarshalTypeError) string { return "want a " + typ.Type.String() },
		unknown:  "allowed: " + allowed,
		invalid:  "body is not a valid object",
	})
}

// requestIDFor is the client's idempotency key: the Idempotency-Key
// header, else the body's request_id; both must agree when both are set.
func requestIDFor(r *http.Request, body string) (string, error) {
	h := strings.TrimSpace(r.Header.Get("Idempotency-Key"))
	body = strings.TrimSpace(body)
	switch {
	case h != "" && body != "" && h != body:
		return "", badInput("request_id", "differs from the Idempotency-Key header")
	case h != "":
		return h, nil
	}
	return body, nil
}

// editBody is the body of a stock edit request.
type editBody interface {
	// command checks the body and makes the command for the variant key.
	command(key string) (domain.EditCommand, error)
	requestID() string
}

func (b *adjustmentBody) command(key string) (domain.EditCommand, error) {
	switch b.Kind {
	case events.EditCount, events.EditReceived, events.EditCorrection:
		if b.Quantity == nil {
			return domain.EditCommand{}, badInput("quantity", "required")
		}
	case events.EditEnable, events.EditDisable:
		if b.Quantity != nil {
			return domain.EditCommand{}, badInput("quantity", "enable and disable take no quantity")
		}
	case "":
		return domain.EditCommand{}, badInput("kind", "required: count, received, correction, enable or disable")
	default:
		return domain.EditCommand{}, badInput("kind", "want count, received, correction, enable or disable (prices go to PUT …/price)")
	}
	c := domain.EditCommand{Kind: b.Kind, VariantKey: key, Reason: b.Reason, SupplierRef: b.SupplierRef, Note: b.Note}
	if b.Quantity != nil {
		c.Quantity = *b.Quantity
	}
	return c, nil
}

func (b *adjustmentBody) requestID() string { return b.RequestID }

func (b *priceBody) command(key string) (domain.EditCommand, error) {
	if b.Amount == nil {
		return domain.EditCommand{}, badInput("amount", "required: the price in minor units (2250 is 22.50)")
	}
	return domain.EditCommand{Kind: events.EditPrice, VariantKey: key, Note: b.Note,
		Price: &events.Money{Amount: *b.Amount, Currency: strings.ToUpper(strings.TrimSpace(b.Currency))}}, nil
}

func (b *priceBody) requestID() string { return b.RequestID }

func (s *server) postAdjustment(w http.ResponseWriter, r *http.Request, p Principal) error {
	return s.recordEdit(w, r, p, &adjustmentBody{}, "kind, quantity, reason, supplier_ref, note, request_id")
}

func (s *server) putPrice(w http.ResponseWriter, r *http.Request, p Principal) error {
	return s.recordEdit(w, r, p, &priceBody{}, "amount, currency, note, request_id")
}

// recordEdit reads the variant from the path and b from the body, whose
// fields allowed lists, and records b's command.
func (s *server) recordEdit(w http.ResponseWriter, r *http.Request, p Principal, b editBody, allowed string) error {
	listingID, key, err := pathVariant(r)
	if err != nil {
		return err
	}
	if err := decodeStrict(w, r, b, allowed); err != nil {
		return err
	}
	c, err := b.command(key)
	if err != nil {
		return err
	}
	reqID, err := requestIDFor(r, b.requestID())
	if err != nil {
		return err
	}
	return s.submitEdit(w, r, p, listingID, c, reqID)
}

func (s *server) submitEdit(w http.ResponseWriter, r *http.Request, p Principal, listingID int64, c domain.EditCommand, reqID string) error {
	if s.cfg.Data.StockEdits == nil {
		return fmt.Errorf("stock edits are not configured")
	}
	if reqID == "" {
		// Without a client key a retried request would record twice;
		// the request id of this request at least ties the log to it.
		reqID = requestIDOf(r.Context())
	}
	rec, err := s.cfg.Data.StockEdits.Submit(r.Context(), editActor(p), listingID, c, reqID)
	if errors.Is(err, stockedits.ErrRequestReused) {
		return badInput("Idempotency-Key", "already used for another command")
	}
	if err != nil {
		return editError("stock edit", err)
	}
	cmd := rec.Command
	out := stockEditOut{
		CommandID: cmd.CommandID, EventID: rec.EventID.String(), Kind: cmd.Kind, ListingID: cmd.ListingID,
		VariantKey: cmd.VariantKey, Quantity: cmd.Quantity, Delta: cmd.Delta, BalanceAtCommand: cmd.BalanceAtCommand,
		Price: cmd.Price, Reason: cmd.Reason, SupplierRef: cmd.SupplierRef, RequestID: cmd.RequestID,
		State: rec.State, Duplicate: rec.Duplicate,
	}
	// Accepted: recorded and queued; Etsy follows through the outbox.
	writeJSON(w, http.StatusAccepted, out)
	return nil
}

// editActor is the caller as stockedits knows it.
func editActor(p Principal) stockedits.Actor {
	return stockedits.Actor{Name: p.Actor(), Shops: p.Shops, CanEdit: p.Role == RoleSeller}
}

// editError maps a refusal of stockedits that every command shares to the
// API's errors; anything else is internal, wrapped with op.
func editError(op string, err error) error {
	var ee *domain.EditError
	switch {
	case errors.Is(err, stockedits.ErrNotFound):
		return ErrNotFound
	case errors.Is(err, stockedits.ErrForbidden):
		return ErrForbidden
	case errors.As(err, &ee):
		return badInput(ee.Field, "%s", ee.Msg)
	default:
		return fmt.Errorf("%s: %w", op, err)
	}
}

// Stocktaker previews and applies stocktake files; *stockedits.Service
// is one.
type Stocktaker interface {
	PreviewStocktake(ctx context.Context, a stockedits.Actor, shopID int64, file io.Reader) (stockedits.Stocktake, error)
	ApplyStocktake(ctx context.Context, a stockedits.Actor, shopID int64, file io.Reader, requestID string) (stockedits.Stocktake, error)
}

// maxStocktakeBody bounds a stocktake request: a CSV of some 20,000 lines.
const maxStocktakeBody = 2 << 20

type stocktakeBody struct {
	Mode      string `json:"mode"`
	CSV       string `json:"csv"`
	RequestID string `json:"request_id"`
}

// stocktakeProblem is a refused stocktake: the problem and every line
// with its reason, so the seller fixes the file in one go.
type stocktakeProblem struct {
	Problem
	stockedits.Stocktake
}

func (s *server) postStocktake(w http.ResponseWriter, r *http.Request, p Principal) error {
	shopID, err := pathShop(r, p)
	if err != nil {
		return err
	}
	raw, err := readJSONBody(w, r, maxStocktakeBody)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var b stocktakeBody
	if err := dec.Decode(&b); err != nil {
		if field, ok := unknownField(err); ok {
			return badInput(field, "unknown field; allowed: mode, csv, request_id")
		}
		return badInput("", "body is not a stocktake object (mode, csv, request_id)")
	}
	st, ok := s.cfg.Data.StockEdits.(Stocktaker)
	if !ok {
		return fmt.Errorf("stocktakes are not configured")
	}
	a := editActor(p)
	var res stockedits.Stocktake
	switch b.Mode {
	case "preview", "":
		res, err = st.PreviewStocktake(r.Context(), a, shopID, strings.NewReader(b.CSV))
	case "apply":
		reqID, rerr := requestIDFor(r, b.RequestID)
		if rerr != nil {
			return rerr
		}
		if reqID == "" {
			return badInput("request_id", "required to apply: send it (or an Idempotency-Key header) so that a repeat applies nothing twice")
		}
		res, err = st.ApplyStocktake(r.Context(), a, shopID, strings.NewReader(b.CSV), reqID)
	default:
		return badInput("mode", "want preview or apply")
	}
	if errors.Is(err, stockedits.ErrBadStocktake) {
		return badInput("csv", "%s", strings.TrimPrefix(err.Error(), stockedits.ErrBadStocktake.Error()+": "))
	}
	if err != nil {
		return editError("stocktake", err)
	}
	if b.Mode == "apply" && !res.Applied {
		pr := Problem{Type: problemBase + "stocktake-refused", Title: "Stocktake refused", Status: http.StatusBadRequest,
			Detail: fmt.Sprintf("%d lines refused; nothing was applied", res.Errors), Instance: r.URL.Path, Param: "csv"}
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusBadRequest)
		return json.NewEncoder(w).Encode(stocktakeProblem{Problem: pr, Stocktake: res})
	}
	// 200 for both modes: "applied" says which happened.
	writeJSON(w, http.StatusOK, res)
	return nil
}
