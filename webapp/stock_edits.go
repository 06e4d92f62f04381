package webapp

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/shopledger/shopledger/domain"
	"github.com/shopledger/shopledger/events"
	"github.com/shopledger/shopledger/stockedits"
)

// StockEdits records the seller's stock commands and reads them back;
// *stockedits.Service is one, the same instance the API's adjustments use.
type StockEdits interface {
	Submit(ctx context.Context, a stockedits.Actor, listingID int64, c domain.EditCommand, requestID string) (stockedits.Recorded, error)
	History(ctx context.Context, shops []int64, listingID int64, key string) ([]stockedits.Entry, error)
	PreviewStocktake(ctx context.Context, a stockedits.Actor, shopID int64, file io.Reader) (stockedits.Stocktake, error)
	ApplyStocktake(ctx context.Context, a stockedits.Actor, shopID int64, file io.Reader, requestID string) (stockedits.Stocktake, error)
}

func init() {
	notices["edit"] = "Recorded; it is being sent to Etsy. Its state at Etsy shows under “Sent to Etsy” below."
	notices["stocktake"] = "The stocktake is applied: a count is recorded for every line that differed, and the counts are being sent to Etsy."
}

// maxEditForm bounds a stock edit form's body: a few short fields.
const maxEditForm = 64 << 10

// editForms are the variant page's stock forms, by the name the page and
// the handlers share.
const (
	formCount      = "count"
	formReceived   = "received"
	formCorrection = "correction"
	formPrice      = "price"
	formEnabled    = "enabled"
)

// editsView is the stock changes part of the variant page.
type editsView struct {
	// CanEdit shows the forms (owners and staff).
	CanEdit bool
	// RequestIDs holds a fresh request id per form, made when the page is
	// rendered: a form sent twice carries the same id and records once.
	RequestIDs map[string]string
	// Form, Field and Msg are a refused form: which form, the field at
	// fault and why; Values is what was typed.
	Form   string
	Field  string
	Msg    string
	Values url.Values
	// Currency is the variant's price currency; PriceNow its price as the
	// form shows it.
	Currency string
	PriceNow string
	Enabled  bool
	Reasons  []string
	History  []editEntry
}

// Value is what a field of form shows: what was typed when that form was
// refused, else nothing (def for the price).
func (e *editsView) Value(form, field, def string) string {
	if e.Form == form {
		return e.Values.Get(field)
	}
	return def
}

// ErrorFor is the refusal's message when it belongs to form's field.
func (e *editsView) ErrorFor(form, field string) string {
	if e.Form == form && e.Field == field {
		return e.Msg
	}
	return ""
}

// FormError is the refusal's message for form when no field of the form
// shows it.
func (e *editsView) FormError(form string, fields ...string) string {
	if e.Form != form {
		return ""
	}
	for _, f := range fields {
		if f == e.Field {
			return ""
		}
	}
	return e.Msg
}

// editEntry is one command of the history as the page says it.
type editEntry struct {
	When       time.Time
	Who        string
	What       string
	Note       string
	State      string // queued, pushed, failed, retrying or waiting (for the shop to be connected again)
	StateShown string
}

// fillEdits adds the stock forms and the commands' history to vd.
func (a *app) fillEdits(r *http.Request, vd *variantData, shops []int64, names func() map[string]string) error {
	s, _ := sessionOf(r)
	v := vd.Variant
	e := &editsView{CanEdit: s.Role.Writes() && a.cfg.StockEdits != nil, Currency: v.Variant.Price.Currency, Enabled: v.Enabled,
		Reasons: []string{events.CorrectionDamaged, events.CorrectionLost, events.CorrectionFound, events.CorrectionReturned}}
	e.PriceNow = decimal(v.Variant.Price.Amount, v.Variant.Price.Currency)
	if e.CanEdit {
		e.RequestIDs = map[string]string{}
		for _, f := range []string{formCount, formReceived, formCorrection, formPrice, formEnabled} {
			e.RequestIDs[f] = uuid.NewString()
		}
	}
	vd.Edits = e
	if a.cfg.StockEdits == nil {
		return nil
	}
	entries, err := a.cfg.StockEdits.History(r.Context(), shops, vd.Product.ListingID, v.VariantKey)
	if errors.Is(err, stockedits.ErrNotFound) {
		// The listing's stream is not the organisation's: nothing to show
		// (loadVariant already found the variant through the read side).
		return nil
	}
	if err != nil {
		return err
	}
	for _, en := range entries {
		e.History = append(e.History, describeEdit(en, names, s.User.ID.String(), s.User.Location()))
	}
	return nil
}

