package httpapi

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/shopledger/shopledger/alerts"
)

// AlertFilter selects alerts among Shops, newest raise first.
type AlertFilter struct {
	Shops    []int64
	ShopID   int64
	Status   string // "", open or cleared
	From, To time.Time
	After    *AlertCursor
	Limit    int
}

// AlertCursor is the last alert of a page.
type AlertCursor struct {
	RaisedAt time.Time `json:"r"`
	AlertID  uuid.UUID `json:"a"`
}

// AlertReader reads the alerts read model.
type AlertReader interface {
	ListAlerts(ctx context.Context, f AlertFilter) ([]Alert, error)
	GetAlert(ctx context.Context, shops []int64, id uuid.UUID) (Alert, error)
}

// Alert is a low-stock alert with where it was delivered.
type Alert struct {
	AlertID         string          `json:"alert_id"`
	ShopID          int64           `json:"shop_id"`
	ListingID       int64           `json:"listing_id"`
	VariantKey      string          `json:"variant_key"`
	Status          string          `json:"status"`
	Threshold       int64           `json:"threshold"`
	Quantity        int64           `json:"quantity"`
	Muted           bool            `json:"muted"`
	RaisedAt        time.Time       `json:"raised_at"`
	ClearedAt       *time.Time      `json:"cleared_at"`
	ClearedQuantity *int64          `json:"cleared_quantity"`
	ClearReason     string          `json:"clear_reason"`
	Deliveries      []AlertDelivery `json:"deliveries"`
}

// AlertDelivery is the state of one channel's delivery. Targets and raw
// error texts stay in: a webhook URL or an SMTP error can carry secrets.
type AlertDelivery struct {
	Kind          string     `json:"kind"`
	Status        string     `json:"status"`
	Attempts      int        `json:"attempts"`
	EnqueuedAt    time.Time  `json:"enqueued_at"`
	LastAttemptAt *time.Time `json:"last_attempt_at"`
	NextAttemptAt *time.Time `json:"next_attempt_at"`
	FinishedAt    *time.Time `json:"finished_at"`
	// History lists every attempt, oldest first. One alert's answer
	// carries it; lists leave it out.
	History []AlertAttempt `json:"history,omitzero"`
}

