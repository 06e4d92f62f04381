package etsy

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

var (
	// ErrNotFound is Etsy's 404: the shop, listing or receipt does not
	// exist or is not visible to the caller.
	ErrNotFound = errors.New("etsy: not found")
	// ErrInvalidToken is a 401 invalid_token that survived one refresh.
	ErrInvalidToken = errors.New("etsy: invalid access token")
	// ErrInvalidGrant means the refresh token (or authorization code) is
	// no longer valid: it was used already, revoked or expired. The shop
	// must be connected again.
	ErrInvalidGrant = errors.New("etsy: invalid grant")
	// ErrRateLimited means a request was refused (429) or would exceed the
	// configured per-second or per-day budget.
	ErrRateLimited = errors.New("etsy: rate limited")
	// ErrForbidden is Etsy's 403: wrong shop for the token, missing scope.
	ErrForbidden = errors.New("etsy: forbidden")
	// ErrBadRequest is Etsy's 400: a parameter or body Etsy refused.
	ErrBadRequest = errors.New("etsy: bad request")
	// ErrShopNotConnected means the ledger holds no usable OAuth grant for
	// the shop, so it has no TokenSource and nothing of it can be fetched.
	// Whoever hands out a shop's TokenSource returns it.
	ErrShopNotConnected = errors.New("shop not connected")
)

// APIError is an error answer from Etsy, typed from its {"error": …} body.
type APIError struct {
	Operation   string // e.g. "getShopReceipts"
	Status      int
	Code        string // Etsy's "error" value: a code for OAuth, a message otherwise
	Description string // Etsy's "error_description", when present
	RetryAfter  time.Duration
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("etsy %s: status %d", e.Operation, e.Status)
	if e.Code != "" {
		msg += ": " + e.Code
	}
	if e.Description != "" {
		msg += ": " + e.Description
	}
	return msg
}

// Is lets callers branch with errors.Is on the sentinels above.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrInvalidToken:
		return e.Status == http.StatusUnauthorized && e.Code == "invalid_token"
	case ErrInvalidGrant:
		return e.Code == "invalid_grant"
	case ErrRateLimited:
		return e.Status == http.StatusTooManyRequests
	case ErrForbidden:
		return e.Status == http.StatusForbidden
	case ErrBadRequest:
		return e.Status == http.StatusBadRequest && e.Code != "invalid_grant"
	}
	return false
}

// RateLimitError is returned without calling Etsy when the local limiter
// knows the budget is spent for longer than a caller should wait.
type RateLimitError struct {
	Window  string    // "second" or "day"
	RetryAt time.Time // when budget is expected back
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("etsy: %s rate budget exhausted until %s", e.Window, e.RetryAt.UTC().Format(time.RFC3339))
}

// Is makes a RateLimitError an ErrRateLimited.
func (e *RateLimitError) Is(target error) bool { return target == ErrRateLimited }

type errorBody struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
}

func newAPIError(op string, resp *http.Response, body []byte) *APIError {
	e := &APIError{Operation: op, Status: resp.StatusCode}
	var eb errorBody
	if json.Unmarshal(body, &eb) == nil {
		e.Code, e.Description = eb.Error, eb.ErrorDescription
	}
	if e.Code == "" {
		e.Code = http.StatusText(resp.StatusCode)
	}
	e.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"))
	return e
}

// parseRetryAfter reads Etsy's retry-after (seconds; an HTTP date is also
// valid per RFC 9110). Unusable values give 0.
func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}
