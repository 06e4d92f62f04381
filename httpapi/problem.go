// Package httpapi is the query service's HTTP surface: the chi routers for
// sellers and auditors, authentication by API token, tenancy scoping,
// per-token and per-address rate limits, RFC 7807 errors, cursor
// pagination, CSV, request metrics and the OpenAPI document.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shopledger/shopledger/projections"
)

// Errors handlers return; problemFor maps them to HTTP answers.
var (
	// ErrNotFound is also the answer for another seller's object, so that a
	// token cannot probe which ids exist.
	ErrNotFound        = errors.New("not found")
	ErrUnauthenticated = errors.New("unauthenticated")
	ErrForbidden       = errors.New("forbidden")
	ErrRateLimited     = errors.New("rate limited")
	ErrTimeout         = errors.New("query timed out")
	ErrNotAcceptable   = errors.New("not acceptable")
)

// InputError is a problem with the request that the client can fix. Its
// message is shown to the client, so it must never carry internal detail.
type InputError struct {
	// Param names the query or path parameter, header or body field at
	// fault, when there is one.
	Param string
	Msg   string
	// Status is the HTTP status to answer; zero means 400.
	Status int
}

func (e *InputError) Error() string {
	if e.Param == "" {
		return e.Msg
	}
	return e.Param + ": " + e.Msg
}

func badInput(param, format string, args ...any) error {
	return &InputError{Param: param, Msg: fmt.Sprintf(format, args...)}
}

// inputStatus is badInput with another 4xx status (413, 415).
func inputStatus(status int, param, format string, args ...any) error {
	return &InputError{Param: param, Msg: fmt.Sprintf(format, args...), Status: status}
}

// inputProblems names the problem type and title of each status an
// InputError can carry.
var inputProblems = map[int][2]string{
	http.StatusBadRequest:            {"invalid-request", "Invalid request"},
	http.StatusRequestEntityTooLarge: {"body-too-large", "Request body too large"},
	http.StatusUnsupportedMediaType:  {"unsupported-media-type", "Unsupported media type"},
}

// Problem is an RFC 7807 problem document.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	// Param names the query parameter or field at fault, when there is one.
	Param string `json:"param,omitempty"`
}

const problemBase = "https://shopledger.dev/problems/"

// problemFor is the one place where errors become HTTP statuses. It reports
// whether the error is internal, so that the caller logs it (once) and
// shows the client nothing of it.
func problemFor(err error) (p Problem, internal bool) {
	var in *InputError
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &in):
		status := in.Status
		if _, known := inputProblems[status]; !known {
			status = http.StatusBadRequest
		}
		kind := inputProblems[status]
		return Problem{Type: problemBase + kind[0], Title: kind[1], Status: status, Detail: in.Msg, Param: in.Param}, false
	case errors.As(err, &pgErr) && (pgErr.Code == "22021" || pgErr.Code == "22P05"):
		// character_not_in_repertoire, untranslatable_character: text the
		// database cannot hold came from the request. The handlers check
		// their input first; this keeps anything they miss a 400.
		return Problem{Type: problemBase + "invalid-request", Title: "Invalid request", Status: http.StatusBadRequest,
			Detail: "the request holds text that is not valid UTF-8 or contains a NUL byte"}, false
	case errors.Is(err, ErrNotFound), errors.Is(err, projections.ErrNotFound):
		return Problem{Type: problemBase + "not-found", Title: "Not found", Status: http.StatusNotFound}, false
	case errors.Is(err, ErrUnauthenticated):
		return Problem{Type: problemBase + "unauthenticated", Title: "Unauthenticated", Status: http.StatusUnauthorized,
			Detail: "send a valid API token as Authorization: Bearer <token>"}, false
	case errors.Is(err, ErrForbidden):
		return Problem{Type: problemBase + "forbidden", Title: "Forbidden", Status: http.StatusForbidden,
			Detail: "this token's role may not use this endpoint"}, false
	case errors.Is(err, ErrRateLimited):
		return Problem{Type: problemBase + "rate-limited", Title: "Too many requests", Status: http.StatusTooManyRequests}, false
	case errors.Is(err, ErrNotAcceptable):
		return Problem{Type: problemBase + "not-acceptable", Title: "Not acceptable", Status: http.StatusNotAcceptable,
			Detail: "this endpoint answers application/json or text/csv"}, false
	case errors.Is(err, ErrTimeout), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &pgErr) && pgErr.Code == "57014": // query_canceled: statement_timeout
		return Problem{Type: problemBase + "timeout", Title: "Query timed out", Status: http.StatusServiceUnavailable,
			Detail: "the query took longer than the server allows; narrow it (shorter range, smaller page)"}, false
	default:
		return Problem{Type: problemBase + "internal", Title: "Internal error", Status: http.StatusInternalServerError}, true
	}
}

// errorWriter writes problems and logs internal errors once.
type errorWriter struct {
	logger *slog.Logger
}

func (ew errorWriter) write(w http.ResponseWriter, r *http.Request, err error) {
	p, internal := problemFor(err)
	if internal {
		// A client that went away is not a server fault worth an error log.
		if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
			ew.logger.Debug("request canceled", "path", r.URL.Path, "err", err)
		} else {
			ew.logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		}
	}
	p.Instance = r.URL.Path
	if p.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="shopledger"`)
	}
	writeProblem(w, p)
}

func writeProblem(w http.ResponseWriter, p Problem) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Del("Content-Disposition")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// retryAfter sets Retry-After in whole seconds, at least one.
func retryAfter(w http.ResponseWriter, seconds int) {
	w.Header().Set("Retry-After", strconv.Itoa(max(seconds, 1)))
}
