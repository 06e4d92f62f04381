package httpapi

import (
	"bytes"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// csvTable is a response that also has a spreadsheet form: the same rows as
// its JSON, flattened to strings.
type csvTable interface {
	csvHeader() []string
	csvRows() [][]string
}

type format int

const (
	formatJSON format = iota
	formatCSV
)

// negotiate picks JSON or CSV: ?format= wins (a spreadsheet can open a
// URL but not set headers), then the Accept header by quality.
func negotiate(r *http.Request, csvAllowed bool) (format, error) {
	switch f := r.URL.Query().Get("format"); f {
	case "":
	case "json":
		return formatJSON, nil
	case "csv":
		if !csvAllowed {
			return 0, badInput("format", "this endpoint has no CSV form")
		}
		return formatCSV, nil
	default:
		return 0, badInput("format", "want json or csv")
	}
	accept := r.Header.Get("Accept")
	if strings.TrimSpace(accept) == "" {
		return formatJSON, nil
	}
	bestJSON, bestCSV := -1.0, -1.0
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if qs, ok := params["q"]; ok {
			if v, err := strconv.ParseFloat(qs, 64); err == nil {
				q = v
			}
		}
		switch mt {
		case "application/json", "application/*", "application/problem+json":
			bestJSON = max(bestJSON, q)
		case "text/csv", "text/*":
			bestCSV = max(bestCSV, q)
		case "*/*":
			bestJSON = max(bestJSON, q)
			bestCSV = max(bestCSV, q*0.5) // JSON is the default for wildcards
		}
	}
	switch {
	case csvAllowed && bestCSV > 0 && bestCSV > bestJSON:
		return formatCSV, nil
	case bestJSON > 0:
		return formatJSON, nil
	default:
		return 0, ErrNotAcceptable
	}
}

// respond writes v as JSON or, when asked and possible, as CSV.
func respond(w http.ResponseWriter, f format, name string, v any) {
	if f == formatCSV {
		if t, ok := v.(csvTable); ok {
			writeCSV(w, name, t)
			return
		}
	}
	writeJSON(w, http.StatusOK, v)
}

func writeCSV(w http.ResponseWriter, name string, t csvTable) {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename=%q`, name+".csv"))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	cw := csv.NewWriter(w)
	_ = cw.Write(t.csvHeader())
	for _, row := range t.csvRows() {
		_ = cw.Write(sanitizeCSV(row))
	}
	cw.Flush()
}

// sanitizeCSV defuses spreadsheet formula injection: a listing title that
// starts with = + - @ would otherwise run as a formula when the seller opens
// the file. Numbers keep their sign.
func sanitizeCSV(row []string) []string {
	for i, cell := range row {
		if cell == "" || isNumber(cell) {
			continue
		}
		switch cell[0] {
		case '=', '+', '-', '@', '\t', '\r':
			row[i] = "'" + cell
		}
	}
	return row
}

func isNumber(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}

// Paging.

const (
	defaultLimit = 50
	// MaxLimit caps every page: a client asking for more gets this many.
	MaxLimit = 100
)

// parseLimit reads ?limit=, capping it at MaxLimit.
func parseLimit(q url.Values, def int) (int, error) {
	s := q.Get("limit")
	if s == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if errors.Is(err, strconv.ErrRange) && !strings.HasPrefix(s, "-") {
		return MaxLimit, nil
	}
	if err != nil || n < 1 {
		return 0, badInput("limit", "want a positive integer")
	}
	return int(min(n, MaxLimit)), nil
}

// Cursors are opaque to clients: base64url JSON of the last row's sort key.
// pageOf trims a reader's answer, asked for limit+1 rows so that the extra
// row tells whether another page exists, to limit rows, and encodes the
// cursor of the last row kept when there is a next page.
func pageOf[T any](items []T, asked int, cursor func(last T) any) ([]T, string) {
	items = nonNil(items)
	if len(items) < asked {
		return items, ""
	}
	items = items[:asked-1]
	return items, encodeCursor(cursor(items[len(items)-1]))
}

func encodeCursor(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		// Cursor values are plain ints, strings and times.
		panic(fmt.Sprintf("httpapi: encode cursor: %v", err))
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(s)
	// The API's cursors hold text from the database, which is never
	// anything but UTF-8 without NUL; a cursor with other bytes (raw or
	// as a JSON escape) was not made here and would reach a query.
	if err != nil || !utf8.Valid(b) || bytes.Contains(bytes.ToLower(b), []byte(`\u0000`)) {
		return badInput("cursor", "not a cursor this API returned")
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badInput("cursor", "not a cursor this API returned")
	}
	return nil
}

// nextLink sets a Link header to the next page, with the same query.
func nextLink(w http.ResponseWriter, r *http.Request, cursor string) {
	if cursor == "" {
		return
	}
	q := r.URL.Query()
	q.Set("cursor", cursor)
	u := url.URL{Path: r.URL.Path, RawQuery: q.Encode()}
	w.Header().Add("Link", fmt.Sprintf(`<%s>; rel="next"`, u.String()))
}
