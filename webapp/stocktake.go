package webapp

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/shopledger/shopledger/domain"
	"github.com/shopledger/shopledger/stockedits"
)

// maxStocktakeUpload bounds a stocktake file, as the API bounds its
// body: some 20,000 lines of SKU and count.
const maxStocktakeUpload = 2 << 20

// stocktakeOverhead is room for the multipart framing and the other
// fields of the form.
const stocktakeOverhead = 64 << 10

type stocktakeView struct {
	ShopID   int64
	ShopName string
	Link     string
	MaxLines int
	MaxSize  string
	// Result is the previewed (or refused) stocktake; nil on the upload
	// page.
	Result *stockedits.Stocktake
	Lines  []stocktakeRow
	// CSV is the previewed file, sent back with Apply; RequestID makes
	// applying it twice record once.
	CSV       string
	RequestID string
	// Refused says the apply was refused: nothing was recorded.
	Refused bool
}

type stocktakeRow struct {
	stockedits.StocktakeLine
	VariantLink  string
	CountedShown string
	DeltaShown   string
}

// stocktakeShop answers what every stocktake route shares: the shop
// within the organisation (404 otherwise) and a role that writes (403
// for auditors); ok false means it answered.
func (a *app) stocktakeShop(w http.ResponseWriter, r *http.Request) (*stocktakeView, stockedits.Actor, bool) {
	s, _ := sessionOf(r)
	owned, id, ok := a.ownedShop(w, r)
	if !ok {
		return nil, stockedits.Actor{}, false
	}
	if !s.Role.Writes() {
		a.forbidden(w, r, "Only owners and staff take stock. Auditors can read the stock on the product pages.")
		return nil, stockedits.Actor{}, false
	}
	if a.cfg.StockEdits == nil {
		a.fail(w, r, errors.New("webapp: Config.StockEdits is not set"))
		return nil, stockedits.Actor{}, false
	}
	v := &stocktakeView{ShopID: id, ShopName: "Shop " + strconv.FormatInt(id, 10), Link: "/shops/" + strconv.FormatInt(id, 10) + "/stocktake",
		MaxLines: stockedits.MaxStocktakeLines, MaxSize: "2 MB"}
	if list, err := a.cfg.Shops.ListShops(r.Context(), []int64{id}); err != nil {
		a.fail(w, r, err)
		return nil, stockedits.Actor{}, false
	} else if len(list) == 1 && list[0].Name != "" {
		v.ShopName = list[0].Name
	}
	return v, stockedits.Actor{Name: "user:" + s.User.ID.String(), Shops: owned, CanEdit: true}, true
}

func (a *app) renderStocktake(w http.ResponseWriter, r *http.Request, status int, v *stocktakeView, msg string) {
	a.render(w, r, status, "stocktake", view{Title: "Stocktake of " + v.ShopName, Error: msg, Data: v})
}

func (a *app) stocktakePage(w http.ResponseWriter, r *http.Request) {
	v, _, ok := a.stocktakeShop(w, r)
	if !ok {
		return
	}
	a.renderStocktake(w, r, http.StatusOK, v, "")
}

// errTooLarge is an upload above maxStocktakeUpload.
var errTooLarge = errors.New("stocktake file too large")

// readStocktakeForm reads the stocktake from the form: the uploaded file
// (field "file") or, when none is sent, the "csv" field that the Apply
// form carries.
func readStocktakeForm(w http.ResponseWriter, r *http.Request) (string, error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxStocktakeUpload+stocktakeOverhead)
	var err error
	if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
		err = r.ParseMultipartForm(maxStocktakeUpload + stocktakeOverhead)
		if r.MultipartForm != nil {
			defer r.MultipartForm.RemoveAll() //nolint:errcheck // temporary files only
		}
	} else {
		err = r.ParseForm()
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) || (err != nil && strings.Contains(err.Error(), "request body too large")) {
		return "", errTooLarge
	}
	if err != nil {
		return "", fmt.Errorf("the form could not be read: send it again")
	}
	if r.MultipartForm != nil {
		if f, _, ferr := r.FormFile("file"); ferr == nil {
			defer f.Close()
			raw, err := io.ReadAll(io.LimitReader(f, maxStocktakeUpload+1))
			if err != nil {
				return "", fmt.Errorf("the file could not be read: send it again")
			}
			if len(raw) > maxStocktakeUpload {
				return "", errTooLarge
			}
			if len(raw) > 0 {
				return string(raw), nil
			}
		}
	}
	csv := r.PostForm.Get("csv")
	if len(csv) > maxStocktakeUpload {
		return "", errTooLarge
	}
	if strings.TrimSpace(csv) == "" {
		return "", errors.New("choose a CSV file to upload")
	}
	return csv, nil
}