// AlertAttempt is one try of a delivery.
type AlertAttempt struct {
	Attempt    int       `json:"attempt"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	// Result is delivered or failed; the delivery's status says whether
	// another attempt follows a failure.
	Result string `json:"result"`
	// Error says why a failed attempt failed, in words that carry no
	// target, credential or internal detail (see attemptError); empty
	// when the attempt delivered.
	Error string `json:"error"`
}

type alertPage struct {
	Items      []Alert `json:"items"`
	NextCursor string  `json:"next_cursor"`
}

// AlertStore reads alerts through the alerts package's own readers.
type AlertStore struct {
	db *sql.DB
}

// NewAlertStore returns a reader over db.
func NewAlertStore(db *sql.DB) *AlertStore { return &AlertStore{db: db} }

func alertOf(a alerts.Alert) Alert {
	out := Alert{AlertID: a.AlertID.String(), ShopID: a.ShopID, ListingID: a.ListingID, VariantKey: a.VariantKey, Status: a.Status,
		Threshold: a.Threshold, Quantity: a.Quantity, Muted: a.Muted, RaisedAt: a.RaisedAt.UTC(), ClearedAt: a.ClearedAt,
		ClearedQuantity: a.ClearedQuantity, ClearReason: a.ClearReason, Deliveries: []AlertDelivery{}}
	for _, d := range a.Deliveries {
		out.Deliveries = append(out.Deliveries, AlertDelivery{Kind: d.Kind, Status: d.Status, Attempts: d.Attempts,
			EnqueuedAt: d.EnqueuedAt.UTC(), LastAttemptAt: d.LastAttemptAt, NextAttemptAt: d.NextAttemptAt, FinishedAt: d.FinishedAt})
	}
	return out
}

// alertWithHistory is alertOf with every delivery's attempts.
func alertWithHistory(a alerts.Alert) Alert {
	out := alertOf(a)
	for i, d := range a.Deliveries {
		h := make([]AlertAttempt, 0, len(d.History))
		for _, at := range d.History {
			result := alerts.DeliveryDelivered
			if at.Error != "" {
				result = alerts.DeliveryFailed
			}
			h = append(h, AlertAttempt{Attempt: at.Attempt, StartedAt: at.StartedAt.UTC(), FinishedAt: at.FinishedAt.UTC(),
				Result: result, Error: attemptError(at.Error)})
		}
		out.Deliveries[i].History = h
	}
	return out
}

// attemptErrors turn the dispatcher's error texts into what a seller may
// read. The texts can hold a webhook or Slack URL (itself a secret), an
// SMTP user name or a database error, so only the kind of failure is
// shown; the full text is in the projector's log. The first matching
// entry wins.
var attemptErrors = []struct{ contains, say string }{
	{"receiver answered", ""}, // the receiver's own status line; see attemptError
	{alerts.ErrForbiddenAddress.Error(), "the receiver's address is not allowed (a private or reserved network)"},
	{"sender is configured", "this server has no sender for this kind of channel"},
	{"was removed", "the channel was removed"},
	{"is not an http(s) URL", "the channel's URL is not an http(s) URL"},
	{"email address", "the e-mail address is not valid"},
	{"refusing to send SMTP credentials", "the mail server does not offer STARTTLS"},
	{"auth as", "the mail server refused the credentials"},
	{"deadline exceeded", "the receiver did not answer in time"},
	{"timeout", "the receiver did not answer in time"},
	{"connection refused", "the receiver refused the connection"},
	{"no such host", "the receiver's host name does not resolve"},
	{"x509", "the receiver's TLS certificate was not accepted"},
	{"tls", "the TLS handshake with the receiver failed"},
}

// attemptError is the seller-facing form of a delivery attempt's error.
func attemptError(text string) string {
	if text == "" {
		return ""
	}
	lower := strings.ToLower(text)
	for _, e := range attemptErrors {
		if !strings.Contains(lower, strings.ToLower(e.contains)) {
			continue
		}
		if e.say == "" {
			// "receiver answered 503 Service Unavailable": the status the
			// seller's own endpoint sent, cut to a status line's length.
			_, status, _ := strings.Cut(text, "receiver answered ")
			return "the receiver answered " + truncateText(strings.TrimSpace(status), 60)
		}
		return e.say
	}
	return "the delivery failed (the details are in the server log)"
}

func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// ListAlerts pages alerts.
func (s *AlertStore) ListAlerts(ctx context.Context, f AlertFilter) ([]Alert, error) {
	af := alerts.Filter{ShopID: f.ShopID, Status: f.Status, From: f.From, To: f.To, Limit: f.Limit}
	if f.After != nil {
		af.After = &alerts.Cursor{RaisedAt: f.After.RaisedAt, AlertID: f.After.AlertID}
	}
	as, err := alerts.List(ctx, s.db, f.Shops, af)
	if err != nil {
		return nil, err
	}
	out := make([]Alert, 0, len(as))
	for _, a := range as {
		out = append(out, alertOf(a))
	}
	return out, nil
}

// GetAlert returns one alert of the shops.
func (s *AlertStore) GetAlert(ctx context.Context, shops []int64, id uuid.UUID) (Alert, error) {
	a, err := alerts.Get(ctx, s.db, shops, id)
	if errors.Is(err, alerts.ErrNotFound) {
		return Alert{}, ErrNotFound
	}
	if err != nil {
		return Alert{}, err
	}
	return alertWithHistory(a), nil
}

func (s *server) alertRoutes(r chi.Router) {
	r.Get("/alerts", s.handle(s.listAlerts))
	r.Get("/alerts/{alertID}", s.handle(s.getAlert))
}

func (s *server) listAlerts(w http.ResponseWriter, r *http.Request, p Principal) error {
	return listPage(w, r, p, "", AlertFilterOf,
		func(ctx context.Context, f AlertFilter) ([]Alert, string, error) {
			items, next, err := AlertPage(ctx, s.cfg.Data.Alerts, f)
			if err != nil {
				return nil, "", fmt.Errorf("list alerts: %w", err)
			}
			return items, next, nil
		},
		func(items []Alert, next string) any { return alertPage{Items: items, NextCursor: next} })
}

func (s *server) getAlert(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := uuid.Parse(chi.URLParam(r, "alertID"))
	if err != nil {
		return ErrNotFound
	}
	a, err := s.cfg.Data.Alerts.GetAlert(r.Context(), p.Shops, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a)
	return nil
}