// actorNames maps the organisation's actors to what the history shows:
// "user:<id>" to members' names, "token:<id>" to API tokens' labels.
func (a *app) actorNames(r *http.Request) map[string]string {
	s, _ := sessionOf(r)
	out := map[string]string{}
	if ms, err := a.cfg.Accounts.Members(r.Context(), a.actor(r)); err == nil {
		for _, m := range ms {
			out["user:"+m.User.ID.String()] = m.User.Name()
		}
	}
	if ts, err := a.cfg.Tokens.ListOrganisation(r.Context(), s.OrgID); err == nil {
		for _, t := range ts {
			name := t.Prefix
			if t.Label != "" {
				name = "“" + t.Label + "”"
			}
			out["token:"+t.ID.String()] = "API token " + name
		}
	}
	return out
}

// whoIs names an actor ("user:<id>", "token:<id>") for the member me:
// "you", a colleague's name, an API token's label, or the actor as it is.
// names (the organisation's, see actorNames) is read only for an actor
// that is neither empty nor me.
func whoIs(actor string, names func() map[string]string, me string) string {
	switch {
	case actor == "":
		return ""
	case actor == "user:"+me:
		return "you"
	}
	if n := names()[actor]; n != "" {
		return n
	}
	if id, ok := strings.CutPrefix(actor, "token:"); ok {
		return "API token " + id
	}
	return actor
}

// describeEdit says one command in words.
func describeEdit(en stockedits.Entry, names func() map[string]string, me string, loc *time.Location) editEntry {
	out := editEntry{When: en.RequestedAt, Note: en.Note, Who: cmp.Or(whoIs(en.Actor, names, me), "unknown")}
	switch en.Kind {
	case events.EditCount:
		out.What = fmt.Sprintf("counted %d", en.Quantity)
		if en.Delta != 0 {
			out.What += fmt.Sprintf(" (%s against %d)", signed(en.Delta), en.Balance)
		} else {
			out.What += " (no change)"
		}
	case events.EditReceived:
		out.What = "received " + signed(en.Quantity)
		if en.SupplierRef != "" {
			out.What += " (" + en.SupplierRef + ")"
		}
	case events.EditCorrection:
		out.What = "correction " + signed(en.Quantity) + ", " + en.Reason
	case events.EditPrice:
		if en.Price != nil {
			out.What = "price " + money(en.Price.Amount, en.Price.Currency)
		} else {
			out.What = "price"
		}
	case events.EditEnable:
		out.What = "put on sale"
	case events.EditDisable:
		out.What = "taken off sale"
	default:
		out.What = en.Kind
	}
	switch {
	case en.State == stockedits.StatePushed:
		out.State = "pushed"
		if en.EtsyQuantity != nil && en.Kind != events.EditPrice {
			out.StateShown = fmt.Sprintf("pushed; Etsy now shows %d", *en.EtsyQuantity)
		} else {
			out.StateShown = "pushed to Etsy"
		}
		if en.PushedAt != nil {
			out.StateShown += " (" + en.PushedAt.In(loc).Format("2 Jan 2006 15:04 MST") + ")"
		}
	case en.State == stockedits.StateFailed:
		out.State = "failed"
		out.StateShown = "failed, not retried: " + cmp.Or(en.Error, "Etsy refused it") + ". Nothing changed at Etsy or in the ledger."
	case en.ErrorCode == "reauth_required":
		out.State = "waiting"
		out.StateShown = "waiting: the shop must be connected again; it is sent once it is"
	case en.Error != "":
		out.State = "retrying"
		out.StateShown = "failed, retrying: " + en.Error
	default:
		out.State = "queued"
		out.StateShown = "queued, on its way to Etsy"
	}
	return out
}

func signed(n int64) string {
	switch {
	case n > 0:
		return "+" + strconv.FormatInt(n, 10)
	case n < 0:
		return "−" + strconv.FormatInt(-n, 10)
	}
	return "0"
}