// stocktakeInputError answers a form whose file could not be taken.
func (a *app) stocktakeInputError(w http.ResponseWriter, r *http.Request, v *stocktakeView, err error) {
	if errors.Is(err, errTooLarge) {
		a.renderStocktake(w, r, http.StatusRequestEntityTooLarge, v,
			fmt.Sprintf("The file is larger than %s. Split it into several stocktakes of at most %d lines each.", v.MaxSize, v.MaxLines))
		return
	}
	a.renderStocktake(w, r, http.StatusUnprocessableEntity, v, "Nothing was read: "+err.Error()+".")
}

// stocktakeInput reads the shop and the file of a stocktake form; false
// means it answered.
func (a *app) stocktakeInput(w http.ResponseWriter, r *http.Request) (*stocktakeView, stockedits.Actor, string, bool) {
	v, actor, ok := a.stocktakeShop(w, r)
	if !ok {
		return v, actor, "", false
	}
	csv, err := readStocktakeForm(w, r)
	if err != nil {
		a.stocktakeInputError(w, r, v, err)
		return v, actor, "", false
	}
	return v, actor, csv, true
}

func (a *app) previewStocktake(w http.ResponseWriter, r *http.Request) {
	v, actor, csv, ok := a.stocktakeInput(w, r)
	if !ok {
		return
	}
	st, err := a.cfg.StockEdits.PreviewStocktake(r.Context(), actor, v.ShopID, strings.NewReader(csv))
	if !a.stocktakeResult(w, r, v, st, err) {
		return
	}
	v.CSV, v.RequestID = csv, uuid.NewString()
	a.renderStocktake(w, r, http.StatusOK, v, "")
}

func (a *app) applyStocktake(w http.ResponseWriter, r *http.Request) {
	v, actor, csv, ok := a.stocktakeInput(w, r)
	if !ok {
		return
	}
	reqID := strings.TrimSpace(r.PostForm.Get("request_id"))
	if reqID == "" {
		a.renderStocktake(w, r, http.StatusUnprocessableEntity, v, "The form carries no request id: preview the file again and apply from there.")
		return
	}
	st, err := a.cfg.StockEdits.ApplyStocktake(r.Context(), actor, v.ShopID, strings.NewReader(csv), reqID)
	if !a.stocktakeResult(w, r, v, st, err) {
		return
	}
	if !st.Applied {
		// A line is refused now (the stock moved since the preview, or
		// the file was never previewed): nothing is recorded.
		v.Refused = true
		v.CSV, v.RequestID = csv, uuid.NewString()
		a.renderStocktake(w, r, http.StatusUnprocessableEntity, v,
			fmt.Sprintf("Nothing was applied: %d line%s refused. Fix %s in the file and preview it again.", st.Errors, plural(st.Errors), map[bool]string{true: "it", false: "them"}[st.Errors == 1]))
		return
	}
	redirect(w, r, v.Link, "stocktake")
}

// stocktakeResult answers the service's errors and puts the lines on v;
// false means it answered.
func (a *app) stocktakeResult(w http.ResponseWriter, r *http.Request, v *stocktakeView, st stockedits.Stocktake, err error) bool {
	var ee *domain.EditError
	switch {
	case errors.Is(err, stockedits.ErrNotFound):
		a.notFound(w, r)
		return false
	case errors.Is(err, stockedits.ErrForbidden):
		a.forbidden(w, r, "Only owners and staff take stock.")
		return false
	case errors.Is(err, stockedits.ErrBadStocktake):
		a.renderStocktake(w, r, http.StatusUnprocessableEntity, v,
			"This file is not a stocktake: "+strings.TrimPrefix(err.Error(), stockedits.ErrBadStocktake.Error()+": ")+". See the format below.")
		return false
	case errors.As(err, &ee):
		a.renderStocktake(w, r, http.StatusUnprocessableEntity, v, "Nothing was applied: "+ee.Msg+".")
		return false
	case err != nil:
		a.fail(w, r, fmt.Errorf("stocktake: %w", err))
		return false
	}
	v.Result = &st
	for _, l := range st.Lines {
		row := stocktakeRow{StocktakeLine: l, CountedShown: "—", DeltaShown: signed(l.Delta)}
		if l.Counted != nil {
			row.CountedShown = strconv.FormatInt(*l.Counted, 10)
		}
		if l.ListingID != 0 && l.VariantKey != "" {
			row.VariantLink = variantPath(l.ListingID, l.VariantKey)
		}
		v.Lines = append(v.Lines, row)
	}
	return true
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
