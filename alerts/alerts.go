// Package alerts raises low-stock alerts exactly when a variant's balance
// crosses its threshold and delivers them to sellers by email, signed JSON
// webhook and Slack.
//
// Three parts, each with its own state:
//
//   - The Alerter is a consumer of the log (its own consumer group and its
//     own alerter_* tables, never another read model's). It appends
//     alert.low_stock_raised and alert.low_stock_cleared in the transaction
//     that stores its offset, and in that same transaction fills the outbox
//     (alert_deliveries) for raises that page the seller.
//   - The Dispatcher works the outbox apart from the ledger: a mail outage
//     delays deliveries, never the log. It retries with exponential backoff
//     for up to 24 hours and records every attempt.
//   - The ReadModel folds alert events into the alerts table; List and Get
//     serve open and past alerts with their deliveries to the query API.
//
// A rebuild never delivers: only the Alerter enqueues, only for events it
// newly appended, and the alert ids (hence dedupe keys) derive from the
// triggering event, so replaying the log finds every decision already
// stored.
package alerts

import (
	"errors"
	"fmt"
	"time"
)

// Channel kinds.
const (
	KindEmail   = "email"
	KindWebhook = "webhook"
	KindSlack   = "slack"
)

// ErrNotFound means the alert does not exist or is not in the caller's
// shops; callers answer both the same way so tenants cannot probe.
var ErrNotFound = errors.New("alert not found")

// Message is what a seller is told about a raised alert. It is captured
// when the alert is raised so that a delivery says what was true then.
type Message struct {
	AlertID      string    `json:"alert_id"`
	ShopID       int64     `json:"shop_id"`
	ShopName     string    `json:"shop_name,omitempty"`
	ListingID    int64     `json:"listing_id"`
	ListingTitle string    `json:"listing_title,omitempty"`
	ListingURL   string    `json:"listing_url,omitempty"`
	VariantKey   string    `json:"variant_key"`
	VariantLabel string    `json:"variant_label,omitempty"`
	Quantity     int64     `json:"quantity"`
	Threshold    int64     `json:"threshold"`
	RaisedAt     time.Time `json:"raised_at"`
	// Test marks a test alert an owner sent to check a channel.
	Test bool `json:"test,omitempty"`
}

// Shop names the shop for people.
func (m Message) Shop() string {
	if m.ShopName != "" {
		return m.ShopName
	}
	return fmt.Sprintf("shop %d", m.ShopID)
}

// Listing names the listing for people.
func (m Message) Listing() string {
	if m.ListingTitle != "" {
		return m.ListingTitle
	}
	return fmt.Sprintf("listing %d", m.ListingID)
}

// Variant names the variant for people.
func (m Message) Variant() string {
	if m.VariantLabel != "" {
		return m.VariantLabel
	}
	return m.VariantKey
}