// decimal shows minor units as the price form takes them: "22.50".
func decimal(amount int64, currency string) string {
	if zeroDecimals[currency] {
		return strconv.FormatInt(amount, 10)
	}
	return fmt.Sprintf("%d.%02d", amount/100, amount%100)
}

// parseDecimal reads a price typed in the shop's currency into minor
// units: "22.5", "22,50", "1,234.50", "1.234,50". A separator followed
// by one or two digits is the decimal one; the other may group
// thousands in threes before it. Anything ambiguous ("12.345" in a
// currency with cents) is refused rather than guessed.
func parseDecimal(in, currency string) (int64, error) {
	bad := errors.New("bad price")
	s := strings.NewReplacer(" ", "", "\u00a0", "", "\u202f", "").Replace(strings.TrimSpace(in))
	if currency != "" {
		s = strings.TrimSuffix(strings.TrimPrefix(strings.ToUpper(s), currency), currency)
	}
	decimals := 2
	if zeroDecimals[currency] {
		decimals = 0
	}
	whole, frac, group := s, "", ".,"
	if i := strings.LastIndexAny(s, ".,"); i >= 0 && decimals > 0 && len(s)-i-1 >= 1 && len(s)-i-1 <= decimals {
		whole, frac = s[:i], s[i+1:]
		group = strings.Trim(".,", s[i:i+1])
	} else if decimals > 0 && strings.ContainsAny(s, ".,") {
		return 0, bad // "12.345" or "12,": not a price with cents
	}
	if strings.ContainsAny(whole, strings.Trim(".,", group)) {
		return 0, bad // the decimal separator twice
	}
	if len(group) == 2 { // no decimals: either separator groups thousands
		whole, group = strings.ReplaceAll(whole, ".", ","), ","
	}
	parts := strings.Split(whole, group)
	for i, p := range parts {
		if p == "" || (i > 0 && len(p) != 3) || (i == 0 && len(parts) > 1 && len(p) > 3) {
			return 0, bad
		}
	}
	digits := strings.Join(parts, "")
	for len(frac) < decimals {
		frac += "0"
	}
	for _, r := range digits + frac {
		if r < '0' || r > '9' {
			return 0, bad
		}
	}
	if len(digits) > 9 {
		return 0, bad
	}
	w, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return 0, bad
	}
	if decimals == 0 {
		return w, nil
	}
	f, _ := strconv.ParseInt(frac, 10, 64)
	return w*100 + f, nil
}

// parseQuantity reads a whole number as people type it: "+5", "-2",
// "−2" (a typographic minus).
func parseQuantity(in string) (int64, bool) {
	s := strings.TrimSpace(strings.ReplaceAll(in, "−", "-"))
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// editRefused re-renders the variant page with a refused form: 422, the
// message beside its field, what was typed kept.
func (a *app) editRefused(w http.ResponseWriter, r *http.Request, d productData, v variantRow, form, field, msg string) {
	vd, _, _, err := a.variantView(r, d, v)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	vd.Edits.Form, vd.Edits.Field, vd.Edits.Msg, vd.Edits.Values = form, field, msg, r.PostForm
	a.render(w, r, http.StatusUnprocessableEntity, "variant", view{Title: v.Name, Error: "Not recorded: " + msg, Data: vd})
}

// startEdit answers everything a stock form shares: the variant within
// the organisation (404 otherwise), the role (403 for auditors) and the
// form's body; ok false means it answered.
func (a *app) startEdit(w http.ResponseWriter, r *http.Request) (productData, variantRow, bool) {
	s, _ := sessionOf(r)
	d, v, ok := a.loadVariant(w, r)
	if !ok {
		return d, v, false
	}
	if !s.Role.Writes() {
		a.forbidden(w, r, "Auditors can read the stock but not change it. Ask an owner or staff member.")
		return d, v, false
	}
	if a.cfg.StockEdits == nil {
		a.fail(w, r, errors.New("webapp: Config.StockEdits is not set"))
		return d, v, false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxEditForm)
	if err := r.ParseForm(); err != nil {
		a.editRefused(w, r, d, v, "", "", "the form could not be read; send it again")
		return d, v, false
	}
	return d, v, true
}

// adjust records a count, goods received or a correction.
func (a *app) adjust(w http.ResponseWriter, r *http.Request) {
	d, v, ok := a.startEdit(w, r)
	if !ok {
		return
	}
	f := r.PostForm
	kind := f.Get("kind")
	c := domain.EditCommand{Kind: kind, VariantKey: v.VariantKey, Note: f.Get("note")}
	switch kind {
	case events.EditCount, events.EditReceived:
		c.SupplierRef = f.Get("supplier_ref")
	case events.EditCorrection:
		c.Reason = f.Get("reason")
	default:
		a.editRefused(w, r, d, v, "", "", "the form names no stock change (count, received or correction); reload the page and send it again")
		return
	}
	in := strings.TrimSpace(f.Get("quantity"))
	n, ok := parseQuantity(in)
	if !ok {
		msg := "want a whole number"
		if in != "" {
			msg = fmt.Sprintf("%q is not a whole number", in)
		}
		a.editRefused(w, r, d, v, kind, "quantity", msg)
		return
	}
	c.Quantity = n
	a.submitEdit(w, r, d, v, kind, c)
}

// setPrice records a price typed in the variant's currency.
func (a *app) setPrice(w http.ResponseWriter, r *http.Request) {
	d, v, ok := a.startEdit(w, r)
	if !ok {
		return
	}
	in := r.PostForm.Get("price")
	cur := v.Variant.Price.Currency
	amount, err := parseDecimal(in, cur)
	if err != nil {
		places := "up to two decimals, like 22.50"
		if zeroDecimals[cur] {
			places = "a whole number, without decimals"
		}
		a.editRefused(w, r, d, v, formPrice, "price", fmt.Sprintf("want a price in %s, %s", cmp.Or(cur, "the shop's currency"), places))
		return
	}
	c := domain.EditCommand{Kind: events.EditPrice, VariantKey: v.VariantKey, Note: r.PostForm.Get("note"),
		Price: &events.Money{Amount: amount, Currency: cur}}
	a.submitEdit(w, r, d, v, formPrice, c)
}

// setEnabled puts the variant on sale or takes it off.
func (a *app) setEnabled(w http.ResponseWriter, r *http.Request) {
	d, v, ok := a.startEdit(w, r)
	if !ok {
		return
	}
	c := domain.EditCommand{VariantKey: v.VariantKey, Note: r.PostForm.Get("note")}
	switch r.PostForm.Get("enabled") {
	case "true":
		c.Kind = events.EditEnable
	case "false":
		c.Kind = events.EditDisable
	default:
		a.editRefused(w, r, d, v, formEnabled, "enabled", "say whether to sell the variant or stop selling it")
		return
	}
	a.submitEdit(w, r, d, v, formEnabled, c)
}

// submitEdit records c through the stock edit service, as the API's
// adjustments do, and answers the form.
func (a *app) submitEdit(w http.ResponseWriter, r *http.Request, d productData, v variantRow, form string, c domain.EditCommand) {
	s, _ := sessionOf(r)
	shops, err := a.orgShops(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	actor := stockedits.Actor{Name: "user:" + s.User.ID.String(), Shops: shops, CanEdit: s.Role.Writes()}
	_, err = a.cfg.StockEdits.Submit(r.Context(), actor, d.ListingID, c, r.PostForm.Get("request_id"))
	var ee *domain.EditError
	switch {
	case errors.Is(err, stockedits.ErrNotFound):
		a.notFound(w, r)
	case errors.Is(err, stockedits.ErrForbidden):
		a.forbidden(w, r, "Auditors can read the stock but not change it. Ask an owner or staff member.")
	case errors.Is(err, stockedits.ErrRequestReused):
		a.editRefused(w, r, d, v, form, "request_id", "this form was already used for another change; it is fresh again now, send it once more")
	case errors.As(err, &ee):
		field := ee.Field
		if field == "currency" {
			field = "price"
		}
		msg := ee.Msg
		if errors.Is(err, domain.ErrZeroStock) {
			msg = "Etsy keeps at least one unit on for sale on an active listing, so this would be refused there. " +
				"To stop selling it, deactivate the listing on Etsy, or let the last unit sell."
		}
		a.editRefused(w, r, d, v, form, field, msg)
	case err != nil:
		a.fail(w, r, fmt.Errorf("stock edit: %w", err))
	default:
		redirect(w, r, v.Link, "edit")
	}
}
